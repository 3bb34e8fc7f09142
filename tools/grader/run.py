"""Running a plan's requests in the submission's sandboxed worker (sandbox.py, worker.py).

An answer that runs out of time, or whose worker dies, costs its own group: the worker is stopped
and a new one continues with the next group. Exercise 4's training asks the same kind of worker,
once every function is right (reference.train).
"""
import time
from dataclasses import dataclass

from . import reference
from .sandbox import Worker, WorkerGone


@dataclass
class Failure:
    """A group that did not give an answer: 'timeout' or 'error' (its worker died)."""
    kind: str
    reason: str


class Session:
    """A worker for one submission, started again after a failure."""

    def __init__(self, plan, *, memory, isolation):
        self.plan, self.memory, self.isolation, self.worker = plan, memory, isolation, None

    def ask(self, key, inputs, outputs, timeout):
        if self.worker is None:
            self.worker = Worker(self.memory, self.isolation)
            self.worker.send(self.plan.program())
        try:
            return self.worker.ask({"key": key, "inputs": inputs, "outputs": outputs}, timeout)
        except WorkerGone:
            self.worker = None
            raise

    def close(self):
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


def execute(plan, *, timeout, memory, isolation):
    """{(key, variant, entry): answer dict, or Failure for every request of a group that failed}."""
    results, failed, session = {}, {}, Session(plan, memory=memory, isolation=isolation)
    try:
        for request in plan.requests:
            where = (request.key, request.variant, request.entry)
            stuck = [g for g in plan.exercise.groups if g.function in plan.calls(request.key) and g.key in failed]
            if stuck and request.key not in failed:  # it would only wait for the same endless function again
                failed[request.key] = Failure("skipped", "it calls an answer function that did not finish")
            if request.key in failed:
                results[where] = failed[request.key]
                continue
            try:
                results[where] = session.ask(request.key, request.inputs, request.outputs, timeout)
            except WorkerGone as gone:
                kind = "timeout" if gone.reason == "timeout" else "error"
                reason = (f"it did not finish within the time limit ({timeout:g} s; an endless loop?)"
                          if kind == "timeout" else f"it stopped the worker: {gone.reason}")
                failed[request.key] = results[where] = Failure(kind, reason)
    finally:
        session.close()
    return results


class TrainingStopped(BaseException):
    """Ends a training run from inside the notebook's cells (which go on after an Exception)."""


def train(plan, *, timeout, memory, isolation, train_steps, limit):
    """(validation loss or None, why not) of the exercise trained with the student's answers."""
    session = Session(plan, memory=memory, isolation=isolation)
    snapshots = reference.Snapshots()
    deadline = time.monotonic() + limit
    needed = {r_name for r in plan.requests for r_name in r.inputs}
    groups = {g.key: g for g in plan.exercise.groups}

    def remote(key, scope):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TrainingStopped(f"training did not finish within {limit:g} s")
        inputs = {}
        for name in needed:
            if name in scope:
                value = snapshots.data(scope[name])
                if value is not reference.NOT_DATA:
                    inputs[name] = value
        try:
            answer = session.ask(key, inputs, list(groups[key].names), min(timeout, left))
        except WorkerGone as gone:
            raise TrainingStopped(f"an answer stopped during training: {gone.reason}") from None
        if answer["error"] or answer["missing"]:
            raise TrainingStopped(f"an answer failed during training: {answer['error'] or answer['missing']}")
        return answer["outputs"]

    try:
        val_loss, errors = reference.train(plan.exercise, remote, train_steps=train_steps)
    except TrainingStopped as stopped:
        return None, str(stopped)
    finally:
        session.close()
    if val_loss is None:
        return None, (errors[0][1] if errors else "the notebook did not compute val_loss")
    return float(val_loss), None
