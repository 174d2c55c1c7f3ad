"""Where the ragline checkout is: the developer tools need its `functions/`, `migrations/` and
`alembic.ini`; the runtime layers never look for them.

`RAGLINE_REPO` when set, else the first folder from the working directory upwards that holds
`alembic.ini` and `functions/`, else the checkout this package was installed from (editable)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from ragline.core.errors import ConfigurationError


def _is_checkout(path: Path) -> bool:
    return (path / "alembic.ini").is_file() and (path / "functions").is_dir()


@cache
def repo_root() -> Path:
    explicit = os.environ.get("RAGLINE_REPO")
    if explicit:
        if not _is_checkout(Path(explicit)):
            raise ConfigurationError(f"RAGLINE_REPO={explicit} is not a ragline checkout")
        return Path(explicit).resolve()
    for folder in (Path.cwd(), *Path.cwd().parents):
        if _is_checkout(folder):
            return folder.resolve()
    installed = Path(__file__).resolve().parents[3]  # shared/ragline/dev/checkout.py
    if _is_checkout(installed):
        return installed
    raise ConfigurationError(
        "not inside a ragline checkout: run from the repository or set RAGLINE_REPO"
    )
