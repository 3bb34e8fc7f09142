"""Make submissions the way students would, from the exercise notebooks: for the grader's tests and
tools/grade_benchmark.py.

    answer_notebook("01")                                  # every blank filled with the solution's code
    answer_notebook("01", {"dprobs": "dprobs = 2 * dlogprobs"})   # one answer of your own
    answer_notebook("01", blank=True)                      # as generated: every blank still None
    save(nb, path)
"""
import textwrap
from pathlib import Path

import nbformat

from grader import course as gc
from grader.course import Code

ROOT = Path(__file__).resolve().parent.parent


def answer_notebook(number, answers=None, *, blank=False, course=None, cells=()):
    """The exercise notebook `number` as a student would hand it in.

    answers: {first name a blank assigns (e.g. "dprobs", "dh" for `dh, dW2, db2`), or the function a
    blank is in (e.g. "backward"): code}. The code is written where the placeholder lines were (indented
    to fit). Blanks not named get the solution's code, or stay as generated when blank=True. cells:
    sources of code cells the student added at the end.
    """
    course = course or gc.load_course()
    exercise = course[number]
    nb = nbformat.read(ROOT / "notebooks" / exercise.name, as_version=4)
    answers = dict(answers or {})
    for cell in nb.cells:
        answer = exercise.answers.get(cell.get("id"))
        if answer is None:
            continue
        lines = []
        for group in answer.parts:
            if isinstance(group, Code):
                lines += group.lines
                continue
            key = group.function if group.function in answers else group.names[0]
            if key in answers:
                code = textwrap.dedent(answers.pop(key)).strip("\n")
                lines += textwrap.indent(code, group.indent, lambda line: True).splitlines()
            else:
                lines += group.placeholders if blank else group.solution
        cell.source = "\n".join(lines)
    if answers:
        raise KeyError(f"no blank in exercise {number} starts with {sorted(answers)}")
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]  # cells of the student's own
    return nb


def save(nb, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
