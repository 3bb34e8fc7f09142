"""tools/run's set-up: which requirements file pip installs, and when it runs at all.

`open` installs requirements.txt (the student's packages); `test` and `site` install tools/requirements.txt,
which starts with `-r ../requirements.txt`. pip runs only when a file the command needs changed since
the last complete install (.venv/.requirements.sha256). Each test runs tools/run in a copy of the files it
reads, with a fake .venv whose python logs pip, pytest and the site build instead of running them.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = f"""#!/usr/bin/env bash
# Logs what tools/run asks of it; computes the stamp's hashes with the real Python.
here="$(cd "$(dirname "$0")/../.." && pwd)"
case "$1 $2" in
    "-m pip") echo "pip $*" >> "$here/log"; exit "${{FAKE_PIP_STATUS:-0}}" ;;
    "-m data") exit 0 ;;
    "-m pytest") echo "pytest" >> "$here/log"; exit 0 ;;
esac
if [ "$1" = "-c" ]; then exec {sys.executable} "$@"; fi
echo "python $*" >> "$here/log"
"""


@pytest.fixture
def course(tmp_path):
    for name in ("tools/run", "requirements.txt", "tools/requirements.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, script in (("python", FAKE_PYTHON), ("jupyter", '#!/bin/sh\necho jupyter >> "$(dirname "$0")/../../log"\n')):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def run(course, command, **env):
    """tools/run COMMAND in the copy; returns what pip installed (its -r file), or None if pip did not run."""
    (course / "log").write_text("")
    result = subprocess.run(["bash", "tools/run", command], cwd=course, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", **env}, timeout=60)
    log = (course / "log").read_text().splitlines()
    if env.get("FAKE_PIP_STATUS"):
        return result.returncode, log
    assert result.returncode == 0, result.stdout + result.stderr
    assert log[-1] == {"open": "jupyter", "test": "pytest", "site": "python tools/site/build.py"}[command]
    pip = [line.split() for line in log if line.startswith("pip ")]
    assert len(pip) <= 1
    return pip[0][pip[0].index("-r") + 1] if pip else None


def test_open_installs_the_students_requirements_and_test_adds_the_tooling(course):
    assert (course / "tools" / "requirements.txt").read_text().splitlines()[0] == "-r ../requirements.txt"
    assert run(course, "open") == "requirements.txt"
    assert run(course, "open") is None
    assert run(course, "test") == "tools/requirements.txt", "test after open installs the tooling"
    assert run(course, "test") is None
    assert run(course, "site") is None
    assert run(course, "open") is None, "open after test installs nothing"
    assert run(course, "test") is None, "open after test leaves the tooling's stamp"


def test_test_first_then_open_installs_nothing_more(course):
    assert run(course, "site") == "tools/requirements.txt"
    assert run(course, "open") is None
    assert run(course, "test") is None


def test_a_changed_file_reinstalls_only_for_the_commands_that_need_it(course):
    run(course, "test")
    with open(course / "tools" / "requirements.txt", "a") as f:
        f.write("some-tool==1.0\n")
    assert run(course, "open") is None, "the tooling changed, not the student's packages"
    assert run(course, "test") == "tools/requirements.txt"
    with open(course / "requirements.txt", "a") as f:
        f.write("some-package==1.0\n")
    assert run(course, "open") == "requirements.txt"
    assert run(course, "test") == "tools/requirements.txt"
    assert run(course, "open") is None


def test_a_failed_install_leaves_no_stamp_and_a_bad_command_installs_nothing(course):
    status, log = run(course, "test", FAKE_PIP_STATUS="1")
    assert status == 1 and len(log) == 1 and log[0].startswith("pip ")
    assert not (course / ".venv" / ".requirements.sha256").exists()
    result = subprocess.run(["bash", "tools/run", "tset"], cwd=course, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage" in result.stderr
    assert (course / "log").read_text().splitlines() == log
