"""The gallery of a run: ``OUT/index.html`` beside ``manifest.jsonl``, kept up to date while the
run goes on and rebuilt by `argen gallery OUT`.

During a run, :meth:`Gallery.add` is called with each manifest entry as it is recorded: it turns
the entry into a card once (reading a text output's first characters once) and rewrites the page
atomically at most every :data:`INTERVAL` seconds (or ten times as long as the last write took,
so that writing the page never takes more than a tenth of a run), so a run of n samples costs
O(n) card work plus one O(n) page write per interval. :meth:`Gallery.finish` writes the image jobs' labelled
grid sheets (a recipe job with a grid) and the final page. The page itself is
argen/io/gallery_page.py.
"""

from __future__ import annotations

import json
import math
import time
from functools import cache
from pathlib import Path
from typing import Any, Callable

from argen.batch.manifest import Manifest
from argen.console import log

PAGE = "index.html"
INTERVAL = 2.0  # seconds between page rewrites while a run goes on
REFRESH_S = 10  # while a run goes on, the page reloads itself this often
EXCERPT = 400  # characters of a text output (or of a CIF without a picture) shown on its card
SHEET_CELLS = 144  # a grid sheet shows at most this many images of its job
HIDDEN_FLAGS = ("model",)  # a job's model is on its own line of each card


def sheet_name(job: str) -> str:
    """Where a recipe image job's labelled grid sheet goes, relative to the output folder."""
    return f"{job}-grid.png"


@cache
def _defaults(modality: str) -> dict[str, Any]:
    from argen.modalities.registry import spec_of

    return {k: f.default for k, f in spec_of(modality).model_fields.items()}


def shown_flags(modality: str, params: dict[str, Any]) -> dict[str, Any]:
    """The flags that differ from the modality's defaults (what made a job's samples special)."""
    try:
        defaults = _defaults(modality)
    except KeyError:  # a modality this version does not know (an old manifest): show every flag set
        defaults = {}
    return {k: v for k, v in sorted(params.items())
            if k not in HIDDEN_FLAGS and v is not None and (k not in defaults or defaults[k] != v)}


def excerpt(path: Path, limit: int = EXCERPT) -> str:
    """The first ``limit`` characters of a text file (a CIF's or OBJ's comment lines skipped)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(limit * 4 + 4096)
    except OSError:
        return ""
    text = raw.decode("utf-8", "replace")
    if path.suffix.lower() in (".cif", ".obj"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def make_card(entry: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """What the page needs of one manifest entry (files are looked at once, here)."""
    params = entry.get("params") or {}
    modality, path = entry.get("modality", ""), str(entry.get("path", ""))
    status = entry.get("status", "failed")
    if status == "done" and not (out_dir / path).is_file():
        status = "missing"
    card = {"j": entry.get("job", "?"), "i": entry.get("index", 0), "m": modality, "s": entry.get("seed"),
            "p": entry.get("prompt"), "f": path, "st": status, "model": entry.get("model") or params.get("model") or "default model",
            "flags": dict(params)}
    preview = entry.get("preview")
    if status == "done" and preview and (out_dir / preview).is_file():
        card["v"] = preview
    if status == "done" and (modality == "text" or (modality not in ("image", "video", "audio") and "v" not in card)):
        card["t"] = excerpt(out_dir / path)
    if entry.get("error"):
        card["e"] = str(entry["error"])
    return card


class Gallery:
    """The cards of a run and the page drawn from them. ``samples``: the run's plan (its order and
    its counts per job); ``skipped``: planned samples already done by an earlier run."""

    def __init__(self, out_dir: Path, samples: list | None = None, skipped: list | None = None,
                 interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.out_dir, self.interval, self.clock = Path(out_dir), interval, clock
        self.live = samples is not None
        self.order = {s.key: n for n, s in enumerate(samples or [])}
        self.planned: dict[str, int] = {}
        self.modalities: dict[str, str] = {}
        for s in samples or []:
            self.planned[s.job] = self.planned.get(s.job, 0) + 1
            self.modalities.setdefault(s.job, s.modality)
        self.cards: dict[str, dict[str, Any]] = {}
        self.skipped: set[str] = set()
        self.sheets: dict[str, str] = {}
        self.last = -math.inf
        self.took = 0.0  # seconds the last write took
        self.writes = 0
        self._warned = False
        if skipped:
            previous = Manifest(self.out_dir / "manifest.jsonl").load()
            for s in skipped:
                if s.key in previous:
                    self.cards[s.key] = make_card(previous[s.key], self.out_dir)
                    self.skipped.add(s.key)

    @classmethod
    def from_manifest(cls, out_dir: Path) -> "Gallery":
        """The gallery of whatever ``out_dir/manifest.jsonl`` records (`argen gallery OUT`)."""
        g = cls(out_dir)
        for key, entry in Manifest(Path(out_dir) / "manifest.jsonl").load().items():
            g.cards[key] = make_card(entry, g.out_dir)
            g.modalities.setdefault(g.cards[key]["j"], g.cards[key]["m"])
        return g

    # --- during a run ---------------------------------------------------------------------------
    def add(self, entry: dict[str, Any]) -> None:
        """A manifest entry was recorded: card it, and rewrite the page if the interval has passed.
        A gallery that cannot be written warns once and never stops the run."""
        try:
            key = entry["key"]
            self.skipped.discard(key)
            self.cards[key] = make_card(entry, self.out_dir)
            if self.clock() - self.last >= max(self.interval, 10 * self.took):
                self.write()
        except Exception as e:  # noqa: BLE001 - the page is a view of the run, not part of it
            self._warn(e)

    def build(self) -> Path:
        """Write the image jobs' grid sheets and the final page; returns the page's path."""
        from argen.batch.grid_sheet import write_job_sheets

        self.sheets = write_job_sheets(self.out_dir, self._sorted(), self.common_flags())
        return self.write(final=True)

    def finish(self) -> Path | None:
        """:meth:`build` at the end of a run; None (after a warning) if it cannot be written."""
        try:
            return self.build()
        except Exception as e:  # noqa: BLE001 - as in add
            self._warn(e)
            return None

    def _warn(self, e: Exception) -> None:
        if not self._warned:
            log(f"warning: the gallery {self.out_dir / PAGE} could not be updated ({type(e).__name__}: {e})")
            self._warned = True

    # --- the page -------------------------------------------------------------------------------
    def _sorted(self) -> list[dict[str, Any]]:
        if self.live:
            return [self.cards[k] for k in sorted(self.cards, key=lambda k: self.order.get(k, math.inf))]
        jobs = list(dict.fromkeys(c["j"] for c in self.cards.values()))
        return sorted(self.cards.values(), key=lambda c: (jobs.index(c["j"]), c["i"]))

    def common_flags(self) -> dict[str, dict[str, Any]]:
        """Per job, the flags every one of its samples shares (the rest are its grid axes)."""
        common: dict[str, dict[str, Any]] = {}
        for c in self.cards.values():
            if c["j"] not in common:
                common[c["j"]] = dict(c["flags"])
            else:
                mine = common[c["j"]]
                for k in [k for k in mine if json.dumps(c["flags"].get(k)) != json.dumps(mine[k])]:
                    del mine[k]
        return common

    def data(self) -> dict[str, Any]:
        """What the page embeds: jobs, cards (each with its grid values ``g``) and the summary."""
        cards, common = self._sorted(), self.common_flags()
        jobs = list(dict.fromkeys([*self.planned, *(c["j"] for c in cards)]))
        out = []
        for c in cards:
            shared = common.get(c["j"], {})
            row = {k: v for k, v in c.items() if k != "flags"}
            row["g"] = {k: v for k, v in c["flags"].items() if k not in shared}
            out.append(row)
        rows = []
        for j in jobs:
            mine = [(k, c) for k, c in self.cards.items() if c["j"] == j]
            done = sum(c["st"] != "failed" and k not in self.skipped for k, c in mine)
            skipped = sum(k in self.skipped for k, _ in mine)
            failed = sum(c["st"] == "failed" for _, c in mine)
            pending = self.planned.get(j, 0) - done - skipped - failed if self.live else None
            rows.append({"name": j, "modality": self.modalities.get(j, ""), "done": done,
                         "skipped": skipped if self.live else None, "failed": failed,
                         "pending": max(0, pending) if pending is not None else None, "sheet": self.sheets.get(j)})
        errors = [f"{c['j']} #{c['i']}: {c.get('e', 'failed')}" for c in cards if c["st"] == "failed"]
        return {"jobs": [{"name": j, "modality": self.modalities.get(j, ""),
                          "flags": shown_flags(self.modalities.get(j, ""), common.get(j, {}))} for j in jobs],
                "cards": out, "summary": {"jobs": rows, "errors": errors}}

    def write(self, final: bool = False) -> Path:
        """Write the page atomically; returns its path."""
        from argen.io.atomic import write_text_atomic
        from argen.io.gallery_page import render_page

        start = time.perf_counter()
        self.last = self.clock()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if not self.live:
            subtitle = f"rebuilt from manifest.jsonl at {stamp}"
        else:
            subtitle = f"{'run ended' if final else 'run in progress'}, updated {stamp}"
        path = self.out_dir / PAGE
        write_text_atomic(path, render_page(self.out_dir.resolve().name, subtitle, self.data(),
                                            None if final or not self.live else REFRESH_S))
        self.writes += 1
        self.took = time.perf_counter() - start
        return path
