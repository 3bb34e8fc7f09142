"""Reading a submission: the file, which exercise it is, and the student's code for each answer region.

- read_submission(): the cells of a submitted file (NotANotebook when it is not one).
- identify(): which exercise it is, from its cell ids (its code lines when an editor dropped the ids).
- find_answer_cells() and extract(): the student's lines for each group, from the cell with the same id
  (or the cell holding the same surrounding lines), wherever the student moved it.
- helper_functions(): functions the student defined in cells of their own, which answers may call.
"""
import ast
import difflib
import json
import textwrap
from pathlib import Path

from .course import Code, Group

CHECK_CALLS = {"cmp", "check_numerically", "summary"}  # the notebook calls them, never an answer


class NotANotebook(Exception):
    """The file cannot be read as a notebook; .status is 'not a notebook' or 'error'."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _lines(sources):
    """The distinct stripped lines of some sources, those of at least 8 characters."""
    return {line.strip() for source in sources for line in source.splitlines() if len(line.strip()) >= 8}


def _is_check_line(line):
    """A line that is, on its own, a statement calling cmp, check_numerically or summary."""
    try:
        tree = ast.parse(line.strip())
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return False
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in CHECK_CALLS
               for n in ast.walk(tree))


def _without_checks(lines):
    """The lines without the statements that call cmp, check_numerically or summary (an edited check line,
    also one split over several lines, is the notebook's, not the answer's)."""
    try:
        tree = ast.parse(textwrap.dedent("\n".join(lines)))
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return [line for line in lines if not _is_check_line(line)]
    drop = set()
    for node in tree.body:
        if _is_check_line(ast.unparse(node)) and not isinstance(node, (ast.FunctionDef, ast.For, ast.While, ast.If)):
            drop |= set(range(node.lineno - 1, node.end_lineno))
    return [line for i, line in enumerate(lines) if i not in drop]


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
    anchors = {l.strip() for p in answer.parts if isinstance(p, Code) for l in p.lines if l.strip()}
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
        if isinstance(part, Code):
            ex_lines += part.lines
            ex_kind += [None] * len(part.lines)
        else:
            ex_lines += part.placeholders
            ex_kind += [part] * len(part.placeholders)
    stu_lines = source.splitlines()
    ex_keys = [key(l) if kind is None and l.strip() else f"\0{i}" for i, (l, kind) in enumerate(zip(ex_lines, ex_kind))]
    stu_keys = [key(l) if l.strip() else f"\1{i}" for i, l in enumerate(stu_lines)]
    matcher = difflib.SequenceMatcher(None, ex_keys, stu_keys, autojunk=False)
    anchors = [(i + k, j + k) for i, j, size in matcher.get_matching_blocks() for k in range(size)]
    out = {}
    for group in answer.parts:
        if not isinstance(group, Group):
            continue
        positions = [i for i, kind in enumerate(ex_kind) if kind is group]
        start, end = positions[0], positions[-1]
        a = max((j for i, j in anchors if i < start), default=-1)
        b = min((j for i, j in anchors if i > end), default=len(stu_lines))
        # a check line the student edited is not an anchor any more: it is the notebook's, not the answer's
        lines = _without_checks(stu_lines[a + 1:b])
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




def helper_functions(cells, answer_sources):
    """{name: source} of the functions defined at the top level of the student's code cells that are not
    answer cells (cells they added, or notebook cells they edited): answers may call them."""
    out = {}
    for cell in cells:
        if cell["cell_type"] != "code" or cell["source"] in answer_sources:
            continue
        try:
            tree = ast.parse(cell["source"])
        except (SyntaxError, RecursionError, MemoryError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                out[node.name] = ast.get_source_segment(cell["source"], node)
    return out
