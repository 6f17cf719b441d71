#!/usr/bin/env python3
"""What CPython's str.lower() does around a capital sigma, for every code point c, as ranges:
  final_after: "cΣ".lower() ends in final sigma (c is cased and not case-ignorable);
  skipped:     c is case-ignorable (in "aΣcb" the sigma looks past c to "b");
  unassigned:  c has category Cn in this Python's Unicode version (left out of the comparison,
               since the C++ side may know a newer Unicode);
plus the code points str.isspace() accepts. tests/unicode_test.cpp compares
adaptertune's python_lower() and is_python_space() with them.
    python3 make_python_lower_expectations.py > python_lower_expected.json
"""
import json
import sys
import unicodedata

SIGMA = "\u03a3"


def ranges(points):
    out = []
    for cp in points:
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


final_after, skipped, unassigned, space = [], [], [], []
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF:
        continue
    ch = chr(cp)
    if unicodedata.category(ch) == "Cn":
        unassigned.append(cp)
        continue
    final = (ch + SIGMA).lower()[-1] == "\u03c2"
    looks_past = ("a" + SIGMA + ch + "b").lower()[1] == "\u03c3"
    if final:
        final_after.append(cp)
    elif looks_past:
        skipped.append(cp)
    if ch.isspace():
        space.append(cp)
json.dump({"python": sys.version.split()[0], "unicode": unicodedata.unidata_version,
           "final_after": ranges(final_after), "skipped": ranges(skipped),
           "unassigned": ranges(unassigned), "space": ranges(space)}, sys.stdout)
print()
