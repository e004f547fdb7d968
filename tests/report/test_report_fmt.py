"""Vietnamese number formatting and the seed-article sentence."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tthc.kpi import Period
from tthc.report.data import Figures, ReportData
from tthc.report.fmt import fmt_decimal, fmt_int, fmt_pct, share
from tthc.report.text import figure_sentences, summary_sentence


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (27, "27"),
        (999, "999"),
        (1000, "1.000"),
        (8700, "8.700"),
        (177206, "177.206"),
        (1234567, "1.234.567"),
        (-4500, "-4.500"),
        (None, "—"),
    ],
)
def test_fmt_int(value, text):
    assert fmt_int(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.886, "88,6%"),
        (27 / 7700, "0,4%"),
        (0.9973, "99,7%"),
        (1, "100,0%"),
        (0, "0,0%"),
        (0.00049, "0,0%"),
        (0.0005, "0,1%"),
        (0.15455, "15,5%"),
        (None, "—"),
    ],
)
def test_fmt_pct(value, text):
    assert fmt_pct(value) == text


def test_fmt_decimal_and_share():
    assert fmt_decimal(1234.567, 2) == "1.234,57"
    assert fmt_decimal(0.25, 1) == "0,3"  # half-up, not half-even
    assert fmt_pct(0.5, 0) == "50%"
    assert share(1, 0) is None and share(1, 4) == 0.25


def _figures(**counts) -> Figures:
    rows = {}
    for k, v in counts.items():
        if isinstance(v, tuple):
            rows[k] = {"numerator": v[0], "denominator": v[1], "value": v[0] / v[1] if v[1] else None}
        else:
            rows[k] = {"numerator": v, "denominator": None, "value": v}
    return Figures("H40", "tỉnh Nghệ An", rows)


def _data(f: Figures) -> ReportData:
    return ReportData(
        period=Period.parse("2026Q3"),
        province_code="H40",
        province_title="tỉnh Nghệ An",
        subject="tỉnh",
        province=f,
        agencies=[],
        months=[],
        labels={},
        score={"points": None},
        as_of=date(2026, 9, 30),
        generated_at=datetime(2026, 10, 1, 6, 0),
    )


def test_seed_style_sentence():
    f = _figures(
        received=8700,
        resolved=7710,
        resolved_early=6654,
        resolved_on_time=1029,
        resolved_overdue=27,
        open_in_time=950,
        open_overdue=12,
        withdrawn=28,
        channel_online=4800,
        channel_postal=120,
        **{
            "2.1_on_time": (8633, 8672),
            "3.3_online": (4800, 8700),
            "3.6_online_payment": (1545, 10000),
            "4.1_digitised_results": (970, 1000),
            "4.2_digitised_components": (8000, 8700),
            "4.3_reuse": (1200, 8700),
            "4.5b_population_db": (6000, 8700),
            "1.4_sync_rate": (6029, 8700),
        },
    )
    assert summary_sentence(_data(f)) == (
        "Trong quý III/2026, tỉnh tiếp nhận 8.700 hồ sơ, đã giải quyết 7.710 hồ sơ (88,6%), "
        "trong đó trả trước hạn 6.654 hồ sơ (86,3%), đúng hạn 1.029 hồ sơ (13,3%), quá hạn 27 hồ sơ (0,4%); "
        "đang giải quyết 962 hồ sơ, trong đó còn trong hạn 950 hồ sơ, đã quá hạn 12 hồ sơ; "
        "công dân rút 28 hồ sơ."
    )
    others = " ".join(figure_sentences(_data(f)))
    assert "thanh toán trực tuyến đạt 15,5% (1.545/10.000 hồ sơ có phí, lệ phí)" in others
    assert "công khai, đồng bộ trên Cổng Dịch vụ công quốc gia 69,3%" in others
    assert "tiếp nhận trực tuyến đạt 55,2% (4.800 hồ sơ)" in others


def test_sentence_without_dossiers():
    assert summary_sentence(_data(_figures(received=0))) == (
        "Trong quý III/2026, tỉnh chưa tiếp nhận hồ sơ nào (theo dữ liệu đã đồng bộ)."
    )
    assert figure_sentences(_data(_figures(received=0))) == []
