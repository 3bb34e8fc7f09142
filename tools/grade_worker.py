"""Run graded notebooks' cells, each in a fresh process with an IPython shell; tools/grade.py starts this.

    python -I tools/grade_worker.py --serve     # one job slot: reads job lines on stdin, answers on stdout

The server imports PyTorch, matplotlib and IPython once (seconds), then for each job line
{"job": JOB_DIR, "timeout": SECONDS} forks a child, which runs the job in a new session and exits;
the server kills the child's session at the time limit and answers {"returncode", "timed_out"}.
Each child starts from the same untouched state, so every notebook gets a fresh interpreter.

JOB_DIR/job.json holds {"cells": [source, ...], "watch": [variable names], "capture": [cell indices]};
the child reads it, deletes it, and runs the cells in an IPython shell in JOB_DIR/notebook (its only
neighbours: cmp.py and data/ in JOB_DIR), cell after cell, going on after
a cell that raises (like nbclient's allow_errors). After every cell it rewrites JOB_DIR/progress.json
atomically: what each cell raised, a capped copy of what it printed, and cmp's registry
(`cmp.summary().results`). So when the process dies or is killed on timeout, the grader still
reads everything up to the last finished cell, and which cell was running.

Self-contained on purpose (run with -I: no script directory on sys.path, no user site).
"""
import json
import math
import os
import sys

OUTPUT_CAP = 4000  # characters of output kept per cell; the rest is counted, not stored


class CappedWriter:
    """A text stream that keeps the first OUTPUT_CAP characters written since the last reset."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self):
        self.reset()

    def reset(self):
        self.kept, self.size, self.dropped = [], 0, 0

    def write(self, text):
        text = str(text)
        room = OUTPUT_CAP - self.size
        if room > 0:
            self.kept.append(text[:room])
            self.size += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def text(self):
        tail = f"\n... ({self.dropped:,} more characters not kept)" if self.dropped else ""
        return "".join(self.kept) + tail

    def flush(self):
        pass

    def isatty(self):
        return False

    def writable(self):
        return True

    def fileno(self):  # some libraries ask; writing through the fd goes to the worker's /dev/null
        return 1


def number(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def snapshot():
    """cmp's registry: ([{name, passed, status, hint, diagnosis, ...}], {name: CheckResult})."""
    module = sys.modules.get("cmp")
    if module is None or not hasattr(module, "summary"):
        return [], {}
    out, objects = [], {}
    for r in module.summary().results:
        objects[str(r.name)] = r
        out.append({
            "name": str(r.name),
            "passed": bool(r),
            "status": str(r.status),
            "hint": None if r.hint is None else str(r.hint),
            "diagnosis": None if getattr(r, "diagnosis", None) is None else str(r.diagnosis),
            "exact": bool(getattr(r, "exact", False)),
            "maxdiff": number(getattr(r, "maxdiff", None)),
            "relerr": number(getattr(r, "relerr", None)),
            "kind": str(getattr(r, "kind", "cmp")),
        })
    return out, objects


def run_job(job_dir):
    with open(os.path.join(job_dir, "job.json")) as f:
        job = json.load(f)
    os.remove(os.path.join(job_dir, "job.json"))  # it holds the solution's code: gone before any cell runs
    progress_path = os.path.join(job_dir, "progress.json")
    progress = {"cells": [], "running": None, "results": [], "watch": {}, "done": False}

    def save():
        tmp = progress_path + ".part"
        with open(tmp, "w") as f:
            json.dump(progress, f)
        os.replace(tmp, progress_path)

    os.environ["HOME"] = job_dir
    os.environ["IPYTHONDIR"] = os.path.join(job_dir, ".ipython")
    os.chdir(os.path.join(job_dir, "notebook"))
    sys.path.insert(0, os.getcwd())  # as in Jupyter: the notebook's folder is importable
    out = CappedWriter()
    real_stdout = sys.stdout
    sys.stdout = sys.stderr = out

    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance(colors="nocolor")
    save()
    seen = {}  # name -> the CheckResult object last seen (kept alive, so a new check is a new object)
    for index, source in enumerate(job["cells"]):
        progress["running"] = index
        save()
        out.reset()
        error = None
        try:
            result = shell.run_cell(source, store_history=False)
            exc = result.error_before_exec or result.error_in_exec
            if exc is not None:
                error = {"type": type(exc).__name__, "message": str(exc)[:500]}
        except BaseException as exc:  # noqa: BLE001 - whatever the cell did, record it and go on
            error = {"type": type(exc).__name__, "message": str(exc)[:500]}
        try:
            results, objects = snapshot()
        except Exception as exc:  # noqa: BLE001
            results, objects = progress["results"], seen
            error = error or {"type": "GraderError", "message": f"could not read cmp's results: {exc}"}
        recorded = [name for name, r in objects.items() if seen.get(name) is not r]
        seen = objects
        entry = {"error": error, "output": out.text(), "recorded": recorded}
        if index in job.get("capture", []):  # the grader wants the registry as it is after this cell
            entry["results"] = results
        progress["cells"].append(entry)
        progress["results"] = results
        progress["watch"] = {name: number(shell.user_ns.get(name)) for name in job.get("watch", [])}
        progress["running"] = None
        save()
    progress["done"] = True
    save()
    sys.stdout = real_stdout


def warm_up():
    """Import what the notebooks import and run a few operations once, before any fork."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import numpy  # noqa: F401
    import torch
    import torch.nn.functional as F
    import tqdm  # noqa: F401
    from IPython.core.interactiveshell import InteractiveShell  # noqa: F401
    x = torch.randn(8, 5, requires_grad=True)
    loss = F.cross_entropy(torch.tanh(x @ torch.randn(5, 3)), torch.zeros(8, dtype=torch.long))
    loss.backward()
    g = x.grad.detach()
    torch.equal(g, g), torch.allclose(g, g), g.to(torch.float64).abs().max().item(), torch.broadcast_shapes(g.shape, g.shape)


def serve():
    import select
    import signal
    import time
    protocol_in, protocol_out = sys.stdin, os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # nothing any child prints can reach the protocol
    os.dup2(devnull, 2)
    warm_up()
    protocol_out.write(json.dumps({"ready": True}) + "\n")
    protocol_out.flush()
    for line in protocol_in:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: one notebook
            code = 0
            try:
                os.setsid()
                protocol_in.close()
                protocol_out.close()
                run_job(request["job"])
            except BaseException:  # noqa: BLE001
                code = 70
            finally:
                os._exit(code)
        deadline = time.monotonic() + float(request["timeout"])
        timed_out, status = False, None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() >= deadline:
                timed_out = True
                break
            select.select([], [], [], 0.02)
        try:
            os.killpg(pid, signal.SIGKILL)  # the child's session: it and anything it started
        except (ProcessLookupError, PermissionError):
            pass
        if not done:
            _, status = os.waitpid(pid, 0)
        returncode = None if timed_out else os.waitstatus_to_exitcode(status)
        protocol_out.write(json.dumps({"returncode": returncode, "timed_out": timed_out}) + "\n")
        protocol_out.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        sys.exit("usage: python -I tools/grade_worker.py --serve")
