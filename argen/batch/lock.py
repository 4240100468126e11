"""One `argen run` per output folder: an exclusive lock on ``<out>/.argen-run.lock``.

The lock is an advisory ``flock`` held for the life of the run (the kernel drops it when the
process dies, even on ``kill -9``, so a crashed run never leaves a stale lock). The file holds the
holder's pid and start time, which a second run names in its one-line error.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Iterator

from argen.errors import ArgenError

LOCK_NAME = ".argen-run.lock"


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {int(info['pid'])}, started {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


@contextlib.contextmanager
def folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold the output folder's run lock for the block; another holder is a one-line ArgenError."""
    out_dir = Path(out_dir)
    path = out_dir / LOCK_NAME
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        raise ArgenError(f"cannot lock {out_dir}: {e.strerror or e} ({path})",
                         hint="the lock file must be a plain file argen can write") from None
    try:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: runs are not guarded against each other
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ArgenError(f"{out_dir} is in use by another argen run ({_holder(fd)})",
                                 hint="wait for it to finish, or pick another output folder with -o") from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({"pid": os.getpid(), "started": time.time()}).encode())
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a waiting run)
