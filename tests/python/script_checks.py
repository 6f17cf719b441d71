"""What the Python script tests (ctest: server, browser, distributed) share: failures counted,
not fatal, so that one run reports all of them; PASS or the count at the end; free ports on
127.0.0.1."""
import os
import shutil
import socket
import sys

failures = []


def script_arguments():
    """ADAPTERTUNE PROJECT_DIR WORK_DIR, as adaptertune_script_test (tests/CMakeLists.txt) passes
    them, with WORK_DIR emptied (made when missing)."""
    cli, project, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    return cli, project, work


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
