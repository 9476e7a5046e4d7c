"""Output files that appear whole or not at all, and never leave plaintext behind.

:class:`AtomicOutput` is where decrypted (and encrypted) bytes are written before they are
known to be good. On Linux it is an *unnamed* file (``open(dir, O_TMPFILE)``,
https://man7.org/linux/man-pages/man2/open.2.html): it has no name until
:meth:`~AtomicOutput.commit` links it in, so a process killed part-way (``SIGKILL``, power
loss) leaves nothing on disk; the kernel frees the blocks. Where ``O_TMPFILE`` is not
available (macOS, some file systems) it is a named ``.securepipe-<random>.part`` file, mode
0600, held under an exclusive ``flock`` for as long as it is written; a failure removes it,
and :func:`sweep_stale_parts`, which every kit call that writes such files runs first on the
destination folder, removes any part whose writer has died (its lock is free). A part still
locked by a live writer, in this process or another, is never touched.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
import sys
from pathlib import Path
from typing import IO

__all__ = ["PART_PREFIX", "PART_SUFFIX", "AtomicOutput", "sweep_stale_parts"]

PART_PREFIX = ".securepipe-"
PART_SUFFIX = ".part"
#: Linux's O_TMPFILE; switched off to exercise the named-file path (tests, other systems).
USE_O_TMPFILE = sys.platform.startswith("linux") and hasattr(os, "O_TMPFILE")


def _part_name(folder: Path) -> Path:
    return folder / f"{PART_PREFIX}{secrets.token_hex(8)}{PART_SUFFIX}"


class AtomicOutput:
    """A 0600 temporary file in ``dst``'s folder; it becomes ``dst`` only on :meth:`commit`,
    and is gone after :meth:`discard`, after an exception in a ``with`` block, or (on Linux)
    after the process dies."""

    def __init__(self, dst: Path) -> None:
        self.dst = Path(dst)
        folder = self.dst.parent
        self.path: Path | None = None
        fd = -1
        if USE_O_TMPFILE:
            try:
                fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
            except OSError as exc:  # the file system does not support it: use a named part
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
        if fd < 0:
            # Created under a name the sweeper ignores, locked, then renamed to ``.part``: a
            # sweeper can never see an unlocked part of a live writer. A kill between the two
            # steps leaves an empty ``.new`` file, which holds no plaintext.
            while True:
                staging = folder / f"{PART_PREFIX}{secrets.token_hex(8)}.new"
                try:
                    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                                 | getattr(os, "O_NOFOLLOW", 0), 0o600)
                    break
                except FileExistsError:
                    continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.path = staging.with_suffix(PART_SUFFIX)
            os.rename(staging, self.path)
        self.file: IO[bytes] = os.fdopen(fd, "wb")

    def commit(self) -> None:
        """Flush and fsync the bytes, then put them at ``dst`` (atomically replacing it)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        if self.path is None:
            # Give the unnamed file a name (linkat through /proc with AT_SYMLINK_FOLLOW, as
            # open(2) documents for O_TMPFILE), then move it onto dst. CPython calls linkat with
            # that flag only when a dir fd is passed, hence src_dir_fd (ignored for an absolute
            # path). The named moment is as short as a rename.
            root = os.open("/", os.O_RDONLY | os.O_CLOEXEC)
            try:
                while True:
                    named = _part_name(self.dst.parent)
                    try:
                        os.link(f"/proc/self/fd/{self.file.fileno()}", named, src_dir_fd=root,
                                follow_symlinks=True)
                        break
                    except FileExistsError:
                        continue
            finally:
                os.close(root)
            try:
                os.replace(named, self.dst)
            except BaseException:
                named.unlink(missing_ok=True)
                raise
            self.file.close()
        else:
            os.replace(self.path, self.dst)
            self.file.close()  # releases the lock only once the name is gone

    def discard(self) -> None:
        """Delete the temporary file (nothing of it stays on disk)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self.file.close()

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None or not self.file.closed:
            self.discard()


def sweep_stale_parts(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the ``.securepipe-*.part`` files in ``folder`` left by a writer that died.

    A part is stale when it is a regular file owned by this user whose ``flock`` can be taken
    (a live writer holds it exclusively until it commits or discards). Returns what was deleted.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(folder).glob(f"{PART_PREFIX}*{PART_SUFFIX}"))
    except OSError:
        return removed
    for path in entries:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer
            # Still the same file under that name (not replaced since it was opened)?
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == info.st_ino
            except FileNotFoundError:
                same = False
            if same:
                path.unlink(missing_ok=True)
                removed.append(path)
        finally:
            os.close(fd)
    return removed
