"""The allow-list: what an answer may use. check() gives the reason an answer is not run, or None.

A backward pass needs tensor arithmetic, indexing, loops, helper functions and a few dozen tensor
methods and torch functions. An answer may use exactly those: the syntax below, `torch`, `F` and
`math`, the builtins in worker.ALLOWED_BUILTINS, and attributes from ATTRIBUTES (tensor methods and
properties, `torch.X`, `F.X` and `math.X` functions, list and dict methods). Everything else is refused with a reason, whatever its spelling: any name or
attribute starting with `__`, any attribute starting with `_`, `match`, `import`, `global`, classes,
`async`, and every builtin or attribute not on the lists (so no getattr, eval, open, format, .grad,
.backward, torch.autograd, torch.sys ...). None of the listed attributes turns autograd back on.
"""
import ast
import builtins
import textwrap

from . import worker

TENSOR_ATTRIBUTES = """
    T mT H shape dtype device ndim size dim numel nelement item tolist clone detach contiguous view view_as
    reshape reshape_as flatten unflatten squeeze unsqueeze transpose t permute expand expand_as repeat
    repeat_interleave flip roll narrow split chunk unbind gather scatter scatter_ scatter_add scatter_add_
    index_add index_add_ index_select index_fill index_fill_ index_put index_put_ masked_fill masked_fill_
    masked_select masked_scatter take where nonzero
    sum mean prod max min amax amin argmax argmin values indices cumsum cumprod logsumexp norm var std
    abs exp log log1p expm1 sqrt rsqrt pow square reciprocal neg sign tanh sigmoid relu softmax log_softmax
    clamp clamp_ clip clip_ floor ceil round trunc
    add add_ sub sub_ mul mul_ div div_ addcmul addcmul_ matmul mm bmm outer dot
    zero_ fill_ copy_ new_zeros new_ones new_full new_tensor new_empty zeros_like
    eq ne lt le gt ge isclose allclose equal logical_and logical_or logical_not any all isnan isinf isfinite
    float double half long int bool to type_as is_floating_point
    diag diag_embed diagonal broadcast_to tile movedim swapaxes swapdims minimum maximum exp2 log2 log10
    append extend insert pop items keys get update index count copy
""".split()
TORCH_FUNCTIONS = """
    tensor as_tensor zeros ones full empty arange linspace eye zeros_like ones_like full_like empty_like
    randn rand randint stack cat hstack vstack einsum where
    float32 float64 long int64 bool
    no_grad
""".split()
F_FUNCTIONS = "one_hot softmax log_softmax cross_entropy nll_loss tanh relu sigmoid".split()
MATH_CONSTANTS = "pi e inf nan fsum fabs isclose".split()  # math.X; math's functions share tensors' names
ATTRIBUTES = frozenset(TENSOR_ATTRIBUTES + TORCH_FUNCTIONS + F_FUNCTIONS + MATH_CONSTANTS)
BUILTINS = frozenset(worker.ALLOWED_BUILTINS)
FORBIDDEN_NODES = {
    ast.Import: "imports a module (everything an answer needs is already imported)",
    ast.ImportFrom: "imports a module (everything an answer needs is already imported)",
    ast.Global: "declares a global name", ast.Nonlocal: "declares a nonlocal name",
    ast.ClassDef: "defines a class", ast.AsyncFunctionDef: "defines an async function",
    ast.Await: "uses await", ast.AsyncFor: "uses async for", ast.AsyncWith: "uses async with",
    ast.Yield: "uses yield", ast.YieldFrom: "uses yield",
    ast.Match: "uses a match statement",
}


def check(code):
    """Why this code may not run (one phrase after "this answer ..."), or None when it may."""
    code = textwrap.dedent(code)
    for line in code.splitlines():
        if line.lstrip().startswith(("%", "!")):
            return "uses an IPython magic or a shell command (a line starting with % or !)"
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        return f"is not valid Python (line {error.lineno}: {error.msg})"
    except (RecursionError, MemoryError, ValueError):
        return "is not valid Python (nested too deeply to read)"
    for node in tree.body:
        if isinstance(node, ast.Return):
            return "returns from inside the answer: assign the names instead (the cell's own return line follows)"
    try:
        compile(tree, "<answer>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as error:
        return f"is not valid Python ({getattr(error, 'msg', None) or type(error).__name__})"
    for node in ast.walk(tree):
        for kind, why in FORBIDDEN_NODES.items():
            if isinstance(node, kind):
                return why
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                return f"uses a name that starts with two underscores (`{node.id}`)"
            if node.id in vars(builtins) and node.id not in BUILTINS:
                return (f"uses the builtin `{node.id}`, which answers may not use (they may use: "
                        + ", ".join(sorted(n for n in BUILTINS if n[0].islower())) + ")")
        elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("__"):
                return f"defines a name that starts with two underscores (`{node.name}`)"
            args = node.args
            for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if arg is not None and arg.arg.startswith("__"):
                    return f"uses a name that starts with two underscores (`{arg.arg}`)"
        elif isinstance(node, ast.Attribute):
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                return f"changes an attribute (`.{node.attr} = ...`): an answer may only compute its gradient"
            if node.attr.startswith("_"):
                return f"uses an attribute that starts with an underscore (`.{node.attr}`)"
            if node.attr not in ATTRIBUTES:
                return (f"uses `.{node.attr}`, which is not on the list of tensor methods and torch functions "
                        "answers may use (tools/README.md, \"Grading a class\")")
        elif isinstance(node, ast.keyword) and node.arg is not None and node.arg.startswith("__"):
            return f"uses a keyword that starts with two underscores (`{node.arg}`)"
    return None


def loaded_names(code):
    """Every name the code reads (a superset of what it needs from outside)."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def defined_functions(code):
    """{name: source} of the functions a cell defines at its top level."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return {}
    source = textwrap.dedent(code)
    return {n.name: ast.get_source_segment(source, n, padded=False) for n in tree.body if isinstance(n, ast.FunctionDef)}
