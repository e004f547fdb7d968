"""Helpers shared by the dialect mappers (raw record → :class:`tthc.model.Dossier`).

A mapper never raises for one bad record: a value it cannot understand becomes None and its raw
text is kept in ``Dossier.raw_issues`` under the canonical field name, so validation can hold the
record back with a precise reason instead of the whole batch failing.

Every mapper passes its result through :func:`storable`, so one record can never make the
warehouse refuse the whole batch: PostgreSQL text cannot hold NUL characters (they become U+FFFD,
which validation's ``invalid_characters`` rule then reports), and code columns hold at most
:data:`MAX_CODE_LENGTH` characters (a longer code is unreadable: ``unparseable_<field>``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from tthc.model import Dossier

T = TypeVar("T")

#: Length of the warehouse's code columns (``tthc.warehouse.schema.CODE``).
MAX_CODE_LENGTH = 128
#: Dossier fields stored in code columns.
CODE_FIELDS = ("dossier_code", "agency_code", "procedure_code", "sector_code", "source_record_id")
#: What a NUL character becomes (PostgreSQL text cannot store it; the original stays in the raw record).
NUL_REPLACEMENT = "\ufffd"
_TEXT_FIELDS = (
    *CODE_FIELDS,
    "status_raw",
    "agency_name",
    "procedure_name",
    "sector_name",
    "applicant_name",
    "applicant_id_number",
    "applicant_birth_date",
    "applicant_phone",
    "result_type",
    "result_file",
)


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


def storable_code(code: str | None) -> str | None:
    """A raw record's dossier code as the raw store can key it (``code`` is a string the dialect's
    ``code_of`` read): None when empty or too long for a code column, NUL characters replaced."""
    if code is None or not code or len(code) > MAX_CODE_LENGTH:
        return None
    return code.replace("\x00", NUL_REPLACEMENT)


def storable(d: Dossier) -> Dossier:
    """``d`` made storable on every warehouse backend (module docstring); changes ``d`` in place.

    A code longer than a code column becomes None with its (cut) raw text in ``raw_issues``; NUL
    characters in any text column become U+FFFD, so the record is stored and then held back by
    validation instead of failing the whole batch (nested lists and ``raw_issues`` are stored as
    JSON text, where NUL is escaped).
    """
    for name in _TEXT_FIELDS:
        value = getattr(d, name)
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            value = value.replace("\x00", NUL_REPLACEMENT)
            setattr(d, name, value)
        if name in CODE_FIELDS and len(value) > MAX_CODE_LENGTH:
            setattr(d, name, None)
            d.raw_issues[name] = value[:200]
    return d
