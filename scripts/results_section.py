"""One report script's section of docs/results.md, between its markers.

A script that measures something writes its table here instead of by hand, so that rerunning it
replaces its own section and leaves the others (and the results table above them) alone.
"""
import os


def write_section(script, section, path="docs/results.md"):
    """Puts `section` between `<!-- SCRIPT -->` and `<!-- /SCRIPT -->` in `path` (appended when the
    markers are not there yet), atomically, and prints it."""
    begin, end = f"<!-- {script} -->\n", f"<!-- /{script} -->\n"
    text = open(path).read()
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + begin + section + end + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + begin + section + end
    with open(path + ".tmp", "w") as out:
        out.write(text)
    os.replace(path + ".tmp", path)
    print(section)


def dev_labels(task, data_dir="data/glue"):
    """The gold labels of a GLUE task's dev.tsv (MRPC's first column, the others' last)."""
    with open(os.path.join(data_dir, task, "dev.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    return [row[0] if task == "MRPC" else row[-1] for row in rows]


def majority_accuracy(task):
    """(accuracy of predicting the commonest dev label, one standard error of an accuracy near it,
    number of examples), the first two in points: what a report compares a small task with."""
    labels = dev_labels(task)
    p = max(labels.count(x) for x in set(labels)) / len(labels)
    return 100 * p, 100 * (p * (1 - p) / len(labels)) ** 0.5, len(labels)
