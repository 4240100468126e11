"""Atomic writes: write to a temporary file in the target folder, then rename into place."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path
from typing import Iterator

TMP_PREFIX = ".argen-"  # every temporary file argen writes is ``.argen-<name>.<random>.part``: never a user's
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
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            with _signals_held():
                fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{self.target.name}.", suffix=".part", dir=self.target.parent)
                self.tmp = Path(name)
                os.close(fd)
        except OSError as e:
            self._remove()
            raise self._error(e) from None
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
            except OSError as e:
                self._remove()
                raise self._error(e) from None
            except BaseException:
                self._remove()
                raise
        self._remove()
        if isinstance(value, OSError) and not isinstance(value, (BrokenPipeError, InterruptedError)):
            raise self._error(value) from None  # the writer's error names the temporary file: name the target

    def _error(self, e: OSError):
        """An OSError as one line naming the user's path, never the temporary file."""
        from argen.errors import ArgenError

        reason = "it is a folder" if isinstance(e, IsADirectoryError) else (e.strerror or type(e).__name__)
        return ArgenError(f"cannot write {self.target}: {reason}", hint="check the path, its permissions and free space")

    def _remove(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


@contextlib.contextmanager
def atomic_paths(*targets: str | Path) -> Iterator[list[Path]]:
    """``with atomic_paths(file, sidecar) as (tmp_file, tmp_sidecar)``: like :class:`atomic_path`
    for several files that belong together; on success they are renamed into place in order, and
    none is left if any write or rename fails."""
    with contextlib.ExitStack() as stack:
        holders = [atomic_path(t) for t in targets]
        tmps = [stack.enter_context(_Held(h)) for h in holders]
        yield tmps
        for h in holders:
            os.chmod(h.tmp, 0o644)
        replace_all([(h.tmp, h.target) for h in holders])
        for h in holders:
            h.tmp = None  # renamed: nothing left to clean up


class _Held:
    """Enters an :class:`atomic_path` for its temporary file only; the rename is the caller's, and
    the temporary file is removed on the way out if it is still there."""

    def __init__(self, holder: atomic_path) -> None:
        self.holder = holder

    def __enter__(self) -> Path:
        return self.holder.__enter__()

    def __exit__(self, kind, value, tb) -> None:
        self.holder._remove()
        if isinstance(value, OSError) and not isinstance(value, (BrokenPipeError, InterruptedError)):
            raise self.holder._error(value) from None


def replace_all(pairs: list[tuple[Path, Path]]) -> None:
    """Rename each written temporary file onto its target, in order; if one fails, the targets
    already renamed are removed again, so that a file and its sidecar land together or not at all."""
    done: list[Path] = []
    for tmp, target in pairs:
        try:
            os.replace(tmp, target)
        except OSError as e:
            for t in done:
                t.unlink(missing_ok=True)
            for t, _ in pairs:
                t.unlink(missing_ok=True)
            from argen.errors import ArgenError

            reason = "it is a folder" if isinstance(e, IsADirectoryError) else (e.strerror or type(e).__name__)
            raise ArgenError(f"cannot write {target}: {reason}", hint="check the path and its permissions") from None
        done.append(target)


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
