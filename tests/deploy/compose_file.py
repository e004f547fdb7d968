"""Reading docker/compose.yaml the way Docker Compose does, for the deployment tests (no engine here).

* :func:`load` parses the YAML (merge keys and anchors resolved, as Compose does);
* :func:`interpolate` applies Compose's variable syntax to every string of the parsed document:
  ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``,
  ``${VAR:+alt}``, ``${VAR+alt}``, ``$$`` for a literal ``$``, nested ``${...}`` inside a default;
* :func:`references` lists the variables a text refers to, with their operator.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class InterpolationError(ValueError):
    pass


def load(path: Path = COMPOSE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``KEY=value`` lines (comments and blank lines skipped; no quoting in our files)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not KEY=value: {line!r}")
        out[key.strip()] = value
    return out


def _braced_end(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` whose ``{`` is at ``start`` (nested braces allowed)."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def interpolate_text(text: str, env: dict[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = _braced_end(text, i + 1)
            out.append(_expand(text[i + 2 : end], env))
            i = end + 1
            continue
        m = re.match(_NAME, text[i + 1 :])
        if m:
            out.append(env.get(m.group(), ""))
            i += 1 + m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _expand(expr: str, env: dict[str, str]) -> str:
    m = re.match(rf"^({_NAME})(?:(:?[-?+])(.*))?$", expr, re.S)
    if not m:
        raise InterpolationError(f"bad variable expression ${{{expr}}}")
    name, op, arg = m.group(1), m.group(2), m.group(3) or ""
    value = env.get(name)
    if op is None:
        return value or ""
    set_ = value is not None if not op.startswith(":") else bool(value)
    kind = op[-1]
    if kind == "-":
        return value if set_ else interpolate_text(arg, env)  # type: ignore[return-value]
    if kind == "+":
        return interpolate_text(arg, env) if set_ else ""
    if not set_:  # "?"
        raise InterpolationError(f"required variable {name} is missing a value: {arg}")
    return value  # type: ignore[return-value]


def interpolate(doc: Any, env: dict[str, str]) -> Any:
    """The document with every string value interpolated (keys are left alone, as Compose does)."""
    if isinstance(doc, dict):
        return {k: interpolate(v, env) for k, v in doc.items()}
    if isinstance(doc, list):
        return [interpolate(v, env) for v in doc]
    if isinstance(doc, str):
        return interpolate_text(doc, env)
    return doc


def references(text: str) -> list[tuple[str, str | None]]:
    """``(name, operator)`` of every variable the text refers to (``$$`` escapes skipped)."""
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            i += 2
            continue
        if nxt == "{":
            end = _braced_end(text, i + 1)
            expr = text[i + 2 : end]
            m = re.match(rf"^({_NAME})(?:(:?[-?+])(.*))?$", expr, re.S)
            if m:
                out.append((m.group(1), m.group(2)))
                out.extend(references(m.group(3) or ""))
            i = end + 1
            continue
        m = re.match(_NAME, text[i + 1 :])
        if m:
            out.append((m.group(), None))
            i += 1 + m.end()
            continue
        i += 1
    return out


def strings(doc: Any) -> list[str]:
    """Every string value in the document."""
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in strings(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in strings(v)]
    return [doc] if isinstance(doc, str) else []
