"""Helpers shared by the dialect mappers (raw record → :class:`tthc.model.Dossier`).

A mapper never raises for one bad record: a value it cannot understand becomes None and its raw
text is kept in ``Dossier.raw_issues`` under the canonical field name, so validation can hold the
record back with a precise reason instead of the whole batch failing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from tthc.model import Dossier

T = TypeVar("T")


class Issues:
    """Fields that could not be understood: the value becomes None, the raw text is kept."""

    def __init__(self) -> None:
        self.issues: dict[str, str] = {}

    def add(self, field: str, raw: Any) -> None:
        # the value as the source sent it: strings as they are, anything else as JSON
        text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
        self.issues[field] = text[:200]


def parse_list(issues: Issues, field: str, raw: Any, build: Callable[[int, Mapping[str, Any]], T]) -> list[T]:
    """Map a list of objects with ``build(index, item)``; anything else is recorded as an issue."""
    out: list[T] = []
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                issues.add(f"{field}[{i}]", item)
                continue
            out.append(build(i, item))
    elif raw is not None:
        issues.add(field, raw)
    return out


def unreadable_record(source_id: str, raw: Any, *, updated_at: datetime | None = None) -> Dossier:
    """A record that is not even an object: an empty dossier whose only content is the reason."""
    issues = Issues()
    issues.add("record", type(raw).__name__)
    return Dossier(
        source_id=source_id,
        dossier_code=None,
        agency_code=None,
        procedure_code=None,
        received_at=None,
        updated_at=updated_at,
        status=None,
        raw_issues=issues.issues,
    )
