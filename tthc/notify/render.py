"""Jinja2 rendering of the e-mails: HTML templates autoescaped, plain-text templates not.

Everything that comes from a source system (dossier codes, agency names) reaches the templates as
plain strings and is escaped by Jinja in the ``.html`` templates; no template marks anything
``|safe``. Formatting follows Vietnamese conventions: ``1.234`` for thousands, ``23/11/2026 06:00``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from tthc.privacy import scrub_digits

TEMPLATES = Path(__file__).resolve().parent / "templates"
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")

SEVERITY_VI = {"critical": "nghiêm trọng", "warning": "cảnh báo"}
STAGE_VI = {
    "extract": "Kéo dữ liệu",
    "validate": "Kiểm tra chất lượng",
    "reconcile": "Đối chiếu dân cư",
    "publish": "Gửi Cổng DVCQG",
    "indicators": "Tính chỉ số",
}
RUN_STATUS_VI = {
    "success": "hoàn tất",
    "failed": "lỗi",
    "running": "đang chạy",
    "incomplete": "chưa xong",
}


def num(value: Any) -> str:
    """``1234`` → ``1.234``; None → ``—``."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return f"{int(value):,}".replace(",", ".")


def delta(value: int | None) -> str:
    """Change since the previous run: ``+3``, ``−2``, ``0``; None (no previous run) → ``mới``."""
    if value is None:
        return "mới"
    if value > 0:
        return f"+{num(value)}"
    if value < 0:
        return f"−{num(-value)}"
    return "0"


def when(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y %H:%M")
    return value.strftime("%d/%m/%Y")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} giờ {m} phút"
    if m:
        return f"{m} phút {sec} giây"
    return f"{sec} giây"


def safe_code(code: Any, limit: int = 128) -> str:
    """A dossier code as it may appear in an e-mail: no control characters, digit runs that could
    be an ID or phone number masked (a valid code never has 9 digits in a row), bounded length."""
    text = scrub_digits(_CONTROL_RE.sub(" ", str(code)).strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def severity_vi(value: str) -> str:
    return SEVERITY_VI.get(value, value)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html",), disabled_extensions=("txt",), default_for_string=True, default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=num, delta=delta, when=when, duration=duration, severity=severity_vi, code=safe_code
    )
    env.globals.update(STAGE_VI=STAGE_VI, RUN_STATUS_VI=RUN_STATUS_VI)
    return env


def render_pair(name: str, **ctx: Any) -> tuple[str, str]:
    """``(text, html)`` of the templates ``<name>.txt`` and ``<name>.html``."""
    env = environment()
    return env.get_template(f"{name}.txt").render(**ctx), env.get_template(f"{name}.html").render(**ctx)
