"""Build the sandbox world from the project's source registry, so they always agree.

The registry (``config/sources.yaml``) is the truth about which agency systems exist, their
dialects and the agencies each hosts; the simulated world serves exactly those sources and
agencies (codes and names), and the pipeline's "agency known to the registry" check holds.
"""

from __future__ import annotations

from typing import Any

from sandbox.world import AgencySpec, SourceSpec, WorldConfig
from tthc.registry import AgencyEntry, Registry, SourceConfig


def _kind(a: AgencyEntry) -> str:
    if a.level == "department":
        return "department"
    if a.level == "province":
        return "province"
    return "ward" if a.name.startswith("UBND phường") else "commune"


def source_spec(src: SourceConfig) -> SourceSpec:
    agencies = src.agencies or (AgencyEntry(code=src.agency_code, name=src.agency_name, level=src.level),)
    specs = tuple(AgencySpec(kind=_kind(a), name=a.name, code=a.code) for a in agencies)
    return SourceSpec(src.source_id, src.dialect, specs, name=src.agency_name, weight=float(len(specs)))


def world_config_from_registry(registry: Registry, **kw: Any) -> WorldConfig:
    """A :class:`WorldConfig` whose sources and agencies are the registry's active ones."""
    sources = tuple(source_spec(s) for s in registry.sources if s.active)
    if not sources:
        raise ValueError(f"{registry.path}: no active source to simulate")
    provinces = {s.province_code for s in registry.sources if s.province_code}
    if len(provinces) == 1:
        kw.setdefault("province_code", provinces.pop())
    return WorldConfig(sources=sources, **kw)
