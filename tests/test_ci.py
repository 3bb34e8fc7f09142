"""CI runs what the README says: here (.ci/run) and on GitHub (.github/workflows/test.yml).

The workflow itself cannot run here (it downloads names.txt and PyTorch), so these tests check that
it calls the README's test command with the README's Python version, and that both CIs also run the
solutions on PyTorch's generic CPU kernels. Also: nbval works from inside solutions/.
"""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import yaml
from nbval.plugin import get_sanitize_patterns

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "test.yml"
GENERIC_CPU_RUN = "ATEN_CPU_CAPABILITY=default bash tools/run test solutions/"


def readme_section(title):
    text = (ROOT / "README.md").read_text()
    return text.split(f"\n## {title}\n")[1].split("\n## ")[0]


def readme_test_command():
    """The first line of the first bash block of the README's "Test" section."""
    block = re.search(r"```bash\n(.*?)```", readme_section("Test"), re.DOTALL)
    return block.group(1).strip().splitlines()[0]


def workflow_commands():
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["test"]["steps"]
    return [line.strip() for step in steps for line in step.get("run", "").splitlines() if line.strip()], steps


def test_the_readme_test_command_is_the_one_ci_runs():
    assert readme_test_command() == "bash tools/run test"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert readme_test_command() in ci
    assert GENERIC_CPU_RUN in ci


def test_the_github_workflow_runs_the_readme_command_with_the_readme_python():
    commands, steps = workflow_commands()
    assert readme_test_command() in commands
    assert GENERIC_CPU_RUN in commands
    assert commands.index(readme_test_command()) < commands.index(GENERIC_CPU_RUN)
    python = [s["with"]["python-version"] for s in steps if s.get("uses", "").startswith("actions/setup-python")]
    readme_python = re.search(r"Python (3\.\d+)", readme_section("Start")).group(1)
    assert python == [readme_python]
    assert not [c for c in commands if "pytest" in c], "tests run through the README's command only"


def test_the_workflow_installs_the_pinned_torch_as_the_cpu_build():
    pin = next(line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch=="))
    commands, _ = workflow_commands()
    install = [c for c in commands if "download.pytorch.org/whl/cpu" in c]
    assert len(install) == 1 and pin in install[0].split()
    assert commands.index(install[0]) < commands.index(readme_test_command())
    assert f"{pin} --index-url https://download.pytorch.org/whl/cpu" in readme_section("Start")


def requirements(path):
    """The requirement lines of a requirements file, without comments."""
    lines = [line.split("#")[0].strip() for line in (ROOT / path).read_text().splitlines()]
    return [line for line in lines if line]


def test_every_requirement_is_pinned_and_students_get_only_the_course():
    """torch exactly (the CPU build on this machine's disk satisfies it; unpinned, pip pulls GBs of CUDA),
    every other package at one version; the test, grading and site tooling only in tools/requirements.txt,
    which pulls in the student's file first."""
    student = requirements("requirements.txt")
    tooling = requirements("tools/requirements.txt")
    assert "torch==2.13.0" in student
    assert tooling[0] == "-r ../requirements.txt"
    for line in student + tooling[1:]:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+]*", line), f"not pinned: {line}"
    names = {line.split("==")[0].lower() for line in student}
    assert names == {"torch", "numpy", "matplotlib", "tqdm", "jupyter", "ipykernel"}
    assert not names & {line.split("==")[0].lower() for line in tooling[1:]}


def test_nbval_works_from_inside_the_solutions_folder():
    """The sanitizer is found from solutions/conftest.py, not from the working directory."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval",
                             "03_fused_batchnorm.ipynb::Cell 0"],
                            cwd=ROOT / "solutions", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
    assert "FileNotFoundError" not in result.stdout + result.stderr


def test_the_sanitizer_masks_the_machine_dependent_digits():
    spec = importlib.util.spec_from_file_location("solutions_conftest", ROOT / "solutions" / "conftest.py")
    settings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings)
    assert settings.SANITIZE.is_absolute()
    patterns = get_sanitize_patterns(settings.SANITIZE.read_text())
    line = ("dlogits | exact: False | approximate: True | maxdiff: 3.7e-09 | rel err: 1.2e-07"
            " (1.2e-07 of the largest entry; 8.1e+02 times the largest entry)")
    for regex, replace in patterns:
        line = re.sub(regex, replace, line)
    assert line == ("dlogits | exact: False | approximate: True | maxdiff: MAXDIFF | rel err: RELERR"
                    " (RELERR of the largest entry; RELERR of the largest entry)")
