"""Vietnamese names the pages show next to codes: indicators, quality rules, agencies, classes.

Read from the project's own configuration (``config/indicators.yaml``, ``expectations/dossier.json``,
the source registry) and cached by file modification time, so an edited label shows without a
restart. Nothing here imports pandas or Great Expectations: this runs inside the API server.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from tthc.paths import REPO_ROOT

log = logging.getLogger(__name__)

INDICATORS_PATH = REPO_ROOT / "config" / "indicators.yaml"


@dataclass(frozen=True)
class Indicator:
    id: str
    label_vi: str
    kind: str  # "ratio" | "count"
    group: str | None
    group_label_vi: str | None


@dataclass(frozen=True)
class Rule:
    rule_id: str
    severity: str | None
    description_vi: str


#: Reconciliation classes (tthc.matching.MatchClass values) in display order.
MATCH_CLASS_LABELS: dict[str, str] = {
    "matched": "Khớp",
    "matched_normalised": "Khớp sau chuẩn hóa",
    "name_mismatch": "Sai họ tên",
    "birth_date_mismatch": "Sai ngày sinh",
    "not_found": "Không tìm thấy",
    "invalid_id": "Số định danh không hợp lệ",
    "lookup_failed": "Tra cứu lỗi",
}
PUBLISH_STATUS_LABELS: dict[str, str] = {
    "published": "Đã đồng bộ",
    "pending": "Chờ đồng bộ",
    "failed": "Lỗi đồng bộ",
}
OUTBOX_STATUS_LABELS: dict[str, str] = {
    "pending": "Chờ gửi",
    "sent": "Đã gửi",
    "confirmed": "Đã xác nhận",
    "failed": "Gửi lỗi",
}
RUN_STATUS_LABELS: dict[str, str] = {
    "running": "Đang chạy",
    "success": "Thành công",
    "failed": "Thất bại",
}
SEVERITY_LABELS: dict[str, str] = {"critical": "Nghiêm trọng", "warning": "Cảnh báo"}
STAGE_LABELS: dict[str, str] = {
    "extract": "Lấy dữ liệu",
    "validate": "Kiểm tra chất lượng",
    "reconcile": "Đối chiếu dân cư",
    "publish": "Đồng bộ Cổng DVCQG",
    "indicators": "Tính chỉ số",
}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


# ---- indicators ---------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _indicators(path: str, _mtime: float) -> dict[str, Indicator]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        log.exception("cannot read indicator labels from %s", path)
        return {}
    groups = data.get("groups") or {}
    out: dict[str, Indicator] = {}
    for item in data.get("indicators") or []:
        g = item.get("group")
        out[str(item["id"])] = Indicator(
            id=str(item["id"]),
            label_vi=str(item.get("label_vi") or item["id"]),
            kind=str(item.get("kind") or "count"),
            group=None if g is None else str(g),
            group_label_vi=(groups.get(g) or {}).get("label_vi") if g is not None else None,
        )
    return out


def indicators() -> dict[str, Indicator]:
    """Indicator id → label and kind, in the order of ``config/indicators.yaml``."""
    return _indicators(str(INDICATORS_PATH), _mtime(INDICATORS_PATH))


def indicator(indicator_id: str) -> Indicator:
    """The catalogue entry, or a stand-in for an id the configuration does not know."""
    found = indicators().get(indicator_id)
    if found is not None:
        return found
    kind = "ratio" if re.match(r"^\d", indicator_id) else "count"
    return Indicator(indicator_id, indicator_id, kind, None, None)


# ---- quality rules ------------------------------------------------------------------------------


def suite_path() -> Path:
    """Same lookup as tthc.quality.validate.default_suite_path (not imported: it pulls in pandas)."""
    base = os.environ.get("TTHC_EXPECTATIONS_DIR")
    return (Path(base) if base else REPO_ROOT / "expectations") / "dossier.json"


@lru_cache(maxsize=2)
def _rules(path: str, _mtime: float) -> tuple[dict[str, Rule], tuple[tuple[re.Pattern[str], Rule], ...]]:
    try:
        spec: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.exception("cannot read rule descriptions from %s", path)
        return {}, ()
    rules: dict[str, Rule] = {}
    for exp in spec.get("expectations") or []:
        meta = exp.get("meta") or {}
        rid = meta.get("rule_id")
        if rid and rid not in rules:  # several expectations may share a rule: the first describes it
            rules[rid] = Rule(rid, meta.get("severity"), str(meta.get("description_vi") or ""))
    patterns: list[tuple[re.Pattern[str], Rule]] = []
    for extra in (spec.get("meta") or {}).get("extra_rules") or []:
        rid = str(extra.get("rule_id") or "")
        if not rid:
            continue
        if "<" in rid:  # a templated id such as unparseable_<field>
            pat = re.compile("^" + ".+".join(re.escape(part) for part in re.split(r"<[^>]+>", rid)) + "$")
            patterns.append((pat, Rule(rid, extra.get("severity"), str(extra.get("description_vi") or ""))))
        else:
            rules.setdefault(rid, Rule(rid, extra.get("severity"), str(extra.get("description_vi") or "")))
    return rules, tuple(patterns)


def rule(rule_id: str) -> Rule:
    """The suite's description of a rule id (templated ids like ``unparseable_<field>`` included)."""
    p = suite_path()
    rules, patterns = _rules(str(p), _mtime(p))
    found = rules.get(rule_id)
    if found is not None:
        return found
    for pat, r in patterns:
        if pat.match(rule_id):
            return Rule(rule_id, r.severity, r.description_vi)
    return Rule(rule_id, None, "")


# ---- agencies and sources -----------------------------------------------------------------------


@lru_cache(maxsize=2)
def _names(path: str, _mtime: float) -> tuple[dict[str, str], dict[str, str]]:
    try:
        from tthc.registry import load_registry

        reg = load_registry(path)
    except Exception:  # a broken registry must not take the dashboard down
        log.warning("source registry %s unavailable: agency names are not shown", path, exc_info=True)
        return {}, {}
    agencies: dict[str, str] = {}
    sources: dict[str, str] = {}
    for s in reg.sources:
        sources[s.source_id] = s.agency_name
        agencies.setdefault(s.agency_code, s.agency_name)
        for a in s.agencies:
            agencies[a.code] = a.name
    return agencies, sources


def _registry_names() -> tuple[dict[str, str], dict[str, str]]:
    """(agency code → name, source id → name) from the source registry, cached by mtime."""
    from tthc.registry import registry_path

    p = registry_path()
    return _names(str(p), _mtime(p))


def agency_name(code: str | None) -> str:
    if not code:
        return "(không rõ đơn vị)"
    return _registry_names()[0].get(code, "")


def source_name(source_id: str | None) -> str:
    if not source_id:
        return ""
    return _registry_names()[1].get(source_id, "")


def scope_name(scope: str, code: str | None) -> str:
    """The readable name of an indicator scope code (agency / source); empty when unknown."""
    if scope == "agency":
        return agency_name(code)
    if scope == "source":
        return source_name(code)
    return ""
