#!/usr/bin/env python3
"""Builds the text the base model is pretrained on (task-adaptive pretraining plus general
English), one sentence, gloss or definition per line:

- the sentences of the *training* splits of the shipped GLUE tasks (SST-2, CoLA, MRPC, RTE,
  STS-B; never dev or test text);
- the glosses and example sentences of WordNet 3.0 (Debian package wordnet-base; WordNet 3.0
  licence: use, copy, modify and distribute for any purpose with its copyright notice, which
  models/README.md carries);
- with --gcide, the definitions and quotations of GCIDE, the GNU Collaborative International
  Dictionary of English (Debian package dict-gcide; GPL-2.0-or-later; mostly Webster's 1913);
- with --bible, the verses of the World English Bible (Debian package sword-text-web, read with
  diatheke; public domain);
- with --python-docs, the prose of Python 3.11's documentation (Debian package python3.11-doc, its
  reStructuredText sources; PSF License Version 2), code, directives and tables left out;
- with --perl-docs, the prose of Perl's documentation (Debian package perl-doc, its Pod files; the
  same terms as Perl: the Artistic License or GPL-1.0-or-later), verbatim code left out.

The three sources after GCIDE are running text: their lines keep their documents' order (so that
a packed training sequence holds consecutive sentences, as BERT's pretraining text does), after
the other sources' shuffled lines, and they never enter the held-out split, which therefore stays
the same lines with or without them (held-out losses of runs on either corpus compare).

Lines are de-duplicated on their lower-cased letters and digits, so that lines differing only in
case, spacing or punctuation appear once. With --held-out FILE, that many lines of the shuffled
result are written there instead of to OUTPUT_FILE: text to measure a held-out masked-LM loss on,
never trained on. Without any flag the output is the corpus of the base shipped until 2026-12-01,
line for line (266,643 lines); with --gcide and --held-out, that of the bases since.

Usage: make_pretraining_corpus.py OUTPUT_FILE [GLUE_DIR] [WORDNET_DIR]
           [--gcide [GCIDE_DICT_DZ]] [--bible [OSIS_FILE]] [--python-docs [DIR]]
           [--perl-docs [DIR]] [--held-out FILE] [--held-out-lines N]
"""
import argparse
import gzip
import itertools
import os
import random
import re
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("output")
parser.add_argument("glue", nargs="?", default=os.path.join(here, "..", "data", "glue"))
parser.add_argument("wordnet", nargs="?", default="/usr/share/wordnet")
parser.add_argument("--gcide", nargs="?", const="/usr/share/dictd/gcide.dict.dz", default=None,
                    help="add GCIDE's definitions (default file: Debian's dict-gcide)")
parser.add_argument("--bible", nargs="?", const="diatheke", default=None,
                    help="add the World English Bible: a file of `diatheke -f OSIS` output, or "
                    "by default diatheke's own (Debian's sword-text-web and diatheke)")
parser.add_argument("--python-docs", nargs="?", const="/usr/share/doc/python3.11/html/_sources",
                    default=None, help="add the prose of Python's documentation (default: "
                    "Debian's python3.11-doc)")
parser.add_argument("--perl-docs", nargs="?", const="/usr/share/perl/5.36.0/pod", default=None,
                    help="add the prose of Perl's documentation (default: Debian's perl-doc)")
parser.add_argument("--held-out", help="write --held-out-lines lines here, not to OUTPUT")
parser.add_argument("--held-out-lines", type=int, default=2000)
args = parser.parse_args()

# (task, header lines to skip, text columns) of each train.tsv
TRAIN = [("SST-2", 1, [0]), ("CoLA", 0, [3]), ("MRPC", 1, [3, 4]), ("RTE", 1, [1, 2]),
         ("STS-B", 1, [7, 8])]

lines, seen = [], set()
counts = {}
# With only GLUE and WordNet, lines are compared exactly, as when the shipped base was made, so
# that its corpus can still be rebuilt line for line; new corpora compare a looser key.
running_text = [args.bible, args.python_docs, args.perl_docs]
loose_keys = any(a is not None for a in [args.gcide, args.held_out] + running_text)


def dedupe_key(text):
    return re.sub(r"[^0-9a-z]+", "", text.lower()) if loose_keys else text


def add(text, source, into):
    """Appends text to the list `into` unless a line with its key was added before. The list is
    passed every time, never defaulted: the held-out split rebinds `lines` to a new list."""
    text = " ".join(text.split())
    key = dedupe_key(text)
    if text and key and key not in seen:
        seen.add(key)
        into.append(text)
        counts[source] = counts.get(source, 0) + 1


for task, skip, columns in TRAIN:
    with open(os.path.join(args.glue, task, "train.tsv"), encoding="utf-8-sig") as f:
        for i, row in enumerate(f):
            if i < skip:
                continue
            fields = row.rstrip("\n").split("\t")
            for c in columns:
                add(fields[c], "GLUE training splits", lines)

if os.path.isdir(args.wordnet):
    for pos in ("noun", "verb", "adj", "adv"):
        path = os.path.join(args.wordnet, "data." + pos)
        with open(path, encoding="utf-8", errors="replace") as f:
            for row in f:
                if row.startswith("  ") or "|" not in row:
                    continue  # licence header
                gloss = row.split("|", 1)[1].strip()
                for part in gloss.split(";"):
                    part = part.strip().strip('"').strip()
                    if len(part.split()) >= 3:
                        add(part[0].upper() + part[1:] if part else part, "WordNet", lines)
else:
    print(f"make_pretraining_corpus: {args.wordnet} not found; no WordNet text", file=sys.stderr)

# GCIDE in dictd's format: an entry starts at column 0 with its headword and pronunciation
# ("Dichotomy \Di*chot"o*my\, n. [etymology]"); its senses, notes and quotations follow, indented,
# in paragraphs separated by blank lines, each closed by a source tag such as "[1913 Webster]".
BRACKETS = re.compile(r"\[[^\[\]]*\]")
PRONUNCIATION = re.compile(r"\\[^\\]*\\")
# what may precede the definition on a headword line: part-of-speech and grammar abbreviations
GRAMMAR = re.compile(r"^(?:\s*(?:[a-zA-Z]{1,6}\.|&|;|,|:))*\s*")
# sense numbers "1.", "(a)" and field labels "(Bot.)", "(Naut. & Mil.)" before a definition
LABELS = re.compile(r"^(?:\s*(?:\d+\.|\([a-z]\)|\([A-Z][A-Za-z.&, ]*\)))+\s*")
# a headword line the patterns above could not take apart ("(kr"b r), n. (Zool.) The water rat.")
GRAMMAR_LEFT = re.compile(r",\s(?:n|v|a|adv|pl|p|imp)\.")
ALLOWED = re.compile(r"^[A-Za-z0-9 ,;:.'\"()!-]+$")


def gcide_paragraph(paragraph):
    headword_line = not paragraph[0].startswith(" ")  # an entry's first line starts at column 0
    if headword_line:
        if "\\" not in paragraph[0]:
            return None  # the database's own header entries
        first = paragraph[0].split("\\", 2)
        paragraph = [first[2] if len(first) == 3 else ""] + paragraph[1:]
    text = " ".join(line.strip() for line in paragraph)
    while True:
        stripped = BRACKETS.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    text = PRONUNCIATION.sub(" ", text)
    text = re.split(r"\s--", " " + text)[0]  # an author's name, or a derived word's trailer
    if headword_line:
        text = GRAMMAR.sub("", text)
    text = LABELS.sub("", text).replace("{", "").replace("}", "").strip(" ;,")
    text = " ".join(text.split())
    if len(text.split()) < 4 or not ALLOWED.match(text) or GRAMMAR_LEFT.search(text):
        return None
    return text[0].upper() + text[1:]


if args.gcide:
    with gzip.open(args.gcide, "rt", encoding="utf-8", errors="replace") as f:
        paragraph = []
        for row in itertools.chain(f, [""]):  # the blank line ends the file's last paragraph
            row = row.rstrip("\n")
            if row.strip():
                paragraph.append(row)
            elif paragraph:
                text = gcide_paragraph(paragraph)
                if text:
                    add(text, "GCIDE", lines)
                paragraph = []

random.Random(0).shuffle(lines)
held_out = []
if args.held_out:
    if not 0 < args.held_out_lines < len(lines):
        sys.exit(f"make_pretraining_corpus: --held-out-lines must be between 1 and {len(lines) - 1}")
    held_out, lines = lines[:args.held_out_lines], lines[args.held_out_lines:]


# Running text: a paragraph (or verse) a line, in its document's order, kept only when it reads as
# prose: five words or more, and letters and spaces at least 85 % of it (code, tables, lists of
# names and numbers fall below).
def add_prose(text, source):
    text = " ".join(text.split())
    if len(text.split()) >= 5 and sum(c.isalpha() or c == " " for c in text) >= 0.85 * len(text):
        add(text, source, lines)


def quotes_to_ascii(text):
    return text.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"',
                                         "\u201d": '"'}))


# diatheke's OSIS output: "Genesis 1:1: <w>In</w> <w>the</w> ..." a verse a line ("I Samuel 1:1",
# "Esther (Greek) 1:1"), sometimes after a heading diatheke repeats from an earlier verse, which
# is left out with the verse's own <title>. Some words of the module are tagged without the space
# before them ("<w>God</w><w>created</w>", "born<w>Son</w>"): a tag boundary is a word boundary.
# The last verse runs on into the module's glossary, and the module's name closes the output;
# both are left out.
VERSE = re.compile(r"(?:^|\s|>)(?:[1-4] )?[A-Z][A-Za-z]*(?: (?:of )?[A-Z][A-Za-z]*)*"
                   r"(?: \([A-Z][a-z]+\))? \d+:\d+: ")


def bible_verses(osis):
    verses = []
    for line in osis.splitlines():
        start = VERSE.search(line)
        if start:
            verses.append(line[start.end():])
        elif verses and not re.fullmatch(r"\(\w+\)", line.strip()):
            verses[-1] += " " + line
    for verse in verses:
        verse = re.sub(r"<title[^>]*>.*?</title>", " ", verse)
        verse = re.sub(r"</w>\s*<w[^>]*>", "</w> <w>", verse)
        verse = re.sub(r"([A-Za-z,;:.!?])<w[^>]*>", r"\1 <w>", verse)
        verse = re.sub(r"<[^>]+>", "", verse).split("The following words used in the World")[0]
        yield quotes_to_ascii(verse)


if args.bible:
    if args.bible == "diatheke":
        run = subprocess.run(["diatheke", "-b", "engWEB2015eb", "-f", "OSIS", "-k",
                              "Gen 1:1-Rev 22:21"], capture_output=True, text=True)
        if run.returncode != 0 or not run.stdout.strip():
            sys.exit("make_pretraining_corpus: diatheke gave no World English Bible (apt-get install "
                     f"sword-text-web diatheke): {run.stderr.strip()}")
        osis = run.stdout
    else:
        with open(args.bible, encoding="utf-8") as f:
            osis = f.read()
    for verse in bible_verses(osis):
        add_prose(verse, "the World English Bible")


def source_files(root, suffix, leave_out=()):
    if not os.path.isdir(root):
        sys.exit(f"make_pretraining_corpus: {root} not found")
    found = sorted(os.path.join(d, name) for d, _, names in os.walk(root) for name in names
                   if name.endswith(suffix))
    return [path for path in found if not any(part in path for part in leave_out)]


# reStructuredText, as Sphinx keeps it beside the HTML: paragraphs are separated by blank lines;
# directives (".. name::"), comments and targets, literal blocks (after a "::"), doctests,
# tables and section titles are not prose. A directive's indented body is prose ("note",
# "function") unless the directive holds code or markup.
RST_ROLE = re.compile(r":[a-z:+-]+:`!?~?([^`<]*?)\s*(?:<[^`>]*>)?`")
RST_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]*>`_{1,2}")
RST_REFERENCE = re.compile(r"`([^`]+)`_{1,2}")
RST_LITERAL = re.compile(r"``(.+?)``")
RST_EMPHASIS = re.compile(r"\*{1,2}([^*\s][^*]*?)\*{1,2}")
RST_TITLE_LINE = re.compile(r"^([=\-~^*+#\"'`:.]){3,}$")
RST_NOT_PROSE = {"code-block", "sourcecode", "code", "productionlist", "testcode", "testoutput",
                 "doctest", "literalinclude", "highlight", "index", "toctree", "only", "raw",
                 "csv-table", "list-table", "table", "include", "image", "figure", "moduleauthor",
                 "sectionauthor", "module", "currentmodule", "program", "option", "cmdoption",
                 "envvar", "describe", "opcode", "impl-detail", "audit-event", "availability",
                 "seealso", "tabularcolumns", "glossary"}


def indent(line):
    return len(line) - len(line.lstrip(" "))


def rst_inline(text):
    for pattern in (RST_ROLE, RST_LINK, RST_LITERAL, RST_REFERENCE, RST_EMPHASIS):
        text = pattern.sub(r"\1", text)
    text = text.replace("\\", "")
    return text[:-1] if text.endswith("::") else text


def rst_paragraphs(rows):
    paragraphs, block, code_below = [], [], None  # code_below: blocks indented deeper are code

    def flush(block):
        nonlocal code_below
        depth = indent(block[0])
        if code_below is not None and depth > code_below:
            return
        code_below = None
        first = block[0].strip()
        if first.startswith(".."):
            directive = re.match(r"\.\.\s+([a-zA-Z:-]+)::", first)
            if directive is None or directive.group(1).split(":")[-1] in RST_NOT_PROSE:
                code_below = depth
                return
            block = [row for row in block[1:] if not re.match(r"\s*:[a-z-]+:", row)]
            if not block:
                return
        if any(row.strip().startswith((">>>", "+--", "|", "$ ")) or
               RST_TITLE_LINE.match(row.strip()) for row in block):
            return
        if block[-1].rstrip().endswith("::"):
            code_below = depth
        text = rst_inline(" ".join(row.strip() for row in block))
        paragraphs.append(re.sub(r"^(?:[*-]|\d+\.|#\.)\s+", "", text))  # a list item's bullet

    for row in rows:
        row = row.rstrip("\n")
        if not row.strip():
            if block:
                flush(block)
            block = []
            continue
        # A line indented less than its paragraph (not a list item's) starts another.
        if block and indent(row) < indent(block[0]) and not block[0].lstrip().startswith(("*", "-")):
            flush(block)
            block = []
        block.append(row)
    if block:
        flush(block)
    return paragraphs


if args.python_docs:
    # The changelog is a list of issue titles, not prose.
    for path in source_files(args.python_docs, ".rst.txt", leave_out=("whatsnew/changelog",)):
        with open(path, encoding="utf-8") as f:
            for paragraph in rst_paragraphs(f):
                add_prose(paragraph, "Python's documentation")

# Pod: commands start with "=", verbatim (code) paragraphs with white space; the rest are ordinary
# paragraphs with formatting codes, B<bold> or C<< code >>, which keep their text (E<gt> its
# character; L<text|target> its text; X<> and Z<> nothing).
POD_ESCAPES = {"lt": "<", "gt": ">", "sol": "/", "verbar": "|", "quot": '"', "amp": "&"}
POD_CODE = re.compile(r"([BCEFILSXZ])(<+)(\s?)")


def pod_text(text):
    def parse(i, closer):  # the text from i to `closer` (None: the end), and where it stops
        out = []
        while i < len(text):
            if closer:
                stop = closer.match(text, i)
                if stop:
                    return "".join(out), stop.end()
            code = POD_CODE.match(text, i)
            if code and (len(code.group(2)) == 1 or code.group(3)):
                angles = len(code.group(2))
                inner, after = parse(code.end(), re.compile(">" if angles == 1 else
                                                            r"\s+" + ">" * angles))
                if after is not None:
                    kind = code.group(1)
                    if kind == "E":
                        inner = POD_ESCAPES.get(inner, "")
                    elif kind in "XZ":
                        inner = ""
                    elif kind == "L":
                        inner = inner.split("|", 1)[0] if "|" in inner else inner.split("/")[-1]
                    out.append(inner.strip('"'))
                    i = after
                    continue
            out.append(text[i])
            i += 1
        return "".join(out), None if closer else i

    parsed, end = parse(0, None)
    return parsed


def pod_paragraphs(rows):
    paragraphs, block, in_pod, in_format = [], [], False, False
    for row in itertools.chain(rows, [""]):
        row = row.rstrip("\n")
        if row.startswith("=") and not block:
            command = row.split()[0]
            in_pod = command != "=cut"
            # "=begin html" ... "=end html", "=for text ...": text for one formatter only
            in_format = command == "=begin" or (in_format and command != "=end")
            block = [row] if command == "=for" else []
            continue
        if row.strip():
            block.append(row)
        elif block:
            if in_pod and not in_format and block[0][:1] not in (" ", "\t", "="):
                paragraphs.append(pod_text(" ".join(line.strip() for line in block)))
            block = []
    return paragraphs


if args.perl_docs:
    for path in source_files(args.perl_docs, ".pod"):
        with open(path, encoding="utf-8", errors="replace") as f:
            for paragraph in pod_paragraphs(f):
                add_prose(paragraph, "Perl's documentation")


def write(path, text_lines):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(text_lines) + "\n")
    os.replace(path + ".tmp", path)


write(args.output, lines)
sources = ", ".join(f"{n} from {source}" for source, n in counts.items())
print(f"make_pretraining_corpus: {len(lines) + len(held_out)} lines ({sources}); "
      f"{len(lines)} -> {args.output}")
if args.held_out:
    write(args.held_out, held_out)
    print(f"make_pretraining_corpus: {len(held_out)} held-out lines -> {args.held_out}")
