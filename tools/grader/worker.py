"""The only process that runs a student's code: started by the grader inside its sandbox.

    python -I worker.py MEMORY_BYTES

It imports nothing of the course. It reads frames from stdin and answers each on stdout; a frame is
8 bytes (big-endian length) then a `torch.save` payload of plain data, loaded with
`weights_only=True` on both sides:

    first answer  {"ready": True}, once PyTorch is imported
    first frame   {"code": {key: source}, "definitions": source}   the student's answer regions, and
                  the function definitions they may call (theirs, already checked by the grader)
    each request  {"key": key, "inputs": {name: data}, "outputs": [name, ...]}
    each answer   {"outputs": {name: data}, "missing": [name, ...], "error": str or None, "printed": str}

Before any student code runs: autograd is switched off, the memory limit is set, the real stdout is
moved to a private descriptor (what an answer prints goes to a capped buffer, what C code prints to
/dev/null), and answers see only the data they were sent, `torch`, `F`, `math` and a short list of builtins.
"""
import io
import math
import os
import resource
import struct
import sys

PRINT_CAP = 2000  # characters of an answer's printed output that are kept
ALLOWED_BUILTINS = [
    "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "int", "isinstance", "iter",
    "len", "list", "map", "max", "min", "next", "pow", "print", "range", "repr", "reversed", "round", "set",
    "slice", "sorted", "str", "sum", "tuple", "zip",
    "ArithmeticError", "AssertionError", "Exception", "IndexError", "KeyError", "RuntimeError", "TypeError",
    "ValueError", "ZeroDivisionError",
]


class CappedText(io.TextIOBase):
    """sys.stdout for answers: keeps the first PRINT_CAP characters, counts the rest."""

    def __init__(self):
        self.kept, self.dropped = "", 0

    def write(self, text):
        text = str(text)
        room = PRINT_CAP - len(self.kept)
        self.kept += text[:max(room, 0)]
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def value(self):
        return self.kept + (f"\n... ({self.dropped:,} more characters)" if self.dropped else "")


def read_frame(stream):
    head = stream.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack(">Q", head)
    return stream.read(size)


def write_frame(stream, payload):
    stream.write(struct.pack(">Q", len(payload)) + payload)
    stream.flush()


def as_data(value, torch, depth=0):
    """A copy of `value` made of tensors, numbers, strings, lists, tuples and dicts; TypeError otherwise."""
    if depth > 5:
        raise TypeError("nested too deeply")
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.device.type != "cpu" or value.is_quantized:
            raise TypeError("a tensor that is not a dense CPU tensor")
        if value.numel() > 10_000_000:
            raise TypeError(f"a tensor of {value.numel():,} numbers, far more than any gradient here")
        return value.detach().as_subclass(torch.Tensor).clone()
    if value is None or isinstance(value, (bool, int, float, complex)):
        return value
    if isinstance(value, str):
        return value[:1000]
    if isinstance(value, (list, tuple)) and len(value) <= 10_000:
        items = [as_data(v, torch, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and len(value) <= 10_000 and all(isinstance(k, (str, int)) for k in value):
        return {k: as_data(v, torch, depth + 1) for k, v in value.items()}
    raise TypeError(f"a {type(value).__name__}, not a tensor or a number")


def main():
    memory = int(sys.argv[1])
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    import builtins
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    def load(payload):
        return torch.load(io.BytesIO(payload), weights_only=True)

    def dump(obj):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()

    write_frame(out, dump({"ready": True}))  # started: from now on, the time is the answers'
    program = load(read_frame(inp))
    safe_builtins = {name: getattr(builtins, name) for name in ALLOWED_BUILTINS}

    def torch_only_import(name, *args, **kwargs):
        """PyTorch's C code imports `torch` through the caller's builtins (e.g. to index with a range)."""
        if name == "torch" or name.startswith("torch."):
            if name in sys.modules:
                return sys.modules[name]
        raise ImportError(f"answers cannot import {name}")
    safe_builtins["__import__"] = torch_only_import
    compiled = {}  # source -> code object: exercise 4's training asks the same answers thousands of times

    def code_of(source, label):
        if source not in compiled:
            compiled[source] = compile(source, label, "exec")  # a SyntaxError costs only this request
        return compiled[source]
    while (frame := read_frame(inp)) is not None:
        request = load(frame)
        namespace = {"__builtins__": safe_builtins, "torch": torch, "F": F, "math": math, **request["inputs"]}
        printed = CappedText()
        sys.stdout = sys.stderr = printed
        answer = {"outputs": {}, "missing": [], "error": None}
        try:
            exec(code_of(program["definitions"], "<your functions>"), namespace)
            exec(code_of(program["code"][request["key"]], "<your answer>"), namespace)
        except BaseException as error:  # noqa: BLE001 - whatever the answer raised is its own result
            answer["error"] = f"{type(error).__name__}: {str(error)[:300]}"
        sys.stdout = sys.stderr = sys.__stdout__
        for name in request["outputs"]:
            if name not in namespace:
                answer["missing"].append(name)
                continue
            try:
                answer["outputs"][name] = as_data(namespace[name], torch)
            except (TypeError, RuntimeError) as error:
                answer["error"] = answer["error"] or f"`{name}` is {error}"
        answer["printed"] = printed.value()
        try:
            write_frame(out, dump(answer))
        except MemoryError:
            write_frame(out, dump({"outputs": {}, "missing": [], "printed": "",
                                   "error": "MemoryError: the answer is larger than the memory limit allows"}))


if __name__ == "__main__":
    main()
