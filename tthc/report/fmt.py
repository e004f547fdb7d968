"""Vietnamese number formatting: thousands with ".", decimals with "," (8.700; 88,6%).

Rounding is half-up on the decimal value (0,35% → 0,4%), the way people round by hand, not
Python's round-half-even on binary floats.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = ["DASH", "fmt_decimal", "fmt_int", "fmt_pct", "share"]

#: Shown where a figure cannot be computed (no denominator).
DASH = "—"


def _group(digits: str) -> str:
    out = []
    while len(digits) > 3:
        out.append(digits[-3:])
        digits = digits[:-3]
    out.append(digits)
    return ".".join(reversed(out))


def fmt_decimal(value: float | int | Decimal | None, places: int = 1) -> str:
    """``1234.56`` → ``1.234,6`` (``places`` decimals, half-up); None → ``—``."""
    if value is None:
        return DASH
    q = Decimal(1).scaleb(-places) if places > 0 else Decimal(1)
    d = Decimal(str(value)).quantize(q, rounding=ROUND_HALF_UP)
    sign = "-" if d < 0 else ""
    text = f"{abs(d):f}"
    whole, _, frac = text.partition(".")
    return f"{sign}{_group(whole)}" + (f",{frac}" if places > 0 else "")


def fmt_int(value: float | int | None) -> str:
    """``8700`` → ``8.700``; None → ``—``."""
    return fmt_decimal(value, 0)


def fmt_pct(fraction: float | None, places: int = 1) -> str:
    """A fraction as a percentage: ``0.886`` → ``88,6%``; None → ``—``."""
    if fraction is None:
        return DASH
    return fmt_decimal(Decimal(str(fraction)) * 100, places) + "%"


def share(numerator: float | int | None, denominator: float | int | None) -> float | None:
    """``numerator / denominator``, None when the denominator is 0 or unknown."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator
