"""Running a plan on a Ray cluster: ``workers`` actors per model group hold the loaded pipeline,
every group's actors are created at once so the groups run concurrently, and results come back
to the driver, which alone writes the files and the manifest (so resume works exactly as for
local runs).

Fault tolerance is Ray's own: each actor is created with ``max_restarts`` and
``max_task_retries`` (Ray's actor fault-tolerance guide, ray-core/fault_tolerance/actors.rst),
so when an actor's process dies (a crash, a lost node, ``ray.kill(actor, no_restart=False)``)
Ray restarts it, which re-runs ``__init__`` and so reloads the pipeline, and re-runs the batch it
was working on. The driver consumes the result once, so nothing is lost or written twice. A batch
that still fails after its retries is recorded as failed, one manifest line per sample, and the
run goes on (a later run makes those samples again).

Why not ``ray.util.ActorPool`` (ray/util/actor_pool.py) or Ray Data: a pool's results and errors
do not say which batch they belong to, it drops an actor whose task raised ``ActorDiedError``
and then waits forever on work no actor is left to take, and one pool cannot be waited on
together with another model's pool; Ray Data fails the whole dataset on a batch that keeps
failing. So the driver waits on all groups' tasks with ``ray.wait`` and hands a batch only to an
actor that has answered (an actor the cluster has not placed yet gets nothing, so a group that
holds some workers never waits on one that cannot start until another group finishes).
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from argen.batch.local import Recorder, Summary, batches
from argen.batch.plan import Sample
from argen.errors import ArgenError

MAX_TASK_RETRIES = 2  # a batch runs at most 3 times when its actor dies under it


class PipelineWorker:
    """Holds one loaded pipeline; becomes a Ray actor in :func:`run_ray`."""

    def __init__(self, modality: str, params: dict[str, Any], threads: int) -> None:
        import torch

        from argen.batch.adapter import ADAPTERS
        from argen.batch.local import error_message

        torch.set_num_threads(max(1, threads))
        self.adapter, self.pipe, self.error = ADAPTERS[modality], None, ""
        try:
            self.pipe = self.adapter.load(params)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - reported by ready(), as a local run reports it
            self.error = error_message(e)

    def ready(self) -> tuple[int, str]:
        """(the pipeline's default batch size, what a local run uses; why it did not load, or "").
        Answering also says the actor is placed on the cluster."""
        return (self.pipe.default_batch_size if self.pipe is not None else 0), self.error

    def generate(self, chunk: list[Sample]) -> list[tuple[bool, Any, Any, float]]:
        from argen.batch.local import generate_isolated

        return generate_isolated(self.adapter, self.pipe, chunk)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ArgenError("the Ray backend needs Ray", hint="pip install 'argen[ray]'") from None
    return ray


def ray_error(e: BaseException, what: str = "on this batch") -> str:
    """One line for a manifest entry: Ray's messages run to many lines of traceback."""
    from argen.batch.local import error_message

    if isinstance(getattr(e, "cause", None), BaseException):  # an exception raised in the actor's method
        return error_message(e.cause)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines() or [""]
    if "creation task" in lines[0]:  # __init__ raised: its exception is the traceback's last line
        return lines[-1][:300]
    return f"the Ray worker failed {what} ({type(e).__name__}: {lines[0][:200]})"


@dataclass
class _Group:
    """The samples of one model group and the actors that make them."""

    samples: list[Sample]
    actors: list[Any]
    chunks: deque | None = None  # cut once an actor has loaded the pipeline and knows its batch size
    busy: int = 0
    alive: int = 0
    done: bool = False
    waiting: list[Any] = field(default_factory=list)  # refs of this group still awaited


def run_ray(samples: list[Sample], out_dir: Path, summary: Summary, on_done: Callable[[Sample, Path], None],
            advance: Callable[[Sample], None], address: str | None = None, workers: int = 1,
            cpus_per_worker: int = 1, gpus_per_worker: float = 0.0,
            on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Make ``samples`` with ``workers`` actors per model group on the cluster at ``address`` (or a
    local Ray instance when None), all groups at once."""
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 **({} if address else {"num_cpus": max(os.cpu_count() or 1, workers * cpus_per_worker)}))
    actor_cls = ray.remote(PipelineWorker)
    rec = Recorder(out_dir, summary, on_done, on_record)
    by_pipeline: dict[tuple, list[Sample]] = {}
    for s in samples:
        by_pipeline.setdefault(s.pipeline_key(), []).append(s)
    pending: dict[Any, tuple[_Group, Any, list[Sample] | None]] = {}  # ref -> (group, actor, batch or None)

    def submit(g: _Group, actor: Any, ref: Any, chunk: list[Sample] | None) -> None:
        pending[ref] = (g, actor, chunk)
        g.waiting.append(ref)

    def feed(g: _Group, actor: Any) -> None:
        """Give an idle actor the group's next batch; close the group when it has no more."""
        if g.chunks:
            g.busy += 1
            chunk = g.chunks.popleft()
            submit(g, actor, actor.generate.remote(chunk), chunk)
        elif g.chunks is not None and g.busy == 0 and not g.done:
            finish(g)

    def finish(g: _Group, error: str = "") -> None:
        """Free the group's actors (and the cluster resources they hold, which another group's
        actors may be waiting for); samples never handed out fail with ``error``."""
        g.done = True
        for s in g.samples if g.chunks is None else [s for chunk in g.chunks for s in chunk]:
            rec.failed(s, error)
            advance(s)
        g.chunks = deque()
        for ref in g.waiting:
            pending.pop(ref, None)
        for a in g.actors:
            ray.kill(a)

    groups = []
    for group in by_pipeline.values():
        modality, params = group[0].modality, group[0].params
        opts = {"num_cpus": cpus_per_worker, "num_gpus": gpus_per_worker, "max_task_retries": MAX_TASK_RETRIES,
                # enough restarts for every batch to use all its retries; an actor that dies in
                # __init__ over and over still stops
                "max_restarts": (MAX_TASK_RETRIES + 1) * len(group)}
        g = _Group(group, [actor_cls.options(**opts).remote(modality, params, cpus_per_worker) for _ in range(workers)])
        g.alive = len(g.actors)
        for a in g.actors:
            submit(g, a, a.ready.remote(), None)
        groups.append(g)
    while pending:
        [ref], _ = ray.wait(list(pending), num_returns=1)
        g, actor, chunk = pending.pop(ref)
        g.waiting.remove(ref)
        try:
            value = ray.get(ref)
        except ray.exceptions.RayError as e:
            if chunk is None:  # the actor could not start (its pipeline would not load, or it died for good)
                g.alive -= 1
                if g.alive == 0 and not g.done:
                    finish(g, ray_error(e, "and no worker is left for this model"))
                continue
            g.busy -= 1
            for s in chunk:
                rec.failed(s, ray_error(e))
                advance(s)
            submit(g, actor, actor.ready.remote(), None)  # back in use once it answers again
            continue
        if chunk is None:
            size, error = value
            if error:  # the pipeline did not load here: the same error everywhere, most likely
                g.alive -= 1
                ray.kill(actor)
                if g.alive == 0 and not g.done:
                    finish(g, error)
            else:
                if g.chunks is None:
                    g.chunks = deque(batches(g.samples, size))
                feed(g, actor)
            continue
        g.busy -= 1
        feed(g, actor)  # the actor's next batch first, so it works while the driver writes files
        rec.outcomes(chunk, value, advance)
