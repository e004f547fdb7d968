"""The report's sentences, phrased the way provincial reports quote their figures.

"Trong quý III/2026, tỉnh tiếp nhận 8.700 hồ sơ, đã giải quyết 7.700 hồ sơ (88,6%), trong đó trả
trước hạn 6.645 hồ sơ (86,3%), đúng hạn 1.028 hồ sơ (13,4%), quá hạn 27 hồ sơ (0,4%); …"

As in the seed articles the resolved share is of the dossiers received, and the early / on-time /
overdue shares are of the dossiers resolved.
"""

from __future__ import annotations

from tthc.report.data import Figures, ReportData
from tthc.report.fmt import fmt_int, fmt_pct, share

__all__ = ["figure_sentences", "summary_sentence"]


def _n(count: int) -> str:
    return f"{fmt_int(count)} hồ sơ"


def summary_sentence(data: ReportData, f: Figures | None = None) -> str:
    """The headline sentence: received, resolved (early / on time / overdue), still open."""
    f = f or data.province
    who = data.subject
    head = f"Trong {data.period.label_vi}, {who}"
    if f.received == 0:
        return f"{head} chưa tiếp nhận hồ sơ nào (theo dữ liệu đã đồng bộ)."
    resolved = f.resolved
    parts = [f"{head} tiếp nhận {_n(f.received)}"]
    if resolved:
        early, on_time, overdue = (
            f.count("resolved_early"),
            f.count("resolved_on_time"),
            f.count("resolved_overdue"),
        )
        parts.append(
            f"đã giải quyết {_n(resolved)} ({fmt_pct(share(resolved, f.received))}), trong đó "
            f"trả trước hạn {_n(early)} ({fmt_pct(share(early, resolved))}), "
            f"đúng hạn {_n(on_time)} ({fmt_pct(share(on_time, resolved))}), "
            f"quá hạn {_n(overdue)} ({fmt_pct(share(overdue, resolved))})"
        )
    else:
        parts.append("chưa giải quyết xong hồ sơ nào")
    text = ", ".join(parts)
    if f.open:
        text += (
            f"; đang giải quyết {_n(f.open)}, trong đó còn trong hạn {_n(f.count('open_in_time'))}, "
            f"đã quá hạn {_n(f.count('open_overdue'))}"
        )
    if f.count("withdrawn"):
        text += f"; công dân rút {_n(f.count('withdrawn'))}"
    return text + "."


def figure_sentences(data: ReportData, f: Figures | None = None) -> list[str]:
    """The other figures the articles quote: on-time rate, online, payment, digitisation, portal."""
    f = f or data.province
    if f.received == 0:
        return []
    out = [
        f"Tỷ lệ hồ sơ giải quyết trước hạn, đúng hạn (tính cả hồ sơ đang giải quyết còn trong hạn) "
        f"đạt {fmt_pct(f.ratio('2.1_on_time'))}.",
        f"Tỷ lệ hồ sơ tiếp nhận trực tuyến đạt {fmt_pct(f.ratio('3.3_online'))} "
        f"({_n(f.count('channel_online'))}); qua dịch vụ bưu chính công ích {_n(f.count('channel_postal'))}.",
    ]
    if f.den("3.6_online_payment"):
        out.append(
            f"Tỷ lệ hồ sơ thanh toán trực tuyến đạt {fmt_pct(f.ratio('3.6_online_payment'))} "
            f"({fmt_int(f.num('3.6_online_payment'))}/{fmt_int(f.den('3.6_online_payment'))} hồ sơ có phí, "
            f"lệ phí)."
        )
    digit = [f"số hóa thành phần hồ sơ {fmt_pct(f.ratio('4.2_digitised_components'))}"]
    if f.den("4.1_digitised_results"):
        digit.insert(0, f"số hóa kết quả giải quyết {fmt_pct(f.ratio('4.1_digitised_results'))}")
    digit.append(f"tái sử dụng dữ liệu số hóa {fmt_pct(f.ratio('4.3_reuse'))}")
    out.append("Tỷ lệ " + ", ".join(digit) + ".")
    out.append(
        f"Tỷ lệ hồ sơ khai thác Cơ sở dữ liệu quốc gia về dân cư đạt "
        f"{fmt_pct(f.ratio('4.5b_population_db'))}; "
        f"công khai, đồng bộ trên Cổng Dịch vụ công quốc gia {fmt_pct(f.ratio('1.4_sync_rate'))} "
        f"số hồ sơ tiếp nhận."
    )
    return out
