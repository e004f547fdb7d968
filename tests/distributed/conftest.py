"""Tests of the product deployed as a distributed Airflow (CeleryExecutor, one process per
component) against PostgreSQL and Redis on 127.0.0.1. The harness is ``stack.py`` beside this file.

They need both servers: without them a test is skipped on a developer's machine, but fails under
``CI=true`` (CI runs them, so a missing server there is a broken CI, not a reason to skip).
"""

from __future__ import annotations

import os

import pytest
from stack import StackOptions, prerequisites_missing


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "distributed: runs the CeleryExecutor stack as processes (needs PostgreSQL and Redis)"
    )


@pytest.fixture(scope="session")
def stack_prerequisites() -> StackOptions:
    opts = StackOptions()
    why = prerequisites_missing(opts)
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the distributed stack cannot run: {why}", pytrace=False)
        pytest.skip(why)
    return opts
