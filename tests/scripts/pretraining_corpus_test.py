"""scripts/make_pretraining_corpus.py on made-up inputs: GLUE training splits only (never dev),
WordNet glosses, GCIDE entries taken apart (headwords, pronunciations, etymologies, sense numbers,
field labels, source tags and authors' names removed), loose de-duplication, a held-out split
disjoint from the training text, and running text (the World English Bible, Python's and Perl's
documentation) reduced to its prose. Usage: pretraining_corpus_test.py PROJECT_DIR WORK_DIR"""
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
# Running text: the World English Bible (diatheke's OSIS output), Python's reStructuredText and
# Perl's Pod, their prose only, in document order after the other lines; the held-out split stays
# the same lines.
OSIS = """Genesis 1:1: <w>In</w> <w>the</w> <w>beginning</w>, <w>God</w><w>created</w> <w>the</w> <w>heavens</w>.<milestone type="line"/>
I Samuel 1:2: <w>He</w> <w>said</w>, “<w>Let</w> <w>there</w> <w>be</w> <w>light</w>,” <w>and</w> <w>gave</w> <w>his</w> <w>only</w> born<w>Son</w>.
<title canonical="true" type="psalm">A praise psalm by David.</title> <lg sID="gen1"/> <l level="1" sID="gen2"/>Psalms 145:1: <w>I</w> <w>will</w> <w>exalt</w> <w>you</w>, <w>my</w> <w>God</w>.
A praise psalm by David.  Esther (Greek) 1:1: <w>In</w> <w>the</w> <w>second</w> <w>year</w> <w>of</w> <w>the</w> <w>reign</w>.
Revelation of John 22:21: <w>The</w> <w>grace</w> <w>be</w> <w>with</w> <w>all</w> saints. Amen. The following words used in the World English Bible are not common.
(engWEB2015eb)
"""
osis = os.path.join(work, "web.osis")
with open(osis, "w", encoding="utf-8") as f:
    f.write(OSIS)
RST = """.. _tut-if:

*************
Control Flow
*************

The :keyword:`if` statement picks a branch, see :ref:`the tutorial <tut-if>` for ``elif``.  For
example::

   >>> if x < 0:
   ...     x = 0

.. function:: range(stop)

   Return an object that produces a sequence of integers on demand.

   .. code-block:: python

      for i in range(10): print(i)

* A list item about loops that is long enough to keep.

+------+------+
| a table row |
+------+------+
"""
python_docs = os.path.join(work, "python", "tutorial")
os.makedirs(python_docs)
with open(os.path.join(python_docs, "controlflow.rst.txt"), "w") as f:
    f.write(RST)
POD = """=head1 NAME

perlintro - a brief introduction

=head1 DESCRIPTION

Perl is a B<general-purpose> language; see L<the manual|perlfunc/open> for C<< $fh->open >>
and E<lt>STDINE<gt>.X<perl>

    my $x = 1;   # verbatim code, left out
    print "a verbatim line that is long";

=begin html

<p>Only for the HTML formatter, not prose here.</p>

=end html

Odd nameE<sol>value argument for a subroutine, said L<Odd nameE<sol>value|perldiag/"Odd">.

=cut
"""
perl_docs = os.path.join(work, "pod")
os.makedirs(perl_docs)
with open(os.path.join(perl_docs, "perlintro.pod"), "w") as f:
    f.write(POD)
running = corpus("--gcide", gcide, "--bible", osis, "--python-docs", os.path.dirname(python_docs),
                 "--perl-docs", perl_docs, "--held-out", held, "--held-out-lines", "2")
check(open(held).read().splitlines() == held_out, "the held-out lines changed with running text")
check(running[:len(lines)] == lines, "the other sources' lines moved")
expected = [
    "In the beginning, God created the heavens.",
    'He said, "Let there be light," and gave his only born Son.',
    "I will exalt you, my God.",
    "In the second year of the reign.",
    "The grace be with all saints. Amen.",
    "The if statement picks a branch, see the tutorial for elif. For example:",
    "Return an object that produces a sequence of integers on demand.",
    "A list item about loops that is long enough to keep.",
    "perlintro - a brief introduction",
    "Perl is a general-purpose language; see the manual for $fh->open and <STDIN>.",
    "Odd name/value argument for a subroutine, said Odd name/value.",
]
check(running[len(lines):] == expected,
      "running text, in order, expected:\n" + "\n".join(expected) + "\ngot:\n" +
      "\n".join(running[len(lines):]))
missing = subprocess.run([sys.executable, script, train, glue, wordnet, "--perl-docs",
                          os.path.join(work, "nowhere")], capture_output=True, text=True)
check(missing.returncode != 0 and "nowhere not found" in missing.stderr,
      f"a missing documentation directory was not refused: {missing.stderr}")

bad = subprocess.run([sys.executable, script, train, glue, wordnet, "--held-out", held,
                      "--held-out-lines", "100000"], capture_output=True, text=True)
check(bad.returncode != 0 and "--held-out-lines must be between 1 and" in bad.stderr,
      f"too many held-out lines was not refused: {bad.stderr}")
finish()
