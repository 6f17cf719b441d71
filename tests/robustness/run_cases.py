#!/usr/bin/python3
"""Runs the command line on the bad inputs of tests/robustness/cases.json (ctest label robustness).

usage: run_cases.py CLI PROJECT_DIR WORK_DIR [NAME_FRAGMENT]

For each case: its setup, then `CLI ARGS`, then the checks. A case marked "succeeds" (what a
resume after a kill must do) exits 0 and leaves what its "checks" say. Any other case is bad
input: the exit code is the one expected
(1 unless the case says otherwise: nothing here may crash or exit 0); stderr is short (at most
four lines of at most 4,200 characters), holds no LibTorch frames, and its last line is `adaptertune: error: ...` matching
the case's `stderr` (which names the source: file, key, line or flag); and no file under the
work directory or the base model was created, changed or removed by the command. Prints PASS,
or each failure and a count, and exits 1.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class Runner:
    def __init__(self, cli, project, work):
        self.cli = cli
        self.project = project
        self.work = work
        self.base = os.path.join(project, "models", "adaptertune-base-uncased-L4-H256")
        here = os.path.dirname(os.path.abspath(__file__))
        self.corpus = os.path.join(here, "corpus")
        with open(os.path.join(here, "cases.json"), encoding="utf-8") as f:
            spec = json.load(f)
        self.common = spec["common"]
        self.cases = spec["cases"]
        self.fixtures = os.path.join(work, "fixtures")
        self.failures = []

    def expand(self, text, case_dir):
        return (text.replace("{base}", self.base)
                .replace("{glue}", os.path.join(self.project, "data", "glue"))
                .replace("{squad}", os.path.join(self.project, "tests", "data", "squad"))
                .replace("{corpus}", self.corpus)
                .replace("{fixtures}", self.fixtures)
                .replace("{case}", case_dir))

    def arguments(self, args, case_dir):
        out = []
        for arg in args:
            if arg.startswith("@"):
                out += [self.expand(a, case_dir) for a in self.common[arg[1:]]]
            else:
                out.append(self.expand(arg, case_dir))
        return out

    def run(self, args, stdin=b"", timeout=300):
        return subprocess.run([self.cli] + args, input=stdin, capture_output=True,
                              timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS="1"))

    def build_fixtures(self):
        """A finished 2-step adapter run (best/ and checkpoint-2), a pretraining checkpoint and a
        one-step SQuAD span adapter run."""
        os.makedirs(self.fixtures)
        train = self.arguments(["@train", "--out", "{fixtures}/run", "--max-steps", "2"], "")
        result = self.run(train)
        if result.returncode != 0:
            sys.exit("fixture run failed: " + result.stderr.decode(errors="replace"))
        pretrain = self.arguments(["@pretrain", "--out", "{fixtures}/pretrain-model",
                                   "--checkpoint-every", "1",
                                   "--checkpoint-dir", "{fixtures}/pretrain-checkpoints"], "")
        result = self.run(pretrain)
        if result.returncode != 0:
            sys.exit("fixture pretraining failed: " + result.stderr.decode(errors="replace"))
        squad = self.arguments(["@squad", "--out", "{fixtures}/squad", "--max-steps", "1"], "")
        result = self.run(squad)
        if result.returncode != 0:
            sys.exit("fixture SQuAD run failed: " + result.stderr.decode(errors="replace"))

    def model_variant(self, directory, replaced):
        """A model directory that links the base's files, except those `replaced` gives."""
        os.makedirs(directory)
        for name in os.listdir(self.base):
            if name not in replaced:
                os.symlink(os.path.join(self.base, name), os.path.join(directory, name))
        for name, text in replaced.items():
            if text == "@directory":
                os.makedirs(os.path.join(directory, name))
                continue
            if text.startswith("@config "):
                with open(os.path.join(self.base, "config.json"), encoding="utf-8") as f:
                    config = json.load(f)
                # Each value goes in as written, JSON text that Python's json may not hold (1e400).
                settings = [setting.split("=") for setting in text.split()[1:]]
                for index, (key, _) in enumerate(settings):
                    config[key] = "@value%d@" % index
                text = json.dumps(config)
                for index, (_, value) in enumerate(settings):
                    text = text.replace('"@value%d@"' % index, value)
            elif text.startswith("@vocab duplicate="):
                line = int(text.split("=")[1])  # line+1 becomes a copy of line (1-based)
                with open(os.path.join(self.base, "vocab.txt"), encoding="utf-8") as f:
                    tokens = f.read().split("\n")
                tokens[line] = tokens[line - 1]
                text = "\n".join(tokens)
            with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
                f.write(text)

    def setup(self, steps, case_dir):
        for step in steps:
            op, *args = step
            if op == "model":
                self.model_variant(self.expand(args[0], case_dir), args[1])
                continue
            path = self.expand(args[0], case_dir)
            if op == "copy":
                target = self.expand(args[1], case_dir)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.isdir(path):
                    shutil.copytree(path, target, symlinks=True)
                else:
                    shutil.copy(path, target)
            elif op == "json":
                with open(path, encoding="utf-8") as f:
                    document = json.load(f)
                *parents, key = args[1].split(".")
                node = document
                for parent in parents:
                    node = node[parent]
                node[key] = args[2]
                with open(path, "w", encoding="utf-8") as f:
                    json.dump(document, f)
            elif op == "write":
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(args[1])
            elif op == "append":
                with open(path, "a", encoding="utf-8") as f:
                    f.write(args[1])
            elif op == "remove":
                shutil.rmtree(path)
            elif op == "directory":  # an empty directory in place of the file at `path`
                os.remove(path)
                os.makedirs(path)
            elif op == "fill":
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text.replace("@FILL@", args[1] * args[2]))
            elif op == "nest":
                # Every "@NEST@" string in the file becomes that many arrays nested: text far too
                # deep for Python's own json module to write.
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                depth = args[1]
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text.replace('"@NEST@"', "[" * depth + "]" * depth))
            else:
                raise ValueError("unknown setup step " + op)

    def snapshot(self):
        """Every file and directory (links not followed) under the work directory and the base."""
        state = {}
        for root in (self.work, self.base):
            for directory, subdirs, files in os.walk(root):
                state[directory] = "dir"
                for name in files:
                    path = os.path.join(directory, name)
                    info = os.lstat(path)
                    if os.path.islink(path):
                        state[path] = "link:" + os.readlink(path)
                    elif info.st_size > 1 << 20:  # large weights: any write changes these
                        state[path] = (info.st_ino, info.st_size, info.st_mtime_ns)
                    else:
                        with open(path, "rb") as f:
                            state[path] = hashlib.sha256(f.read()).hexdigest()
        return state

    def check(self, case):
        name = case["class"] + ": " + case["name"]
        case_dir = os.path.join(self.work, "cases", slug(case["name"]))
        os.makedirs(case_dir)
        self.setup(case.get("setup", []), case_dir)
        args = self.arguments(case["args"], case_dir)
        stdin = case.get("stdin", "").encode()
        if "stdin_file" in case:
            with open(self.expand(case["stdin_file"], case_dir), "rb") as f:
                stdin = f.read()
        before = self.snapshot()
        try:
            result = self.run(args, stdin, timeout=120)
        except subprocess.TimeoutExpired:
            self.failures.append(name + ": timed out")
            return
        after = self.snapshot()
        if case.get("succeeds"):
            self.check_success(case, case_dir, result, name, args)
            return
        problems = []
        expected_exit = case.get("exit", 1)
        if result.returncode != expected_exit:
            problems.append("exit %d, expected %d" % (result.returncode, expected_exit))
        stderr = result.stderr.decode(errors="replace")
        lines = [line for line in stderr.split("\n") if line.strip()]
        if not lines:
            problems.append("nothing on stderr")
        else:
            if len(lines) > 4:
                problems.append("%d lines on stderr" % len(lines))
            # elided() keeps a message whole up to 4,096 bytes, after "adaptertune: error: "
            if max(len(line) for line in lines) > 4200:
                problems.append("a line of %d characters on stderr" %
                                max(len(line) for line in lines))
            if "frame #" in stderr or "internal error" in stderr:
                problems.append("an internal error or a stack trace")
            last = lines[-1]
            if not last.startswith("adaptertune: error: "):
                problems.append("last line is not 'adaptertune: error: ...'")
            if not re.search(case["stderr"], last):
                problems.append("stderr does not match /%s/" % case["stderr"])
        created = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
        for kind, paths in (("created", created), ("removed", removed), ("changed", changed)):
            if paths:
                problems.append("%s %s" % (kind, ", ".join(paths[:3])))
        if problems:
            self.failures.append("%s: %s\n    command: %s\n    stderr: %s" % (
                name, "; ".join(problems), " ".join(args), stderr.strip()[-600:]))

    def check_success(self, case, case_dir, result, name, args):
        """A case that must succeed (exit 0) and leave what its `checks` say: ["json", file,
        key, value] (a value in a JSON file), ["absent", path], ["unique_events", metrics.jsonl]
        (no (event, step) twice, every line whole JSON)."""
        problems = []
        if result.returncode != 0:
            problems.append("exit %d, expected 0" % result.returncode)
        for check in case.get("checks", []):
            kind, path = check[0], self.expand(check[1], case_dir)
            if kind == "json":
                try:
                    with open(path, encoding="utf-8") as f:
                        value = json.load(f).get(check[2])
                except (OSError, ValueError) as e:
                    value = "unreadable: %s" % e
                if value != check[3]:
                    problems.append("%s: %s is %r, expected %r" % (path, check[2], value, check[3]))
            elif kind == "absent":
                if os.path.lexists(path):
                    problems.append("%s is still there" % path)
            elif kind == "unique_events":
                seen = set()
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        try:
                            event = json.loads(line)
                        except ValueError:
                            problems.append("%s:%d is not JSON" % (path, number))
                            continue
                        key = (event.get("event"), event.get("step"))
                        if key in seen:
                            problems.append("%s:%d repeats %s" % (path, number, key))
                        seen.add(key)
            else:
                raise ValueError("unknown check " + kind)
        if problems:
            self.failures.append("%s: %s\n    command: %s\n    stderr: %s" % (
                name, "; ".join(problems), " ".join(args),
                result.stderr.decode(errors="replace").strip()[-600:]))

    def main(self, only):
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.build_fixtures()
        cases = [c for c in self.cases if not only or only in c["class"] + ": " + c["name"]]
        names = [slug(c["name"]) for c in self.cases]
        if len(set(names)) != len(names):
            sys.exit("two cases share a name")
        for case in cases:
            self.check(case)
        classes = sorted({c["class"] for c in cases})
        print("%d cases in %d classes (%s)" % (len(cases), len(classes), ", ".join(classes)))
        if self.failures:
            for failure in self.failures:
                print("FAIL: " + failure, file=sys.stderr)
            print("%d failure(s)" % len(self.failures), file=sys.stderr)
            sys.exit(1)
        print("PASS")


if __name__ == "__main__":
    Runner(sys.argv[1], sys.argv[2], sys.argv[3]).main(sys.argv[4] if len(sys.argv) > 4 else "")
