"""Atomic writes: write to a temporary file in the target folder, then rename into place."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path
from typing import Iterator

_SIGNALS = {getattr(signal, n) for n in ("SIGINT", "SIGTERM") if hasattr(signal, n)}


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back in this thread (where the platform can) for the length of the
    block; one that arrived meanwhile is delivered when it ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class atomic_path:  # noqa: N801 - used as a function: ``with atomic_path(target) as tmp``
    """``with atomic_path(target) as tmp``: a temporary path beside ``target``; on success it
    replaces ``target`` atomically.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``target``
    is left as it was, so an interrupted run never leaves a half-written file under its name.
    Ctrl-C is held back while the temporary file is created, so it cannot land between the file's
    creation and the point from which it is cleaned up.
    """

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with _signals_held():
                fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".part", dir=self.target.parent)
                self.tmp = Path(name)
                os.close(fd)
        except BaseException:  # a signal held back above is raised here, as the hold ends
            self._remove()
            raise
        return self.tmp

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            try:
                os.chmod(self.tmp, 0o644)
                os.replace(self.tmp, self.target)
                return
            except BaseException:
                self._remove()
                raise
        self._remove()

    def _remove(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def check_writable(path: str | Path, overwrite: bool = False, suffixes: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, an output argen cannot or must not write: a wrong suffix, an
    existing file (unless ``overwrite``), a folder in its place, or a folder it cannot write in.
    Errors name the user's path."""
    from argen.errors import UsageError

    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        raise UsageError(f"-o {p}: this command writes {', '.join(suffixes)} files",
                         hint=f"give a path ending in {' or '.join(suffixes)}")
    if p.is_dir():
        raise UsageError(f"{p} is a folder; an output file cannot replace it", hint="pick another output path")
    if p.exists() and not overwrite:
        raise UsageError(f"{p} exists; argen does not replace files unless told to",
                         hint="pass --overwrite, or pick another output path")
    parent = p.parent if str(p.parent) else Path(".")
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and (not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK)):
        raise UsageError(f"cannot write {p}: {probe} is not a writable folder", hint="check the path and its permissions")
