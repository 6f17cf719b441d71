"""scripts/make_pretraining_corpus.py on made-up inputs: GLUE training splits only (never dev),
WordNet glosses, GCIDE entries taken apart (headwords, pronunciations, etymologies, sense numbers,
field labels, source tags and authors' names removed), loose de-duplication, and a held-out split
disjoint from the training text. Usage: pretraining_corpus_test.py PROJECT_DIR WORK_DIR"""
import gzip
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from script_checks import check, finish  # noqa: E402

project, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
glue = os.path.join(work, "glue")
TASKS = {  # task: (header, rows of the train.tsv)
    "SST-2": ("sentence\tlabel", ["a gorgeous , witty movie\t1", "A GORGEOUS, witty movie!\t1"]),
    "CoLA": (None, ["src\t1\t\tThe cat sat on the mat."]),
    "MRPC": ("q\t#1\t#2\ts1\ts2", ["1\t1\t2\tThe sky is blue today.\tToday the sky is blue."]),
    "RTE": ("i\ts1\ts2\tl", ["0\tA man runs in the park.\tA man moves.\tentailment"]),
    "STS-B": ("a\tb\tc\td\te\tf\tg\ts1\ts2\tscore",
              ["0\t0\t0\t0\t0\t0\t0\tA dog barks at night.\tA dog is barking.\t4.0"]),
}
for task, (header, rows) in TASKS.items():
    os.makedirs(os.path.join(glue, task))
    with open(os.path.join(glue, task, "train.tsv"), "w") as f:
        f.write("".join(line + "\n" for line in ([header] if header else []) + rows))
    with open(os.path.join(glue, task, "dev.tsv"), "w") as f:
        f.write("never trained on\n")
wordnet = os.path.join(work, "wordnet")
os.makedirs(wordnet)
for pos in ("noun", "verb", "adj", "adv"):
    with open(os.path.join(wordnet, "data." + pos), "w") as f:
        f.write("  1 This software and database is being provided\n")
        if pos == "noun":
            f.write('00001740 03 n 01 entity 0 | that which is perceived to exist; "a real thing"\n')
GCIDE = r"""

00-database-short
   The Collaborative International Dictionary of English v.0.48

Abdication \Ab`di*ca"tion\, n. [L. abdicatio: cf. F.
   abdication.]
   The act of abdicating; the renunciation of a high office,
   dignity, or trust, by its holder.
   [1913 Webster]

Dichotomize \Di*chot"o*mize\, v. t. [imp. & p. p.
   {Dichotomized}; p. pr. & vb. n. {Dichotomizing}.] [See
   {Dichotomous}.]
   1. To cut into two parts; to part into two divisions. [R.]
      [1913 Webster]

            The apostolical benediction dichotomizes all good
            things into grace and peace.          --Bp. Hall.
      [1913 Webster]

   2. (Astron.) To exhibit as a half disk seen from the earth.
      [1913 Webster]

Dichotomist \Di*chot"o*mist\, n.
   One who dichotomizes. --Bacon.
   [1913 Webster]
"""
gcide = os.path.join(work, "gcide.dict.dz")
with gzip.open(gcide, "wt", encoding="utf-8") as f:
    f.write(GCIDE)

script = os.path.join(project, "scripts", "make_pretraining_corpus.py")
train, held = os.path.join(work, "train.txt"), os.path.join(work, "heldout.txt")


def corpus(*extra):
    run = subprocess.run([sys.executable, script, train, glue, wordnet, *extra],
                         capture_output=True, text=True)
    check(run.returncode == 0, f"make_pretraining_corpus {extra} failed: {run.stderr}")
    return open(train).read().splitlines()


# Without --gcide and --held-out: exact de-duplication, as the shipped base's corpus was made.
plain = corpus()
check("a gorgeous , witty movie" in plain and "A GORGEOUS, witty movie!" in plain,
      f"exact de-duplication merged lines that differ: {plain}")
check(not any("never trained on" in line for line in plain), "dev text in the corpus")
check("That which is perceived to exist" in plain, f"no WordNet gloss: {plain}")

lines = corpus("--gcide", gcide, "--held-out", held, "--held-out-lines", "2")
held_out = open(held).read().splitlines()
everything = lines + held_out
check(len(held_out) == 2, f"{len(held_out)} held-out lines, expected 2")
check(not set(held_out) & set(lines), "a held-out line is also training text")
check(sum(line.lower().startswith("a gorgeous") for line in everything) == 1,
      "loose de-duplication kept lines that differ only in case and punctuation")
for expected in ("The act of abdicating; the renunciation of a high office, dignity, or trust, "
                 "by its holder.",
                 "To cut into two parts; to part into two divisions.",
                 "The apostolical benediction dichotomizes all good things into grace and peace.",
                 "To exhibit as a half disk seen from the earth."):
    check(expected in everything, f"GCIDE text missing: {expected!r} in {everything}")
for unwanted in ("Webster", "\\", "[", "{", "Dichotomized", "Astron", "Hall", "database",
                 "One who dichotomizes"):  # the last: under four words once its author goes
    check(not any(unwanted in line for line in everything), f"{unwanted!r} left in the corpus")
bad = subprocess.run([sys.executable, script, train, glue, wordnet, "--held-out", held,
                      "--held-out-lines", "100000"], capture_output=True, text=True)
check(bad.returncode != 0 and "--held-out-lines must be between 1 and" in bad.stderr,
      f"too many held-out lines was not refused: {bad.stderr}")
finish()
