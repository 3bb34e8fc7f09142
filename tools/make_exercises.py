"""Make the exercise notebooks (notebooks/) from the solution notebooks (solutions/).

    python tools/make_exercises.py          # write notebooks/, refresh the stamped cells
    python tools/make_exercises.py --check  # exit 1 if anything is out of date; writes nothing

In a solution notebook:
- code between `### BEGIN SOLUTION` and `### END SOLUTION` becomes one placeholder line per name
  the region assigns at its top level (`dW2, db2 = ...` gives two; a tuple unpacking one call,
  `dh, dW2, db2 = linear2_backward(...)`, gives one line for the call), e.g.
  `dlogprobs = None  # TODO: the gradient of the loss with respect to logprobs`
  (that text only for `d` + the name of a tensor the notebook assigns; other names get
  `# TODO: your code here`). Loop variables and names assigned only inside a block are not blanks.
  A marker must be a line of its own, spelled exactly; a misspelt, nested or unmatched one is an
  error (as in nbgrader), so no solution slips through unmarked;
- a cell tagged `solution` (a derivation, an explanation that gives the answer away) is dropped;
- the cells tagged `badge`, `setup` and `parameters` are rewritten from tools/course.py, in the
  solutions too.
Exercise notebooks are written without outputs, and their cells keep only their tags and
`jupyter.source_hidden` (a cell whose code starts collapsed) and Colab's `cellView: form` of all metadata (no execution
timestamps, output collapsed/scrolled state or widget state).
"""
import ast
import copy
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import course  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "notebooks"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
# Anything that looks like an attempt at a marker: `## begin solution`, `### BEGIN SOLUTON`, `#END_SOL`...
MARKER_LIKE = re.compile(r"#+\s*(BEGIN|END)\W*SOL", re.IGNORECASE)
NOTEBOOK_METADATA = ("kernelspec", "language_info")  # what an exercise keeps of the notebook's metadata


class MarkerError(ValueError):
    """A solution marker that is misspelt, nested, unmatched or marks nothing."""


def marker(line):
    """BEGIN or END if `line` is a solution marker, None if it is ordinary code; raises on a near miss."""
    stripped = line.strip()
    if stripped in (BEGIN, END):
        return stripped
    if MARKER_LIKE.search(line):
        raise MarkerError(f"misspelt solution marker {stripped!r}: write exactly {BEGIN!r} or {END!r} on a line of its own")
    return None


@dataclass
class Code:
    """Lines of a cell that stay in the exercise."""
    lines: list


@dataclass
class Region:
    """The lines between `### BEGIN SOLUTION` and `### END SOLUTION`, and the markers' indentation."""
    indent: str
    lines: list


def regions(source):
    """Split a cell's source into Code and Region parts, in order; checks the markers."""
    parts, region, indent = [Code([])], None, ""
    for line in source.splitlines():
        kind = marker(line)
        if kind == BEGIN:
            if region is not None:
                raise MarkerError(f"{BEGIN} inside a solution region (nested regions are not allowed)")
            region, indent = [], line[: len(line) - len(line.lstrip())]
        elif kind == END:
            if region is None:
                raise MarkerError(f"{END} without {BEGIN}")
            parts += [Region(indent, region), Code([])]
            region = None
        elif region is not None:
            region.append(line)
        else:
            parts[-1].lines.append(line)
    if region is not None:
        raise MarkerError(f"{BEGIN} without {END}")
    return parts


def _parse(code):
    """The AST of `code`, with IPython magics and shell lines (%, !) blanked out."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines()]
    return ast.parse(textwrap.dedent("\n".join(lines)))


def _names(target):
    """Names bound by an assignment target: `a`, `a, b`, `[a, *b]`; not `a[i]` or `a.x`."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _names(element)]
    if isinstance(target, ast.Starred):
        return _names(target.value)
    return []


def assigned_names(code):
    """Names that `code` assigns at its top level (=, +=, ...), in order of first assignment.

    Loop variables and names bound only inside a block (for, if, with, def) do not count.
    """
    names = []
    for node in _parse(code).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        for target in targets:
            names += [name for name in _names(target) if name not in names]
    return names


def blank_lines(code):
    """The names of `code`'s blanks, grouped one list per placeholder line: a tuple that unpacks one
    call (`dh, dW2, db2 = linear2_backward(...)`) is one line, any other assigned name a line of its own."""
    lines, seen = [], set()
    for node in _parse(code).body:
        names = [name for name in assigned_names(ast.unparse(node)) if name not in seen]
        seen.update(names)
        one_call = (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Call)
                    and isinstance(node.targets[0], (ast.Tuple, ast.List)))
        lines += [names] if one_call and names else [[name] for name in names]
    return lines


def notebook_names(nb):
    """Every name the notebook's code binds anywhere (assignments, loops, functions and their arguments)."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = _parse("\n".join(line for line in cell.source.splitlines() if line.strip() not in (BEGIN, END)))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
    return names


def placeholder(name, tensors=None):
    """The line that replaces a solution for `name` (a list of names: one call's results). `tensors`: the
    names the notebook assigns (None: all)."""
    if isinstance(name, list) and len(name) > 1:
        return f"{', '.join(name)} = {', '.join(['None'] * len(name))}  # TODO: one call"
    name = name[0] if isinstance(name, list) else name
    tensor = name[1:]
    if name.startswith("d") and tensor and (tensors is None or tensor in tensors):
        return f"{name} = None  # TODO: the gradient of the loss with respect to {tensor}"
    return f"{name} = None  # TODO: your code here"


def strip_solutions(source, tensors=None):
    """Replace every marked solution region of a cell's source by placeholder lines."""
    out = []
    for part in regions(source):
        if isinstance(part, Code):
            out += part.lines
            continue
        lines = blank_lines("\n".join(part.lines))
        if not lines:
            raise MarkerError("a solution region must assign at least one name at its top level")
        out += [part.indent + placeholder(names, tensors) for names in lines]
    return "\n".join(out)


def solution_regions(source):
    """The lines inside solution regions of a cell's source."""
    return [line for part in regions(source) if isinstance(part, Region) for line in part.lines]


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def kept_metadata(cell):
    """What an exercise cell keeps of its metadata: its tags, and whether its source is collapsed."""
    kept = {"tags": tags(cell)} if tags(cell) else {}
    if cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"):
        kept["jupyter"] = {"source_hidden": True}
    if cell.get("metadata", {}).get("cellView") == "form":  # Colab shows such a cell's title, not its code
        kept["cellView"] = "form"
    return kept


def stamp(nb, notebook_path):
    """Rewrite the badge, setup and parameter cells from tools/course.py (in place)."""
    for cell in nb.cells:
        if "badge" in tags(cell):
            cell.source = course.badge_markdown(notebook_path)
        if "setup" in tags(cell):  # boilerplate: its code starts collapsed (JupyterLab), a form in Colab
            cell.source = course.setup_source()
            cell.metadata["jupyter"] = {"source_hidden": True}
            cell.metadata["cellView"] = "form"
        if "parameters" in tags(cell):
            cell.source = course.parameters_source(course.n_hidden(Path(notebook_path).name))


def make_exercise(solution_nb, name):
    """The exercise notebook for a solution notebook called `name`."""
    nb = copy.deepcopy(solution_nb)
    tensors = notebook_names(solution_nb)
    nb.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items() if k in NOTEBOOK_METADATA})
    kept = []
    for index, cell in enumerate(nb.cells):
        if "solution" in tags(cell):
            continue
        cell.metadata = nbformat.from_dict(kept_metadata(cell))
        try:
            if cell.cell_type == "code":
                cell.source = strip_solutions(cell.source, tensors)
                cell.outputs = []
                cell.execution_count = None
            elif any(marker(line) for line in cell.source.splitlines()):
                raise MarkerError("solution markers only work in code cells")
        except MarkerError as error:
            raise MarkerError(f"solutions/{name}, cell {index} (id {cell.get('id')}): {error}") from None
        kept.append(cell)
    nb.cells = kept
    stamp(nb, f"notebooks/{name}")
    return nb


def expected_files():
    """{path: text} of every notebook as the generator would write it."""
    files = {}
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        stamp(solution, f"solutions/{path.name}")
        files[path] = nbformat.writes(solution) + "\n"
        files[EXERCISES / path.name] = nbformat.writes(make_exercise(solution, path.name)) + "\n"
    return files


def out_of_date(files=None):
    """Paths whose content differs from what the generator makes (or that should not exist)."""
    files = expected_files() if files is None else files
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    stale += [p for p in EXERCISES.glob("*.ipynb") if p not in files]
    return stale


def main(argv):
    try:
        files = expected_files()
    except MarkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if "--check" in argv:
        stale = out_of_date(files)
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)}")
        if stale:
            print("Run: python tools/make_exercises.py")
        return 1 if stale else 0
    EXERCISES.mkdir(exist_ok=True)
    for path, text in files.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
