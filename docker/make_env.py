"""Make ``docker/.env`` from ``docker/.env.example`` with a fresh value for every empty secret.

    python docker/make_env.py             # writes docker/.env (mode 0600); refuses to overwrite
    python docker/make_env.py --stdout    # prints instead

Only entries listed in :data:`GENERATED` that are empty in the example are filled; everything else
is copied as it is. Generated values are hex (or, for the Fernet key, url-safe base64), so they
are safe inside the URLs and JSON connection strings of compose.yaml. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / ".env.example"
TARGET = HERE / ".env"


def _hex32() -> str:
    return secrets.token_hex(32)


def _password() -> str:
    return secrets.token_hex(20)


def _fernet() -> str:
    # what cryptography.fernet.Fernet.generate_key() returns: 32 random bytes, url-safe base64
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


GENERATED = {
    "POSTGRES_PASSWORD": _password,
    "AIRFLOW_DB_PASSWORD": _password,
    "TTHC_WAREHOUSE_DB_PASSWORD": _password,
    "REDIS_PASSWORD": _password,
    "AIRFLOW_FERNET_KEY": _fernet,
    "AIRFLOW_API_SECRET_KEY": _hex32,
    "AIRFLOW_JWT_SECRET": _hex32,
    "TTHC_PII_HASH_KEY": _hex32,
}


def render(example: str) -> str:
    """The example's text with every empty generated entry filled."""
    out = []
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and not line.lstrip().startswith("#") and key in GENERATED and not value.strip():
            line = f"{key}={GENERATED[key]()}"
        out.append(line)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stdout", action="store_true", help="print instead of writing docker/.env")
    p.add_argument("--output", type=Path, default=TARGET, help="file to write (default docker/.env)")
    args = p.parse_args(argv)
    text = render(EXAMPLE.read_text(encoding="utf-8"))
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.output.exists():
        print(f"{args.output} exists; not overwriting it (its secrets may be in use)", file=sys.stderr)
        return 1
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
