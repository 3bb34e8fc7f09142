"""Grade a class's exercise notebooks: a gradebook (CSV) and one feedback page per student.

    .venv/bin/python tools/grade.py SUBMISSIONS_DIR --out OUT_DIR [--jobs N] [--timeout SECONDS]
                                   [--memory GB] [--seed N] [--shard K/N] [--train-steps STEPS]
    .venv/bin/python tools/grade.py --merge OUT_DIR_1 OUT_DIR_2 ... --out OUT_DIR

The grader is the package tools/grader/ (its cli module says which module does what);
tools/README.md, "Grading a class", says what it guarantees against a student who wants points without
the work.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grader.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
