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
