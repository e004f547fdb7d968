"""The quarterly report for a province and each of its agencies: HTML (+ chart PNGs) and XLSX.

``build_quarterly_report(engine, "2026Q3", "H40", out_dir)`` recomputes the quarter and its months
(:mod:`tthc.kpi`), then writes under ``out_dir/2026Q3/H40/``::

    bao-cao-2026Q3-H40.html      the report (Vietnamese, charts inlined as SVG)
    bao-cao-2026Q3-H40.xlsx      the same figures, native Excel charts
    bieu-do/*.png                the HTML's charts as pictures
    co-quan/<agency code>.html   one report per agency of the province

Only aggregates are read (the ``indicators`` table, agency names): no personal data can reach the
files. ``out_dir`` defaults to ``$TTHC_REPORT_DIR``, else ``<repo>/var/reports``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from tthc.kpi import Period, ProvinceResolver, UnitConfig
from tthc.registry import REPO_ROOT, Registry

__all__ = ["ReportFiles", "build_quarterly_report", "default_report_dir"]

ENV_REPORT_DIR = "TTHC_REPORT_DIR"


def default_report_dir() -> Path:
    return Path(os.environ.get(ENV_REPORT_DIR) or REPO_ROOT / "var" / "reports")


@dataclass
class ReportFiles:
    folder: Path
    html: Path
    xlsx: Path
    charts: list[Path] = field(default_factory=list)
    agencies: list[Path] = field(default_factory=list)
    summary: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "folder": str(self.folder),
            "html": str(self.html),
            "xlsx": str(self.xlsx),
            "charts": [str(p) for p in self.charts],
            "agencies": [str(p) for p in self.agencies],
        }


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def build_quarterly_report(
    engine: Engine,
    period: Period | str,
    province_code: str,
    out_dir: str | Path | None = None,
    *,
    registry: Registry | None = None,
    recompute: bool = True,
    agencies: bool = True,
    units: UnitConfig | None = None,
    now: datetime | None = None,
) -> ReportFiles:
    """Write the report files for ``period`` (a quarter, or any :class:`~tthc.kpi.Period`).

    ``registry`` defaults to the cached source registry, ``units`` to ``config/units.yaml``;
    ``recompute=False`` reports the stored indicators as they are.
    """
    from tthc.kpi import load_unit_config
    from tthc.report.charts import build_charts
    from tthc.report.data import agency_months, load_report_data
    from tthc.report.html import render_html
    from tthc.report.text import summary_sentence
    from tthc.report.xlsx import write_xlsx

    p = Period.parse(period) if isinstance(period, str) else period
    if registry is None:
        from tthc.registry import cached_registry

        registry = cached_registry()
    resolver = ProvinceResolver(registry, units or load_unit_config())
    data = load_report_data(
        engine, p, province_code, registry=registry, resolver=resolver, recompute=recompute, now=now
    )
    folder = Path(out_dir or default_report_dir()) / p.code / _safe(province_code)
    (folder / "bieu-do").mkdir(parents=True, exist_ok=True)
    stem = f"bao-cao-{p.code}-{_safe(province_code)}"

    charts = build_charts(data)
    html = folder / f"{stem}.html"
    html.write_text(render_html(data, charts), encoding="utf-8")
    pngs = []
    for c in charts:
        png = folder / "bieu-do" / f"{c.key}.png"
        png.write_bytes(c.png)
        pngs.append(png)
    xlsx = write_xlsx(data, folder / f"{stem}.xlsx")

    agency_files = []
    if agencies and data.agencies:
        (folder / "co-quan").mkdir(exist_ok=True)
        for a in data.agencies:
            sub = data.for_agency(a, agency_months(engine, p, a.code, a.name))
            path = folder / "co-quan" / f"{_safe(a.code)}.html"
            path.write_text(render_html(sub, build_charts(sub)), encoding="utf-8")
            agency_files.append(path)
    return ReportFiles(folder, html, xlsx, pngs, agency_files, summary_sentence(data))
