"""Running a plan in this process: one loaded pipeline per model, batched samples, a manifest
line per finished sample, and a failing sample recorded without stopping the run."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from argen.batch.adapter import ADAPTERS
from argen.batch.manifest import Manifest, still_done
from argen.batch.plan import Sample, resolve_inside
from argen.checkpoints.files import sha256_file
from argen.errors import ArgenError


@dataclass
class Summary:
    done: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)

    @property
    def any_failed(self) -> bool:
        return sum(self.failed.values()) > 0


def pending(samples: list[Sample], out_dir: Path, previous: dict[str, dict[str, Any]] | None = None
            ) -> tuple[list[Sample], list[Sample]]:
    """(samples still to make, samples recorded done whose files are intact)."""
    if previous is None:
        previous = Manifest(out_dir / "manifest.jsonl").load()
    done = [s for s in samples if still_done(previous.get(s.key), out_dir)]
    keys = {s.key for s in done}
    return [s for s in samples if s.key not in keys], done


def remove_stale_parts(out_dir: Path) -> None:
    """Temporary files of an argen run that was killed before it could rename them: called with
    the folder's run lock held, so no other run is writing them. Only argen's own temporary
    names (``.argen-<name>.<random>.part``) are touched, never a user's ``*.part`` file."""
    from argen.io.atomic import TMP_PREFIX

    for p in out_dir.rglob(f"{TMP_PREFIX}*.part"):
        if p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)


def unrecorded(todo: list[Sample], out_dir: Path, manifest: dict[str, dict[str, Any]]) -> Path | None:
    """The first file a pending sample would replace that the manifest does not record as the
    run's own (a user's file): argen run replaces it only with --overwrite."""
    recorded = {e.get("path") for e in manifest.values()}
    for s in todo:
        f = out_dir / s.path
        if s.path not in recorded and (f.exists() or f.is_symlink()):
            return f
    return None


def batches(samples: list[Sample], default_size: int = 8) -> list[list[Sample]]:
    """Samples grouped by identical flags, in plan order, cut to each group's batch_size."""
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.batch_key(), []).append(s)
    out = []
    for group in groups.values():
        size = group[0].params.get("batch_size") or default_size
        out += [group[i : i + size] for i in range(0, len(group), size)]
    return out


class Recorder:
    """Writes outputs and manifest lines; the one place a result becomes a file."""

    def __init__(self, out_dir: Path, summary: Summary, on_done: Callable[[Sample, Path], None],
                 on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.out_dir, self.summary, self.on_done, self.on_record = out_dir, summary, on_done, on_record
        self.manifest = Manifest(out_dir / "manifest.jsonl")

    def _append(self, entry: dict[str, Any]) -> None:
        self.manifest.append(entry)
        if self.on_record is not None:  # e.g. the run's gallery page
            self.on_record(entry)

    def done(self, sample: Sample, content: Any, meta: dict[str, Any], seconds: float) -> None:
        path = resolve_inside(self.out_dir, sample.path)
        meta = {**meta, "job": sample.job, "index": sample.index}
        extra = ADAPTERS[sample.modality].write(path, content, meta, sample.path)
        self._append({**sample.record(), "status": "done", "sha256": sha256_file(path),
                      "seconds": round(seconds, 4), **extra})
        self.summary.done[sample.job] += 1
        self.on_done(sample, path)

    def failed(self, sample: Sample, error: BaseException | str) -> None:
        msg = error if isinstance(error, str) else error_message(error)
        self._append({**sample.record(), "status": "failed", "error": msg})
        self.summary.failed[sample.job] += 1
        self.summary.errors.append(f"{sample.job} #{sample.index}: {msg}")

    def outcomes(self, chunk: list[Sample], outcomes: list[tuple], advance: Callable[[Sample], None]) -> None:
        """Record what :func:`generate_isolated` returned for ``chunk``."""
        for s, (ok, content, meta, seconds) in zip(chunk, outcomes):
            if ok:
                try:
                    self.done(s, content, meta, seconds)
                except (KeyboardInterrupt, MemoryError):
                    raise
                except Exception as e:  # noqa: BLE001 - e.g. a path that escapes through a symlink
                    self.failed(s, e)
            else:
                self.failed(s, content)
            advance(s)


def error_message(e: BaseException) -> str:
    return e.message if isinstance(e, ArgenError) else f"{type(e).__name__}: {e}"


def generate_isolated(adapter, pipe, chunk: list[Sample]) -> list[tuple[bool, Any, Any, float]]:
    """(ok, content or error message, metadata, seconds) per sample. A failing batch is retried
    one sample at a time, so only the culprit fails. Plain data: it crosses to Ray's driver."""
    t0 = time.time()
    try:
        results = adapter.generate(pipe, chunk)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - reported per sample, the run goes on
        if len(chunk) == 1:
            return [(False, error_message(e), None, 0.0)]
        return [r for s in chunk for r in generate_isolated(adapter, pipe, [s])]
    per_sample = (time.time() - t0) / len(chunk)
    return [(True, content, meta, per_sample) for content, meta in results]


def run_local(samples: list[Sample], out_dir: Path, summary: Summary, on_done: Callable[[Sample, Path], None],
              advance: Callable[[Sample], None], on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Make every sample of ``samples`` (already filtered to what is pending); ``on_record`` sees
    each manifest entry once it is written."""
    rec = Recorder(out_dir, summary, on_done, on_record)
    by_pipeline: dict[tuple, list[Sample]] = {}
    for s in samples:
        by_pipeline.setdefault(s.pipeline_key(), []).append(s)
    for group in by_pipeline.values():
        adapter = ADAPTERS[group[0].modality]
        try:
            pipe = adapter.load(group[0].params)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - a model that will not load fails its samples only
            for s in group:
                rec.failed(s, e)
                advance(s)
            continue
        for chunk in batches(group, pipe.default_batch_size):
            rec.outcomes(chunk, generate_isolated(adapter, pipe, chunk), advance)


def plan_lines(samples: list[Sample], done: list[Sample]) -> list[str]:
    """The dry-run report: per job, how many outputs, which model, how many already done."""
    jobs: dict[str, list[Sample]] = {}
    for s in samples:
        jobs.setdefault(s.job, []).append(s)
    done_keys = {s.key for s in done}
    lines = []
    for name, ss in jobs.items():
        models = sorted({str(s.params.get("model") or f"default {s.modality} model") for s in ss})
        n_done = sum(s.key in done_keys for s in ss)
        lines.append(f"{name}: {len(ss)} {ss[0].modality} outputs ({n_done} already done), model {', '.join(models)}, "
                     f"e.g. {ss[0].path}")
    lines.append(f"total: {len(samples)} outputs, {len(samples) - len(done)} to make")
    return lines


def json_line(sample: Sample, path: Path) -> str:
    return json.dumps({"job": sample.job, "index": sample.index, "seed": sample.seed, "path": str(path)})
