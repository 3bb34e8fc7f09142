"""Start the worker (worker.py) that runs one submission's code, and talk to it.

With bubblewrap (Debian's `bubblewrap`), the worker sees a read-only view of the system's libraries,
Python and the course's venv, plus worker.py; nothing of the course (no solutions, no grader, no
cmp.py, no data): its inputs arrive on stdin. Nothing is writable but a private 64 MB /tmp. It has no
network, its own PID namespace (it cannot see or signal the grader), an unprivileged user with no
capabilities, and it dies with its sandbox, and so does everything it started. Where bubblewrap cannot run (macOS, a container
without user namespaces) the worker is a plain child process in its own session, in an empty
temporary folder, killed with its process group (a process that left the group would survive: only
code the allow-list refuses could start one): say so to the instructor (`describe()`).
Both ways, the worker limits its own address space to `memory` bytes before any answer runs.
"""
import io
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

WORKER = Path(__file__).resolve().parent / "worker.py"
FRAME_CAP = 256 * 2**20  # bytes of one answer: a bigger one is not read
TMP_SIZE = 64 * 2**20
ELEMENT_CAP = 10_000_000  # elements of one tensor in an answer
STARTUP = 120  # seconds a worker may take to start (importing PyTorch), before its first answer


class WorkerGone(Exception):
    """The worker died, ran out of time, or sent something that is not an answer."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _bwrap_command(memory):
    python = Path(os.path.normpath(os.path.abspath(sys.executable)))  # the venv's, not resolved
    binds = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    command = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--assert-userns-disabled",
               "--die-with-parent", "--new-session", "--cap-drop", "ALL",
               "--uid", "65534", "--gid", "65534",
               "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
               "--size", str(TMP_SIZE), "--tmpfs", "/tmp", "--chdir", "/tmp", "--clearenv",
               "--setenv", "HOME", "/tmp", "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "PATH", "/usr/bin"]
    for name in ("lib", "lib64", "bin", "sbin", "lib32"):
        link = Path("/" + name)
        if link.is_symlink():
            command += ["--symlink", os.readlink(link), str(link)]
        elif link.is_dir():
            command += ["--ro-bind", str(link), str(link)]
    for path in sorted(binds):
        if not str(path).startswith("/usr/"):
            command += ["--ro-bind", str(path), str(path)]
    if Path("/etc/ld.so.cache").exists():
        command += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    command += ["--ro-bind", str(WORKER), "/grader/worker.py",
                "--remount-ro", "/dev", "--remount-ro", "/",  # nothing writable but the capped /tmp
                str(python), "-I",
                "/grader/worker.py", str(memory)]
    return command


_BWRAP = None  # (usable: bool, why not)


def bubblewrap_status():
    """(True, version) when bubblewrap can start a sandbox here, else (False, why not). Cached."""
    global _BWRAP
    if _BWRAP is None:
        if shutil.which("bwrap") is None:
            _BWRAP = (False, "bubblewrap (`bwrap`) is not installed")
        else:
            probe = _bwrap_command(2**32)[:-4] + [sys.executable, "-I", "-c",
                                                   "print('ok', file=open('/dev/null', 'w')) or print('ok')"]
            try:
                done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
                ok = done.returncode == 0 and done.stdout.strip() == "ok"
                why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            except (OSError, subprocess.TimeoutExpired) as error:
                ok, why = False, str(error)
            version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
            _BWRAP = (True, version) if ok else (False, f"bubblewrap cannot start a sandbox here: {why}")
    return _BWRAP


def describe(isolation):
    if isolation == "bubblewrap":
        return f"bubblewrap sandbox ({bubblewrap_status()[1]})"
    return ("process isolation only: " + bubblewrap_status()[1] + ". Student code still runs in its own process "
            "with the allow-list, no autograd and the memory limit, but it can see this machine's files")


def _plain(value, depth=0):
    """Only dense CPU tensors, numbers, strings and containers of them (what the worker sends)."""
    if isinstance(value, torch.Tensor):
        return (type(value) is torch.Tensor and value.layout == torch.strided and value.device.type == "cpu"
                and not value.is_quantized and value.numel() <= ELEMENT_CAP)
    if value is None or isinstance(value, (bool, int, float, complex, str)):
        return True
    if depth > 6:
        return False
    if isinstance(value, (list, tuple)):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _plain(v, depth + 1) for k, v in value.items())
    return False


class Worker:
    """One sandboxed worker for one submission: send() the program once, then ask() per answer."""

    def __init__(self, memory, isolation):
        self.memory, self.isolation = memory, isolation
        self.folder = None
        if isolation == "bubblewrap":
            command, cwd, env = _bwrap_command(memory), None, None
        else:
            self.folder = tempfile.mkdtemp(prefix="grader-worker-")
            command = [sys.executable, "-I", str(WORKER), str(memory)]
            cwd, env = self.folder, {"HOME": self.folder, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True)
        self.ready = False

    def send(self, obj):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        payload = buffer.getvalue()
        try:
            self.process.stdin.write(struct.pack(">Q", len(payload)) + payload)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerGone(self._death()) from None

    def ask(self, request, timeout):
        """The worker's answer to one request, or WorkerGone (the worker is then stopped)."""
        if not self.ready:  # its start (importing PyTorch: seconds on a busy machine) is not the answer's time
            if self._receive(time.monotonic() + STARTUP) != {"ready": True}:
                self.stop()
                raise WorkerGone("the worker did not start")
            self.ready = True
        self.send(request)
        answer = self._receive(time.monotonic() + timeout)
        if not isinstance(answer.get("outputs"), dict) or not _plain(answer):
            self.stop()
            raise WorkerGone("its answer is not plain data (dense tensors on the CPU, and numbers)")
        return answer

    def _receive(self, deadline):
        """The next frame, as a dict of plain data."""
        head = self._read(8, deadline)
        (size,) = struct.unpack(">Q", head)
        if size > FRAME_CAP:
            self.stop()
            raise WorkerGone(f"its answer is larger than {FRAME_CAP // 2**20} MB")
        payload = self._read(size, deadline)
        try:
            answer = torch.load(io.BytesIO(payload), weights_only=True)
        except Exception:  # noqa: BLE001 - anything that is not plain data
            self.stop()
            raise WorkerGone("its answer is not plain data (tensors and numbers)") from None
        if not isinstance(answer, dict):
            self.stop()
            raise WorkerGone("its answer is not plain data (dense tensors on the CPU, and numbers)")
        return answer

    def _read(self, size, deadline):
        chunks, got, fd = [], 0, self.process.stdout.fileno()
        while got < size:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise WorkerGone("timeout")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, min(size - got, 2**20))
            if not chunk:
                raise WorkerGone(self._death())
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _death(self):
        self.stop()
        code = self.process.returncode
        if code is not None and code < 0:
            return f"the process running it was killed (signal {-code})"
        return f"the process running it stopped (exit code {code})"

    def stop(self):
        """Kill the worker and everything it started; idempotent."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
