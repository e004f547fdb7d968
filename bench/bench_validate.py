"""Benchmark: validate N synthetic dossier rows with the full suite; print rows/s and peak memory.

    python bench/bench_validate.py                 # 1,000,000 rows
    python bench/bench_validate.py --rows 200000 --defect-rate 0.02

Rows are synthesised with numpy/pandas (no sandbox): well-formed dossiers with consistent CCCDs,
plus a share of rows carrying one catalogue defect each, so the failure paths (per-record index
lists) are exercised too. The GX import (4-8 s) is timed separately from validation.
Peak memory is the process's maximum RSS (``resource.getrusage``), before and after validation.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import pandas as pd

from tthc.codes import CCCD_PROVINCE_PREFIXES, STATUS_TO_VENDOR

DEFECTS = (
    "cccd_format",
    "cccd_prefix",
    "cccd_birth_year",
    "cccd_sex",
    "due_before_receipt",
    "unknown_status",
    "duplicate_code",
    "missing_field",
    "cmnd_legacy",
)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _zfill(values: np.ndarray, width: int) -> pd.Series:
    return pd.Series(values).astype(str).str.zfill(width)


def synthesize(n: int, defect_rate: float = 0.01, seed: int = 7) -> tuple[pd.DataFrame, dict[str, int]]:
    """``n`` rows shaped like ``Dossier.to_row()``; returns the frame and the planted defect counts."""
    rng = np.random.default_rng(seed)
    n_sources, n_agencies = 4, 40
    source = rng.integers(0, n_sources, n)
    agency = rng.integers(0, n_agencies, n)
    agency_codes = np.array([f"000.{a % 10:02d}.{a:02d}.H{40 + a % 3}" for a in range(n_agencies)])
    base = np.datetime64("2025-01-01T07:00")
    received = base + rng.integers(0, 600 * 24 * 60, n).astype("timedelta64[m]")
    rec = pd.Series(received)
    ymd = (rec.dt.year % 100) * 10_000 + rec.dt.month * 100 + rec.dt.day
    code = (
        pd.Series(agency_codes[agency])
        + "-"
        + _zfill(ymd.to_numpy(), 6)
        + "-"
        + _zfill(np.arange(n) % 10_000_000, 7)
    )
    status = rng.integers(1, 11, n).astype(float)
    status_raw = pd.Series(status.astype(int)).map(STATUS_TO_VENDOR).astype(object)
    due = received + rng.integers(1, 60, n).astype("timedelta64[D]")
    done = status >= 9
    finished = np.where(
        done, received + rng.integers(0, 50, n).astype("timedelta64[D]"), np.datetime64("NaT")
    )
    returned = np.where(status == 10, finished + np.timedelta64(1, "D"), np.datetime64("NaT"))
    # consistent CCCDs: prefix, century/sex digit, two-digit year, six random digits
    sex = rng.integers(1, 3, n)
    year = rng.integers(1950, 2008, n)
    d4 = (sex - 1) + 2 * (year // 100 - 19)
    prefixes = np.array(sorted(CCCD_PROVINCE_PREFIXES))
    cccd = (
        pd.Series(prefixes[rng.integers(0, len(prefixes), n)])
        + pd.Series(d4).astype(str)
        + _zfill(year % 100, 2)
        + _zfill(rng.integers(0, 1_000_000, n), 6)
    )
    month = rng.integers(1, 13, n)
    day = rng.integers(1, 29, n)
    birth = pd.Series(year).astype(str) + "-" + _zfill(month, 2) + "-" + _zfill(day, 2)
    names = np.array(["Nguyễn Văn An", "Trần Thị Bình", "Lê Hoàng Cường", "Phạm Thị Dung", "Hoàng Văn Em"])
    df = pd.DataFrame(
        {
            "source_id": pd.Series(np.array(["s1", "s2", "s3", "s4"])[source]),
            "dossier_code": code.astype(object),
            "agency_code": pd.Series(agency_codes[agency]).astype(object),
            "procedure_code": ("1.00" + _zfill(rng.integers(0, 10_000, n), 4)).astype(object),
            "received_at": received,
            "updated_at": received + np.timedelta64(5, "m"),
            "status": status,
            "status_raw": status_raw,
            "channel": rng.integers(1, 4, n),
            "applicant_name": pd.Series(names[rng.integers(0, len(names), n)]).astype(object),
            "applicant_id_number": cccd.astype(object),
            "applicant_id_type": np.ones(n, dtype=np.int64),
            "applicant_birth_date": birth.astype(object),
            "applicant_sex": sex,
            "applicant_type": np.ones(n, dtype=np.int64),
            "due_at": due,
            "finished_at": finished,
            "returned_at": returned,
            "paid_online": rng.integers(0, 3, n),
            "fee": rng.choice([0, 25_000, 50_000, 100_000], n),
            "result_type": rng.choice(np.array(["paper", "electronic"], dtype=object), n),
            "raw_issue_fields": pd.Series([None] * n, dtype=object),
        }
    )
    # plant one defect on a share of rows
    counts: dict[str, int] = {}
    k = int(n * defect_rate)
    rows = rng.choice(n, size=k, replace=False)
    kinds = rng.integers(0, len(DEFECTS), k)
    for j, defect in enumerate(DEFECTS):
        idx = rows[kinds == j]
        counts[defect] = len(idx)
        if not len(idx):
            continue
        if defect == "cccd_format":
            df.loc[idx, "applicant_id_number"] = "12345678"
        elif defect == "cccd_prefix":
            df.loc[idx, "applicant_id_number"] = "999" + df.loc[idx, "applicant_id_number"].str.slice(3)
        elif defect == "cccd_birth_year":
            df.loc[idx, "applicant_birth_date"] = "1901-01-01"
        elif defect == "cccd_sex":
            df.loc[idx, "applicant_sex"] = 3 - df.loc[idx, "applicant_sex"]
        elif defect == "due_before_receipt":
            df.loc[idx, "due_at"] = df.loc[idx, "received_at"] - pd.Timedelta(days=3)
        elif defect == "unknown_status":
            df.loc[idx, "status"] = np.nan
            df.loc[idx, "status_raw"] = "archived"
        elif defect == "duplicate_code":
            # copy the code of the next row within the same source
            nxt = (idx + 1) % n
            df.loc[idx, "source_id"] = df.loc[nxt, "source_id"].to_numpy()
            df.loc[idx, "dossier_code"] = df.loc[nxt, "dossier_code"].to_numpy()
        elif defect == "missing_field":
            df.loc[idx, "applicant_name"] = None
        elif defect == "cmnd_legacy":
            df.loc[idx, "applicant_id_number"] = "123456789"
    df["dossier_key"] = df["source_id"] + ":" + df["dossier_code"]
    return df, counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--defect-rate", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--keep-gx-result", action="store_true", help="also keep GX's (sanitised) result JSON in the outcome"
    )
    args = ap.parse_args(argv)

    from tthc.quality.validate import register_custom_expectations, validate_dossiers

    t0 = time.perf_counter()
    frame, planted = synthesize(args.rows, args.defect_rate, args.seed)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    register_custom_expectations()  # imports great_expectations
    t_import = time.perf_counter() - t0
    rss_before = _maxrss_mb()

    t0 = time.perf_counter()
    outcome = validate_dossiers(frame, keep_gx_result=args.keep_gx_result)
    t_val = time.perf_counter() - t0
    rss_after = _maxrss_mb()

    failed = {s["rule_id"]: s["failed"] for s in outcome.rule_stats if s["failed"]}
    print(f"rows:                 {args.rows:,}  (defect rate {args.defect_rate:.1%}, planted {planted})")
    print(f"synthesis:            {t_gen:.2f} s")
    print(f"great_expectations:   import {t_import:.2f} s")
    print(f"validation:           {t_val:.2f} s  ->  {args.rows / t_val:,.0f} rows/s")
    n_exp = len(outcome.gx_result["results"]) if outcome.gx_result else "-"
    print(f"rules:                {len(outcome.rule_stats)} rule ids (GX expectations run: {n_exp})")
    print(
        f"quarantined records:  {len(outcome.quarantined_rows):,}; with warnings: {len(outcome.warnings):,}"
    )
    print(f"failed per rule:      {failed}")
    print(
        f"peak RSS:             {rss_after:,.0f} MB (before validation {rss_before:,.0f} MB, "
        f"+{rss_after - rss_before:,.0f} MB during validation)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
