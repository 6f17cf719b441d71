#!/usr/bin/python3
"""The page `adaptertune serve` offers at GET /, in a real browser (ctest label `browser`):
headless Chromium from Debian driven through chromedriver's WebDriver protocol (plain HTTP and
JSON, so the standard library suffices). For a classification task, a sentence-pair regression
task and no task, the test picks the task, types the text, presses Predict, reads the label and
the bars the page shows, and compares them with POST /v1/predict for the same input.

Usage: page_test.py ADAPTERTUNE PROJECT_DIR WORK_DIR [SCREENSHOT.png]"""
import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from serving import Server, shipped_base, train
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from script_checks import check, finish, free_port, script_arguments  # noqa: E402

cli, project, work = script_arguments()
screenshot = sys.argv[4] if len(sys.argv) > 4 else None
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the WebDriver element reference key


class Browser:
    """A headless Chromium session through chromedriver."""

    def __init__(self):
        port = free_port()
        self.driver = subprocess.Popen(["chromedriver", f"--port={port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if self.call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("chromedriver did not start")
            time.sleep(0.1)
        options = {"binary": "/usr/bin/chromium",
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--window-size=900,760"]}
        session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = f"/session/{session['sessionId']}"

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as error:
            raise SystemExit(f"WebDriver {method} {path}: {error.read().decode()[:500]}")

    def go(self, url):
        self.call("POST", self.session + "/url", {"url": url})

    def script(self, source, *args):
        return self.call("POST", self.session + "/execute/sync", {"script": source, "args": list(args)})

    def element(self, css):
        return self.call("POST", self.session + "/element",
                         {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css):
        self.call("POST", f"{self.session}/element/{self.element(css)}/click", {})

    def type(self, css, text):
        element = self.element(css)
        self.call("POST", f"{self.session}/element/{element}/clear", {})
        if text:
            self.call("POST", f"{self.session}/element/{element}/value", {"text": text})

    def wait_for(self, source, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.script(source)
            if value:
                return value
            time.sleep(0.05)
        return None

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("GET", self.session + "/screenshot")))

    def close(self):
        try:
            self.call("DELETE", self.session)
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=30)


sst2 = train(cli, project, "SST-2", os.path.join(work, "sst2"))
stsb = train(cli, project, "STS-B", os.path.join(work, "stsb"))
# A span pack (question answering): the page takes a question and its context, shows the answer.
squad_file = os.path.join(project, "tests", "data", "squad", "dev-v1.1.json")
subprocess.run([cli, "train", "--task", "squad", "--train-file", squad_file, "--dev-file", squad_file,
                "--model", shipped_base(project), "--max-length", "64", "--doc-stride", "16",
                "--max-query-length", "16", "--batch-size", "8", "--max-steps", "1", "--no-progress",
                "--out", os.path.join(work, "squad")],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
squad = os.path.join(work, "squad", "best")
server = Server(cli, project, work, "--adapter-pack", sst2, "--adapter-pack", stsb,
                "--adapter-pack", squad)
browser = Browser()
try:
    browser.go(server.url + "/")
    check(browser.wait_for("return document.body.dataset.ready === 'true'"), "the page never listed the tasks")
    options = browser.script("return [...document.querySelectorAll('#task option')].map(o => o.value)")
    check(options == ["", "SST-2", "STS-B", "squad"], f"task choices: {options}")
    # What the base is, from GET /v1/model; the shipped base has no classifier of its own.
    no_task = browser.script("return document.querySelector('#task option').textContent")
    check(no_task == "(no task: the plain base, an untrained head)", f"the no-task choice: {no_task}")
    model = browser.script("return document.querySelector('#model').textContent")
    check(model == "Base: adaptertune-base-uncased-L4-H256 (4 layers, hidden size 256), fp32 on cpu; 3 tasks.",
          f"the base's description: {model}")
    READ = """
      const answer = document.querySelector('#answer');
      const error = document.querySelector('#error');
      if (error) return {error: error.textContent};
      if (!answer || answer.dataset.for !== arguments[0]) return null;
      return {label: answer.dataset.label || null, score: answer.dataset.score || null,
              answer: answer.dataset.answer === undefined ? null : answer.dataset.answer,
              text: answer.textContent,
              rows: [...document.querySelectorAll('.row')].map(r => [r.dataset.label,
                     Number(r.dataset.probability), r.querySelector('.value').textContent,
                     r.querySelector('.fill').style.width])};"""
    cases = [("SST-2", "a gorgeous, witty, seductive movie", ""),
             ("STS-B", "A man is playing a guitar.", "A man plays music."),
             ("", "no task: the plain base answers", ""),
             ("squad", "Who won Super Bowl 50?",
              "Super Bowl 50 was won by the Denver Broncos, who beat the Carolina Panthers 24-10.")]
    for n, (task, text, pair) in enumerate(cases):
        browser.click(f"#task option[value='{task}']")
        browser.type("#text", text)
        browser.type("#pair", pair)
        # Mark the old answer so that the new one is told apart from it.
        browser.script("const a = document.querySelector('#answer'); if (a) a.dataset.for = 'old';")
        browser.click("#go")
        # Wait for the new answer (or an error), and mark it as this case's.
        browser.wait_for(
            "const a = document.querySelector('#answer'); const e = document.querySelector('#error');"
            "if (e) return true; if (!a || a.dataset.for === 'old') return null;"
            "a.dataset.for = 'case'; return true;")
        answer = browser.script(READ, "case")
        check(answer is not None and "error" not in answer, f"{task or 'no task'}: no answer shown: {answer}")
        if not answer or "error" in answer:
            continue
        request = {"text": text}
        if task:
            request["task"] = task
        if pair:
            request["text_pair"] = pair
        status, body, _ = server.predict(request)
        expected = json.loads(body)
        check(status == 200, f"{task}: /v1/predict {status} {body}")
        if "answer" in expected:
            shown = (f"no answer (score of no answer {expected['null_score']:.4f})"
                     if expected["answer"] == "" else
                     f"answer: {expected['answer']} (score {expected['score']:.4f})")
            check(answer["answer"] == expected["answer"] and answer["text"] == shown,
                  f"{task}: page shows {answer}, /v1/predict says {expected}")
        elif "score" in expected:
            check(answer["score"] is not None and abs(float(answer["score"]) - expected["score"]) < 1e-6
                  and f"{expected['score']:.4f}" in answer["text"],
                  f"{task}: page shows {answer}, /v1/predict says {expected}")
        else:
            check(answer["label"] == expected["label"] and f"label: {expected['label']}" == answer["text"],
                  f"{task or 'no task'}: page shows {answer['text']}, /v1/predict says {expected['label']}")
            rows = answer["rows"]
            check([r[0] for r in rows] == list(expected["probabilities"]),
                  f"{task or 'no task'}: bars {rows} for {expected['probabilities']}")
            for label, probability, value, width in rows:
                p = expected["probabilities"].get(label, -1)
                # The bar's width reads back as the browser serialises CSS: "46.0%" becomes "46%".
                check(abs(probability - p) < 1e-9 and value == f"{100 * p:.1f} %"
                      and width.endswith("%") and float(width[:-1]) == float(f"{100 * p:.1f}"),
                      f"{task or 'no task'}: bar {label} shows {value} ({width}), expected {p}")
        if n == 0 and screenshot:
            browser.screenshot(screenshot)
    # A bad request shows the server's error on the page.
    browser.click("#task option[value='SST-2']")
    browser.script("document.querySelector('#text').value = 'x'.repeat(70000);")
    browser.click("#go")
    error = browser.wait_for("const e = document.querySelector('#error'); return e && e.textContent;")
    check(error and error.startswith("413"), f"an oversized text shows {error}")
finally:
    browser.close()
    code, log = server.stop()
check(code == 0, f"server exit {code}: {log[-300:]}")
finish()
