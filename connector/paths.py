"""Where the connector's development tools keep their caches, and the checkout they run from.

Installed from a wheel, the package reads its data files from beside its modules and keeps its
caches (the Kafka broker's jars, the assembled embedding models) in the user's cache folder:
``platformdirs.user_cache_path`` (``$XDG_CACHE_HOME/qdrant-change-connector``, else
``~/.cache/qdrant-change-connector`` on Linux). Run from a source checkout (an editable
install), it keeps them in the checkout's ``.cache/``, where ``scripts/bootstrap`` and the
tests put them. ``QCC_CACHE_DIR`` overrides both. Nothing is cached in the working directory
or in site-packages.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_path

APP_NAME = "qdrant-change-connector"


def _source_root() -> Path | None:
    parent = Path(__file__).resolve().parent.parent
    pyproject = parent / "pyproject.toml"
    # an installed package's parent is site-packages, which holds no project file of ours
    if pyproject.is_file() and f'name = "{APP_NAME}"' in pyproject.read_text(encoding="utf-8"):
        return parent
    return None


SOURCE_ROOT: Path | None = _source_root()
"""The source checkout this package runs from, or None when it is installed."""


def cache_dir(*parts: str) -> Path:
    """A folder under the cache root (not created): QCC_CACHE_DIR, a checkout's .cache/, or
    the user cache folder."""
    named = os.environ.get("QCC_CACHE_DIR")
    if named:
        root = Path(named)
    elif SOURCE_ROOT is not None:
        root = SOURCE_ROOT / ".cache"
    else:
        root = user_cache_path(APP_NAME, appauthor=False)
    return root.joinpath(*parts)
