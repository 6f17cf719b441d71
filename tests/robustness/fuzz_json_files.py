#!/usr/bin/python3
"""Fuzzes the JSON files a user hands the command line (ctest label heavy: tens of minutes).

usage: fuzz_json_files.py CLI PROJECT_DIR WORK_DIR [--files NAME,...] [--quick] [--jobs N]
                          [--values NAME,...] [--show-taken]

Each file a user may hand the tools, made once by the tools themselves (an adapter pack's
adapter_config.json and head_config.json, the head_config.json of an AdapterHub flex head, a
fusion pack's adapter_fusion_config.json, a span pack's adapter_config.json with its windows and
answer options, a model directory's config.json (a base's, and a fully fine-tuned span model's
with the record of its run) and
tokenizer_config.json, a fine-tuning and a pretraining checkpoint's trainer_state.json, a SQuAD
file), is changed one value at a time: every value in it (each object's members, each array's
first element, at any depth) becomes null, -1, 2^64-1, 1e300, 1e400 (beyond a double), 0.5, "x",
[], {}, true and arrays nested a million deep, or goes away; an unknown key is added to each
object; the whole document becomes each of those values, an empty file, a truncated one and one
with a byte that is not UTF-8 (`--values` tries only the values it names). The command that reads
the file (predict, eval, train --resume, pretrain --resume) runs on each variant, and must exit 0 (a
value it can take) or 1 with `adaptertune: error: ...` as its last line of stderr: never another
exit code, an "internal error", LibTorch's frames, or a hang. `--quick` tries fewer values
(null, -1, 2^64-1, "x", {}). A bad value taken silently is not caught here (cases.json pins the
refusals one by one). Prints PASS, or each failure and a count, and exits 1.
"""

import argparse
import concurrent.futures
import copy
import json
import os
import shutil
import subprocess
import sys

DELETE = object()  # a member that goes away
DEEP = object()  # arrays nested a million deep: copying or writing such a value recursed per level
OVERFLOW = object()  # 1e400: valid JSON beyond a double's range, which Python's json cannot write
# Values that go into the file as placeholder strings, replaced by their text once it is written:
# (placeholder, text, how a variant names it).
RAW = {DEEP: ("@DEEP@", b"[" * 10**6 + b"]" * 10**6, "a million arrays deep"),
       OVERFLOW: ("@OVERFLOW@", b"1e400", "1e400")}
# One value of every JSON type, the integers and floats that break conversions, DEEP and OVERFLOW.
VALUES = [None, -1, 2**64 - 1, 1e300, OVERFLOW, 0.5, "x", [], {}, True, DEEP]
QUICK_VALUES = [None, -1, 2**64 - 1, "x", {}]
# Names for --values.
VALUE_NAMES = {"null": None, "-1": -1, "2^64-1": 2**64 - 1, "1e300": 1e300, "1e400": OVERFLOW,
               "0.5": 0.5, "x": "x", "[]": [], "{}": {}, "true": True, "deep": DEEP}
TIMEOUT_S = 300
FILES = ("adapter_config", "head_config", "flex_head_config", "fusion_config",
         "span_adapter_config", "config", "span_model_config", "tokenizer_config", "trainer_state",
         "pretraining_trainer_state", "squad")


def is_raw(value):
    """Whether `value` is one of RAW's (by identity: [] and {} cannot be looked up in a dict)."""
    return any(value is raw for raw in RAW)


def value_paths(document, path=()):
    """Every place a value sits: object members and each array's first element, depth first."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield path + (key,)
            yield from value_paths(value, path + (key,))
    elif isinstance(document, list) and document:
        yield path + (0,)
        yield from value_paths(document[0], path + (0,))


def object_paths(document, path=()):
    """Every object's place (the document's own is ())."""
    if isinstance(document, dict):
        yield path
        for key, value in document.items():
            yield from object_paths(value, path + (key,))
    elif isinstance(document, list) and document:
        yield from object_paths(document[0], path + (0,))


def replaced(document, path, value):
    out = copy.deepcopy(document)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def variants(document, values):
    """(description, file bytes) for each change of `document`."""
    def text(doc):
        # DEEP goes in as a placeholder (json.dumps() itself recurses per level), OVERFLOW too.
        written = json.dumps(doc, indent=2).encode("utf-8")
        for placeholder, raw, _ in RAW.values():
            written = written.replace(b'"%s"' % placeholder.encode(), raw)
        return written

    def placed(value):
        return RAW[value][0] if is_raw(value) else value

    def shown(value):
        return RAW[value][2] if is_raw(value) else json.dumps(value)

    def where(path):
        return "".join(f"[{step!r}]" for step in path) or "the document"

    for path in value_paths(document):
        for value in values + ([DELETE] if isinstance(path[-1], str) else []):
            changed = replaced(document, path, placed(value))
            yield f"{where(path)} = {'deleted' if value is DELETE else shown(value)}", text(changed)
    for path in object_paths(document):
        extended = copy.deepcopy(document)
        target = extended
        for step in path:
            target = target[step]
        target["no_such_key"] = 1
        yield f"{where(path)} gains an unknown key", text(extended)
    for value in values:
        if value is not DEEP:
            yield f"the document = {shown(value)}", text(placed(value))
    whole = text(document)
    yield "an empty file", b""
    yield "a truncated file", whole[: len(whole) // 2]
    # A string's first character becomes a byte that is not UTF-8 (the parser must refuse it).
    quote = whole.find(b'"')
    yield "a byte that is not UTF-8", whole[: quote + 1] + b"\xff" + whole[quote + 2:]


def write_safetensors(path, shapes):
    """A safetensors file of float32 zeros, one tensor per name in `shapes` (name: shape)."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes.items():
        size = 4
        for n in shape:
            size *= n
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode("utf-8")
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + bytes(offset))


class Fuzzer:
    def __init__(self, cli, project, work, values, jobs, show_taken):
        self.show_taken = show_taken
        self.cli = cli
        self.project = project
        self.work = work
        self.values = values
        self.jobs = jobs
        self.base = os.path.join(project, "models", "adaptertune-base-uncased-L4-H256")
        self.glue = os.path.join(project, "data", "glue")
        self.squad = os.path.join(project, "tests", "data", "squad")
        self.seeds = os.path.join(work, "seeds")
        self.env = dict(os.environ, OMP_NUM_THREADS="1")
        self.failures = []
        self.runs = 0

    def run(self, args, stdin=None):
        return subprocess.run([self.cli] + args, input=stdin, capture_output=True, text=True,
                              errors="replace", timeout=TIMEOUT_S, env=self.env)

    def must(self, args, stdin=None):
        result = self.run(args, stdin)
        if result.returncode != 0:
            sys.exit(f"setup failed: {' '.join(args)}\n{result.stderr}")

    # The seed files, each made once by the tools.
    def make_seeds(self):
        os.makedirs(self.seeds)
        with open(os.path.join(self.glue, "SST-2", "train.tsv"), encoding="utf-8") as f:
            rows = [line.rstrip("\n").split("\t") for line in f][1:49]
        for name, part in (("train", rows[:32]), ("dev", rows[32:])):
            with open(os.path.join(self.seeds, f"{name}.tsv"), "w", encoding="utf-8") as f:
                f.write("sentence\tlabel\n" + "".join(f"{s}\t{l}\n" for s, l in part))
        files = ["--train-file", os.path.join(self.seeds, "train.tsv"), "--dev-file",
                 os.path.join(self.seeds, "dev.tsv"), "--text-column", "sentence",
                 "--label-column", "label", "--model", self.base, "--batch-size", "16",
                 "--max-length", "32", "--eval-every", "1", "--no-progress"]
        self.reviews = ["--task", "reviews"] + files
        self.must(["train"] + self.reviews + ["--max-steps", "2",
                                              "--out", os.path.join(self.seeds, "run")])
        # A second adapter on the same data, and a fusion of the two.
        self.packs = [os.path.join(self.seeds, "run", "best"),
                      os.path.join(self.seeds, "other", "best")]
        self.must(["train", "--task", "other"] + files + ["--max-steps", "1", "--out",
                                                          os.path.join(self.seeds, "other")])
        self.must(["train", "--task", "fused", "--fuse", "reviews,other", "--adapter-pack",
                   self.packs[0], "--adapter-pack", self.packs[1], "--max-steps", "1", "--out",
                   os.path.join(self.seeds, "fusion")] + files)
        self.squad_args = ["--model", self.base, "--max-length", "64", "--doc-stride", "16",
                           "--max-query-length", "16", "--batch-size", "8"]
        squad_v2 = os.path.join(self.squad, "dev-v2.0.json")
        self.must(["train", "--task", "squad", "--train-file", squad_v2, "--dev-file", squad_v2,
                   "--max-steps", "1", "--no-progress", "--out", os.path.join(self.seeds, "squad")]
                  + self.squad_args)
        # A fully fine-tuned span model: its config.json records its windows, answers, length and
        # precision ("adaptertune").
        self.must(["train", "--task", "squad", "--train-file", squad_v2, "--dev-file", squad_v2,
                   "--train", "full", "--max-steps", "1", "--no-progress", "--out",
                   os.path.join(self.seeds, "squad_full")] + self.squad_args)
        # The first pack with an AdapterHub flex head instead of its static one: 1 layer on the
        # pooler's output (the pack carries a pooler of its own, as the shipped base's packs do).
        flex = os.path.join(self.seeds, "flex")
        shutil.copytree(self.packs[0], flex)
        with open(os.path.join(flex, "head_config.json"), encoding="utf-8") as f:
            static = json.load(f)
        with open(os.path.join(self.base, "config.json"), encoding="utf-8") as f:
            hidden = json.load(f)["hidden_size"]
        labels = static.get("id2label") or {}
        with open(os.path.join(flex, "head_config.json"), "w", encoding="utf-8") as f:
            json.dump({"config": {"head_type": "classification", "num_labels": 2, "layers": 1,
                                  "activation_function": "tanh",
                                  "label2id": {name: int(i) for i, name in labels.items()} or None,
                                  "use_pooler": True, "bias": True, "dropout_prob": None},
                       "hidden_size": hidden, "model_class": "BertAdapterModel",
                       "model_name": None, "model_type": "bert", "name": "reviews",
                       "version": "adapters.1.1.0"}, f, indent=2)
        write_safetensors(os.path.join(flex, "model_head.safetensors"),
                          {"heads.reviews.1.weight": (2, hidden), "heads.reviews.1.bias": (2,)})
        with open(os.path.join(self.seeds, "config.json"), "w", encoding="utf-8") as f:
            json.dump({"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 64, "max_position_embeddings": 32,
                       "vocab_size": 30522}, f)
        with open(os.path.join(self.seeds, "text.txt"), "w", encoding="utf-8") as f:
            f.write("".join(f"line {i} of a small corpus for the fuzzing .\n" for i in range(200)))
        self.pretrain = ["pretrain", "--config", os.path.join(self.seeds, "config.json"),
                         "--vocab", os.path.join(self.base, "vocab.txt"),
                         "--text", os.path.join(self.seeds, "text.txt"), "--steps", "4",
                         "--batch-size", "8", "--max-length", "32", "--log-every", "1"]
        self.must(self.pretrain + ["--stop-after", "2",
                                   "--out", os.path.join(self.seeds, "pretrained")])

    @staticmethod
    def latest_checkpoint(run):
        root = os.path.join(run, "checkpoints")
        names = [n for n in os.listdir(root) if n.startswith("checkpoint-")]
        return os.path.join(root, max(names, key=lambda n: int(n.split("-")[1])))

    # Each target: the seed file (relative to the directory a variant copies or links) and the
    # command that reads a variant.
    def targets(self):
        pack = os.path.join(self.seeds, "run", "best")
        run = os.path.join(self.seeds, "run")
        pretrained = os.path.join(self.seeds, "pretrained")
        predict_pack = lambda d: (["predict", "--task", "reviews", "--model", self.base,
                                   "--adapter-pack", d], "a gorgeous , witty movie .\n")
        predict_model = lambda d: (["predict", "--task", "SST-2", "--model", d],
                                   "a gorgeous , witty movie .\n")
        predict_fusion = lambda d: (["predict", "--task", "fused", "--model", self.base,
                                     "--adapter-pack", d, "--adapter-pack", self.packs[0],
                                     "--adapter-pack", self.packs[1]],
                                    "a gorgeous , witty movie .\n")
        resume = lambda d: (["train"] + self.reviews + ["--max-steps", "3", "--resume", "--out", d],
                            None)
        resume_pretraining = lambda d: (self.pretrain + ["--resume", "--out", d], None)
        squad_eval = lambda f: (["eval", "--task", "squad", "--dev-file", f, "--adapter-pack",
                                 os.path.join(self.seeds, "squad", "best")] + self.squad_args,
                                None)
        # Without the windows' flags: the pack's record decides them.
        squad_pack_eval = lambda d: (["eval", "--task", "squad", "--dev-file",
                                      os.path.join(self.squad, "dev-v2.0.json"), "--model",
                                      self.base, "--adapter-pack", d], None)
        # A span model directory alone: what its config.json records decides the windows.
        squad_model_eval = lambda d: (["eval", "--task", "squad", "--dev-file",
                                       os.path.join(self.squad, "dev-v2.0.json"), "--model", d],
                                      None)
        return {
            "adapter_config": (pack, "adapter_config.json", "copy", predict_pack),
            "head_config": (pack, "head_config.json", "copy", predict_pack),
            "flex_head_config": (os.path.join(self.seeds, "flex"), "head_config.json", "copy",
                                 predict_pack),
            "fusion_config": (os.path.join(self.seeds, "fusion", "best"),
                              "adapter_fusion_config.json", "copy", predict_fusion),
            "span_adapter_config": (os.path.join(self.seeds, "squad", "best"),
                                    "adapter_config.json", "copy", squad_pack_eval),
            "config": (self.base, "config.json", "link", predict_model),
            "span_model_config": (os.path.join(self.seeds, "squad_full", "best"), "config.json",
                                  "link", squad_model_eval),
            "tokenizer_config": (self.base, "tokenizer_config.json", "link", predict_model),
            "trainer_state": (run, os.path.relpath(os.path.join(self.latest_checkpoint(run),
                                                                "trainer_state.json"), run),
                              "copy", resume),
            "pretraining_trainer_state": (
                pretrained, os.path.relpath(os.path.join(self.latest_checkpoint(pretrained),
                                                         "trainer_state.json"), pretrained),
                "copy", resume_pretraining),
            "squad": (self.squad, "dev-v2.0.json", "file", squad_eval),
        }

    def place(self, source, relative, how, content, directory):
        """A variant's directory (copied, or links to the seed's files) or file, with `content`."""
        if how == "file":
            os.makedirs(directory)
            path = os.path.join(directory, os.path.basename(relative))
            with open(path, "wb") as f:
                f.write(content)
            return path
        if how == "copy":
            shutil.copytree(source, directory, symlinks=True)
        else:
            os.makedirs(directory)
            for name in os.listdir(source):
                os.symlink(os.path.join(source, name), os.path.join(directory, name))
        path = os.path.join(directory, relative)
        if os.path.islink(path):
            os.unlink(path)
        with open(path, "wb") as f:
            f.write(content)
        return directory

    def check(self, target, description, args, stdin, directory):
        """The exit code (0 or 1) when the command behaved, else what went wrong."""
        try:
            result = self.run(args, stdin)
        except subprocess.TimeoutExpired:
            return f"{target}: {description}: no answer in {TIMEOUT_S} s: {' '.join(args)}"
        lines = result.stderr.strip().splitlines()
        last = lines[-1] if lines else ""
        problem = None
        if result.returncode not in (0, 1):
            problem = f"exit {result.returncode}"
        elif "internal error" in result.stderr or "Exception raised from" in result.stderr:
            problem = "an internal error"
        elif result.returncode == 1 and not last.startswith("adaptertune: error: "):
            problem = "exit 1 without an error line"
        if problem is None:
            shutil.rmtree(directory, ignore_errors=True)
            return result.returncode
        return (f"{target}: {description}: {problem}: {' '.join(args)}\n    "
                + "\n    ".join(lines[-4:]))

    def fuzz(self, names):
        targets = self.targets()
        for name in names:
            source, relative, how, command = targets[name]
            with open(os.path.join(source, relative), encoding="utf-8") as f:
                document = json.load(f)
            # The file as the tools wrote it must be taken, or every variant's refusal means
            # nothing.
            unchanged = os.path.join(self.work, name, "unchanged")
            with open(os.path.join(source, relative), "rb") as f:
                placed = self.place(source, relative, how, f.read(), unchanged)
            args, stdin = command(placed)
            result = self.run(args, stdin)
            if result.returncode != 0:
                sys.exit(f"FAIL: {name}: the command does not take the file unchanged: "
                         f"{' '.join(args)}\n{result.stderr}")
            jobs = []
            for number, (description, content) in enumerate(variants(document, self.values)):
                directory = os.path.join(self.work, name, str(number))
                placed = self.place(source, relative, how, content, directory)
                args, stdin = command(placed)
                jobs.append((name, description, args, stdin, directory))
            with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
                results = list(pool.map(lambda job: self.check(*job), jobs))
            failures = [r for r in results if isinstance(r, str)]
            if self.show_taken:
                for job, code in zip(jobs, results):
                    if code == 0:
                        print(f"  taken: {name}: {job[1]}")
            print(f"{name}: {len(jobs)} variants: {results.count(1)} refused, {results.count(0)} "
                  f"taken, {len(failures)} failed", flush=True)
            self.runs += len(jobs)
            self.failures += failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cli")
    parser.add_argument("project")
    parser.add_argument("work")
    parser.add_argument("--files", default=",".join(FILES))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--values", help="try only these values, e.g. 1e400,deep (one of: "
                        + ", ".join(VALUE_NAMES) + ")")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--show-taken", action="store_true",
                        help="list the variants the command took (exit 0), to read for values "
                        "that should have been refused")
    options = parser.parse_args()
    shutil.rmtree(options.work, ignore_errors=True)
    values = QUICK_VALUES if options.quick else VALUES
    if options.values:
        unknown = [v for v in options.values.split(",") if v not in VALUE_NAMES]
        if unknown:
            parser.error(f"unknown --values {', '.join(unknown)}")
        values = [VALUE_NAMES[v] for v in options.values.split(",")]
    fuzzer = Fuzzer(os.path.abspath(options.cli), os.path.abspath(options.project),
                    os.path.abspath(options.work), values, options.jobs, options.show_taken)
    names = options.files.split(",")
    unknown = [n for n in names if n not in FILES]
    if unknown:
        parser.error(f"unknown --files {', '.join(unknown)}")
    fuzzer.make_seeds()
    fuzzer.fuzz(names)
    for failure in fuzzer.failures:
        print("FAIL: " + failure)
    if fuzzer.failures:
        print(f"{len(fuzzer.failures)} of {fuzzer.runs} variants failed")
        sys.exit(1)
    print(f"PASS ({fuzzer.runs} variants)")


if __name__ == "__main__":
    main()
