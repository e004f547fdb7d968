"""Fixtures of the sandbox contract tests: simulators on free ports, in process."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from sandbox.server import Sandbox, SandboxConfig, running_sandbox

#: A small registry fixture in the world.md §7 format (plus the optional SoCMND column).
CITIZENS = [
    # SoDinhDanh, Ho, ChuDem, Ten, NgaySinh, GioiTinh, MaTinhKhaiSinh, SoCMND
    ("036185000123", "Nguyễn", "Thị", "Thuý", "1985-03-04", "2", "036", ""),
    ("001090001234", "Trần", "Văn", "Hoà", "1990", "1", "001", "012345678"),
    ("079201004567", "Lê", "", "Minh", "2001-12-31", "1", "079", ""),
]


def write_citizens_csv(path: Path, rows: list[tuple[str, ...]] = CITIZENS) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["SoDinhDanh", "Ho", "ChuDem", "Ten", "NgaySinh", "GioiTinh", "MaTinhKhaiSinh", "SoCMND"])
        w.writerows(rows)
    return path


@pytest.fixture
def citizens() -> list[tuple[str, ...]]:
    return list(CITIZENS)


@pytest.fixture
def citizens_csv(tmp_path: Path) -> Path:
    return write_citizens_csv(tmp_path / "citizens.csv")


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """``sandbox_factory(simulators=(...), **config overrides)`` → a started Sandbox on free ports,
    stopped at the end of the test."""
    with ExitStack() as stack:
        counter = iter(range(1000))

        def make(world: Any = None, **overrides: Any) -> Sandbox:
            cfg = SandboxConfig.for_tests(tmp_path / f"sb{next(counter)}", **overrides)
            return stack.enter_context(running_sandbox(cfg, world=world))

        yield make
