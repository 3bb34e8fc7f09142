"""Make the exercise notebooks (notebooks/) from the solution notebooks (solutions/).

    python tools/make_exercises.py          # write notebooks/, refresh badges and setup cells
    python tools/make_exercises.py --check  # exit 1 if anything is out of date; writes nothing

In a solution notebook:
- code between `### BEGIN SOLUTION` and `### END SOLUTION` becomes one placeholder line
  per name it assigns, e.g. `dlogprobs = None  # TODO: ...`;
- a cell tagged `solution` (a derivation, an explanation that gives the answer away) is dropped;
- the cell tagged `badge` and the cell tagged `setup` are rewritten from tools/course.py.
Exercise notebooks are written without outputs.
"""
import ast
import copy
import sys
import textwrap
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import course  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "notebooks"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def assigned_names(code):
    """Names that `code` assigns at its top level, in order of first assignment."""
    names = []
    for node in ast.parse(textwrap.dedent(code)).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name) and target.id not in names:
                names.append(target.id)
    return names


def placeholder(name):
    if name.startswith("d") and len(name) > 1:
        return f"{name} = None  # TODO: the gradient of the loss with respect to {name[1:]}"
    return f"{name} = None  # TODO: your code here"


def strip_solutions(source):
    """Replace every marked solution region of a cell's source by placeholder lines."""
    out, region, indent = [], None, ""
    for line in source.splitlines():
        if line.strip() == BEGIN:
            region, indent = [], line[: len(line) - len(line.lstrip())]
        elif line.strip() == END:
            if region is None:
                raise ValueError(f"{END} without {BEGIN}")
            names = assigned_names("\n".join(region))
            if not names:
                raise ValueError("a solution region must assign at least one name")
            out += [indent + placeholder(name) for name in names]
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out)


def solution_regions(source):
    """The lines inside solution regions of a cell's source."""
    lines, inside = [], False
    for line in source.splitlines():
        if line.strip() in (BEGIN, END):
            inside = line.strip() == BEGIN
        elif inside:
            lines.append(line)
    return lines


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def stamp(nb, notebook_path):
    """Rewrite the badge and setup cells from tools/course.py (in place)."""
    for cell in nb.cells:
        if "badge" in tags(cell):
            cell.source = course.badge_markdown(notebook_path)
        if "setup" in tags(cell):
            cell.source = course.setup_source()


def make_exercise(solution_nb, name):
    """The exercise notebook for a solution notebook called `name`."""
    nb = copy.deepcopy(solution_nb)
    nb.cells = [cell for cell in nb.cells if "solution" not in tags(cell)]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
            cell.outputs = []
            cell.execution_count = None
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


def out_of_date():
    """Paths whose content differs from what the generator makes (or that should not exist)."""
    files = expected_files()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    stale += [p for p in EXERCISES.glob("*.ipynb") if p not in files]
    return stale


def main(argv):
    if "--check" in argv:
        stale = out_of_date()
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)}")
        if stale:
            print("Run: python tools/make_exercises.py")
        return 1 if stale else 0
    EXERCISES.mkdir(exist_ok=True)
    for path, text in expected_files().items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
