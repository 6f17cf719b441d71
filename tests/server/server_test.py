#!/usr/bin/python3
"""`adaptertune serve` end to end (ctest label `server`): starts servers on free ports of
127.0.0.1, sends good and bad requests and concurrent clients, loads and unloads packs under
traffic, checks answers against the offline `predict`, overload (503 with Retry-After),
timeouts (504), and SIGTERM with requests in flight (all answered, exit 0).

Usage: server_test.py ADAPTERTUNE PROJECT_DIR WORK_DIR"""
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

from serving import Server as ServeProcess, train as train_pack
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from script_checks import check, finish, script_arguments  # noqa: E402

cli, project, work = script_arguments()
base = os.path.join(project, "models", "adaptertune-base-uncased-L4-H256")
glue = os.path.join(project, "data", "glue")
packs_dir = os.path.join(work, "packs")
os.makedirs(packs_dir)


def train(task, name, *flags):
    return train_pack(cli, project, task, os.path.join(packs_dir, name), *flags)


def Server(*flags):
    return ServeProcess(cli, project, work, *flags)


def close(a, b):
    return abs(a - b) <= 1e-5 * max(1.0, abs(b))


def same_answer(got, expected):
    return (got.get("task") == expected.get("task") and got.get("label") == expected.get("label")
            and len(got["logits"]) == len(expected["logits"])
            and all(close(x, y) for x, y in zip(got["logits"], expected["logits"])))


sst2 = train("SST-2", "sst2")
stsb = train("STS-B", "stsb")
# Trained on top of STS-B's adapter: its pack records the stack.
stacked = train("RTE", "rte_on_stsb", "--adapter-pack", stsb, "--stack-on", "STS-B")

# The offline answers for a mixed set of requests.
requests = []
for i, text in enumerate(["a gorgeous, witty movie", "the plot is a mess", "fine", "dull, long"]):
    requests.append({"task": "SST-2", "text": text})
    requests.append({"task": "STS-B", "text": text, "text_pair": "a film " + str(i)})
    requests.append({"text": "no task " + str(i)})
with open(os.path.join(work, "requests.jsonl"), "w") as f:
    for r in requests:
        f.write(json.dumps(r) + "\n")
offline = subprocess.run([cli, "predict", "--model", base, "--adapter-pack", sst2,
                          "--adapter-pack", stsb, "--input", os.path.join(work, "requests.jsonl")],
                         check=True, capture_output=True, text=True).stdout.splitlines()
expected = [json.loads(line) for line in offline]
# Requests that name no task run the model directory's head; the shipped base has none, so it is
# random per process: compare those by shape only.
def matches(got, i):
    if requests[i].get("task") is None:
        return got["task"] is None and len(got["probabilities"]) == 2
    return same_answer(got, expected[i])


a = Server("--adapter-pack", sst2, "--adapter-pack", stsb, "--packs-dir", packs_dir,
           "--api-key", "secret", "--max-body-bytes", "4096", "--max-text-bytes", "512",
           "--max-inputs", "16", "--max-wait-ms", "5")
status, body, _ = a.request("GET", "/healthz")
check(status == 200 and json.loads(body) == {"status": "ok"}, f"healthz: {status} {body}")


# Replies read off a raw connection, for what urllib does not show: keep-alive and its order.
def statuses(replies):
    """The status of each whole reply (with its Content-Length body) in `replies`."""
    found = []
    while (head_end := replies.find(b"\r\n\r\n")) >= 0:
        length = int(re.search(rb"(?i)content-length: *(\d+)", replies[:head_end]).group(1))
        if len(replies) < head_end + 4 + length:
            break
        found.append(replies.split(None, 2)[1])
        replies = replies[head_end + 4 + length:]
    return found


def read_replies(connection, replies, count):
    while len(statuses(replies)) < count and (more := connection.recv(65536)):
        replies += more
    return replies


def with_healthz_after(request):
    """`request`, then GET /healthz, on one kept-alive connection, each sent once the answer
    before it is read: the replies as they came."""
    with socket.create_connection(("127.0.0.1", a.port), timeout=60) as connection:
        connection.sendall(request)
        replies = read_replies(connection, b"", 1)
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return read_replies(connection, replies, 2)


# Idle kept-alive connections (a browser keeps about six) each hold a thread for up to 5 s: the
# default --threads leaves room for a dozen and still answers at once (with 8, the last four and
# the next request waited 5 s).
started = time.time()
idle = [socket.create_connection(("127.0.0.1", a.port), timeout=60) for _ in range(12)]
for connection in idle:
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
answered = 0
for connection in idle:
    reply = read_replies(connection, b"", 1)
    answered += statuses(reply) == [b"200"] and reply.endswith(b'{"status":"ok"}')
status, _, _ = a.request("GET", "/healthz")
waited = time.time() - started
check(answered == 12 and status == 200 and waited < 2.5,
      f"12 kept-alive connections and one more: {answered} + {status} after {waited:.1f} s")
for connection in idle:
    connection.close()
status, body, _ = a.request("GET", "/v1/tasks")
tasks = {t["name"]: t for t in json.loads(body)["tasks"]}
check(set(tasks) == {"SST-2", "STS-B"}, f"tasks: {body}")
check(tasks["SST-2"]["labels"] == ["0", "1"] and tasks["STS-B"]["problem_type"] == "regression"
      and tasks["SST-2"]["question_answering"] is None, f"task descriptions: {body}")
check(tasks["SST-2"]["base"]["matches"] and len(tasks["SST-2"]["base"]["weights_sha256"]) == 64,
      f"base identity: {body}")
check(tasks["SST-2"]["stacked_on"] == [], f"stacked_on of a pack trained alone: {body}")
# A task's own tensors: its adapter, LayerNorm copies and head, a few hundred kB of float32.
check(all(isinstance(t["bytes"], int) and 0 < t["bytes"] < 2_000_000 for t in tasks.values()),
      f"task bytes: {body}")

# The base: what it is, how it runs, what a request without a task gets (the shipped base has no
# classifier: an untrained head of two labels).
status, body, _ = a.request("GET", "/v1/model")
model = json.loads(body) if status == 200 else {}
with open(os.path.join(base, "config.json")) as f:
    base_config = json.load(f)
check(status == 200 and model["model"] == "adaptertune-base-uncased-L4-H256"
      and all(model["config"][key] == base_config[key] for key in
              ("hidden_size", "num_hidden_layers", "max_position_embeddings", "vocab_size"))
      and "architectures" not in model["config"]
      and model["config_sha256"] == tasks["SST-2"]["base"]["config_sha256"]
      and model["precision"] in ("fp32", "bf16") and model["device"] == "cpu"
      and model["bytes"] > 10 * 2**20 and model["tasks"] == ["SST-2", "STS-B"]
      and model["no_task"] == {"problem_type": "single_label_classification",
                               "question_answering": None, "labels": ["LABEL_0", "LABEL_1"],
                               "max_length": 128, "trained": False}
      and model["library_version"], f"GET /v1/model: {status} {body}")

# One request, and all of them mixed in one: equal to the offline predict.
status, body, _ = a.predict(requests[0])
check(status == 200 and matches(json.loads(body), 0), f"single predict: {status} {body}")
status, body, _ = a.predict({"inputs": requests})
outputs = json.loads(body)["outputs"] if status == 200 else []
check(len(outputs) == len(requests) and all(matches(o, i) for i, o in enumerate(outputs)),
      f"mixed predict differs from offline: {status} {body[:300]}")

# Bad requests: status and a message naming the field.
bad = [
    (b"{not json", 400, "invalid JSON"),
    ([1, 2], 400, "expected a JSON object"),
    ({"task": "SST-2"}, 400, 'body: expected {\\"text\\": string}'),
    ({"task": "SST-2", "text": 5}, 400, 'body: expected {\\"text\\": string}'),
    ({"task": 7, "text": "x"}, 400, '\\"task\\" must be a string'),
    ({"text": "x", "lang": "en"}, 400, 'unknown key \\"lang\\"'),
    ({"inputs": "x"}, 400, "non-empty array"),
    ({"inputs": [{"text": "x"}], "task": "SST-2"}, 400, "no other key"),
    ({"inputs": [{"text": "x"}, {"txt": "y"}]}, 400, "inputs[1]"),
    ({"task": "SST-3", "text": "x"}, 404, 'no task \\"SST-3\\"'),
    ({"inputs": [{"task": "SST-2", "text": "x"}, {"task": "nope", "text": "y"}]}, 404, "inputs[1]"),
    ({"text": "x" * 600}, 413, "limit is 512"),
    ({"inputs": [{"text": "x"}] * 17}, 413, "limit is 16"),
    ({"text": "y" * 5000}, 413, "too large"),
    (b'{"text": ' + b"[" * 101 + b"]" * 101 + b"}", 400,
     "body: JSON nested deeper than 100 levels of arrays and objects (at byte 108)"),
]
for payload, code, fragment in bad:
    status, body, _ = a.predict(payload)
    check(status == code and fragment in body, f"{str(payload)[:60]}: {status} {body[:200]}")


# A chunked body (no Content-Length) is held to --max-body-bytes as it arrives: httplib alone read
# one whole however large. Under the limit it is answered; over it, 413, and the server goes on.
def chunked_request(payload):
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 1000]), payload[i:i + 1000])
                      for i in range(0, len(payload), 1000)) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", a.port), timeout=60) as connection:
        connection.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                           b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                           + chunks)
        reply = b""
        while data := connection.recv(65536):
            reply += data
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


status, body = chunked_request(json.dumps({"task": "SST-2", "text": "a gorgeous movie"}).encode())
check(status == 200 and json.loads(body)["task"] == "SST-2", f"a chunked body: {status} {body}")
# (100 KB of white space around a short text: only the body's size is over a limit.)
status, body = chunked_request(b'{"task": "SST-2", "text": "fine"' + b" " * 100000 + b"}")
check(status == 413 and "too large" in body,
      f"a chunked body over --max-body-bytes: {status} {body[:200]}")
status, body, _ = a.request("GET", "/healthz")
check(status == 200, f"healthz after a chunked body over the limit: {status} {body}")


# Keep-alive: the connection of an answered chunked request (and of its 413, whose body the server
# reads to its end: were it left unread, its bytes would be parsed as a next request and answered)
# takes the next request once the answer is read, and is answered exactly once each. (cpp-httplib
# does not pipeline: a request sent before the previous answer is read is dropped, hence the
# README's note.)
for payload, code in [(json.dumps({"task": "SST-2", "text": "fine"}).encode(), b"200"),
                      (b'{"task": "SST-2", "text": "fine"' + b" " * 100000 + b"}", b"413")]:
    replies = with_healthz_after(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                                 % (len(payload), payload))
    check(statuses(replies) == [code, b"200"] and replies.endswith(b'{"status":"ok"}'),
          f"keep-alive after a chunked body ({code}): {replies[-400:]}")

# A multipart/form-data body (a form's upload) is refused with 415, on both POST endpoints, read to
# its end so that the connection takes the next request (it was a 500, std::bad_function_call,
# from the body reader httplib leaves empty for multipart parts).
part = json.dumps({"task": "SST-2", "text": "fine"}).encode()
form = b'--xyz\r\nContent-Disposition: form-data; name="request"\r\n\r\n' + part + b"\r\n--xyz--\r\n"
for path in ["/v1/predict", "/v1/tasks"]:
    replies = with_healthz_after(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: secret\r\n"
                                 b"Content-Type: multipart/form-data; boundary=xyz\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(form), form))
    check(statuses(replies) == [b"415", b"200"] and b"not multipart/form-data" in replies,
          f"a multipart body to {path}: {replies[-400:]}")
# A Range header does not cut a JSON answer (httplib cut it to the range, status 200).
for method, path, payload in [("POST", "/v1/predict", {"task": "SST-2", "text": "fine"}),
                              ("GET", "/v1/model", None), ("GET", "/healthz", None)]:
    status, body, headers = a.request(method, path, payload, {"Range": "bytes=0-5"})
    check(status == 200 and "Content-Range" not in headers and isinstance(json.loads(body), dict),
          f"{method} {path} with a Range header: {status} {headers.get('Content-Range')} {body[:80]}")

status, body, _ = a.request("GET", "/v1/nothing")
check(status == 404 and "error" in json.loads(body), f"unknown endpoint: {status} {body}")
# A known path asked by a method it does not answer: 405, naming the methods it does.
for method, path, allowed in [("GET", "/v1/predict", "POST"), ("DELETE", "/v1/tasks", "GET, HEAD, POST"),
                              ("GET", "/v1/tasks/SST-2", "DELETE"), ("POST", "/healthz", "GET, HEAD")]:
    status, body, headers = a.request(method, path, b"{}" if method == "POST" else None)
    check(status == 405 and headers.get("Allow") == allowed
          and json.loads(body)["error"] == f"{method} {path}: this endpoint takes {allowed}",
          f"{method} {path}: {status} {headers.get('Allow')} {body}")
# A path that decodes to bytes that are not UTF-8 is quoted in the error as U+FFFD, not a failed
# reply (JSON holds valid UTF-8 only).
status, body, _ = a.request("GET", "/v1/%FF")
check(status == 404 and "/v1/\ufffd" in json.loads(body)["error"], f"non-UTF-8 path: {status} {body}")

# A key given but empty is refused, not taken for none (which would leave the endpoints open);
# without a key, a server reachable from elsewhere warns (192.0.2.1, a documentation address,
# is not this machine's: the bind fails after the warning, and nothing listens beyond loopback).
run = subprocess.run([cli, "serve", "--model", base, "--port", "0"], capture_output=True, text=True,
                     env={**os.environ, "ADAPTERTUNE_API_KEY": ""}, timeout=120)
check(run.returncode == 1 and "$ADAPTERTUNE_API_KEY is empty" in run.stderr,
      f"an empty $ADAPTERTUNE_API_KEY: {run.returncode} {run.stderr[-300:]}")
environment = {k: v for k, v in os.environ.items() if k != "ADAPTERTUNE_API_KEY"}
run = subprocess.run([cli, "serve", "--model", base, "--port", "0", "--host", "192.0.2.1"],
                     capture_output=True, text=True, env=environment, timeout=120)
check(run.returncode == 1 and "warning: no --api-key: any client that reaches 192.0.2.1 may "
      "unload tasks" in run.stderr, f"no key off loopback: {run.returncode} {run.stderr[-300:]}")

# Loading and unloading: the key, the packs directory, no traversal.
key = {"X-API-Key": "secret"}
for payload, headers, code in [
        ({"path": "stsb/best", "name": "STS-B-2"}, {}, 401),
        ({"path": "stsb/best", "name": "STS-B-2"}, {"X-API-Key": "wrong"}, 401),
        # The key is compared whole, in a time that does not depend on where it differs.
        ({"path": "stsb/best", "name": "STS-B-2"}, {"X-API-Key": "secre"}, 401),
        ({"path": "stsb/best", "name": "STS-B-2"}, {"X-API-Key": "secretsecret"}, 401),
        ({"path": "stsb/best", "name": "STS-B-2"}, {"X-API-Key": ""}, 401),
        ({"path": "stsb/best", "name": "STS-B-2"}, {"Authorization": "secret"}, 401),
        ({"path": "stsb/best", "name": "STS-B-2"}, {"Authorization": "Bearer secrets"}, 401),
        ({"path": "stsb/best"}, {"Authorization": "Bearer secret"}, 409),
        ({"path": "../../../../etc"}, key, 403),
        ({"path": "/etc"}, key, 403),
        ({"path": "missing/best"}, key, 404),
        ({"path": "stsb/best"}, key, 409),  # its name, STS-B, is taken
        ({"path": "stsb/best", "nme": "x"}, key, 400)]:
    status, body, _ = a.request("POST", "/v1/tasks", payload, headers)
    check(status == code, f"load {payload} {headers}: {status} {body}")
# A pack whose adapters no memory holds is refused, and leaves nothing behind: its name loads a
# good pack next (before, the task stayed registered with no adapters and the name was taken).
huge = os.path.join(packs_dir, "huge", "best")
shutil.copytree(os.path.join(packs_dir, "sst2", "best"), huge)
with open(os.path.join(huge, "adapter_config.json"), encoding="utf-8") as f:
    huge_config = json.load(f)
huge_config["config"]["reduction_factor"] = 1e-9
with open(os.path.join(huge, "adapter_config.json"), "w", encoding="utf-8") as f:
    json.dump(huge_config, f)
status, body, _ = a.request("POST", "/v1/tasks", {"path": "huge/best", "name": "huge"}, key)
check(status == 400 and "not enough memory for its weights" in body, f"load huge: {status} {body}")
status, body, _ = a.request("GET", "/v1/tasks")
check("huge" not in [t["name"] for t in json.loads(body)["tasks"]], f"huge listed: {body[:300]}")
status, body, _ = a.request("POST", "/v1/tasks", {"path": "sst2/best", "name": "huge"}, key)
check(status == 201, f"the name of a refused pack, reused: {status} {body}")
status, body, _ = a.request("DELETE", "/v1/tasks/huge", headers=key)
check(status == 200, f"unload huge: {status} {body}")
status, _, _ = a.request("DELETE", "/v1/tasks/SST-2")
check(status == 401, f"unload without the key: {status}")
status, body, _ = a.request("DELETE", "/v1/tasks/%FF", headers=key)
check(status == 404 and "\ufffd" in json.loads(body)["error"], f"unload a non-UTF-8 name: {status} {body}")
# A name with a slash loads, and unloads by its percent-encoded name (and as written).
for written in ["sst2%2Fcopy", "sst2/copy"]:
    status, body, _ = a.request("POST", "/v1/tasks", {"path": "sst2/best", "name": "sst2/copy"}, key)
    check(status == 201 and json.loads(body)["name"] == "sst2/copy", f"load sst2/copy: {status} {body}")
    status, body, _ = a.request("DELETE", "/v1/tasks/" + written, headers=key)
    check(status == 200 and json.loads(body) == {"removed": "sst2/copy"},
          f"unload /v1/tasks/{written}: {status} {body}")
# A span pack (question answering) serves beside the classifiers on the one base: each question
# gets the answer `predict --task squad` gives it offline. Its run evaluated on SQuAD v2.0, so its
# pack allows no answer, as the offline run on v2.0 data does.
squad = os.path.join(project, "tests", "data", "squad", "dev-v2.0.json")
subprocess.run([cli, "train", "--task", "squad", "--train-file", squad, "--dev-file", squad,
                "--model", base, "--max-length", "64", "--doc-stride", "16", "--max-query-length",
                "16", "--batch-size", "8", "--max-steps", "1", "--no-progress", "--out",
                os.path.join(packs_dir, "squad")],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
squad_offline = os.path.join(work, "squad_predictions.json")
subprocess.run([cli, "predict", "--task", "squad", "--test-file", squad, "--model", base,
                "--adapter-pack", os.path.join(packs_dir, "squad", "best"), "--out", squad_offline],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(squad_offline) as f:
    offline_answers = json.load(f)
status, body, _ = a.request("POST", "/v1/tasks", {"path": "squad/best"}, key)
check(status == 201, f"load a span pack: {status} {body}")
span_task = json.loads(body)
check(span_task["problem_type"] == "question_answering" and span_task["labels"] is None
      and span_task["max_length"] == 64
      and span_task["question_answering"] == {"doc_stride": 16, "max_query_length": 16,
                                              "n_best": 20, "max_answer_length": 30,
                                              "null_score_threshold": 0.0, "allow_no_answer": True},
      f"a span task's description: {body}")
with open(squad) as f:
    squad_data = json.load(f)
questions = [(qa["id"], qa["question"], paragraph["context"]) for article in squad_data["data"]
             for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
check(len(questions) == len(offline_answers) > 1, f"{len(questions)} questions, {len(offline_answers)} answers")
status, body, _ = a.predict({"inputs": [{"task": "squad", "text": q, "text_pair": c}
                                        for _, q, c in questions]})
check(status == 200, f"answer questions: {status} {body[:300]}")
for (question_id, _, _), got in zip(questions, json.loads(body)["outputs"]):
    check(got["task"] == "squad" and got["answer"] == offline_answers[question_id]
          and isinstance(got["score"], float) and "null_score" in got,
          f"{question_id}: served {got}, offline {offline_answers[question_id]!r}")
status, body, _ = a.predict({"task": "squad", "text": "Who won?"})
check(status == 400 and "answers questions from a context (a span head)" in body,
      f"a question without its context: {status} {body}")
status, body, _ = a.request("DELETE", "/v1/tasks/squad", headers=key)
check(status == 200, f"unload the span task: {status} {body}")
status, body, _ = a.request("GET", "/v1/tasks")
check(status == 200 and "squad" not in body, f"tasks after unloading the span task: {status} {body}")

# Concurrent clients, while packs are loaded and unloaded: every answer is the right one.
errors = []
def client(seed):
    rng = random.Random(seed)
    for _ in range(15):
        i = rng.randrange(len(requests))
        status, body, _ = a.predict(requests[i])
        if status != 200 or not matches(json.loads(body), i):
            errors.append(f"request {i}: {status} {body[:200]}")
clients = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
for c in clients:
    c.start()
for round in range(3):
    status, body, _ = a.request("POST", "/v1/tasks", {"path": "stsb/best", "name": "extra"}, key)
    check(status == 201 and json.loads(body)["name"] == "extra", f"load under traffic: {status} {body}")
    status, body, _ = a.predict({"task": "extra", "text": "a", "text_pair": "b"})
    check(status == 200 and "score" in json.loads(body), f"predict on a loaded task: {status} {body}")
    status, body, _ = a.request("DELETE", "/v1/tasks/extra", headers={"Authorization": "Bearer secret"})
    check(status == 200, f"unload under traffic: {status} {body}")
for c in clients:
    c.join()
check(not errors, f"{len(errors)} wrong answers under concurrency, e.g. {errors[:2]}")

# A pack trained stacked on STS-B runs on it, and STS-B stays while it is loaded.
pair = {"task": "RTE", "text": "A man plays.", "text_pair": "Someone plays."}
status, body, _ = a.request("POST", "/v1/tasks", {"path": "rte_on_stsb/best"}, key)
check(status == 201 and json.loads(body)["stacked_on"] == ["STS-B"], f"load stacked: {status} {body}")
with open(os.path.join(work, "rte.jsonl"), "w") as f:
    f.write(json.dumps(pair) + "\n")
offline_rte = json.loads(subprocess.run(
    [cli, "predict", "--model", base, "--adapter-pack", stacked, "--adapter-pack", stsb, "--input",
     os.path.join(work, "rte.jsonl")], check=True, capture_output=True, text=True).stdout)
status, body, _ = a.predict(pair)
check(status == 200 and same_answer(json.loads(body), offline_rte), f"stacked predict: {status} {body}")
status, body, _ = a.request("DELETE", "/v1/tasks/STS-B", headers=key)
check(status == 409 and "has task RTE stacked on it" in body, f"unload below a stack: {status} {body}")
status, body, _ = a.request("DELETE", "/v1/tasks/RTE", headers=key)
check(status == 200, f"unload the stacked task: {status} {body}")
status, body, _ = a.request("DELETE", "/v1/tasks/SST-2", headers=key)
check(status == 200, f"unload SST-2: {status} {body}")
status, body, _ = a.predict(requests[0])
check(status == 404, f"predict on an unloaded task: {status} {body}")
status, body, _ = a.request("GET", "/metrics")
for fragment in ['adaptertune_requests_total{endpoint="/v1/predict",status="200"}',
                 'adaptertune_examples_total{task="SST-2",status="200"}',
                 'adaptertune_request_seconds_bucket{le="+Inf"}', "adaptertune_batch_examples_count",
                 "adaptertune_queue_examples 0", "adaptertune_tasks 1"]:
    check(fragment in body, f"metrics lack {fragment}")
check('task="SST-3"' not in body, "made-up task names became metric labels")
code, log = a.stop()
check(code == 0 and "serve: stopped" in log, f"SIGTERM: exit {code}, log {log[-300:]}")

# Overload: a queue of one example; the rest get 503 with Retry-After, none is lost.
b = Server("--adapter-pack", sst2, "--max-queue", "1", "--max-wait-ms", "300", "--threads", "12")
# Within the default body limit, a body nesting 200,000 arrays is refused, not followed down
# (copying or writing such a value recursed once per level and crashed the server).
status, body, _ = b.predict(b'{"text": ' + b"[" * 200000 + b"]" * 200000 + b"}",
                            headers={"Content-Type": "application/json"})
check(status == 400 and "JSON nested deeper than 100 levels" in body, f"deep body: {status} {body}")
check(b.predict({"task": "SST-2", "text": "still here"})[0] == 200, "the server after a deep body")
# A task named by half a megabyte: 404, and the reply quotes the name's start and end only.
status, body, _ = b.predict({"task": "t" * 500000, "text": "x"},
                            headers={"Content-Type": "application/json"})
check(status == 404 and len(body) < 2200 and "bytes left out" in body,
      f"huge task name: {status} {len(body)} bytes {body[:100]}")
# (the SIGTERM check below needs its request to wait 300 ms, long enough to be seen queued)
results = []
def burst():
    status, body, headers = b.predict({"task": "SST-2", "text": "queued"})
    results.append((status, headers.get("Retry-After")))
burst_threads = [threading.Thread(target=burst) for _ in range(10)]
for t in burst_threads:
    t.start()
for t in burst_threads:
    t.join()
check(len(results) == 10 and all(s in (200, 503) for s, _ in results), f"overload: {results}")
check(any(s == 503 and r == "1" for s, r in results), f"no 503 with Retry-After: {results}")
check(any(s == 200 for s, _ in results), f"nothing answered under overload: {results}")
# SIGTERM with a request in flight (it waits 300 ms for company): answered, then exit 0.
in_flight = []
t = threading.Thread(target=lambda: in_flight.append(b.predict({"task": "SST-2", "text": "late"})))
t.start()
deadline = time.time() + 30  # until the request waits in the queue
while time.time() < deadline:
    if "adaptertune_queue_examples 1" in b.request("GET", "/metrics")[1]:
        break
    time.sleep(0.01)
code, log = b.stop()
t.join()
check(in_flight and in_flight[0][0] == 200, f"request in flight at SIGTERM: {in_flight}")
check(code == 0, f"exit after SIGTERM with a request in flight: {code} {log[-300:]}")

# A request that waits longer than --request-timeout-ms gets 504.
c = Server("--adapter-pack", sst2, "--max-wait-ms", "500", "--request-timeout-ms", "50")
status, body, _ = c.predict({"task": "SST-2", "text": "slow"})
check(status == 504 and "50 ms" in body, f"timeout: {status} {body}")
# SIGTERM while a client trickles its request (a header line a second, for ever): serve() would
# wait for that connection, so the process exits once requests in flight would have been
# answered (--request-timeout-ms, then 10 s for writing), saying so, exit 0.
trickling = socket.create_connection(("127.0.0.1", c.port), timeout=60)
trickling.sendall(b"GET /healthz HTTP/1.1\r\n")
trickle_stop = threading.Event()


def trickle():
    while not trickle_stop.wait(1):
        try:
            trickling.sendall(b"X-Trickle: 1\r\n")
        except OSError:
            return


trickler = threading.Thread(target=trickle, daemon=True)
trickler.start()
time.sleep(1)
started = time.time()
code, log = c.stop()
took = time.time() - started
trickle_stop.set()
trickling.close()
check(code == 0 and 9 < took < 40 and "leaving connections whose requests had not arrived" in log,
      f"SIGTERM beside a trickling client: exit {code} after {took:.1f} s, log {log[-300:]}")

# serve takes the windows and answer flags for its span tasks, as predict --task squad does.
squad_pack = os.path.join(packs_dir, "squad", "best")
overrides = ["--doc-stride", "8", "--max-answer-length", "1", "--n-best", "3"]
override_offline = os.path.join(work, "squad_override_predictions.json")
subprocess.run([cli, "predict", "--task", "squad", "--test-file", squad, "--model", base,
                "--adapter-pack", squad_pack, "--out", override_offline, *overrides],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(override_offline) as f:
    override_answers = json.load(f)
d = Server("--adapter-pack", squad_pack, *overrides)
status, body, _ = d.request("GET", "/v1/tasks")
described = json.loads(body)["tasks"][0]["question_answering"] if status == 200 else {}
check(described.get("doc_stride") == 8 and described.get("max_answer_length") == 1
      and described.get("n_best") == 3 and described.get("max_query_length") == 16,
      f"serve's span flags in the task's description: {status} {body}")
status, body, _ = d.predict({"inputs": [{"task": "squad", "text": q, "text_pair": c}
                                        for _, q, c in questions]})
served = json.loads(body)["outputs"] if status == 200 else []
check([got.get("answer") for got in served] == [override_answers[i] for i, _, _ in questions],
      f"serve with span flags: {[got.get('answer') for got in served]}, offline {override_answers}")
d.stop()

finish()
