"""Fixtures of the matching tests: the labelled set and the accuracy bench, imported by path.

``tests`` is not a package, so both are loaded from their files; this works under any pytest
import mode.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent.parent


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def lp() -> ModuleType:
    """tests/matching/labelled_pairs.py"""
    return _load("tthc_test_labelled_pairs", _HERE / "labelled_pairs.py")


@pytest.fixture(scope="session")
def bench() -> ModuleType:
    """bench/match_accuracy.py"""
    return _load("tthc_bench_match_accuracy", _ROOT / "bench" / "match_accuracy.py")


@pytest.fixture(scope="session")
def pairs(lp: ModuleType) -> list:
    return lp.build_pairs()
