"""Where the project's files are: the checkout, or ``TTHC_HOME`` for an installed deployment.

``config/``, ``expectations/``, ``sql/``, ``dags/`` and ``plugins/`` are files people edit, not
package data; an installation from a wheel points ``TTHC_HOME`` at the folder that holds them.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    home = os.environ.get("TTHC_HOME")
    return Path(home).resolve() if home else Path(__file__).resolve().parent.parent


REPO_ROOT = repo_root()
