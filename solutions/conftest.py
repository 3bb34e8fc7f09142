"""nbval settings for the solution notebooks.

- `cmp` runs in strict mode (CMP_STRICT=1): a wrong gradient raises, so the notebook fails loudly.
- Training in notebook 04 is short (NINJA_TRAIN_STEPS) unless you set that variable yourself;
  the committed outputs come from a full 200,000-step run.
- stderr (the progress bar) is not compared.
"""
import os

import pytest

TEST_ENV = {"CMP_STRICT": "1", "NINJA_TRAIN_STEPS": os.environ.get("NINJA_TRAIN_STEPS", "2000")}


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
