"""nbval settings for the solution notebooks.

- `cmp` runs in strict mode (CMP_STRICT=1): a wrong gradient raises, so the notebook fails loudly.
- Training in notebook 04 is short (NINJA_TRAIN_STEPS) unless you set that variable yourself;
  the committed outputs come from a full 200,000-step run.
- stderr (the progress bar) is not compared.
- Machine-dependent digits are masked by tests/nbval_sanitize.cfg, found from this file's folder,
  so `cd solutions && pytest --nbval 03_fused_batchnorm.ipynb` works as well as `pytest` at the top.
- A kernel that dies before it answers its first request is started again, at most twice: seen twice in
  CI ("Kernel died before replying to kernel_info", every cell of one notebook an error), with two
  workers starting kernels at the same moment, and never reproduced alone. Only the start is retried;
  no cell's result is.
"""
import os
from pathlib import Path

import nbval.kernel
import pytest

KERNEL_STARTS = 3
_start_new_kernel = nbval.kernel.start_new_kernel


def start_new_kernel_retrying(*args, **kwargs):
    """nbval's start_new_kernel, tried up to KERNEL_STARTS times when the kernel dies while starting."""
    for attempt in range(1, KERNEL_STARTS + 1):
        try:
            return _start_new_kernel(*args, **kwargs)
        except RuntimeError:
            if attempt == KERNEL_STARTS:
                raise


nbval.kernel.start_new_kernel = start_new_kernel_retrying  # RunningKernel looks it up when it starts one

SANITIZE = Path(__file__).resolve().parent.parent / "tests" / "nbval_sanitize.cfg"
TEST_ENV = {"CMP_STRICT": "1", "NINJA_TRAIN_STEPS": os.environ.get("NINJA_TRAIN_STEPS", "2000")}


def pytest_configure(config):
    if getattr(config.option, "nbval_sanitize_with", "not nbval") is None:  # nbval is on, no file given
        config.option.nbval_sanitize_with = str(SANITIZE)


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """Set TEST_ENV while nbval starts the notebook's kernel, then restore the environment."""
    saved = {name: os.environ.get(name) for name in TEST_ENV}
    os.environ.update(TEST_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
