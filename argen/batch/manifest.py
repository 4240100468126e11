"""``<out>/manifest.jsonl``: one line per finished (or failed) sample, appended and synced as
each one ends, so that a crash loses at most the sample in flight."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from argen.checkpoints.files import sha256_file


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, Any]]:
        """The latest entry per sample key; a torn last line (from a crash) is ignored."""
        entries: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return entries
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "key" in entry:
                entries[entry["key"]] = entry
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def still_done(entry: dict[str, Any] | None, out_dir: Path) -> bool:
    """A recorded sample counts as done while its file is present with the recorded hash."""
    if not entry or entry.get("status") != "done":
        return False
    f = out_dir / entry["path"]
    return f.is_file() and sha256_file(f) == entry.get("sha256")
