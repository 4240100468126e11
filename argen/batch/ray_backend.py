"""Running a plan on a Ray cluster: one actor per model and worker slot holds the loaded
pipeline; batches are scheduled to actors; results come back to the driver, which alone writes
the files and the manifest (so resume works exactly as for local runs). A dead actor is
replaced and its batch resubmitted.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from argen.batch.local import Recorder, Summary, batches
from argen.batch.plan import Sample
from argen.errors import ArgenError

MAX_BATCH_RETRIES = 3


class PipelineWorker:
    """Holds one loaded pipeline; becomes a Ray actor in :func:`run_ray`."""

    def __init__(self, modality: str, params: dict[str, Any], threads: int) -> None:
        import torch

        from argen.batch.modalities import ADAPTERS

        torch.set_num_threads(max(1, threads))
        self.adapter = ADAPTERS[modality]
        self.pipe = self.adapter.load(params)

    def pid(self) -> int:
        return os.getpid()

    def generate(self, chunk: list[Sample]) -> list[tuple[str, Any, Any, float]]:
        """("done", content, meta, seconds) or ("failed", error message, None, 0) per sample; a
        failing batch is retried one sample at a time so that only the culprit fails."""
        t0 = time.time()
        try:
            results = self.adapter.generate(self.pipe, chunk)
        except Exception as e:  # noqa: BLE001 - reported per sample to the driver
            if len(chunk) == 1:
                return [("failed", getattr(e, "message", None) or f"{type(e).__name__}: {e}", None, 0.0)]
            return [r for s in chunk for r in self.generate([s])]
        per_sample = (time.time() - t0) / len(chunk)
        return [("done", c, m, per_sample) for c, m in results]


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ArgenError("the Ray backend needs Ray", hint="pip install 'argen[ray]'") from None
    return ray


def run_ray(samples: list[Sample], out_dir: Path, summary: Summary, on_done: Callable[[Sample, Path], None],
            advance: Callable[[Sample], None], address: str | None = None, workers: int = 1,
            cpus_per_worker: int = 1, gpus_per_worker: float = 0.0) -> None:
    """Make ``samples`` with ``workers`` actors per model on the cluster at ``address`` (or a
    local Ray instance when None)."""
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 **({} if address else {"num_cpus": max(os.cpu_count() or 1, workers * cpus_per_worker)}))
    actor_cls = ray.remote(PipelineWorker)
    rec = Recorder(out_dir, summary, on_done)
    by_pipeline: dict[tuple, list[Sample]] = {}
    for s in samples:
        by_pipeline.setdefault(s.pipeline_key(), []).append(s)
    for group in by_pipeline.values():
        modality, params = group[0].modality, group[0].params

        def new_actor():
            opts = {"num_cpus": cpus_per_worker, "num_gpus": gpus_per_worker}
            return actor_cls.options(**opts).remote(modality, params, cpus_per_worker)

        actors = [new_actor() for _ in range(workers)]
        queue = deque((chunk, 0) for chunk in batches(group))
        in_flight: dict[Any, tuple[int, list[Sample], int]] = {}  # ref -> (actor slot, chunk, tries)
        free = list(range(len(actors)))
        while queue or in_flight:
            while queue and free:
                slot = free.pop()
                chunk, tries = queue.popleft()
                in_flight[actors[slot].generate.remote(chunk)] = (slot, chunk, tries)
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            slot, chunk, tries = in_flight.pop(ready[0])
            try:
                results = ray.get(ready[0])
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                ray.kill(actors[slot], no_restart=True)
                actors[slot] = new_actor()  # a dead or unusable actor is replaced
                if tries + 1 < MAX_BATCH_RETRIES:
                    queue.appendleft((chunk, tries + 1))
                else:
                    for s in chunk:
                        rec.failed(s, e)
                        advance(s)
                free.append(slot)
                continue
            free.append(slot)
            for s, (status, content, meta, seconds) in zip(chunk, results):
                if status == "done":
                    try:
                        rec.done(s, content, meta, seconds)
                    except Exception as e:  # noqa: BLE001 - e.g. a path escaping through a symlink
                        rec.failed(s, e)
                else:
                    rec.failed(s, ArgenError(content))
                advance(s)
        for a in actors:
            ray.kill(a)
