"""What the grader (tools/grade.py) knows about the course, read from solutions/ at run time.

- Exercise: one solution notebook, its exercise (made by tools/make_exercises.py) and its answer
  regions (`### BEGIN SOLUTION` ... `### END SOLUTION`, grouped when only blank lines separate them).
- identify(): which exercise a submitted notebook is, from its cell ids (content as a fallback).
- extract(): the student's code of each answer region, from the cell with the same id (or, failing
  that, the cell that holds the same surrounding lines), whatever else the student did to the notebook.
- static_check(): why an answer may not run (reads .grad, calls backward, imports, ...), or None.
- assemble(): the graded notebook's code cells: the solution's cells with the student's code in place of
  each solution region, and after each top-level region a `restore` cell that runs the solution's
  region again, so that one wrong gradient costs one item, not every item computed from it.
"""
import ast
import difflib
import json
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_exercises as mx  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"

# What an answer may not use. Attribute names are matched by substring where it says so.
BANNED_NAMES = {
    "cmp": "calls the checker itself", "check_numerically": "calls the checker itself",
    "summary": "calls the checker itself", "reset": "calls the checker itself",
    "numerical_vjp": "uses the checker's finite differences", "rel_error": "calls the checker itself",
    "exec": "uses exec", "eval": "uses eval", "compile": "uses compile", "open": "opens a file",
    "getattr": "uses getattr", "setattr": "uses setattr", "delattr": "uses delattr",
    "globals": "uses globals()", "locals": "uses locals()", "vars": "uses vars()",
    "breakpoint": "uses breakpoint()", "input": "asks for input", "help": "calls help()",
    "exit": "exits the kernel", "quit": "exits the kernel", "get_ipython": "uses get_ipython()",
    "In": "reads the notebook's history", "Out": "reads the notebook's history",
    "os": "uses the os module", "sys": "uses the sys module", "subprocess": "runs a program",
    "importlib": "imports a module", "builtins": "uses builtins", "autograd": "uses autograd",
    "functorch": "uses functorch",
}
BANNED_ATTRIBUTE_PARTS = {  # an attribute whose name contains one of these
    "grad": "an answer may not touch autograd's gradients",
    "backward": "an answer may not run PyTorch's backward pass",
    "hook": "an answer may not register hooks",
}
BANNED_ATTRIBUTES = {
    "autograd": "uses torch.autograd", "func": "uses torch.func", "ops": "uses torch.ops",
    "next_functions": "walks autograd's graph", "saved_tensors": "walks autograd's graph",
    "jit": "compiles code", "library": "defines operators",
    **{name: "reads or writes files" for name in ["load", "save", "from_file", "fromfile", "tofile", "loadtxt",
                                                   "savetxt", "genfromtxt", "memmap", "system", "popen"]},
}


CHECK_CALLS = {"cmp", "check_numerically", "summary"}  # the notebook calls them, never an answer


def _is_check_line(line):
    """A line that is, on its own, a statement calling cmp, check_numerically or summary."""
    try:
        tree = ast.parse(line.strip())
    except SyntaxError:
        return False
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in CHECK_CALLS
               for n in ast.walk(tree))


class NotANotebook(Exception):
    """The file cannot be read as a notebook; .status is 'not a notebook' or 'error'."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


@dataclass
class Group:
    """Answer regions of one cell that only blank lines separate: the student's code for them is one block."""
    key: str                  # "<cell id>:<k>"
    cell_id: str
    indent: str
    names: list               # the blanks it assigns (dX ...)
    solution: list            # the solution's lines (all regions of the group)
    placeholders: list        # the exercise's lines for it
    function: str = None      # the function whose body it is in (exercise 4's layer functions), if any


@dataclass
class AnswerCell:
    cell_id: str
    parts: list               # ("code", lines) or ("group", Group)
    exercise_lines: list      # the exercise cell's lines


@dataclass
class Exercise:
    number: str               # "01"
    name: str                 # "01_atomic_backward.ipynb"
    cells: list               # solution code cells graded, in order: {"id", "source"}
    answers: dict             # cell id -> AnswerCell
    ids: set                  # every cell id of the exercise notebook
    contents: set             # the exercise notebook's code lines (identification without ids)
    protected: set            # names the checks compare against: an answer may not rebind them
    training: bool            # reads NINJA_TRAIN_STEPS: graded on the loss it reaches
    groups: list = field(default_factory=list)
    check_cell: str = None    # id of the cell that checks the answer functions (exercise 4), if any


def _lines(sources):
    """The distinct stripped lines of some sources, those of at least 8 characters."""
    return {line.strip() for source in sources for line in source.splitlines() if len(line.strip()) >= 8}


def _checked_names(source):
    """Names passed (after the name) to cmp/check_numerically in a cell: the tensors and functions checked."""
    try:
        tree = mx._parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("cmp", "check_numerically"):
            for arg in node.args[1:]:
                names |= {n.id for n in ast.walk(arg) if isinstance(n, ast.Name)}
    return names


def load_exercise(path):
    solution = nbformat.read(path, as_version=4)
    exercise = mx.make_exercise(solution, path.name)
    cells, answers, groups, protected = [], {}, [], set()
    for cell in solution.cells:
        if cell.cell_type != "code" or "solution" in mx.tags(cell):
            continue
        cells.append({"id": cell.get("id"), "source": cell.source})
        parts = mx.regions(cell.source)
        protected |= _checked_names("\n".join(line for p in parts if p[0] == "code" for line in p[1]))
        if not any(p[0] == "solution" for p in parts):
            continue
        merged = []  # consecutive regions with only blank lines between them become one group
        for part in parts:
            if part[0] == "code":
                merged.append(["code", list(part[1])])
                continue
            _, indent, lines = part
            prev = merged[-1] if merged else None
            if prev and prev[0] == "code" and not any(l.strip() for l in prev[1]) and len(merged) >= 2 \
                    and merged[-2][0] == "group":
                group = merged[-2][1]
                group["solution"] += prev[1] + lines
                merged.pop()
            else:
                group = {"indent": indent, "solution": list(lines)}
                merged.append(["group", group])
        out, k = [], 0
        for kind, value in merged:
            if kind == "code":
                out.append(("code", value))
                continue
            names = mx.assigned_names("\n".join(textwrap.dedent("\n".join(value["solution"])).splitlines()))
            g = Group(key=f"{cell.get('id')}:{k}", cell_id=cell.get("id"), indent=value["indent"], names=names,
                      solution=value["solution"],
                      placeholders=[value["indent"] + mx.placeholder(n, mx.notebook_names(solution)) for n in names])
            k += 1
            groups.append(g)
            out.append(("group", g))
        answers[cell.get("id")] = AnswerCell(cell.get("id"), out, mx.strip_solutions(cell.source).splitlines())
        function = _only_function(cell.source)
        if function and all(p[1].indent for p in out if p[0] == "group"):
            for p in out:
                if p[0] == "group":
                    p[1].function = function
    for group in groups:
        protected -= set(group.names)
    return Exercise(
        number=path.name[:2], name=path.name, cells=cells, answers=answers,
        ids={c.get("id") for c in exercise.cells if c.get("id")},
        contents=_lines(c.source for c in exercise.cells if c.cell_type == "code") - {
            line.strip() for g in groups for line in g.placeholders},
        protected=protected, training=any("NINJA_TRAIN_STEPS" in c["source"] for c in cells), groups=groups,
        check_cell=_check_cell(cells, answers, groups))


def _only_function(source):
    """The name of the one function a cell defines at its top level, or None."""
    try:
        tree = mx._parse(source)
    except SyntaxError:
        return None
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return defs[0] if len(defs) == 1 else None


def _check_cell(cells, answers, groups):
    """The first cell after the last answer function that calls cmp, or a function that does, at its top level."""
    if not any(g.function for g in groups):
        return None
    checkers, last = {"cmp", "check_numerically"}, None
    for index, cell in enumerate(cells):
        if cell["id"] in answers:
            last = index
    for index, cell in enumerate(cells):
        try:
            tree = mx._parse(cell["source"])
        except SyntaxError:
            continue
        if "cmp(" in cell["source"]:
            checkers |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if index <= last:
            continue
        statements = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if any(isinstance(n, ast.Name) and n.id in checkers for s in statements for n in ast.walk(s)):
            return cell["id"]
    return None


def load_course(solutions=SOLUTIONS):
    """{number: Exercise} for every solution notebook."""
    return {ex.number: ex for ex in (load_exercise(p) for p in sorted(Path(solutions).glob("*.ipynb")))}


# ---------------------------------------------------------------------------
# Reading a submission


def read_submission(path):
    """[{"id", "cell_type", "source"}] of a submitted file; raises NotANotebook."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotANotebook("not a notebook", "the file is not text (not a Jupyter notebook)") from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as error:
        if text.lstrip().startswith("{"):
            raise NotANotebook("error", f"the notebook file is damaged: its JSON is invalid "
                                        f"(line {error.lineno}, column {error.colno}: {error.msg})") from None
        raise NotANotebook("not a notebook", "the file is not a Jupyter notebook (it is not JSON)") from None
    if isinstance(nb, dict) and "worksheets" in nb:  # nbformat 3
        nb = {"cells": [c for ws in nb.get("worksheets") or [] for c in ws.get("cells", [])]}
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotANotebook("not a notebook", "the file is JSON but not a Jupyter notebook (it has no cells)")
    cells = []
    for c in nb["cells"]:
        if not isinstance(c, dict):
            continue
        source = c.get("source", c.get("input", ""))
        if isinstance(source, list):
            source = "".join(str(s) for s in source)
        cells.append({"id": c.get("id") if isinstance(c.get("id"), str) else None,
                      "cell_type": str(c.get("cell_type", "")), "source": str(source)})
    return cells


def identify(cells, course):
    """The number of the exercise these cells come from, or None."""
    ids = {c["id"] for c in cells if c["id"]}
    by_id = {n: len(ids & ex.ids) for n, ex in course.items()}
    best = max(by_id, key=lambda n: (by_id[n], n == min(course)), default=None)
    if best is not None and by_id[best] >= max(3, len(course[best].ids) // 4):
        return best
    # without ids (an editor dropped them): the exercise whose code lines the notebook holds the most of
    lines = _lines(c["source"] for c in cells if c["cell_type"] == "code")
    by_content = {n: len(lines & ex.contents) / max(1, len(ex.contents)) for n, ex in course.items()}
    best = max(sorted(by_content), key=lambda n: by_content[n], default=None)
    if best is not None and by_content[best] >= 0.5:
        return best
    return None


def _anchor_score(answer, source):
    anchors = {l.strip() for p in answer.parts if p[0] == "code" for l in p[1] if l.strip()}
    lines = {l.strip() for l in source.splitlines()}
    return len(anchors & lines) / len(anchors) if anchors else 0.0


def find_answer_cells(cells, exercise):
    """{answer cell id: the student's source for it, or None if not found}."""
    code = [c for c in cells if c["cell_type"] == "code"]
    by_id = {}
    for c in code:
        if c["id"] and c["id"] not in by_id:
            by_id[c["id"]] = c["source"]
    used = set(by_id) & set(exercise.answers)
    found = {}
    for cell_id, answer in exercise.answers.items():
        if cell_id in by_id:
            found[cell_id] = by_id[cell_id]
            continue
        # fallback (ids lost, e.g. by an editor): the unmatched code cell holding most of its other lines
        candidates = [(c, _anchor_score(answer, c["source"])) for c in code
                      if c["id"] not in used and id(c) not in used]
        best = max(candidates, key=lambda x: x[1], default=(None, 0.0))
        if best[0] is not None and best[1] >= 0.5:
            found[cell_id] = best[0]["source"]
            used.add(id(best[0]))
        else:
            found[cell_id] = None
    return found


def extract(answer, source):
    """{group key: the student's lines for that group (re-indented), or None when there are none}."""
    key = lambda line: line.strip()
    ex_lines, ex_kind = [], []  # kind: None for a code line, the Group for a placeholder line
    for part in answer.parts:
        if part[0] == "code":
            ex_lines += part[1]
            ex_kind += [None] * len(part[1])
        else:
            ex_lines += part[1].placeholders
            ex_kind += [part[1]] * len(part[1].placeholders)
    stu_lines = source.splitlines()
    ex_keys = [key(l) if kind is None and l.strip() else f"\0{i}" for i, (l, kind) in enumerate(zip(ex_lines, ex_kind))]
    stu_keys = [key(l) if l.strip() else f"\1{i}" for i, l in enumerate(stu_lines)]
    matcher = difflib.SequenceMatcher(None, ex_keys, stu_keys, autojunk=False)
    anchors = [(i + k, j + k) for i, j, size in matcher.get_matching_blocks() for k in range(size)]
    out = {}
    for part in answer.parts:
        if part[0] != "group":
            continue
        group = part[1]
        positions = [i for i, kind in enumerate(ex_kind) if kind is group]
        start, end = positions[0], positions[-1]
        a = max((j for i, j in anchors if i < start), default=-1)
        b = min((j for i, j in anchors if i > end), default=len(stu_lines))
        # a check line the student edited is not an anchor any more: it is the notebook's, not the answer's
        lines = [l for l in stu_lines[a + 1:b] if not _is_check_line(l)]
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            out[group.key] = None
            continue
        body = textwrap.dedent("\n".join(lines).expandtabs(4))
        out[group.key] = textwrap.indent(body, group.indent, lambda line: True).splitlines()
    return out


# ---------------------------------------------------------------------------
# Static checks


def static_check(lines, exercise, group):
    """Why this answer may not run (one sentence), or None when it may."""
    code = textwrap.dedent("\n".join(lines))
    for line in code.splitlines():
        if line.lstrip().startswith(("%", "!")):
            return "uses an IPython magic or a shell command (a line starting with % or !)"
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        return f"is not valid Python (line {error.lineno}: {error.msg})"
    protected = exercise.protected - set(group.names)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            return "imports a module (everything an answer needs is already imported)"
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return "declares a global or nonlocal name"
        if isinstance(node, ast.ClassDef):
            return "defines a class"
        if isinstance(node, ast.Name):
            if node.id in BANNED_NAMES:
                return f"{BANNED_NAMES[node.id]} (`{node.id}`)"
            if node.id.startswith("_") and not (node.id == "_" and isinstance(node.ctx, ast.Store)):
                return f"uses a name that starts with an underscore (`{node.id}`)"
            if isinstance(node.ctx, ast.Store) and node.id in protected and group.indent == "":
                return f"assigns `{node.id}`, a tensor the checks compare against"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_"):
            return f"defines a name that starts with an underscore (`{node.name}`)"
        if isinstance(node, ast.arg) and node.arg.startswith("__"):
            return f"uses a name that starts with an underscore (`{node.arg}`)"
        if isinstance(node, ast.Attribute):
            attr = node.attr
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                return f"changes an attribute (`.{attr} = ...`): an answer may only compute its gradient"
            if attr.startswith("_"):
                return f"uses an attribute that starts with an underscore (`.{attr}`)"
            if attr in BANNED_ATTRIBUTES:
                return f"{BANNED_ATTRIBUTES[attr]} (`.{attr}`)"
            for part, why in BANNED_ATTRIBUTE_PARTS.items():
                if part in attr.lower():
                    return f"uses `.{attr}`: {why}"
    return None


# ---------------------------------------------------------------------------
# The graded notebook


@dataclass
class Plan:
    """The graded notebook: cells to run, and for each group what was done with the student's code."""
    cells: list               # sources
    cell_of_group: dict       # group key -> index of the graded cell holding it
    notes: dict               # group key -> ("rejected" | "missing" | "ok", sentence or None)
    captures: dict = field(default_factory=dict)  # function name -> cell whose results grade it alone
    answers: object = None    # what it was made from, to make it again without an answer (see skip)
    skip: dict = field(default_factory=dict)

    def groups_in_cell(self, exercise, index):
        """The groups whose code runs in graded cell `index` (its answer cell, or its function's check)."""
        return [g for g in exercise.groups if self.cell_of_group.get(g.key) == index
                or (g.function and self.captures.get(g.function) == index)]


def assemble(exercise, answers, skip=None):
    """A Plan. answers: {group key: lines or None}; the literal string "solution" runs the solution.
    skip: {group key: why}: groups not run (e.g. they did not finish in time before).

    Answer functions (exercise 4) are also graded one at a time: after the notebook's check cell, the
    check runs once per function with that function the student's and the others the solution's
    (kept under `_grader_solution_<name>`, a name no answer may use), then once more with all of the
    student's functions, so that the rest of the notebook (training) runs on the student's code.
    """
    cells, cell_of_group, notes, captures = [], {}, {}, {}
    functions = []
    for group in exercise.groups:
        if group.function and group.function not in functions:
            functions.append(group.function)
    for cell in exercise.cells:
        answer = exercise.answers.get(cell["id"])
        if cell["id"] == exercise.check_cell and functions:
            cells.append(cell["source"])
            cells.append("# grader: keep the student's functions\n"
                         + "\n".join(f"_grader_student_{f} = {f}" for f in functions))
            for mine in functions:
                cells.append(f"# grader: only {mine} is the student's\n" + "\n".join(
                    f"{f} = _grader_{'student' if f == mine else 'solution'}_{f}" for f in functions))
                captures[mine] = len(cells)
                cells.append("# grader: the check, for " + mine + "\n" + cell["source"])
            cells.append("# grader: all the student's functions again, and the check\n"
                         + "\n".join(f"{f} = _grader_student_{f}" for f in functions) + "\n" + cell["source"])
            continue
        if answer is None:
            cells.append(cell["source"])
            continue
        function = next((p[1].function for p in answer.parts if p[0] == "group" and p[1].function), None)
        if function:
            solution = "\n".join(l for p in answer.parts for l in (p[1] if p[0] == "code" else p[1].solution))
            cells.append(f"# grader: the solution's {function}\n{solution}\n_grader_solution_{function} = {function}")
        lines, restore = [], []
        for part in answer.parts:
            if part[0] == "code":
                lines += part[1]
                continue
            group = part[1]
            given = group.solution if answers == "solution" else answers.get(group.key)
            if group.key in (skip or {}):
                notes[group.key] = ("rejected", skip[group.key])
                given = group.placeholders
            elif given is None:
                notes[group.key] = ("missing", "no code found where the TODO line was (cell deleted, or the "
                                               "line removed): graded as not done")
                given = group.placeholders
            else:
                why = None if answers == "solution" else static_check(given, exercise, group)
                if why is None:
                    notes[group.key] = ("ok", None)
                else:
                    notes[group.key] = ("rejected", f"not run: this answer {why}")
                    given = group.placeholders
            lines += given
            if group.indent == "":
                restore += group.solution
            cell_of_group[group.key] = len(cells)
        source = "\n".join(lines)
        try:
            mx._parse(source)
        except SyntaxError as error:  # e.g. an answer that only parses on its own: run the placeholders
            for part in answer.parts:
                if part[0] == "group" and notes.get(part[1].key, ("",))[0] == "ok":
                    notes[part[1].key] = ("rejected", f"not run: with the cell around it, this answer is not "
                                                      f"valid Python ({error.msg})")
            source = "\n".join(l for p in answer.parts for l in (p[1] if p[0] == "code" else p[1].placeholders))
        cells.append(source)
        if restore:
            cells.append("\n".join(["# grader: the solution's values, so that later cells start from right ones"]
                                   + restore))
    return Plan(cells, cell_of_group, notes, captures, answers, dict(skip or {}))
