"""What the Python script tests (ctest: server, browser, distributed) share: failures counted,
not fatal, so that one run reports all of them; PASS or the count at the end; free ports on
127.0.0.1."""
import socket
import sys

failures = []


def check(condition, message):
    """Records a failure (and prints it) unless `condition`; the test goes on."""
    if not condition:
        failures.append(message)
        print("FAIL:", message, file=sys.stderr)


def finish():
    """Exits 1 with the count of failures, else prints PASS (what ctest looks for)."""
    if failures:
        print(f"{len(failures)} failure(s)", file=sys.stderr)
        sys.exit(1)
    print("PASS")


def free_port():
    """A TCP port of 127.0.0.1 free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
