"""From a submission's answers to the requests its worker will run (and the answers that are not run).

For each answer group whose code passes the allow-list: one request per recorded entry of the
reference runs (the notebook's batch, and the batch the grader chose), each carrying only the plain
data the student's code reads. The worker also gets the student's answer functions (the exercise's
function cells with the student's lines in them), so that an answer may call another, and helper
functions the student defined in cells of their own.
"""
import textwrap
from dataclasses import dataclass, field

import torch

from . import policy
from .course import Group


@dataclass
class Request:
    key: str                  # group key
    variant: int              # 0: the notebook's batch; 1: the grader's
    entry: int                # which recorded run of the region
    inputs: dict
    outputs: list


@dataclass
class Plan:
    exercise: object
    answers: dict             # group key -> the student's lines, or None
    notes: dict               # group key -> ("ok" | "rejected" | "missing", sentence or None)
    code: dict = field(default_factory=dict)      # group key -> source the worker runs
    definitions: str = ""     # the student's functions, defined before each request
    requests: list = field(default_factory=list)

    def program(self):
        return {"code": self.code, "definitions": self.definitions}

    def calls(self, key):
        """The other answer functions the student's code of group `key` calls (04's backward: the six layers)."""
        own = next((g.function for g in self.exercise.groups if g.key == key), None)
        functions = {g.function for g in self.exercise.groups if g.function} - {own}
        return policy.loaded_names(self.code.get(key, "")) & functions


def judged_entries(entries):
    """The recorded entries an answer is judged on: those with a check if any has one, else all."""
    checked = [i for i, e in enumerate(entries) if e.checks]
    return checked or list(range(len(entries)))


def copies_of_the_answer(group, entry):
    """Inputs equal to one of the region's outputs that the solution does not read: an earlier answer
    the exercise asks to write again in another form (03's fused dhprebn after dhprebn_paths, 00's
    dA_product after dA). They are not sent, so that the answer cannot be a copy."""
    read = policy.loaded_names("\n".join(group.solution))
    out = set()
    for name, value in entry.inputs.items():
        if name in read or not isinstance(value, torch.Tensor):
            continue
        for output in entry.outputs.values():
            if (isinstance(output, torch.Tensor) and output.shape == value.shape and output.dtype == value.dtype
                    and bool(output.ne(0).any()) and bool(torch.allclose(output, value))):
                out.add(name)
    return out


def make(exercise, answers, helpers, recordings):
    """A Plan. answers: {group key: lines or None}; helpers: {name: source}; recordings: one per variant."""
    plan = Plan(exercise, answers, {})
    for group in exercise.groups:
        lines = answers.get(group.key)
        if lines is None:
            plan.notes[group.key] = ("missing", "no code found where the TODO line was (cell deleted, or the "
                                                "line removed): graded as not done")
            continue
        why = policy.check("\n".join(lines))
        if why:
            plan.notes[group.key] = ("rejected", f"not run: this answer {why}")
            continue
        plan.notes[group.key] = ("ok", None)
        plan.code[group.key] = textwrap.dedent("\n".join(lines))

    def fill(group):
        ok = plan.notes[group.key][0] == "ok"
        return answers[group.key] if ok else group.placeholders

    functions = {}
    for answer in exercise.answers.values():
        if any(isinstance(p, Group) and p.function for p in answer.parts):
            functions.update(policy.defined_functions(answer.source(fill)))
    used = set().union(*(policy.loaded_names(c) for c in plan.code.values())) if plan.code else set()
    for name, source in sorted(helpers.items()):
        if name in functions or name not in used:
            continue
        why = policy.check(source)
        for key, code in list(plan.code.items()):
            if why and name in policy.loaded_names(code):
                plan.notes[key] = ("rejected", f"not run: it calls `{name}`, a function of yours that {why}")
                del plan.code[key]
        if not why:
            functions[name] = source
    plan.definitions = "\n\n".join(functions.values())
    needed = set().union(used, *(policy.loaded_names(s) for s in functions.values()))
    for group in exercise.groups:
        if group.key not in plan.code:
            continue
        for variant, recording in enumerate(recordings):
            entries = recording.entries.get(group.key, [])
            for index in judged_entries(entries):
                unused = copies_of_the_answer(group, entries[index])
                inputs = {n: v for n, v in entries[index].inputs.items() if n in needed and n not in unused}
                plan.requests.append(Request(group.key, variant, index, inputs, list(group.names)))
    return plan

