"""A content-addressed cache for the leakage lab's tables (and lesson 04's reconstruction), so a
lesson shows them in seconds.

A table is stored as JSON under a name that is the SHA-256 of everything it depends on: the data
(every utterance's id, speaker, sentence and SHA-256 from the manifest), the table's parameters,
the source code of the modules that compute it, and the versions of numpy, scipy, scikit-learn
and librosa. Change any of these and the name changes, so a stale table is never shown; delete
the folder and the table is recomputed (slower, same rows). Nothing here is secret: the rows are
aggregate scores, and a file that does not parse as the expected rows is recomputed, not trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from securepipe.data.dataset import Manifest
from securepipe.errors import InvalidParameterError

#: The folder `make` creates for caches (numba's lives beside it).
DEFAULT_CACHE = Path(__file__).resolve().parents[3] / ".cache" / "leakage"
_CODE = (
    *sorted(Path(__file__).resolve().parent.glob("*.py")),
    Path(__file__).resolve().parents[1] / "speakerid.py",
    Path(__file__).resolve().parents[1] / "extract.py",
    Path(__file__).resolve().parents[1] / "spectral.py",
)
_LIBRARIES = ("numpy", "scipy", "scikit-learn", "librosa")

Rows = list[dict[str, Any]]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def cache_key(kind: str, manifest: Manifest, params: Mapping[str, Any]) -> str:
    """SHA-256 (hex) naming one table: its kind, data, parameters, code and library versions."""
    digest = hashlib.sha256()
    header = {
        "kind": kind,
        "params": params,
        "data": [[u.sample_id, u.speaker, u.sentence_index, u.sha256] for u in manifest.utterances],
        "libraries": {name: _version(name) for name in _LIBRARIES},
    }
    digest.update(json.dumps(header, sort_keys=True).encode("utf-8"))
    for path in _CODE:
        digest.update(path.name.encode("utf-8") + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _valid(rows: Any) -> bool:
    return isinstance(rows, list) and bool(rows) and all(isinstance(r, dict) for r in rows)


def cached_rows(
    folder: str | os.PathLike[str] | None,
    kind: str,
    manifest: Manifest,
    params: Mapping[str, Any],
    compute: Callable[[], Rows],
) -> Rows:
    """``compute()``, or the rows it returned before for the same key (``folder`` None: no cache).

    The file is written atomically (temporary file, then rename), so a crash never leaves half a
    table; a folder that cannot be written only means the next run computes again.
    """
    if not isinstance(kind, str) or not kind.isidentifier():
        raise InvalidParameterError(f"kind must be an identifier, got {kind!r}")
    if folder is None:
        return compute()
    path = Path(folder) / f"{kind}-{cache_key(kind, manifest, params)}.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        if _valid(rows):
            return list(rows)
    except (OSError, ValueError):
        pass
    rows = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{kind}-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, sort_keys=True, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass
    return rows
