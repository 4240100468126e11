"""Running a plan on a Ray cluster: one actor per model and worker slot holds the loaded
pipeline; batches are scheduled to actors; results come back to the driver, which alone writes
the files and the manifest (so resume works exactly as for local runs). A dead actor is
replaced and its batch resubmitted.
"""

from __future__ import annotations

import logging
import os
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

        from argen.batch.adapter import ADAPTERS

        torch.set_num_threads(max(1, threads))
        self.adapter = ADAPTERS[modality]
        self.pipe = self.adapter.load(params)

    def generate(self, chunk: list[Sample]) -> list[tuple[bool, Any, Any, float]]:
        from argen.batch.local import generate_isolated

        return generate_isolated(self.adapter, self.pipe, chunk)


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
            rec.outcomes(chunk, results, advance)
        for a in actors:
            ray.kill(a)
