"""Administrative units: which province an agency or dossier belongs to, before and after 2025.

From 1 July 2025 the 63 provinces became 34 and the district level was abolished (domain.md §8).
A province code means different units before and after that date (new Bắc Ninh 24 ← old 24, 27),
so units are keyed by ``(code, date)``: :func:`current_province` maps a code valid on a date to the
province it belongs to now. Agencies name their province through the H-code of their electronic
identifier (``000.00.12.H40``), which is not a statistics code: ``config/units.yaml`` maps it.
Names of current provinces come from ``vietnam-provinces``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import yaml

from tthc.registry import REPO_ROOT

UNITS_FILE = REPO_ROOT / "config" / "units.yaml"


@dataclass(frozen=True)
class ProvinceUnit:
    code: str  # statistics code of the province in force today (34-province list)
    name: str
    original_code: str  # the code as the record had it
    original_valid_on: date | None


@dataclass(frozen=True)
class UnitTables:
    reorganisation_date: date
    legacy_provinces: dict[str, str]
    h_codes: dict[str, str]


@lru_cache(maxsize=2)
def load_units(path: str | Path = UNITS_FILE) -> UnitTables:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    legacy = {str(k).zfill(2): str(v).zfill(2) for k, v in doc["legacy_provinces"].items()}
    if len(legacy) != 63:
        raise ValueError(f"{path}: legacy_provinces must list the 63 pre-2025 provinces, found {len(legacy)}")
    return UnitTables(
        date.fromisoformat(str(doc["reorganisation_date"])),
        legacy,
        {str(k): str(v).zfill(2) for k, v in (doc.get("h_codes") or {}).items()},
    )


def province_name(code: str) -> str:
    """Name of a current (34-province) unit, from ``vietnam-provinces``."""
    from vietnam_provinces import Province, ProvinceCode

    return Province.from_code(ProvinceCode(int(code))).name


def current_province(code: str, valid_on: date | None, tables: UnitTables | None = None) -> ProvinceUnit:
    """The province in force today for a province ``code`` that was valid on ``valid_on``.

    A code used before the reorganisation is mapped through the legacy table; after it (or with no
    date, which means "a current code") it is taken as a current code.
    """
    t = tables or load_units()
    code = str(code).zfill(2)
    if valid_on is not None and valid_on < t.reorganisation_date:
        if code not in t.legacy_provinces:
            raise KeyError(f"{code} is not a pre-2025 province code")
        new = t.legacy_provinces[code]
    else:
        new = code
        if new not in set(t.legacy_provinces.values()):
            raise KeyError(f"{code} is not one of the 34 current province codes")
    return ProvinceUnit(new, province_name(new), code, valid_on)


def agency_province(
    agency_code: str, valid_on: date | None = None, tables: UnitTables | None = None
) -> ProvinceUnit:
    """Province of an agency from the H-code (top level) of its electronic identifier."""
    t = tables or load_units()
    top = agency_code.rsplit(".", 1)[-1]
    if top not in t.h_codes:
        raise KeyError(f"H-code {top} of agency {agency_code} is not in config/units.yaml h_codes")
    return current_province(t.h_codes[top], valid_on, t)
