"""The source registry: one YAML file that says which agency systems are pulled, how and when.

``config/sources.yaml`` holds ``defaults`` plus a list of ``sources``; each entry overrides the
defaults. The file is parsed into typed, validated objects; a bad entry fails with a message
naming the file, the entry and the field, so a data engineer can fix it without reading code.
Adding an agency is a registry change, never a code change: one DAG per active source is generated
from this file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tthc.codes import AGENCY_CODE_RE
from tthc.paths import REPO_ROOT  # re-exported: other modules import it from here

DEFAULT_REGISTRY = REPO_ROOT / "config" / "sources.yaml"

Dialect = Literal["igate", "onegate", "sqldb", "filedrop"]
Level = Literal["province", "department", "district", "commune"]
_SOURCE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_]{1,62}$")


class RegistryError(ValueError):
    """A registry file that cannot be used; the message names file, entry and field."""


class AgencyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    name: str
    level: Level = "commune"
    # data-quality e-mails of this agency (tthc.notify); empty: the source's stewards get them
    stewards: tuple[str, ...] = ()

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not AGENCY_CODE_RE.match(v):
            raise ValueError(f"agency code {v!r} is not a dotted electronic identifier like 000.00.12.H40")
        return v

    @field_validator("stewards")
    @classmethod
    def _emails(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_emails(v)


def _check_emails(v: tuple[str, ...]) -> tuple[str, ...]:
    for e in v:
        if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", e):
            raise ValueError(f"steward e-mail {e!r} is not an address")
    return v


class SourceConfig(BaseModel):
    """One agency system the pipeline pulls from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_id: str
    agency_code: str
    agency_name: str
    level: Level
    dialect: Dialect
    conn_id: str
    schedule: str = "0 1 * * *"
    lookback_hours: int = Field(default=72, ge=0, le=24 * 60)
    initial_days: int = Field(default=120, ge=1, le=3650)
    stewards: tuple[str, ...] = ()
    active: bool = True
    valid_from: date | None = None
    valid_to: date | None = None
    province_code: str | None = None
    agencies: tuple[AgencyEntry, ...] = ()  # systems that host several agencies list them here
    owner: str = "data-engineering"

    @field_validator("source_id")
    @classmethod
    def _sid(cls, v: str) -> str:
        if not _SOURCE_ID_RE.match(v):
            raise ValueError("source_id must be lower-case letters, digits and '_' (it names the DAG)")
        return v

    @field_validator("agency_code")
    @classmethod
    def _agency(cls, v: str) -> str:
        return AgencyEntry._code(v)  # same rule as for hosted agencies

    @field_validator("stewards")
    @classmethod
    def _emails(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_emails(v)

    @model_validator(mode="after")
    def _dates(self) -> SourceConfig:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self

    @property
    def dag_id(self) -> str:
        return f"tthc_source_{self.source_id}"

    @property
    def agency_codes(self) -> frozenset[str]:
        return frozenset({self.agency_code, *(a.code for a in self.agencies)})

    def is_current(self, on: date) -> bool:
        return (
            self.active
            and (self.valid_from is None or self.valid_from <= on)
            and (self.valid_to is None or on <= self.valid_to)
        )


@dataclass(frozen=True)
class Registry:
    path: Path
    sources: tuple[SourceConfig, ...]

    def get(self, source_id: str) -> SourceConfig:
        for s in self.sources:
            if s.source_id == source_id:
                return s
        raise KeyError(f"no source {source_id!r} in {self.path}")

    @property
    def agency_codes(self) -> frozenset[str]:
        out: set[str] = set()
        for s in self.sources:
            out |= s.agency_codes
        return frozenset(out)


def registry_path() -> Path:
    return Path(os.environ.get("TTHC_REGISTRY", DEFAULT_REGISTRY))


def load_registry(path: str | Path | None = None) -> Registry:
    """Parse and validate the registry; raises :class:`RegistryError` naming file, entry and field."""
    p = Path(path) if path is not None else registry_path()
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as e:
        raise RegistryError(f"{p}: registry file not found") from e
    except yaml.YAMLError as e:
        raise RegistryError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), list):
        raise RegistryError(f"{p}: expected a mapping with a 'sources' list")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise RegistryError(f"{p}: 'defaults' must be a mapping")
    sources: list[SourceConfig] = []
    seen: set[str] = set()
    for i, entry in enumerate(doc["sources"]):
        name = entry.get("source_id", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        if not isinstance(entry, dict):
            raise RegistryError(f"{p}: source {name}: entry must be a mapping")
        try:
            src = SourceConfig(**{**defaults, **entry})
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "(entry)"
            raise RegistryError(f"{p}: source {name}: field {field}: {err['msg']}") from None
        if src.source_id in seen:
            raise RegistryError(f"{p}: source {name}: field source_id: duplicate source_id")
        seen.add(src.source_id)
        sources.append(src)
    return Registry(p, tuple(sources))


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> Registry:
    return load_registry(path)


def cached_registry(path: str | Path | None = None) -> Registry:
    """Registry cached by file modification time (the DAG processor re-parses every 30 s)."""
    p = Path(path) if path is not None else registry_path()
    return _cached(str(p), p.stat().st_mtime)
