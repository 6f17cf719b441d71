#!/usr/bin/env python3
"""Checks that the library's folders include only downwards (DESIGN.md, "Layers that only look
down"), and that the applications (tools/, examples/, benchmarks/) use only the public API.

Usage: scripts/check_floors.py [PROJECT_DIR]. Prints each upward include as FILE:LINE and the
two floors, and PASS when there is none; exits 1 otherwise.

The floors, lowest first:
  0 ground: text/, the configs, errors, formatting, devices, the runtime, file writing
  1 model:  layers/, adapters/, the BERT models, parameter names, precision
  2 files and data: io/, tasks/
  3 what users run: inference/, training/, distributed/ (inference never includes training/)
"""
import os
import re
import sys

FOLDER_FLOOR = {"text": 0, "layers": 1, "adapters": 1, "io": 2, "tasks": 2,
                "inference": 3, "training": 3, "distributed": 3}
# Files at the top of include/adaptertune/ and src/ that sit above the ground floor.
MODEL_FILES = {"bert_model", "bert_for_masked_lm", "bert_for_question_answering",
               "bert_for_sequence_classification", "parameter_names", "precision",
               "dropout", "linear", "onednn_products", "module_walk", "parameter_assignment"}
# io/atomic_file.h writes and reads files with POSIX calls and knows nothing of models; the
# configs load and save themselves through it, so it is ground floor, wherever its folder.
GROUND_FILES = {"io/atomic_file"}
FLOOR_NAMES = ["ground", "model", "files and data", "what users run"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def floor_of(relative):
    """Floor of a path relative to include/adaptertune/ or src/."""
    stem = os.path.splitext(relative)[0]
    if stem in GROUND_FILES:
        return 0
    folder, _, name = stem.rpartition("/")
    if folder:
        return FOLDER_FLOOR[folder.split("/")[0]]
    return 1 if name in MODEL_FILES else 0


def library_target(root, including_dir, name):
    """The library file (relative to include/adaptertune/ or src/) that `#include "name"` in a
    file of `including_dir` reaches, or None for a header outside the library."""
    if name.startswith("adaptertune/"):
        return name[len("adaptertune/"):]
    for base in (including_dir, os.path.join(root, "src")):
        candidate = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(candidate):
            return os.path.relpath(candidate, os.path.join(root, "src"))
    return None


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    problems = []
    for top in ("include/adaptertune", "src"):
        for directory, _, files in os.walk(os.path.join(root, top)):
            for file in sorted(files):
                if not file.endswith((".h", ".cpp")) or file == "adaptertune.h":
                    continue  # the umbrella header includes everything by design
                path = os.path.join(directory, file)
                source_floor = floor_of(os.path.relpath(path, os.path.join(root, top)))
                in_inference = os.path.relpath(path, os.path.join(root, top)).startswith("inference/")
                for number, line in enumerate(open(path, encoding="utf-8"), 1):
                    match = INCLUDE.match(line)
                    if not match:
                        continue
                    target = library_target(root, directory, match.group(1))
                    if target is None:
                        continue
                    target_floor = floor_of(target)
                    where = f"{os.path.relpath(path, root)}:{number}"
                    if target_floor > source_floor:
                        problems.append(f"{where}: includes {match.group(1)} "
                                        f"({FLOOR_NAMES[target_floor]}) from the "
                                        f"{FLOOR_NAMES[source_floor]} floor")
                    elif in_inference and target.startswith("training/"):
                        problems.append(f"{where}: inference includes {match.group(1)}")
    # The applications see the library only through its installed headers (and their own:
    # tools/cli includes tools/serve's server).
    for top in ("tools", "examples", "benchmarks"):
        own_headers = {file for _, _, files in os.walk(os.path.join(root, top)) for file in files}
        for directory, _, files in os.walk(os.path.join(root, top)):
            for file in sorted(files):
                if not file.endswith((".h", ".cpp")):
                    continue
                path = os.path.join(directory, file)
                for number, line in enumerate(open(path, encoding="utf-8"), 1):
                    match = INCLUDE.match(line)
                    if not match or match.group(1).startswith("adaptertune/"):
                        continue
                    if match.group(1) not in own_headers:
                        problems.append(f"{os.path.relpath(path, root)}:{number}: includes "
                                        f"{match.group(1)}, which is not public API")
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_floors: {len(problems)} upward or private include(s)")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
