"""Data quality of dossiers: the expectation suite (``expectations/*.json``), custom GX expectations
(:mod:`tthc.quality.expectations`) and batch validation (:mod:`tthc.quality.validate`).

Importing this package is cheap: great_expectations (4-8 s) is imported only when a batch is
validated. Names below resolve lazily.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "QualityError",
    "RecordIssue",
    "RuleStat",
    "ValidationOutcome",
    "load_suite_spec",
    "validate_dossiers",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tthc.quality import validate

        return getattr(validate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
