"""Source-level rules that no per-record expectation can express: volume anomaly and freshness.

Both are warnings: a night with far fewer (or far more) dossiers than usual, or a source whose
newest change is old, usually means an export or a sync broke upstream — the stewards should look,
but nothing is held back. They are stored in ``validation_results`` beside the suite's rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import mean


@dataclass(frozen=True)
class BatchRuleConfig:
    #: how many previous successful nights form the trailing mean
    volume_window: int = 7
    #: tonight below ``low`` × mean or above ``high`` × mean is an anomaly
    volume_low: float = 0.2
    volume_high: float = 5.0
    #: the trailing mean must be at least this before the rule judges (small sources are noisy)
    volume_min_mean: float = 10.0
    #: the newest change the source has sent must be at most this old at the end of the window
    freshness_hours: float = 72.0


DESCRIPTIONS_VI = {
    "volume_anomaly": "Số hồ sơ đồng bộ trong đêm chênh lệch bất thường so với trung bình các đêm trước.",
    "freshness": "Hệ thống nguồn không có hồ sơ nào được cập nhật trong thời gian quy định: có thể việc "
    "đồng bộ hoặc kết xuất dữ liệu ở nguồn đã dừng.",
}


def volume_anomaly(tonight: int, previous: list[int], cfg: BatchRuleConfig = BatchRuleConfig()) -> dict:
    """Rule row for tonight's pulled count against the trailing mean of previous nights."""
    window = previous[-cfg.volume_window :]
    judged = len(window) >= 3 and mean(window) >= cfg.volume_min_mean
    failed = judged and not (cfg.volume_low * mean(window) <= tonight <= cfg.volume_high * mean(window))
    return _row("volume_anomaly", judged, failed)


def freshness(
    newest_update: datetime | None, window_end: datetime, cfg: BatchRuleConfig = BatchRuleConfig()
) -> dict:
    """Rule row: is the newest change the source ever sent recent enough?"""
    failed = newest_update is None or window_end - newest_update > timedelta(hours=cfg.freshness_hours)
    return _row("freshness", True, failed)


def _row(rule_id: str, judged: bool, failed: bool) -> dict:
    return {
        "rule_id": rule_id,
        "severity": "warning",
        "evaluated": 1 if judged else 0,
        "failed": 1 if failed else 0,
        "success": not failed,
    }
