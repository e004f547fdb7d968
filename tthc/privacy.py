"""Keeping personal data out of everything but the warehouse: keyed hashes and masks.

A keyed hash (HMAC-SHA256 with a secret from the environment) lets logs, validation results,
caches and audit records refer to the same citizen across runs without carrying the number.
Without the key nobody can test guesses against the 10^12 possible CCCDs, which a plain
hash would allow in minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

_DEFAULT_DEV_KEY = "tthc-dev-only-key"  # only for the sandbox; production sets TTHC_PII_HASH_KEY
_DIGITS = re.compile(r"\d")


def _key() -> bytes:
    return os.environ.get("TTHC_PII_HASH_KEY", _DEFAULT_DEV_KEY).encode("utf-8")


def key_hash(value: str | None, *, length: int = 16) -> str | None:
    """HMAC-SHA256 of a personal value, hex, truncated to ``length`` characters."""
    if value is None:
        return None
    return hmac.new(_key(), value.encode("utf-8"), hashlib.sha256).hexdigest()[:length]


def mask_id(number: str | None) -> str | None:
    """``036185000123`` → ``036*******23``: the province prefix and two last digits stay."""
    if not number:
        return number
    if len(number) <= 5:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 5) + number[-2:]


def mask_name(name: str | None) -> str | None:
    """``Nguyễn Thị Thuý`` → ``N. T. T.``: enough for a steward to recognise a case, not a person."""
    if not name:
        return name
    return " ".join(p[0] + "." for p in name.split())


def scrub_digits(text: str) -> str:
    """Replace every run of 9+ digits (a CCCD/CMND/phone shape) by its mask; for free text."""
    return re.sub(r"\d{9,}", lambda m: mask_id(m.group(0)) or "", text)
