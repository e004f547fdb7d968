"""Validate a batch of dossiers against the expectation suite and split it into publishable and
quarantined records.

The suite is a steward-readable GX 1.x suite file (``expectations/dossier.json``): every expectation
carries ``meta.rule_id``, ``meta.severity`` (``critical`` quarantines the record, ``warning`` only
reports) and ``meta.description_vi``. Several expectations may share one rule id (e.g. the two ways a
status can be unknown); rule statistics are per rule id.

Personal data: GX sees only the columns the suite refers to, its result keeps row identifiers only
(dossier code + batch row number, never values), no Data Docs site is configured, and exception
texts from GX are dropped (they can quote values). Logs carry counts only.

``great_expectations`` is imported lazily by :func:`validate_dossiers` (4-8 s, ~230 MB); importing
this module is cheap.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import pandas as pd

from tthc.model import DATETIME_FIELDS, SCALAR_FIELDS, Dossier
from tthc.paths import REPO_ROOT

if TYPE_CHECKING:  # pragma: no cover
    from great_expectations.core import ExpectationSuiteValidationResult

logger = logging.getLogger(__name__)

SEVERITIES = ("critical", "warning")
ROW_COLUMN = "_row"  # batch row number: identifies a record even when its code is missing or duplicated
KEY_COLUMN = "dossier_code"  # not personal data (recipes.md)
#: What GX keeps per failing row: identifiers only, never the offending values.
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [KEY_COLUMN, ROW_COLUMN],
    "exclude_unexpected_values": True,
    "partial_unexpected_count": 0,
    "return_unexpected_index_query": False,
    "include_unexpected_rows": False,
}
#: On SQL engines GX cuts the per-row index list to ``partial_unexpected_count`` even in COMPLETE mode
#: (a LIMIT in its query), so there ask for every row. Values stay excluded: identifiers only.
SQL_RESULT_FORMAT: dict[str, Any] = {**RESULT_FORMAT, "partial_unexpected_count": 2**31 - 1}
#: A field the source sent but the mapper could not parse (``Dossier.raw_issues``) → rule id.
#: An unparseable status is an unknown status (contracts.md); other fields get ``unparseable_<f>``.
RAW_ISSUE_RULES: dict[str, str] = {"status": "unknown_status"}
RAW_ISSUE_SEVERITY = "critical"
#: Rules computed here rather than by a GX expectation (a comparison no built-in expectation
#: makes across types); described in the suite's ``meta.extra_rules``: rule id → columns read.
EXTRA_RULE_COLUMNS: dict[str, tuple[str, ...]] = {
    "birth_date_in_future": ("applicant_birth_date", "received_at"),
}
_BIRTH_DATE_RE = r"[0-9]{4}(?:-[0-9]{2}-[0-9]{2})?"
_EXC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,80}")
INT_COLUMNS = (
    "status",
    "channel",
    "paid_online",
    "fee",
    "applicant_sex",
    "applicant_type",
    "applicant_id_type",
)


class QualityError(RuntimeError):
    """The suite is malformed or a rule could not be evaluated. Messages never carry data values."""


class RuleStat(TypedDict):
    """One rule's result (the warehouse's ``validation_results`` row)."""

    rule_id: str
    severity: str  # "critical" | "warning"
    evaluated: int  # records the rule looked at (non-null / in its row condition)
    failed: int  # distinct records that broke it (after suppression, see validate_dossiers)
    success: bool


class RecordIssue(TypedDict):
    """One rule broken by one record (the warehouse's ``dossier_issues`` row)."""

    dossier_key: str  # "<source_id>:<dossier_code>"; "<source_id>:#<row>" when the code is missing
    dossier_code: str  # the code, or "#<row>" (its batch row number) when it is missing
    rule_id: str
    severity: str
    row: int  # batch row number: tells apart records sharing one code


@dataclass
class ValidationOutcome:
    """What a validation run decided. Holds dossier codes and rule ids only: no personal data."""

    suite_name: str
    row_count: int
    rule_stats: list[RuleStat]
    record_issues: list[RecordIssue]
    # Code-keyed views: both records of a duplicate code land under the one code. A record without a
    # code (always quarantined: required_dossier_code) has no key here; see quarantined_rows.
    quarantined: dict[str, list[str]]  # dossier code → critical rule ids
    warnings: dict[str, list[str]]  # dossier code → warning rule ids
    valid_codes: list[str]  # codes of records without a critical issue (may carry warnings)
    quarantined_rows: list[int]  # batch row numbers of quarantined records (codes can repeat)
    gx_result: dict[str, Any] | None = field(default=None, repr=False)  # sanitised GX result JSON

    @property
    def success(self) -> bool:
        return not self.quarantined_rows

    def rule(self, rule_id: str) -> RuleStat | None:
        return next((s for s in self.rule_stats if s["rule_id"] == rule_id), None)

    def to_dict(self, *, include_gx_result: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "suite_name": self.suite_name,
            "row_count": self.row_count,
            "rule_stats": self.rule_stats,
            "record_issues": self.record_issues,
            "quarantined": self.quarantined,
            "warnings": self.warnings,
            "valid_codes": self.valid_codes,
            "quarantined_rows": self.quarantined_rows,
        }
        if include_gx_result:
            d["gx_result"] = self.gx_result
        return d

    def to_json(self, *, include_gx_result: bool = False) -> str:
        return json.dumps(self.to_dict(include_gx_result=include_gx_result), ensure_ascii=False, default=str)


# ---- the suite file ----------------------------------------------------------------------------
def default_suite_path() -> Path:
    """``$TTHC_EXPECTATIONS_DIR/dossier.json``, else ``expectations/dossier.json`` of the checkout."""
    base = os.environ.get("TTHC_EXPECTATIONS_DIR")
    root = Path(base) if base else REPO_ROOT / "expectations"
    return root / "dossier.json"


def load_suite_spec(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read and check a suite file (plain JSON, no GX import). Raises :class:`QualityError`."""
    p = Path(path) if path is not None else default_suite_path()
    try:
        spec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise QualityError(f"cannot read suite {p}: {exc}") from exc
    if not isinstance(spec, dict) or not spec.get("name") or not isinstance(spec.get("expectations"), list):
        raise QualityError(f"suite {p}: needs 'name' and a list of 'expectations'")
    for i, exp in enumerate(spec["expectations"]):
        meta = exp.get("meta") or {}
        where = f"suite {p}, expectation {i} ({exp.get('type')})"
        if not exp.get("type") or not isinstance(exp.get("kwargs"), dict):
            raise QualityError(f"{where}: needs 'type' and 'kwargs'")
        if not meta.get("rule_id"):
            raise QualityError(f"{where}: meta.rule_id missing")
        if meta.get("severity") not in SEVERITIES:
            raise QualityError(f"{where}: meta.severity must be one of {SEVERITIES}")
        if not meta.get("description_vi"):
            raise QualityError(f"{where}: meta.description_vi missing")
    severities: dict[str, str] = {}
    for exp in spec["expectations"]:
        rid, sev = exp["meta"]["rule_id"], exp["meta"]["severity"]
        if severities.setdefault(rid, sev) != sev:
            raise QualityError(f"suite {p}: rule {rid} has two severities")
    return spec


def suite_parameters(value: Any) -> set[str]:
    """Names of the ``{"$PARAMETER": name}`` placeholders in an expectation (or any JSON value)."""
    if isinstance(value, dict):
        if isinstance(value.get("$PARAMETER"), str):
            return {value["$PARAMETER"]}
        return set().union(*(suite_parameters(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(suite_parameters(v) for v in value))
    return set()


def _with_parameters(spec: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The suite without the expectations whose parameters this run does not give."""
    kept = [e for e in spec["expectations"] if suite_parameters(e["kwargs"]) <= set(params)]
    return {**spec, "expectations": kept}


def suite_rules(spec: dict[str, Any]) -> dict[str, str]:
    """rule id → severity, in suite order."""
    return {e["meta"]["rule_id"]: e["meta"]["severity"] for e in spec["expectations"]}


def suite_columns(spec: dict[str, Any]) -> list[str]:
    """Columns the suite reads (domains and row conditions): the only columns GX gets to see."""
    cols: dict[str, None] = {}

    def cond_cols(cond: Any) -> None:
        if isinstance(cond, dict):
            if isinstance(cond.get("column"), dict) and cond["column"].get("name"):
                cols[cond["column"]["name"]] = None
            for sub in cond.get("conditions") or ():
                cond_cols(sub)

    for exp in spec["expectations"]:
        kw = exp["kwargs"]
        for k in ("column", "column_A", "column_B"):
            if kw.get(k):
                cols[kw[k]] = None
        for c in kw.get("column_list") or ():
            cols[c] = None
        cond_cols(kw.get("row_condition"))
    return list(cols)


# ---- GX (lazy) ---------------------------------------------------------------------------------
def register_custom_expectations() -> None:
    """Import the custom expectations so GX knows their types (imports great_expectations)."""
    import tthc.quality.expectations  # noqa: F401


def _gx_suite(spec: dict[str, Any]):
    from great_expectations.core.expectation_suite import ExpectationSuite

    register_custom_expectations()
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    expectations = []
    for exp in spec["expectations"]:
        e = copy.deepcopy(exp)
        e["severity"] = e["meta"]["severity"]  # mirror ours into GX's own field
        expectations.append(e)
    return ExpectationSuite(name=f"{spec['name']}-{digest}", expectations=expectations, meta=spec.get("meta"))


_GX_CONFIGURED = False


def _configure_gx_once() -> None:
    """Switch off GX's batch fingerprint: an unkeyed MD5 over every value of an in-memory batch,
    stored in each result. For a small batch it lets anyone holding the result confirm a guessed
    CCCD (the reason :mod:`tthc.privacy` uses keyed hashes), and it costs ~5 s per million rows."""
    global _GX_CONFIGURED
    if _GX_CONFIGURED:
        return
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0  # "hash batches smaller than 0 bytes": never
    _GX_CONFIGURED = True


def _gx_context():
    """A fresh in-memory context: no Data Docs site, no progress bars, no analytics, no files, and
    nothing kept between runs (an ephemeral context stores every result it produced)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    _configure_gx_once()
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def run_gx(
    frame: pd.DataFrame, spec: dict[str, Any], context=None, parameters: Mapping[str, Any] | None = None
) -> ExpectationSuiteValidationResult:
    """Validate ``frame`` (prepared by :func:`prepare_frame`) with GX; returns GX's raw result."""
    import great_expectations as gx

    ctx = context if context is not None else _gx_context()
    suite = ctx.suites.add(_gx_suite(_with_parameters(spec, parameters or {})))
    batch_definition = (
        ctx.data_sources.add_pandas("tthc_dossiers")
        .add_dataframe_asset("dossiers")
        .add_batch_definition_whole_dataframe("batch")
    )
    vd = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.name}-validation", data=batch_definition, suite=suite)
    )
    return vd.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=dict(parameters) if parameters else None,
        result_format=RESULT_FORMAT,
    )


# ---- frames ------------------------------------------------------------------------------------
def prepare_frame(
    rows: pd.DataFrame | Sequence[Dossier | Mapping[str, Any]], columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The flat frame validation works on: ``Dossier.to_row()`` columns (missing ones added as null),
    datetimes as ``datetime64``, plus the batch row number. Never modifies ``rows``."""
    if isinstance(rows, pd.DataFrame):
        df = rows.reset_index(drop=True)
    else:
        df = pd.DataFrame.from_records([d if isinstance(d, Mapping) else d.to_row() for d in rows])
    wanted = list(dict.fromkeys([*SCALAR_FIELDS, "dossier_key", "raw_issue_fields", *(columns or ())]))
    if columns is not None:
        wanted = list(dict.fromkeys(["source_id", KEY_COLUMN, "dossier_key", "raw_issue_fields", *columns]))
    out = {}
    n = len(df)
    for c in wanted:
        s = df[c] if c in df.columns else pd.Series([None] * n, dtype=object, index=df.index)
        if c in DATETIME_FIELDS and not pd.api.types.is_datetime64_any_dtype(s.dtype):
            s = pd.to_datetime(s, errors="coerce")
        elif c in INT_COLUMNS and s.dtype == object:
            # keep unknown values (strings) as they are so in-set rules can report them
            s = _numeric_if_possible(s)
        out[c] = s
    frame = pd.DataFrame(out, index=pd.RangeIndex(n))
    frame[ROW_COLUMN] = np.arange(n, dtype=np.int64)
    return frame


def _numeric_if_possible(s: pd.Series) -> pd.Series:
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().sum() == s.notna().sum():
        return num
    return s


# ---- the entry point ---------------------------------------------------------------------------
def validate_dossiers(
    rows: pd.DataFrame | Sequence[Dossier | Mapping[str, Any]],
    suite_path: str | os.PathLike[str] | None = None,
    *,
    known_agencies: Collection[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    keep_gx_result: bool = True,
) -> ValidationOutcome:
    """Validate a batch of dossiers (``Dossier`` objects, or ``Dossier.to_row()`` rows as dicts or
    a frame).

    Rules are GX expectations from the suite file, plus ``unparseable_<field>`` (critical) for every
    field in ``raw_issue_fields`` (an unparseable status is reported as ``unknown_status``). When a
    field is unparseable, ``required_<field>`` is not reported for the same record: one reason per
    defect. Duplicate codes quarantine every record sharing the code.

    Expectations with ``{"$PARAMETER": name}`` values run only when ``parameters`` gives ``name``;
    ``known_agencies`` (the registry's agency codes) is the ``known_agencies`` parameter.
    """
    params = dict(parameters or {})
    if known_agencies is not None:
        params["known_agencies"] = sorted(known_agencies)
    spec = _with_parameters(load_suite_spec(suite_path), params)
    rules = suite_rules(spec)
    extra = extra_rules(spec)
    frame = prepare_frame(rows, [*suite_columns(spec), *(c for r in extra for c in EXTRA_RULE_COLUMNS[r])])
    n = len(frame)

    issue_rows: list[np.ndarray] = []
    issue_rules: list[str] = []
    evaluated: dict[str, int] = {}
    gx_result: dict[str, Any] | None = None

    if n:
        gx_columns = {*suite_columns(spec), KEY_COLUMN, ROW_COLUMN, "source_id"}
        gx_frame = frame[[c for c in frame.columns if c in gx_columns]]
        result = run_gx(gx_frame, spec, parameters=params)
        if keep_gx_result:
            gx_result = _sanitise(result.to_json_dict())
        for r in result.results:
            rid = (r.expectation_config.meta or {}).get("rule_id")
            if rid is None:  # pragma: no cover - suite checked on load
                continue
            if (r.exception_info or {}).get("raised_exception"):
                name = _exception_name(r.exception_info)
                raise QualityError(f"rule {rid} could not be evaluated ({name})")
            res = r.result or {}
            ev = int(res.get("element_count") or 0) - int(res.get("missing_count") or 0)
            evaluated[rid] = max(evaluated.get(rid, 0), ev)
            for block in res.get("unexpected_index_list") or ():
                idx = np.asarray(block.get(ROW_COLUMN) or (), dtype=np.int64)
                if idx.size:
                    issue_rows.append(idx)
                    issue_rules.extend([rid] * idx.size)
    # unparseable fields (plain pandas: the mapper already did the parsing)
    raw = frame["raw_issue_fields"].dropna()
    raw = raw[raw.astype(str) != ""]
    raw_rules: dict[str, str] = {}
    if len(raw):
        exploded = raw.astype(str).str.split(",").explode().str.strip()
        exploded = exploded[exploded != ""]
        for fld, idx in exploded.groupby(exploded).groups.items():
            rid = RAW_ISSUE_RULES.get(fld, f"unparseable_{fld}")
            raw_rules.setdefault(rid, fld)
            rows_idx = np.asarray(idx, dtype=np.int64)  # the frame's index is the row number
            issue_rows.append(rows_idx)
            issue_rules.extend([rid] * len(rows_idx))
    for rid in raw_rules:
        rules.setdefault(rid, RAW_ISSUE_SEVERITY)
        evaluated[rid] = max(evaluated.get(rid, 0), n)
    # rules computed here (meta.extra_rules of the suite)
    for rid, severity in extra.items():
        judged, failed = EXTRA_RULE_CHECKS[rid](frame)
        rules[rid] = severity
        evaluated[rid] = int(judged.sum())
        idx = np.flatnonzero(failed)
        if idx.size:
            issue_rows.append(idx.astype(np.int64))
            issue_rules.extend([rid] * idx.size)

    issues = pd.DataFrame(
        {
            "row": np.concatenate(issue_rows) if issue_rows else np.empty(0, dtype=np.int64),
            "rule": pd.Series(issue_rules, dtype=object),
        }
    ).drop_duplicates()
    issues = _suppress_required(issues, raw_rules)
    issues["severity"] = issues["rule"].map(rules)
    issues = issues.sort_values(["row", "rule"], kind="stable").reset_index(drop=True)

    outcome = _assemble(spec["name"], frame, rules, evaluated, issues, gx_result)
    logger.info(
        "validated %d dossiers: %d quarantined, %d with warnings, %d rules failed",
        n,
        len(outcome.quarantined_rows),
        len(outcome.warnings),
        sum(1 for s in outcome.rule_stats if not s["success"]),
    )
    for s in outcome.rule_stats:
        if not s["success"]:
            logger.debug(
                "rule %s (%s): %d of %d records", s["rule_id"], s["severity"], s["failed"], s["evaluated"]
            )
    return outcome


def extra_rules(spec: dict[str, Any]) -> dict[str, str]:
    """rule id → severity of the suite's ``meta.extra_rules`` that this module computes."""
    out: dict[str, str] = {}
    for r in (spec.get("meta") or {}).get("extra_rules") or ():
        rid = r.get("rule_id")
        if rid in EXTRA_RULE_CHECKS:
            severity = r.get("severity")
            if severity not in SEVERITIES:
                raise QualityError(f"extra rule {rid}: severity must be one of {SEVERITIES}")
            out[rid] = severity
    return out


def birth_date_in_future(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(judged, failed) per row: a birth date (``YYYY-MM-DD`` or ``YYYY``) after the receipt date.

    ISO texts compare as dates: ``"2090" > "2026-10-20"``, while a year-only birth in the receipt's
    year (``"2026"`` < ``"2026-10-20"``) is not judged to be later. Other shapes are left to
    ``birth_date_format``; a missing receipt date to ``required_received_at``.
    """
    birth = frame["applicant_birth_date"].astype("string")
    received = pd.to_datetime(frame["received_at"], errors="coerce").dt.strftime("%Y-%m-%d")
    judged = (birth.str.fullmatch(_BIRTH_DATE_RE).fillna(False) & received.notna()).to_numpy(dtype=bool)
    failed = judged & (birth.fillna("").to_numpy(dtype=object) > received.fillna("").to_numpy(dtype=object))
    return judged, failed.astype(bool)


EXTRA_RULE_CHECKS = {"birth_date_in_future": birth_date_in_future}


def _suppress_required(issues: pd.DataFrame, raw_rules: dict[str, str]) -> pd.DataFrame:
    """Drop ``required_<f>`` where the same record has the more precise ``unparseable_<f>``."""
    for rid, fld in raw_rules.items():
        rows = issues.loc[issues["rule"] == rid, "row"]
        drop = (issues["rule"] == f"required_{fld}") & issues["row"].isin(rows)
        if drop.any():
            issues = issues[~drop]
    return issues


def _assemble(
    suite_name: str,
    frame: pd.DataFrame,
    rules: dict[str, str],
    evaluated: dict[str, int],
    issues: pd.DataFrame,
    gx_result: dict[str, Any] | None,
) -> ValidationOutcome:
    n = len(frame)
    codes = frame[KEY_COLUMN].to_numpy(dtype=object)
    sources = frame["source_id"].to_numpy(dtype=object)
    rows = issues["row"].to_numpy(dtype=np.int64)

    def code_ref(i: int) -> str:
        c = codes[i]
        return str(c) if _present(c) else f"#{i}"

    def record_ref(i: int) -> str:
        c = codes[i] if _present(codes[i]) else f"#{i}"
        return f"{sources[i]}:{c}" if _present(sources[i]) else str(c)

    failed = issues.groupby("rule")["row"].nunique().to_dict() if len(issues) else {}
    rule_stats = [
        RuleStat(
            rule_id=rid,
            severity=sev,
            evaluated=int(evaluated.get(rid, 0)),
            failed=int(failed.get(rid, 0)),
            success=failed.get(rid, 0) == 0,
        )
        for rid, sev in rules.items()
    ]
    record_issues = [
        RecordIssue(dossier_key=record_ref(i), dossier_code=code_ref(i), rule_id=r, severity=s, row=i)
        for i, r, s in zip(rows.tolist(), issues["rule"].tolist(), issues["severity"].tolist(), strict=True)
    ]
    quarantined: dict[str, set[str]] = {}
    warnings: dict[str, set[str]] = {}
    q_rows: set[int] = set()
    for i, r, s in zip(rows.tolist(), issues["rule"].tolist(), issues["severity"].tolist(), strict=True):
        if s == "critical":
            q_rows.add(i)
        if _present(codes[i]):  # a record without a code is only in quarantined_rows / record_issues
            (quarantined if s == "critical" else warnings).setdefault(str(codes[i]), set()).add(r)
    keep = np.ones(n, dtype=bool)
    if q_rows:
        keep[np.fromiter(q_rows, dtype=np.int64)] = False
    valid = pd.unique(pd.Series(codes[keep], dtype=object).dropna())
    return ValidationOutcome(
        suite_name=suite_name,
        row_count=n,
        rule_stats=rule_stats,
        record_issues=record_issues,
        quarantined={k: sorted(v) for k, v in sorted(quarantined.items())},
        warnings={k: sorted(v) for k, v in sorted(warnings.items())},
        valid_codes=sorted(str(c) for c in valid),
        quarantined_rows=sorted(q_rows),
        gx_result=gx_result,
    )


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and np.isnan(v)) and v is not pd.NA


def _sanitise(result: dict[str, Any]) -> dict[str, Any]:
    """Drop what could quote data values: exception texts and tracebacks."""
    for r in result.get("results", ()):
        info = r.get("exception_info")
        if isinstance(info, dict) and info.get("raised_exception"):
            r["exception_info"] = {
                "raised_exception": True,
                "type": _exception_name(info),
                "exception_message": None,
                "exception_traceback": None,
            }
    return result


def _exception_name(info: dict[str, Any]) -> str:
    """The exception's class name from a GX traceback, and nothing of its message."""
    last = (info.get("exception_traceback") or "").strip().splitlines()[-1:] or [""]
    name = last[0].split(":", 1)[0].strip()
    return name if _EXC_NAME.fullmatch(name) else "error"
