"""``<out>/manifest.jsonl``: one line per finished (or failed) sample, appended and synced as
each one ends, so that a crash loses at most the sample in flight."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from argen.checkpoints.files import sha256_file
from argen.errors import ArgenError


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.damaged: list[int] = []  # 1-based numbers of the lines the last load() skipped

    def check(self) -> None:
        """The manifest is a plain file in the output folder: a symlink would let a run append
        (or read its state) somewhere else."""
        if self.path.is_symlink():
            raise ArgenError(f"{self.path} is a symlink; argen run writes its manifest only as a plain file",
                             hint="remove the link (or copy the file it points to in its place)")
        if self.path.exists() and not self.path.is_file():
            raise ArgenError(f"{self.path} is not a plain file", hint="move it away, or pick another output folder")

    def load(self) -> dict[str, dict[str, Any]]:
        """The latest entry per sample key, in the order they were last recorded. A damaged line
        (torn by a crash, even inside a UTF-8 character, or junk) is skipped and its number kept
        in :attr:`damaged` for the caller to report."""
        entries: dict[str, dict[str, Any]] = {}
        self.damaged = []
        self.check()
        if not self.path.is_file():
            return entries
        for n, raw in enumerate(self.path.read_bytes().split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError is a ValueError
                entry = None
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                self.damaged.append(n)
                continue
            entries.pop(entry["key"], None)
            entries[entry["key"]] = entry
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        """Append one record on a line of its own (after a torn last line, a fresh one) and sync."""
        self.check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def still_done(entry: dict[str, Any] | None, out_dir: Path) -> bool:
    """A recorded sample counts as done while its file is present with the recorded hash."""
    if not entry or entry.get("status") != "done":
        return False
    f = out_dir / entry["path"]
    return f.is_file() and sha256_file(f) == entry.get("sha256")
