"""Shared by all tests: every test starts with cmp's registry empty and strict mode off."""
import pytest

import cmp


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.delenv("CMP_STRICT", raising=False)
    cmp.reset()
    yield
    cmp.reset()
