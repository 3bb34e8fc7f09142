"""No cell of an exercise gives a solution away, and every blank has hints with its shape.

The hint policy (tools/README.md, "Test"): hint 1 gives the shape and what to look at, hint 2 the
idea, hint 3 at most the structure, never the line. These tests hold two parts of it:

- No leak: no cell of an exercise notebook (markdown, code or raw; hints included) contains the
  expression of a line of its solution's `### BEGIN SOLUTION` regions: the text after the
  assignment operator (`=`, `+=`, `-=`, `/=`, ...), or the whole line if it is not an assignment,
  compared with all whitespace removed, when that is at least 6 characters long.
- Every blank `dX = None  # TODO` has, after its code cell and before the next code cell, a cell
  tagged `hint` that names `dX` (or `X`) and a shape such as `(32, 27)`.

This file reads the notebooks as plain JSON and finds the solution regions itself: it shares no code
with tools/make_exercises.py, so a bug in the generator's parser cannot hide a leak from it.
"""
import ast
import copy
import html
import io
import json
import re
import textwrap
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMES = sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
MIN_LENGTH = 6
ASSIGNMENT_OPS = {"=", "+=", "-=", "*=", "/=", "//=", "%=", "@=", "**=", "&=", "|=", "^=", ">>=", "<<="}
SKIP_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
               tokenize.ENDMARKER}
PLACEHOLDER = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*None\s*#\s*TODO", re.MULTILINE)
# (32, 27), (27,), (32, 3, 10); and a 0-dim tensor's "shape ()"
SHAPE = re.compile(r"\(\s*\d+\s*,(\s*\d+\s*,)*\s*(\d+\s*)?\)|shape\W{0,3}\(\)")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def text(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def squeeze(s):
    return re.sub(r"\s+", "", s)


def marked_regions(code):
    """The code inside each `### BEGIN SOLUTION` ... `### END SOLUTION` pair, one string per region."""
    found, current = [], None
    for line in code.splitlines():
        if line.strip() == "### BEGIN SOLUTION":
            current = []
        elif line.strip() == "### END SOLUTION":
            if current is not None:
                found.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return found


def logical_lines(code):
    """(tokens, source) of each logical line of `code` (a statement may span several physical lines)."""
    code = textwrap.dedent(code) + "\n"
    physical, lines, current = code.splitlines(), [], []
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            if current:
                source = "\n".join(physical[current[0].start[0] - 1:current[-1].end[0]]).strip()
                lines.append((current, source))
            current = []
        elif token.type not in SKIP_TOKENS:
            current.append(token)
    return lines


def expression(tokens):
    """What a solution line computes: the text after its last top-level assignment operator, or all of it."""
    depth, start = 0, 0
    for i, token in enumerate(tokens):
        if token.string in "([{":
            depth += 1
        elif token.string in ")]}":
            depth -= 1
        elif depth == 0 and token.type == tokenize.OP and token.string in ASSIGNMENT_OPS:
            start = i + 1
    return squeeze("".join(token.string for token in tokens[start:]))


def solution_expressions(solution):
    """{expression without whitespace: the solution line it comes from} for a solution notebook."""
    found = {}
    for cell in solution["cells"]:
        if cell["cell_type"] != "code":
            continue
        for code in marked_regions(text(cell)):
            for tokens, source in logical_lines(code):
                expr = expression(tokens)
                if len(expr) >= MIN_LENGTH:
                    found.setdefault(expr, source)
    return found


def readable(cell):
    """A cell as a reader sees it, whitespace removed: HTML entities and markdown escapes undone."""
    s = text(cell)
    if cell["cell_type"] == "markdown":
        s = re.sub(r"\\([\\`*_{}\[\]()#+\-.!|<>])", r"\1", html.unescape(s))
    for out in cell.get("outputs", []):
        s += "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
    return squeeze(s)


def leaks(solution, exercise):
    """[(cell index, cell type, solution line)] for every solution expression found in the exercise."""
    expressions = solution_expressions(solution)
    found = []
    for index, cell in enumerate(exercise["cells"]):
        haystack = readable(cell)
        found += [(index, cell["cell_type"], line) for expr, line in expressions.items() if expr in haystack]
    return found


def hints_after(cells, index):
    """The text of the hint cells between code cell `index` and the next code cell."""
    hints = []
    for after in cells[index + 1:]:
        if after["cell_type"] == "code":
            break
        if "hint" in after.get("metadata", {}).get("tags", []):
            hints.append(text(after))
    return hints


def blanks_without_hints(exercise):
    """[(cell index, name)] of blanks with no hint cell after them naming them and a shape."""
    cells, missing = exercise["cells"], []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        hints = hints_after(cells, index)
        for name in PLACEHOLDER.findall(text(cell)):
            names = {name, name[1:]} if name.startswith("d") and len(name) > 1 else {name}
            if not any(SHAPE.search(h) and any(re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", h) for n in names)
                       for h in hints):
                missing.append((index, name))
    return missing


# --- the notebooks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_no_cell_of_the_exercise_contains_a_solution_expression(name):
    solution, exercise = load(ROOT / "solutions" / name), load(ROOT / "notebooks" / name)
    assert solution_expressions(solution), "the solution has marked solution lines to look for"
    assert leaks(solution, exercise) == []


@pytest.mark.parametrize("name", NAMES)
def test_every_blank_has_a_hint_with_its_name_and_shape(name):
    exercise = load(ROOT / "notebooks" / name)
    assert PLACEHOLDER.search("\n".join(text(c) for c in exercise["cells"] if c["cell_type"] == "code"))
    assert blanks_without_hints(exercise) == []


# --- the checkers themselves -----------------------------------------------------------------------

def test_the_solution_lines_are_read_as_the_policy_says():
    code = textwrap.dedent("""\
        x = 1
        ### BEGIN SOLUTION
        dh = dlogits @ W2.T  # a comment is not part of it
        dcounts += torch.ones_like(counts) * dcounts_sum
        dW2, db2 = h.T @ dlogits, dlogits.sum(0)
        dC = torch.zeros_like(C).index_add_(0, Xb.view(-1),
                                           demb.view(-1, 10))
        dlogprobs[range(n), Yb] = -1.0 / n
        for k in range(n):
            dq = q[k]
        ### END SOLUTION
        y = 2
    """)
    solution = {"cells": [{"cell_type": "code", "source": code}]}
    assert sorted(solution_expressions(solution)) == sorted([
        "dlogits@W2.T", "torch.ones_like(counts)*dcounts_sum", "h.T@dlogits,dlogits.sum(0)",
        "torch.zeros_like(C).index_add_(0,Xb.view(-1),demb.view(-1,10))", "-1.0/n", "forkinrange(n):",
        # "q[k]" is 4 characters: too short to count
    ])


def exercise_and_solution(name="01_atomic_backward.ipynb"):
    return load(ROOT / "solutions" / name), load(ROOT / "notebooks" / name)


def planted(exercise, cell_type, content):
    """A copy of `exercise` with `content` added to its first cell of `cell_type` (a hint, for markdown)."""
    copied = copy.deepcopy(exercise)
    for cell in copied["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == cell_type and (cell_type != "markdown" or "hint" in tags):
            cell["source"] = text(cell) + "\n" + content
            return copied
    copied["cells"].append({"cell_type": cell_type, "metadata": {}, "source": content})
    return copied


@pytest.mark.parametrize("cell_type", ["markdown", "code", "raw"])
def test_the_leak_checker_finds_a_line_planted_in_a_copy_of_an_exercise(cell_type):
    solution, exercise = exercise_and_solution()
    before = leaks(solution, exercise)
    expr, line = next(iter(solution_expressions(solution).items()))
    # the same expression, spaced differently and spread over two lines, as a hint might write it
    spaced = " ".join(expr[:3]) + "\n  " + expr[3:]
    after = leaks(solution, planted(exercise, cell_type, f"Hint 3: write `dx = {spaced}`"))
    new = [leak for leak in after if leak not in before]
    assert new and {leak[1] for leak in new} == {cell_type} and line in [leak[2] for leak in new]


def test_the_leak_checker_sees_through_markdown_and_html_escapes():
    solution = {"cells": [{"cell_type": "code", "source":
                           "### BEGIN SOLUTION\ndbnraw = bngain * dhpreact\n### END SOLUTION"}]}
    clean = {"cells": [{"cell_type": "markdown", "metadata": {"tags": ["hint"]},
                        "source": ["Multiply by `bngain`; the shape is (32, 64)."]}]}
    assert leaks(solution, clean) == []
    for leaked in ["bngain \\* dhpreact", "bngain&nbsp;*&#32;dhpreact", "<code>bngain *\ndhpreact</code>"]:
        dirty = copy.deepcopy(clean)
        dirty["cells"][0]["source"].append(f" Try {leaked}.")
        assert leaks(solution, dirty) == [(0, "markdown", "dbnraw = bngain * dhpreact")], leaked


def test_the_hint_checker_wants_the_name_and_a_shape_in_a_hint_after_the_blank():
    def exercise(*hints, between=()):
        cells = [{"cell_type": "code", "source": "dW2 = None  # TODO: the gradient"}, *between]
        cells += [{"cell_type": "markdown", "metadata": {"tags": ["hint"]}, "source": h} for h in hints]
        return {"cells": cells}

    assert blanks_without_hints(exercise("`dW2` has the shape of `W2`: (64, 27).")) == []
    assert blanks_without_hints(exercise("Like W2, (64, 27).")) == []
    assert blanks_without_hints(exercise("Think about shapes.")) == [(0, "dW2")]
    assert blanks_without_hints(exercise("`dW2` is a number like `W2`: shape `()`.")) == []
    assert blanks_without_hints(exercise("`dW2` is W2.sum() or so.")) == [(0, "dW2")]
    assert blanks_without_hints(exercise("dW2 is a matrix.", "Its shape is (64, 27).")) == [(0, "dW2")]
    assert blanks_without_hints(exercise("dW22 is (64, 27).")) == [(0, "dW2")]
    untagged = {"cell_type": "markdown", "metadata": {}, "source": "dW2: (64, 27)"}
    assert blanks_without_hints({"cells": [exercise()["cells"][0], untagged]}) == [(0, "dW2")]
    code_between = {"cell_type": "code", "source": "print(1)"}
    assert blanks_without_hints(exercise("dW2: (64, 27)", between=[code_between])) == [(0, "dW2")]


# --- renamed leaks: a later exercise's code under other names ---
#
# A cheat sheet or a hint can hold a solution line with its variables renamed (`dT = torch.zeros_like(T)
# .index_add_(0, idx.view(-1), dy.view(-1, d))` is exercise 1's `dC`). Compared as strings it looks new.
# So both sides are parsed and normalised: every variable is renamed in order of first appearance
# (v0, v1, ...; `torch`, `F` and builtins keep their names), numbers compared by value. What each
# statement of a cell computes (the right-hand side of an assignment, an expression; in code cells,
# and in inline code, <code> and fenced blocks of markdown) is compared with what every solution line
# of every later notebook computes. Whole values, not their parts: the forward pass
# is full of `x.sum(0, keepdim=True)` inside larger expressions, and that gives nothing away.

KEEP_NAMES = {"torch", "F", "range", "len", "float", "int", "abs", "sum", "max", "min"}
MIN_NODES = 4  # with an attribute or index among them: `v0 @ v1.T` is a rule, `v0 * v1 + v2` any arithmetic


class _Canonical(ast.NodeTransformer):
    def __init__(self):
        self.names = {}

    def visit_Name(self, node):
        if node.id in KEEP_NAMES:
            return ast.Name(id=node.id, ctx=ast.Load())
        new = self.names.setdefault(node.id, f"v{len(self.names)}")
        return ast.Name(id=new, ctx=ast.Load())

    def visit_Constant(self, node):
        value = float(node.value) if isinstance(node.value, (int, float)) and not isinstance(node.value, bool) else node.value
        return ast.Constant(value=value)


def canonical(node):
    """A sub-expression as a string that ignores the variables' names and the spelling of numbers."""
    return ast.dump(_Canonical().visit(copy.deepcopy(node)), annotate_fields=False, include_attributes=False)


def size(node):
    """Nodes that carry meaning: every expression and keyword but the names that are not renamed."""
    return sum(isinstance(n, (ast.expr, ast.keyword)) and not (isinstance(n, ast.Name) and n.id in KEEP_NAMES)
               for n in ast.walk(node))


def telling(node):
    """Big enough to tell something: `v0 @ v1.T` is; `torch.zeros_like(v0)` and `v0 * v1 + v2` are not."""
    return size(node) >= MIN_NODES and any(isinstance(n, (ast.Attribute, ast.Subscript)) for n in ast.walk(node))


def parse(code):
    """The statements of `code`, or of each of its lines (and `;`-separated parts) that parse; [] if none do."""
    code = textwrap.dedent(code).strip()
    for attempt in (code, code.replace("\n", " ")):
        try:
            return ast.parse(attempt).body
        except SyntaxError:
            pass
    statements = []
    for part in re.split(r"[;\n]", code):
        try:
            statements += ast.parse(part.strip()).body
        except SyntaxError:
            pass
    return statements


def computed(statement):
    """What a statement computes: the value of an assignment, an expression or a return (each item of
    a tuple: `a, b = x, y`); nothing for a loop or a definition (their bodies are statements too)."""
    value = getattr(statement, "value", None)
    if not isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return)) or value is None:
        return []
    return list(value.elts) if isinstance(value, ast.Tuple) else [value]


def solution_trees(solution):
    """{canonical expression: solution line} of the expressions a notebook's solution regions compute."""
    found = {}
    for cell in solution["cells"]:
        if cell["cell_type"] != "code":
            continue
        for code in marked_regions(text(cell)):
            for _, source in logical_lines(code):
                for statement in parse(source):
                    for value in computed(statement):
                        if telling(value):
                            found.setdefault(canonical(value), source)
    return found


CODE_SPANS = [re.compile(r"```(?:python)?\n(.*?)```", re.S), re.compile(r"<code>(.*?)</code>", re.S),
              re.compile(r"(?<!`)`([^`\n]+)`(?!`)")]


def code_in(cell):
    """The pieces of code a reader sees in a cell: all of a code or raw cell; the code spans of markdown."""
    if cell["cell_type"] in ("code", "raw"):
        return [text(cell)]
    s = html.unescape(text(cell))
    return [m.group(1) for pattern in CODE_SPANS for m in pattern.finditer(s)]


def renamed_leaks(trees, exercise):
    """[(cell index, solution line)] for every cell holding, under any names, one of `trees`."""
    found = []
    for index, cell in enumerate(exercise["cells"]):
        seen = set()
        for code in code_in(cell):
            for statement in (node for top in parse(code) for node in ast.walk(top) if isinstance(node, ast.stmt)):
                seen |= {canonical(value) for value in computed(statement) if telling(value)}
        found += sorted({(index, line) for tree, line in trees.items() if tree in seen})
    return found


@pytest.mark.parametrize("name", NAMES)
def test_no_cell_holds_a_solution_line_of_a_later_exercise_under_other_names(name):
    exercise = load(ROOT / "notebooks" / name)
    later = [n for n in NAMES if n > name]  # this notebook's own lines: the leak test above
    leaked = {n: renamed_leaks(solution_trees(load(ROOT / "solutions" / n)), exercise) for n in later}
    assert {n: found for n, found in leaked.items() if found} == {}


def test_the_renamed_leak_checker_finds_a_later_line_planted_under_other_names():
    trees = solution_trees(load(ROOT / "solutions" / "01_atomic_backward.ipynb"))
    warmup = load(ROOT / "notebooks" / "00_warmup.ipynb")
    assert renamed_leaks(trees, warmup) == []
    plants = [  # each a line of exercise 1's solution, renamed, respaced or rewrapped
        ("markdown", "| lookup | `dT = torch.zeros_like(T).index_add_(0, idx.view(-1), dy.view(-1, d))` |"),
        ("markdown", "Hint 3: <code>grad_in = up @ weights.T</code>"),
        ("markdown", "```python\nd_bias = g.sum(0,\n            keepdim = True)\n```"),
        ("code", "def backward(dy, x, W):\n    return dy @ W.T, x.T @ dy"),
        ("raw", "dx = dy.view(x.shape)"),
    ]
    for cell_type, content in plants:
        found = renamed_leaks(trees, planted(warmup, cell_type, content))
        assert found and {line for _, line in found} <= set(trees.values()), content


def test_the_renamed_leak_checker_passes_what_gives_nothing_away():
    trees = solution_trees({"cells": [{"cell_type": "code", "source": "### BEGIN SOLUTION\n"
                                       "dW2 = h.T @ dlogits\ndbnbias = dhpreact.sum(0, keepdim=True)\n"
                                       "dcounts = counts_sum_inv * dprobs\nd0 = torch.zeros_like(C)\n### END SOLUTION"}]})
    assert len(trees) == 2, "a product of two names and zeros_like are too common to count"
    for content in ["`logits = h @ W2 + b2`",  # the product without the transpose
                    "`bnmeani = 1/n * hprebn.sum(0, keepdim=True)`",  # a sum inside a larger value
                    "`y = (x.T @ W) + 1`", "`dW2 = h.T`"]:
        cell = {"cell_type": "markdown", "metadata": {}, "source": content}
        assert renamed_leaks(trees, {"cells": [cell]}) == [], content


# --- hints that state the solution's terms --------------------------------------------------------
#
# A last hint gives structure or a question, never the expression, and that holds for the hints of a
# blank read together. A hint can state the expression without a line of code: "each k contributes
# ∂L/∂x̂_k (x_k − μ)(−½s³) ... x_k − μ is `bndiff`". So the check counts terms. The terms of a
# solution line are the tensors it reads, the methods that shape it (sum, T, view, ...) and its numbers
# other than 0 and 1. A hint mentions a term when it names the tensor in code, or writes its symbol in
# LaTeX (the notebook's own symbol table: a markdown table with a `symbol` and a `tensor` row, and
# definitions like "$g_i = ...$ (`dhpreact`)"; ∂L/∂symbol is the gradient `d`+tensor), or writes the
# number (1/2, ^3), or says the method (sum, transpose, exp, log, mean, max). A line of at least
# MIN_TERMS terms whose hints mention MOST_TERMS of them or more is stated, not hinted. (Lines with
# fewer terms are shape rules: "(32, 27) @ (27, 64): which one is transposed?" names all three.)

MIN_TERMS = 4
MOST_TERMS = 0.8
METHODS = {"sum", "mean", "T", "view", "exp", "log", "max", "one_hot", "index_add_", "softmax"}
METHOD_WORDS = {"sum": r"\bsum|\\sum", "T": r"transpos", "exp": r"\bexp|e\^", "log": r"\blog\b|\\log",
                "mean": r"\bmean\b", "max": r"\bmax\b|\\max", "softmax": r"softmax", "one_hot": r"one.hot"}
LATEX_TOKEN = re.compile(r"\\hat\{[a-zA-Z]\}|\\[a-zA-Z]+|[a-zA-Z]|\^-?[\d.]+|\d+(?:\.\d+)?|[-+*/=()]")


def number(value):
    return round(abs(float(value)), 6)


def terms(line):
    """The tensors, methods and numbers (but 0 and 1) a solution line computes with."""
    found = set()
    for statement in parse(line):
        for value in computed(statement) or [statement]:
            for node in ast.walk(value):
                if isinstance(node, ast.Name) and node.id not in KEEP_NAMES:
                    found.add(node.id)
                elif isinstance(node, ast.Attribute) and node.attr in METHODS:
                    found.add(node.attr)
                elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and number(node.value) not in (0, 1):
                    found.add(number(node.value))
    return found


def latex_tokens(math):
    """`\\frac{\\partial L}{\\partial \\hat{x}_k}` -> ['\\frac', '\\partial', 'L', '\\partial', '\\hat{x}']: no
    braces, no spaces, no indices (_i, _k, _{ij}), \\dfrac as \\frac, ^{3} as ^3."""
    math = re.sub(r"_\{?[a-z]{1,2}\}?", "", math.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac"))
    math = re.sub(r"\^\{(-?[\d.]+)\}", r"^\1", math)
    return LATEX_TOKEN.findall(math)


def contains(tokens, part):
    return any(tokens[i:i + len(part)] == part for i in range(len(tokens) - len(part) + 1)) if part else False


def symbols(notebook):
    """{LaTeX symbol as tokens: tensor name} from the notebook's symbol table and `$g_i = ...$ (`name`)`."""
    found = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        s = text(cell)
        rows = {row.split("|")[1].strip(): [x.strip() for x in row.split("|")[2:-1]]
                for row in s.splitlines() if row.startswith("|") and row.count("|") > 3}
        for symbol, tensor in zip(rows.get("symbol", []), rows.get("tensor", [])):
            found[tuple(latex_tokens(symbol.strip("$")))] = tensor.strip("`")
        for m in re.finditer(r"\$([^$=]+?)=[^$]*\$\s*\(`(\w+)`\)", s):
            found[tuple(latex_tokens(m.group(1)))] = m.group(2)
    return found


def mentioned(hint, notebook_symbols):
    """The terms a hint names: in code, in LaTeX, as numbers, as words."""
    s = html.unescape(hint)
    code = " ".join(a or b for a, b in re.findall(r"`([^`]+)`|<code>(.*?)</code>", s, re.S))
    found = set(re.findall(r"[A-Za-z_]\w*", code))
    math = " ".join(re.findall(r"\$\$?([^$]+)\$\$?", s))
    tokens = latex_tokens(math)
    without_slash = [t for t in tokens if t != "/"]
    for symbol, tensor in notebook_symbols.items():
        if contains(without_slash, ["\\partial", "L", "\\partial", *symbol]):
            found.add("d" + tensor)
        if contains(tokens, list(symbol)):
            found.add(tensor)
    for a, b in re.findall(r"\\d?frac\{?(\d+)\}?\{?(\d+)\}?", math):
        found.add(number(int(a) / int(b)))
    found |= {number(t[1:]) for t in tokens if t.startswith("^") and t[1:].lstrip("-") not in ("", ".")}
    found |= {number(v) for v in re.findall(r"(?<![\w.^])\d+(?:\.\d+)?(?![\w.])", code + " " + math)}
    found |= {method for method, pattern in METHOD_WORDS.items() if re.search(pattern, s)}
    return found


def stated_solutions(solution):
    """[(solution line, share of its terms its hints mention, terms not mentioned)] for the lines
    whose hints, read together, mention MOST_TERMS of at least MIN_TERMS terms."""
    cells, notebook_symbols, stated = solution["cells"], symbols(solution), []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        hints = hints_after(cells, index)
        said = set().union(*(mentioned(h, notebook_symbols) for h in hints))
        for code in marked_regions(text(cell)):
            for _, line in logical_lines(code):
                line_terms = terms(line)
                if len(line_terms) >= MIN_TERMS and len(line_terms & said) >= MOST_TERMS * len(line_terms):
                    stated.append((line, len(line_terms & said) / len(line_terms), sorted(map(str, line_terms - said))))
    return stated


# 04 and 05 reuse what 00-03 derived. A hint there that lists a known formula's ingredients ("use
# your expression from exercise 3: it needs dhpreact, bnraw, bnvar_inv, bngain, n and two sums")
# states it as much as one that derives it: the student only has to arrange them. So the check
# holds for every notebook.
@pytest.mark.parametrize("name", NAMES)
def test_no_blanks_hints_state_most_of_its_solutions_terms(name):
    assert stated_solutions(load(ROOT / "solutions" / name)) == []



def with_hint(solution, blank, hint, cell_id=None):
    """A copy of `solution` with `hint` added to the hints of the code cell that assigns `blank` (in a
    function too; the cell with id `cell_id` when several do)."""
    copied = copy.deepcopy(solution)
    cells = copied["cells"]
    index = next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and re.search(rf"^\s*{blank} =", text(c), re.M)
                 and cell_id in (None, c.get("id")))
    cells.insert(index + 1, {"cell_type": "markdown", "metadata": {"tags": ["hint"]}, "source": hint})
    return copied


# Hints 03 had before issue 17: they state the expression in LaTeX and words, without a line of code.
OLD_DBNVAR_HINT = (r"Through $s$: $\dfrac{ds}{d\sigma^2} = -\frac{1}{2}(\sigma^2+\epsilon)^{-3/2} = -\frac{1}{2}s^3$, "
                   r"and $\dfrac{\partial \hat{x}_k}{\partial s} = x_k - \mu$. Each $k$ contributes "
                   r"$\dfrac{\partial L}{\partial \hat{x}_k}\,(x_k - \mu)\,\big(-\frac{1}{2}s^3\big)$; the factor "
                   r"$-\frac{1}{2}s^3$ is the same for every $k$, so it can leave the sum. $x_k - \mu$ is `bndiff`.")
OLD_DHPREBN_HINT = (r"Write every term with two sums over the batch, of the $g_k$ and of the $g_k \hat{x}_k$ (look at "
                    r"how `dbnbias` and `dbngain` were defined). Pull $\frac{\gamma s}{n}$ out of all three terms. "
                    r"Inside the bracket: $n\,g_i$, minus the sum of the $g_k$, minus $\hat{x}_i$ times the sum of the "
                    r"$g_k \hat{x}_k$, with a coefficient from the $\frac{1}{n-1}$ of the variance.")


@pytest.mark.parametrize("blank, hint", [("dbnvar", OLD_DBNVAR_HINT), ("dhprebn", OLD_DHPREBN_HINT)])
def test_the_terms_checker_catches_a_hint_that_states_the_expression_in_latex(blank, hint):
    solution = load(ROOT / "solutions" / "03_fused_batchnorm.ipynb")
    assert [line for line, _, _ in stated_solutions(solution) if line.startswith(blank + " =")] == []
    stated = stated_solutions(with_hint(solution, blank, hint))
    assert [line for line, _, _ in stated if line.startswith(blank + " =")], stated


def test_the_terms_checker_reads_code_numbers_and_words_and_lets_a_shape_hint_pass():
    solution = {"cells": [
        {"cell_type": "code", "source": "### BEGIN SOLUTION\ndbndiff = bnvar_inv * dbnraw + 2 * bndiff * dbndiff2\n"
                                        "dbnvar = -0.5 * (bnvar + 1e-5)**-1.5 * dbnvar_inv\n### END SOLUTION"},
        {"cell_type": "markdown", "metadata": {"tags": ["hint"]},
         "source": "`dbndiff` is (32, 64), like `bndiff`, used twice; `dbnvar` is (1, 64), like `bnvar`."}]}
    assert stated_solutions(solution) == []
    solution["cells"].append({"cell_type": "markdown", "metadata": {"tags": ["hint"]},
                              "source": "`bnvar_inv` times `dbnraw`, plus twice `bndiff` times the other gradient, `dbndiff2`."})
    assert [line for line, _, _ in stated_solutions(solution)] == ["dbndiff = bnvar_inv * dbnraw + 2 * bndiff * dbndiff2"]
    solution["cells"][-1]["source"] = r"Power rule: $-\frac{1}{2}(x + 10^{-5})^{-1.5}$ times `dbnvar_inv`, with x = `bnvar`."
    assert [line for line, _, _ in stated_solutions(solution)] == ["dbnvar = -0.5 * (bnvar + 1e-5)**-1.5 * dbnvar_inv"]


# Hints 04 and 05 had before issue 17: the ingredients of exercise 3's formula, listed (04's with its
# hint 1 of today, which names the two parameter gradients).
OLD_04_BATCHNORM_HINT = (r"`bngain` and `bnbias` are broadcast down the 32 rows: each gradient is a sum over dim 0 (keeping "
                         r"it) of the local derivative times `dhpreact`. For `dhprebn`, use your one expression from "
                         r"exercise 3: it needs `dhpreact`, `bnraw`, `bnvar_inv`, `bngain`, $n$, and two sums over the "
                         r"batch.")
OLD_05_S5_HINT = (r"`dhprebn` is (32, 64) like `hprebn`. You have `dhpreact` and `bnraw` (32, 64), `bnvar_inv`, `bngain`, "
                  r"`dbngain` and `dbnbias` (1, 64), and `n`. A right `dhprebn` sums to zero down each column (that is "
                  r"why `b1`'s gradient is zero): does the teammate's?")


@pytest.mark.parametrize("name, cell_id, hints", [
    ("04_training_without_autograd.ipynb", "bb688f24", [OLD_04_BATCHNORM_HINT]),
    ("05_debugging_lab.ipynb", "s5-fix", [OLD_05_S5_HINT]),
])
def test_the_terms_checker_catches_04_and_05s_old_ingredient_lists(name, cell_id, hints):
    solution = load(ROOT / "solutions" / name)
    assert [line for line, _, _ in stated_solutions(solution) if line.startswith("dhprebn =")] == []
    for hint in hints:
        solution = with_hint(solution, "dhprebn", hint, cell_id)
    assert [line for line, _, _ in stated_solutions(solution) if line.startswith("dhprebn =")], name
