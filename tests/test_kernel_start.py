"""The solutions' conftest starts a kernel again when it dies while starting, and only then."""
import importlib.util
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parent.parent / "solutions" / "conftest.py"


@pytest.fixture
def conftest(monkeypatch):
    spec = importlib.util.spec_from_file_location("solutions_conftest", CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_kernel_that_dies_while_starting_is_started_again(conftest, monkeypatch):
    calls = []

    def dies_twice(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) < 3:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return "manager", "client"

    monkeypatch.setattr(conftest, "_start_new_kernel", dies_twice)
    assert conftest.start_new_kernel_retrying(kernel_name="python3") == ("manager", "client")
    assert calls == [{"kernel_name": "python3"}] * 3


def test_a_kernel_that_never_starts_still_fails(conftest, monkeypatch):
    calls = []

    def dies(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr(conftest, "_start_new_kernel", dies)
    with pytest.raises(RuntimeError, match="Kernel died"):
        conftest.start_new_kernel_retrying()
    assert len(calls) == conftest.KERNEL_STARTS
