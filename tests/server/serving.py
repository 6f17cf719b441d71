"""Helpers the server tests share: brief packs, and `adaptertune serve` on a free port of
127.0.0.1 with a small HTTP client."""
import atexit
import json
import os
import random
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request


def train(cli, project, task, out, *flags):
    """A pack of `task` trained for two steps on the shipped base (`train` FLAGS added); returns
    its directory."""
    subprocess.run([cli, "train", "--task", task, "--data-dir", os.path.join(project, "data", "glue"),
                    "--model", shipped_base(project), "--train-examples", "32", "--batch-size",
                    "16", "--max-steps", "2", "--max-length", "32", "--no-progress", "--out", out,
                    *flags],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.path.join(out, "best")


def shipped_base(project):
    return os.path.join(project, "models", "adaptertune-base-uncased-L4-H256")


class Server:
    """`adaptertune serve --port 0 FLAGS...`, waited for until it prints where it listens."""

    def __init__(self, cli, project, work, *flags):
        self.log = open(os.path.join(work, f"server{random.randrange(10**9)}.log"), "w+")
        self.process = subprocess.Popen(
            [cli, "serve", "--model", shipped_base(project), "--port", "0", *flags],
            stdout=subprocess.DEVNULL, stderr=self.log)
        # A test that dies of an exception must not leave its servers listening.
        atexit.register(self.kill_if_running)
        deadline = time.time() + 120
        self.port = None
        while self.port is None and time.time() < deadline:
            self.log.seek(0)
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log.read())
            if found:
                self.port = int(found.group(1))
            elif self.process.poll() is not None:
                break
            else:
                time.sleep(0.1)
        if self.port is None:
            self.kill_if_running()
            self.log.seek(0)
            raise SystemExit("the server did not start: " + self.log.read())
        self.url = f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, timeout=60):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), dict(error.headers)

    def predict(self, body, **kwargs):
        return self.request("POST", "/v1/predict", body, **kwargs)

    def kill_if_running(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self):
        """SIGTERM; returns the exit code and the server's log."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.log.seek(0)
        return code, self.log.read()
