"""What the grader knows about the course, read from solutions/ at run time.

An Exercise is one solution notebook: its code cells in order, and its answer Groups. A Group is one
`### BEGIN SOLUTION` ... `### END SOLUTION` region of a cell (regions that only blank lines separate
are one group): the code a student writes where the exercise has its `# TODO` lines. A group at the
top level of a cell is graded by the names it assigns (`dlogprobs`); a group inside a function
(exercise 4's layers, 05's fixes) is graded as that function, by the names it assigns there.
"""
import ast
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import make_exercises as mx  # noqa: E402
from make_exercises import Code, Region  # noqa: E402  (the generator's parts of a cell)

ROOT = Path(__file__).resolve().parent.parent.parent
SOLUTIONS = ROOT / "solutions"
TRAINING = "training"  # the item of an exercise that trains (its cells read NINJA_TRAIN_STEPS)


@dataclass
class Group:
    """One answer region (or several that only blank lines separate)."""
    key: str                  # "<cell id>:<k>"
    cell_id: str
    indent: str
    names: list               # the names it assigns (dlogprobs ...)
    solution: list            # the solution's lines
    placeholders: list        # the exercise's lines for it
    function: str = None      # the function whose body it is in, if any

    @property
    def items(self):
        """The gradebook items it is graded as: its function, or each name it assigns."""
        return [self.function] if self.function else list(self.names)


@dataclass
class AnswerCell:
    cell_id: str
    parts: list               # Code and Group, in order
    exercise_lines: list      # the exercise cell's lines

    def source(self, fill):
        """The cell's source with fill(group) -> lines in place of each group."""
        return "\n".join(l for p in self.parts for l in (p.lines if isinstance(p, Code) else fill(p)))


@dataclass
class Exercise:
    number: str               # "01"
    name: str                 # "01_atomic_backward.ipynb"
    cells: list               # the solution's code cells that are graded, in order: {"id", "source", "tags"}
    answers: dict             # cell id -> AnswerCell
    ids: set                  # every cell id of the exercise notebook
    contents: set             # the exercise notebook's code lines (identification without ids)
    groups: list = field(default_factory=list)
    training: bool = False    # reads NINJA_TRAIN_STEPS: graded also on the validation loss it reaches

    @property
    def items(self):
        out = []
        for group in self.groups:
            out += [i for i in group.items if i not in out]
        return out + ([TRAINING] if self.training else [])

    def groups_of(self, item):
        return [g for g in self.groups if item in g.items]


def _lines(sources):
    """The distinct stripped lines of some sources, those of at least 8 characters."""
    return {line.strip() for source in sources for line in source.splitlines() if len(line.strip()) >= 8}


def _only_function(source):
    """The name of the one function a cell defines at its top level, or None."""
    try:
        tree = ast.parse("\n".join(l for l in source.splitlines() if mx.marker(l) is None))
    except SyntaxError:
        return None
    defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    return defs[0] if len(defs) == 1 else None


def load_exercise(path):
    solution = nbformat.read(path, as_version=4)
    exercise = mx.make_exercise(solution, path.name)
    names_in_notebook = mx.notebook_names(solution)
    cells, answers, groups = [], {}, []
    for cell in solution.cells:
        if cell.cell_type != "code" or "solution" in mx.tags(cell):
            continue
        cells.append({"id": cell.get("id"), "source": cell.source, "tags": list(mx.tags(cell))})
        raw = mx.regions(cell.source)
        if not any(isinstance(p, Region) for p in raw):
            continue
        parts = []  # regions with only blank lines between them become one group
        for part in raw:
            if isinstance(part, Code):
                parts.append(Code(list(part.lines)))
            elif (len(parts) >= 2 and isinstance(parts[-2], Group)
                  and not any(l.strip() for l in parts[-1].lines)):
                parts[-2].solution += parts.pop().lines + list(part.lines)
            else:
                parts.append(Group(key="", cell_id=cell.get("id"), indent=part.indent, names=[],
                                   solution=list(part.lines), placeholders=[]))
        function = _only_function(cell.source)
        k = 0
        for part in parts:
            if isinstance(part, Group):
                part.key = f"{cell.get('id')}:{k}"
                k += 1
                part.names = mx.assigned_names(textwrap.dedent("\n".join(part.solution)))
                part.placeholders = [part.indent + mx.placeholder(n, names_in_notebook) for n in part.names]
                part.function = function if function and part.indent else None
                groups.append(part)
        answers[cell.get("id")] = AnswerCell(cell.get("id"), parts, mx.strip_solutions(cell.source).splitlines())
    return Exercise(
        number=path.name[:2], name=path.name, cells=cells, answers=answers,
        ids={c.get("id") for c in exercise.cells if c.get("id")},
        contents=_lines(c.source for c in exercise.cells if c.cell_type == "code") - {
            line.strip() for g in groups for line in g.placeholders},
        groups=groups, training=any("NINJA_TRAIN_STEPS" in c["source"] for c in cells))


def load_course(solutions=SOLUTIONS):
    """{number: Exercise} for every solution notebook."""
    return {ex.number: ex for ex in (load_exercise(p) for p in sorted(Path(solutions).glob("*.ipynb")))}
