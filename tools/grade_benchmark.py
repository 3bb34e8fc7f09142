"""How long tools/grade.py takes for a class of exercise-1 submissions (a benchmark, not a test).

    .venv/bin/python tools/grade_benchmark.py [--students 200] [--jobs 2] [--keep DIR]

Makes a class from notebooks/01: a quarter full marks, a quarter blank, a quarter with one wrong
gradient (a different one per student), a quarter with every third answer copied from `.grad`;
grades it with `tools/grade.py CLASS --out OUT --jobs N` (the command an instructor runs, in a
subprocess) and prints the wall time, the time per notebook and the gradebook's status counts.
"""
import argparse
import csv
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests")]
import grade_class  # noqa: E402  (the class builder lives with the tests)
from grader import course as gc  # noqa: E402


def make_class(folder, students):
    course = gc.load_course()
    groups = course["01"].groups
    for i in range(students):
        kind = i % 4
        if kind == 0:
            nb = grade_class.answer_notebook("01", course=course)
        elif kind == 1:
            nb = grade_class.answer_notebook("01", blank=True, course=course)
        elif kind == 2:
            g = groups[(i // 4) % len(groups)]
            wrong = "\n".join(g.solution + [f"{g.names[0]} = {g.names[0]} + 1.0  # one wrong gradient"])
            nb = grade_class.answer_notebook("01", {g.names[0]: wrong}, course=course)
        else:
            copied = {g.names[0]: f"{g.names[0]} = {g.names[0][1:]}.grad" for g in groups[::3]}
            nb = grade_class.answer_notebook("01", copied, course=course)
        grade_class.save(nb, Path(folder) / f"student{i:03d}" / "01_atomic_backward.ipynb")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", metavar="DIR", help="keep the class and the gradebook in DIR")
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="grade-benchmark-"))
    make_class(work / "class", args.students)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), str(work / "class"), "--out", str(work / "out"),
                    "--jobs", str(args.jobs)], check=True)
    seconds = time.perf_counter() - start
    with open(work / "out" / "gradebook.csv", newline="") as f:
        statuses = Counter(row["status"] for row in csv.DictReader(f))
    print(f"{args.students} exercise-1 submissions, --jobs {args.jobs}: {seconds:.0f} s "
          f"({seconds / args.students:.2f} s per notebook); {dict(statuses)}")


if __name__ == "__main__":
    main()
