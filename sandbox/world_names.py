"""Vietnamese name spellings the world generator produces (domain.md §9, world.md §5).

Every function takes the registry's spelling (NFC, new-style tone placement ``Hoà``/``Thuý``) and
returns the variant a source system might hold. Pure functions, no randomness except where an
explicit ``random.Random`` is passed.
"""

from __future__ import annotations

import random
import unicodedata

#: Combining tone marks (grave, acute, tilde, hook above, dot below) in NFD.
TONE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323")

#: i/y spellings that are the same name (registry spelling → variant).
IY_VARIANTS: dict[str, str] = {"Quý": "Quí", "Kỳ": "Kì", "Lý": "Lí", "Mỹ": "Mĩ", "Vỹ": "Vĩ"}


def old_tone_word(word: str) -> str:
    """Move the tone of a final oa/oe/uy from the second vowel to the first: ``Hoà`` → ``Hòa``.

    Words without such a syllable (``Hoàng``, ``Quý``, ``Huy``) are returned unchanged.
    """
    d = unicodedata.normalize("NFD", word)
    if len(d) < 3 or d[-1] not in TONE_MARKS:
        return word
    base = d[:-1]
    if any(c in TONE_MARKS for c in base):
        return word
    low = base.lower()
    if not (low.endswith(("oa", "oe", "uy"))):
        return word
    if low.endswith("uy") and low[:-2].endswith("q"):  # "quý": u belongs to qu-, tone stays on y
        return word
    return unicodedata.normalize("NFC", base[:-1] + d[-1] + base[-1])


def old_tone(name: str) -> str:
    """Old-style tone placement for every word of ``name``."""
    return " ".join(old_tone_word(w) for w in name.split(" "))


def has_old_tone_variant(name: str) -> bool:
    return old_tone(name) != name


def nfd(name: str) -> str:
    return unicodedata.normalize("NFD", name)


def upper(name: str) -> str:
    return name.upper()


def iy_variant(name: str) -> str:
    return " ".join(IY_VARIANTS.get(w, w) for w in name.split(" "))


def has_iy_variant(name: str) -> bool:
    return any(w in IY_VARIANTS for w in name.split(" "))


def d_lookalike(name: str) -> str:
    """Đ (U+0110) written as the Icelandic Ð (U+00D0), which looks identical."""
    return name.replace("\u0110", "\u00d0")


def has_d(name: str) -> bool:
    return "\u0110" in name


def spacing(name: str, rng: random.Random) -> str:
    """Doubled, non-breaking or zero-width spacing plus stray leading/trailing blanks."""
    parts = name.split(" ")
    seps = ["  ", "\u00a0", " \u200b"]
    out = parts[0]
    for p in parts[1:]:
        out += rng.choice(seps) + p
    return out + (" " if rng.random() < 0.5 else "")


def typo(ten: str, rng: random.Random) -> str:
    """One keyboard slip in a given name: a doubled letter (``Thanh`` → ``Thannh``)."""
    if len(ten) < 2:
        return ten + ten[-1:]
    i = rng.randrange(1, len(ten))
    return ten[:i] + ten[i] + ten[i:]


def join_name(ho: str, chu_dem: str, ten: str) -> str:
    return " ".join(p for p in (ho, chu_dem, ten) if p)
