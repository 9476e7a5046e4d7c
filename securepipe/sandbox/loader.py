"""One botocore data loader for every session made while a sandbox is open (speed only).

Each new botocore session gets its own loader, and a loader parses every service model, endpoint
ruleset and paginator file it is asked for from JSON, about 60-80 ms the first time a session
makes an S3, KMS, IAM or STS client; moto's request routing makes a loader of its own per
service too. The kit makes many short-lived sessions (a contractor's session, a role session
per check, the AWS Encryption SDK's own); in a sandbox they all run in one process, so the
lessons spent seconds re-reading the same files (lesson 06: 298 clients).

While a sandbox is open, sessions share one loader per data path. The files are botocore's own
read-only data: sharing changes no request, response or credential, only how often the JSON is
parsed. boto3 appends its own data folder to a session's loader on every ``boto3.Session()``;
the shared loader keeps each search path once. On a real account nothing here is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["own_loaders", "share_loaders", "unshare_loaders"]

_lock = threading.Lock()
_saved: dict[Any, Any] = {}
_loaders: dict[str | None, Any] = {}
#: Where a loader factory is looked up: botocore's sessions, and moto's request routing, which
#: loads each service's model with a loader of its own (moto.core.utils.create_loader).
_FACTORY_MODULES = ("botocore.session", "moto.core.utils")


class _UniquePaths(list[str]):
    """A search-path list that ignores a path it already holds (boto3 appends one per session)."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


def share_loaders() -> None:
    """Make new botocore sessions (and moto's model lookups) share one data loader per data
    path (undo: :func:`unshare_loaders`)."""
    import importlib

    import botocore.loaders

    # Imported before the lock is taken: an import that makes a session would call the shared
    # factory, which takes the lock too.
    modules = [importlib.import_module(name) for name in _FACTORY_MODULES]
    with _lock:
        if _saved:
            return
        original = botocore.loaders.create_loader

        def shared(search_path_string: str | None = None) -> Any:
            with _lock:
                loader = _loaders.get(search_path_string)
                if loader is None:
                    loader = original(search_path_string)
                    paths = getattr(loader, "_search_paths", None)
                    if isinstance(paths, list):  # botocore's private list: dedupe if present
                        loader._search_paths = _UniquePaths(paths)
                    _loaders[search_path_string] = loader
                return loader

        for module in modules:
            if getattr(module, "create_loader", None) is original:
                _saved[module] = original
                # The module's factory is replaced for the sandbox's lifetime (restored by
                # unshare_loaders).
                vars(module)["create_loader"] = shared


def unshare_loaders() -> None:
    """Restore the loader factories (the parsed loaders are kept for the next sandbox: the data
    they hold does not change within a process)."""
    with _lock:
        for module, original in _saved.items():
            vars(module)["create_loader"] = original
        _saved.clear()


@contextmanager
def own_loaders() -> Iterator[None]:
    """Inside the block, each new session parses botocore's files itself, as on a real
    account (for benchmarks that measure what a pattern such as "a new client per sample"
    costs there); sharing resumes after it if it was on."""
    with _lock:
        was_shared = bool(_saved)
    unshare_loaders()
    try:
        yield
    finally:
        if was_shared:
            share_loaders()
