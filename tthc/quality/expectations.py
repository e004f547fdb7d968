"""Custom Great Expectations (GX 1.x) expectations for dossier data.

Importing this module imports ``great_expectations`` (4-8 s) and registers the expectations and
their metrics with GX, so only :mod:`tthc.quality.validate` imports it, lazily, when a batch is
validated (see :func:`register`). Never import it at module level of a DAG file or of the package.

Every metric has a Pandas and a SQLAlchemy implementation (SQLite, PostgreSQL, MySQL/MariaDB).
The domain rules come from :mod:`tthc.codes` (domain.md §2-4); they are re-expressed here in
vectorised form because a per-row Python call costs seconds on a million rows.

Design: one rule id = one expectation configuration, so each rule is reported separately and per
record. The CCCD checks are split by a ``check`` parameter:

* :class:`ExpectColumnValuesToBeValidCccd` (single column): ``check="format"`` (12 digits, or 9 for a
  CMND when ``allow_cmnd``), ``check="prefix"`` (a 12-digit number's province prefix is in the legacy
  list) or ``check="valid"`` (both).
* :class:`ExpectColumnPairValuesToBeConsistentWithCccd` (the number and one applicant column):
  ``check="birth_year"`` or ``check="sex"``. Numbers that fail format/prefix are not judged here,
  so one bad number yields one reason.

The other custom expectations cover the dossier code (format; its date part vs the receipt date)
and day distances between two datetimes (due date not before receipt; implausible durations).
All "can't judge" cases (null, malformed input belonging to another rule) count as *expected*.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.compatibility.sqlalchemy import sqlalchemy as sa
from great_expectations.execution_engine import PandasExecutionEngine, SqlAlchemyExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation, ColumnPairMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
)
from great_expectations.expectations.metrics.util import get_dialect_regex_expression

from tthc.codes import CCCD_PROVINCE_PREFIXES, DOSSIER_CODE_RE

logger = logging.getLogger(__name__)

#: The permissive dossier-code pattern of domain.md §2 (Thông tư 01/2018 and observed variants).
DOSSIER_CODE_PATTERN = DOSSIER_CODE_RE.pattern.replace(r"\d", "[0-9]")
# ASCII digits only: Python's and ICU's \d also match other scripts' digits.
_CCCD12 = "^[0-9]{12}$"
_CCCD12_OR_CMND9 = "^([0-9]{12}|[0-9]{9})$"
_YEAR_PREFIX = "^[0-9]{4}"
_DEFAULT_PREFIXES: tuple[str, ...] = tuple(sorted(CCCD_PROVINCE_PREFIXES))

_CHECK_CCCD = Literal["format", "prefix", "valid"]
_CHECK_CONSISTENCY = Literal["birth_year", "sex"]
_IGNORE_ROW_IF = Literal["both_values_are_missing", "either_value_is_missing", "neither"]


# ---- vectorised helpers (pandas) -------------------------------------------------------------
# pandas' string methods on object columns call Python per value (about 1 s per million values and
# pass); the CCCD checks run four times over the same column, so they work on numpy code points.
def _as_str(s: pd.Series) -> pd.Series:
    """A string view of a column; nulls stay null (``astype(str)`` would turn them into "None")."""
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        return s
    return s.astype("string")


def _fullmatch(s: pd.Series, pattern: str) -> np.ndarray:
    """Boolean array: value fully matches ``pattern`` (null → False)."""
    pat = pattern.removeprefix("^").removesuffix("$")
    return _as_str(s).str.fullmatch(pat).fillna(False).to_numpy(dtype=bool)


def _codepoints(s: pd.Series, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(length capped at ``width + 1``, code points of the first ``width`` characters) per value.

    Values are truncated to ``width + 1`` characters first, so a garbage value cannot blow up memory;
    a length of ``width + 1`` means "longer than ``width``". Nulls become "None"/"nan": never digits.
    """
    u = np.asarray(s.to_numpy(dtype=object), dtype=f"U{width + 1}")
    lengths = np.strings.str_len(u)
    cps = u.view(np.uint32).reshape(len(u), width + 1)[:, :width]
    return lengths, cps


class _Cccd(NamedTuple):
    is12: np.ndarray  # exactly 12 ASCII digits
    is9: np.ndarray  # exactly 9 ASCII digits (a CMND)
    known_prefix: np.ndarray  # is12 and the first three digits are a legacy province code
    d4: np.ndarray  # century/sex digit (valid where is12)
    yy: np.ndarray  # two-digit birth year (valid where is12)


def _decode_cccd(s: pd.Series, prefixes: Sequence[str]) -> _Cccd:
    lengths, cps = _codepoints(s, 12)
    digits = cps.astype(np.int32) - 48
    is_digit = (digits >= 0) & (digits <= 9)
    is12 = (lengths == 12) & is_digit.all(axis=1)
    is9 = (lengths == 9) & is_digit[:, :9].all(axis=1)
    d = np.where(is_digit[:, :6], digits[:, :6], 0)
    table = np.zeros(1000, dtype=bool)
    table[[int(p) for p in prefixes if len(p) == 3 and p.isdigit()]] = True
    prefix = d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]
    return _Cccd(is12, is9, is12 & table[prefix], d[:, 3], d[:, 4] * 10 + d[:, 5])


def _birth_years(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(has a 4-digit year prefix, that year) of "YYYY[-MM-DD]" values (or dates: str() is ISO)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        ok = s.notna().to_numpy()
        return ok, np.where(ok, s.dt.year.fillna(0).to_numpy(dtype=np.int64), 0)
    lengths, cps = _codepoints(s, 4)
    digits = cps.astype(np.int64) - 48
    ok = (lengths >= 4) & ((digits >= 0) & (digits <= 9)).all(axis=1)
    year = np.where(ok, digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3], 0)
    return ok, year


_CODE_DATE_RE = re.compile(r"[A-Z0-9.]+-([0-9]{6}|[0-9]{8})-[0-9]{4,7}")


def _code_dates(s: pd.Series) -> np.ndarray:
    """The date part of a dossier code as an int YYYYMMDD (YYMMDD read as 20YY), 0 when not judged."""

    def one(code: Any) -> int:
        m = _CODE_DATE_RE.fullmatch(code) if isinstance(code, str) else None
        if m is None:
            return 0
        d = m.group(1)
        return 20_000_000 + int(d) if len(d) == 6 else int(d)

    return np.fromiter(map(one, s.to_numpy(dtype=object)), dtype=np.int64, count=len(s))


def _datetimes(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s
    return pd.to_datetime(s, errors="coerce")


def _series(values: np.ndarray, like: pd.Series) -> pd.Series:
    return pd.Series(values, index=like.index, dtype=bool)


# ---- SQL helpers -------------------------------------------------------------------------------
def _sql_regex(column: Any, pattern: str, dialect: Any) -> Any:
    expr = get_dialect_regex_expression(column, pattern, dialect)
    if expr is None:
        raise NotImplementedError("regular expressions are not supported by this SQL dialect")
    return expr


def _dialect_name(kwargs: dict[str, Any]) -> str:
    engine = kwargs.get("_sqlalchemy_engine")
    return getattr(getattr(engine, "dialect", None), "name", "") or ""


def _concat(*parts: Any) -> Any:
    """String concatenation that every dialect renders right (``||`` or ``concat()``)."""
    typed = [sa.literal(p, sa.String) if isinstance(p, str) else sa.cast(p, sa.String) for p in parts]
    out = typed[0]
    for p in typed[1:]:
        out = out + p
    return out


def _sql_cccd12_ok(column: Any, prefixes: list[str], dialect: Any) -> Any:
    return sa.and_(_sql_regex(column, _CCCD12, dialect), sa.func.substr(column, 1, 3).in_(prefixes))


# ---- metrics -----------------------------------------------------------------------------------
class ColumnValuesValidCccd(ColumnMapMetricProvider):
    """Row condition: the value is a well-formed CCCD (or CMND) per ``check``."""

    condition_metric_name = "column_values.tthc_valid_cccd"
    condition_value_keys = ("check", "allow_cmnd", "prefixes")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, check="valid", allow_cmnd=True, prefixes=None, **kwargs):
        c = _decode_cccd(column, prefixes or _DEFAULT_PREFIXES)
        fmt = c.is12 | c.is9 if allow_cmnd else c.is12
        prefix_ok = ~c.is12 | c.known_prefix
        if check == "format":
            return _series(fmt, column)
        if check == "prefix":
            return _series(prefix_ok, column)
        return _series(fmt & prefix_ok, column)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, check="valid", allow_cmnd=True, prefixes=None, _dialect=None, **kwargs):
        prefixes = list(prefixes or _DEFAULT_PREFIXES)
        fmt = _sql_regex(column, _CCCD12_OR_CMND9 if allow_cmnd else _CCCD12, _dialect)
        prefix_ok = sa.or_(
            sa.not_(_sql_regex(column, _CCCD12, _dialect)), sa.func.substr(column, 1, 3).in_(prefixes)
        )
        if check == "format":
            return fmt
        if check == "prefix":
            return prefix_ok
        return sa.and_(fmt, prefix_ok)


class ColumnValuesDossierCode(ColumnMapMetricProvider):
    """Row condition: the value is a dossier code (mã hồ sơ) per ``regex``."""

    condition_metric_name = "column_values.tthc_dossier_code"
    condition_value_keys = ("regex",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, regex=None, **kwargs):
        return _series(_fullmatch(column, regex or DOSSIER_CODE_PATTERN), column)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, regex=None, _dialect=None, **kwargs):
        return _sql_regex(column, regex or DOSSIER_CODE_PATTERN, _dialect)


class ColumnPairCccdConsistent(ColumnPairMapMetricProvider):
    """Row condition: a decodable CCCD (column A) agrees with the applicant's birth year / sex (B)."""

    condition_metric_name = "column_pair_values.tthc_cccd_consistent"
    condition_domain_keys = (
        "batch_id",
        "table",
        "column_A",
        "column_B",
        "row_condition",
        "condition_parser",
        "ignore_row_if",
    )
    condition_value_keys = ("check", "prefixes")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, check="birth_year", prefixes=None, **kwargs):
        c = _decode_cccd(column_A, prefixes or _DEFAULT_PREFIXES)
        if check == "sex":
            sex = pd.to_numeric(column_B, errors="coerce").to_numpy(dtype=float)
            judged = c.known_prefix & np.isin(sex, (1.0, 2.0))
            expected_sex = np.where(c.d4 % 2 == 0, 1.0, 2.0)
            return _series(~judged | (expected_sex == sex), column_A)
        has_year, year = _birth_years(column_B)
        judged = c.known_prefix & has_year
        decoded = 1900 + 100 * (c.d4 // 2) + c.yy
        return _series(~judged | (decoded == year), column_A)

    @column_pair_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column_A, column_B, check="birth_year", prefixes=None, _dialect=None, **kwargs):
        ok12 = _sql_cccd12_ok(column_A, list(prefixes or _DEFAULT_PREFIXES), _dialect)
        d4 = sa.func.substr(column_A, 4, 1)
        if check == "sex":
            expected = sa.case((d4.in_(["0", "2", "4", "6", "8"]), 1), else_=2)
            return sa.or_(sa.not_(ok12), sa.not_(column_B.in_([1, 2])), expected == column_B)
        birth = sa.cast(column_B, sa.String)
        has_year = _sql_regex(birth, _YEAR_PREFIX, _dialect)
        century = sa.case(
            (d4.in_(["0", "1"]), 1900),
            (d4.in_(["2", "3"]), 2000),
            (d4.in_(["4", "5"]), 2100),
            (d4.in_(["6", "7"]), 2200),
            else_=2300,
        )
        # CASE guards the casts: SQL does not promise to short-circuit OR.
        decoded = sa.case((ok12, century + sa.cast(sa.func.substr(column_A, 5, 2), sa.Integer)), else_=None)
        recorded = sa.case((has_year, sa.cast(sa.func.substr(birth, 1, 4), sa.Integer)), else_=None)
        return sa.or_(sa.not_(ok12), sa.not_(has_year), decoded == recorded)


class ColumnPairCodeDateMatchesReceipt(ColumnPairMapMetricProvider):
    """Row condition: the date part of a dossier code (A) is the receipt date (B)."""

    condition_metric_name = "column_pair_values.tthc_code_date_matches_receipt"
    condition_domain_keys = ColumnPairCccdConsistent.condition_domain_keys
    condition_value_keys = ()

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, **kwargs):
        code_date = _code_dates(column_A)
        rec = _datetimes(column_B).dt
        receipt = (rec.year * 10_000 + rec.month * 100 + rec.day).fillna(0).to_numpy(dtype=np.int64)
        judged = (code_date > 0) & (receipt > 0)
        return _series(~judged | (code_date == receipt), column_A)

    @column_pair_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column_A, column_B, _dialect=None, **kwargs):
        name = _dialect_name(kwargs)
        if name == "sqlite":
            ymd = sa.func.strftime("%Y%m%d", column_B)
        elif name == "postgresql":
            ymd = sa.func.to_char(column_B, "YYYYMMDD")
        elif name in ("mysql", "mariadb"):
            ymd = sa.func.date_format(column_B, "%Y%m%d")
        else:
            raise NotImplementedError("date formatting is not implemented for this SQL dialect")
        yymmdd = sa.func.substr(ymd, 3, 6)
        return sa.or_(
            sa.not_(_sql_regex(column_A, DOSSIER_CODE_PATTERN, _dialect)),
            _sql_regex(column_A, "^[A-Z0-9.]+-[0-9]{7}-", _dialect),  # 7 digits: not a date, not judged
            column_A.like(_concat("%-", ymd, "-%")),
            column_A.like(_concat("%-", yymmdd, "-%")),
        )


class ColumnPairDaysApartBetween(ColumnPairMapMetricProvider):
    """Row condition: ``date(B) - date(A)`` in days lies within [min_days, max_days]."""

    condition_metric_name = "column_pair_values.tthc_days_apart_between"
    condition_domain_keys = ColumnPairCccdConsistent.condition_domain_keys
    condition_value_keys = ("min_days", "max_days")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, min_days=None, max_days=None, **kwargs):
        start = _datetimes(column_A).dt.normalize()
        end = _datetimes(column_B).dt.normalize()
        days = (end - start).dt.days.to_numpy(dtype=float)  # NaN where either is missing
        ok = np.ones(len(days), dtype=bool)
        if min_days is not None:
            ok &= ~(days < min_days)
        if max_days is not None:
            ok &= ~(days > max_days)
        return _series(ok, column_A)

    @column_pair_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column_A, column_B, min_days=None, max_days=None, _dialect=None, **kwargs):
        name = _dialect_name(kwargs)
        if name == "sqlite":
            days = sa.func.julianday(sa.func.date(column_B)) - sa.func.julianday(sa.func.date(column_A))
        elif name == "postgresql":
            days = sa.cast(column_B, sa.Date) - sa.cast(column_A, sa.Date)
        elif name in ("mysql", "mariadb"):
            days = sa.func.datediff(column_B, column_A)
        else:
            raise NotImplementedError("date arithmetic is not implemented for this SQL dialect")
        conds = [sa.true()]
        if min_days is not None:
            conds.append(days >= min_days)
        if max_days is not None:
            conds.append(days <= max_days)
        return sa.and_(*conds)


# ---- expectations ------------------------------------------------------------------------------
_LIBRARY_METADATA: dict[str, Any] = {
    "maturity": "experimental",
    "tags": ["tthc", "vietnam"],
    "contributors": ["tthc-sync"],
    "requirements": [],
}


class ExpectColumnValuesToBeValidCccd(ColumnMapExpectation):
    """Expect applicant ID numbers to be CCCDs (12 digits, known province prefix) or 9-digit CMNDs.

    ``check``: ``format`` (digits and length only), ``prefix`` (12-digit numbers whose first three
    digits are not a legacy birth-registration code; other shapes are left to ``format``) or ``valid``
    (both). A 9-digit CMND is a different identifier type, not an invalid CCCD, unless
    ``allow_cmnd`` is false. Nulls are not judged (a required-field rule covers them).
    """

    check: _CHECK_CCCD = "valid"
    allow_cmnd: bool = True
    prefixes: list[str] | None = pydantic.Field(
        default=None, description="Valid 3-digit prefixes; default: the legacy 63-province list."
    )

    map_metric = "column_values.tthc_valid_cccd"
    success_keys = ("check", "allow_cmnd", "prefixes", "mostly")
    args_keys = ("column", "check")
    library_metadata: ClassVar[dict[str, Any]] = _LIBRARY_METADATA


class ExpectColumnValuesToMatchDossierCode(ColumnMapExpectation):
    """Expect dossier codes of the form ``<agency id>-<YYMMDD|YYYYMMDD>-<sequence>`` (domain.md §2).

    ``regex`` defaults to the permissive pattern that also accepts ministry and post-2025 variants.
    Nulls are not judged (a required-field rule covers them).
    """

    regex: str = pydantic.Field(default=DOSSIER_CODE_PATTERN, description="Full-match pattern.")

    map_metric = "column_values.tthc_dossier_code"
    success_keys = ("regex", "mostly")
    args_keys = ("column", "regex")
    library_metadata: ClassVar[dict[str, Any]] = _LIBRARY_METADATA


class ExpectColumnPairValuesToBeConsistentWithCccd(ColumnPairMapExpectation):
    """Expect a CCCD (``column_A``) to agree with the applicant's birth year or sex (``column_B``).

    ``check="birth_year"``: digits 4-6 give the birth year (1900 + 100*floor(d4/2) + YY); column B is a
    "YYYY[-MM-DD]" birth date. ``check="sex"``: digit 4 even = male (1), odd = female (2); column B is 1/2.
    Numbers that are not 12 digits with a known prefix, and unusable B values, are not judged.
    """

    check: _CHECK_CONSISTENCY
    prefixes: list[str] | None = None
    ignore_row_if: _IGNORE_ROW_IF = "either_value_is_missing"

    map_metric = "column_pair_values.tthc_cccd_consistent"
    success_keys = ("check", "prefixes", "ignore_row_if", "mostly")
    args_keys = ("column_A", "column_B", "check")
    library_metadata: ClassVar[dict[str, Any]] = _LIBRARY_METADATA


class ExpectColumnPairDossierCodeDateToMatchReceipt(ColumnPairMapExpectation):
    """Expect the date part of a dossier code (``column_A``) to equal the receipt date (``column_B``).

    Codes that are not well formed, or whose date part is not 6/8 digits, are not judged here.
    """

    ignore_row_if: _IGNORE_ROW_IF = "either_value_is_missing"

    map_metric = "column_pair_values.tthc_code_date_matches_receipt"
    success_keys = ("ignore_row_if", "mostly")
    args_keys = ("column_A", "column_B")
    library_metadata: ClassVar[dict[str, Any]] = _LIBRARY_METADATA


class ExpectColumnPairValuesDaysApartToBeBetween(ColumnPairMapExpectation):
    """Expect ``date(column_B) - date(column_A)`` (whole days) to lie within [min_days, max_days].

    Compared by date, not time, as the portal's vendors do (domain.md §6). Either bound may be omitted.
    """

    min_days: int | None = None
    max_days: int | None = None
    ignore_row_if: _IGNORE_ROW_IF = "either_value_is_missing"

    map_metric = "column_pair_values.tthc_days_apart_between"
    success_keys = ("min_days", "max_days", "ignore_row_if", "mostly")
    args_keys = ("column_A", "column_B", "min_days", "max_days")
    library_metadata: ClassVar[dict[str, Any]] = _LIBRARY_METADATA


CUSTOM_EXPECTATIONS = (
    ExpectColumnValuesToBeValidCccd,
    ExpectColumnValuesToMatchDossierCode,
    ExpectColumnPairValuesToBeConsistentWithCccd,
    ExpectColumnPairDossierCodeDateToMatchReceipt,
    ExpectColumnPairValuesDaysApartToBeBetween,
)
