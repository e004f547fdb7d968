from datetime import datetime, timedelta

from tthc.quality.batch_rules import freshness, volume_anomaly


def test_volume_anomaly_against_trailing_mean():
    usual = [100, 110, 90, 105, 95]
    assert volume_anomaly(100, usual)["failed"] == 0
    assert volume_anomaly(10, usual)["failed"] == 1  # an export that broke
    assert volume_anomaly(900, usual)["failed"] == 1  # a full re-send
    not_judged = volume_anomaly(0, [100, 100])  # too little history
    assert not_judged["evaluated"] == 0 and not_judged["failed"] == 0
    assert volume_anomaly(0, [2, 3, 1, 2])["failed"] == 0  # tiny sources are noisy: not judged


def test_freshness():
    end = datetime(2026, 11, 20, 1, 0)
    assert freshness(end - timedelta(hours=5), end)["failed"] == 0
    assert freshness(end - timedelta(days=4), end)["failed"] == 1
    assert freshness(None, end)["failed"] == 1
