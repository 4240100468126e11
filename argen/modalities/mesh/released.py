"""What the pipelines of released mesh models (MeshXL, LLaMA-Mesh) share: their outputs in the
bundled model's frame, their metadata, and what happens to outputs with no face.

Every written mesh is in the unit cube [-0.5, 0.5]^3, as the bundled model's outputs are: each
family's own frame is mapped by one fixed affine map (MeshXL's [-1, 1] halved; LLaMA-Mesh's
integer grid 0..63 divided by 63, less 0.5), so the model's quantisation grid is kept and no mesh
is refitted to its own bounding box. Under ``--unconstrained`` a sample may decode to no face at
all; it is not written (a warning says how many), and a run that writes nothing is an error.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import trimesh

from argen.checkpoints.files import sha256_file
from argen.console import log
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.modalities.base import OnProgress, Output, Pipeline, Row, quantize_record
from argen.modalities.mesh.pipeline import MeshOutput
from argen.modalities.mesh.spec import MeshSpec

HASH_LIMIT = 1 << 30  # weight files up to 1 GiB are hashed for the metadata of local folders


def to_unit_cube(mesh: trimesh.Trimesh, scale: float, shift: float) -> trimesh.Trimesh:
    """``mesh`` with every vertex mapped to ``v * scale + shift`` (faces unchanged)."""
    v = np.asarray(mesh.vertices, dtype=np.float64) * scale + shift
    return trimesh.Trimesh(vertices=v, faces=np.asarray(mesh.faces), process=False)


def weights_digest(ref, path: Path | None) -> str | None:
    """sha256 of the weight file a sample came from (``path``; None: the model's main one): the
    registry's or the pull's record, else computed when the file is under 1 GiB."""
    if path is None:
        return ref.sha256 if ref is not None else None
    if ref is not None and ref.files.get(path.name):
        return ref.files[path.name]
    if path.is_file() and path.stat().st_size <= HASH_LIMIT:
        return _sha256(path, path.stat().st_mtime_ns)
    return None


@lru_cache(maxsize=16)
def _sha256(path: Path, mtime_ns: int) -> str:
    return sha256_file(path)


def by_prompt(rows: list[Row]) -> list[list[Row]]:
    """Rows grouped by prompt, in order of first appearance (one model call per prompt)."""
    groups: dict[str | None, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.prompt, []).append(r)
    return list(groups.values())


class ReleasedMeshPipeline(Pipeline):
    """Base of the released families' pipelines; subclasses set ``family`` and ``frame`` (scale,
    shift to the unit cube), implement ``sample_rows``, and make ``prepare`` map each prompt to
    the settings its samples use (defaults filled in; recorded in their metadata)."""

    modality = "mesh"
    family: ClassVar[str] = ""
    title: ClassVar[str] = ""  # the family's name in messages
    frame: ClassVar[tuple[float, float]] = (1.0, 0.0)
    sampling_flags: ClassVar[dict[str, str]] = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p"}

    model: Any = None  # MeshXL or LlamaMesh
    device: Any = None

    def default_sampling(self, **overrides: Any):
        return self.model.default_sampling(**overrides)

    def check(self, spec: MeshSpec) -> None:
        if spec.cfg is not None:
            raise UsageError(f"--cfg: {self.title} has no classifier-free guidance", hint="drop --cfg")

    def sample_rows(self, spec: MeshSpec, rows: list[Row], settings: dict[str, Any], sampling,
                    on_progress: OnProgress | None) -> list[Any]:
        """The model's samples (``.mesh .raw .parsed .tokens``) for rows that share a prompt."""
        raise NotImplementedError

    def weight_file(self, settings: dict[str, Any]) -> Path | None:
        """The weight file samples with these settings come from (None: the model's only one)."""
        return None

    def generate_batch(self, spec: MeshSpec, rows: list[Row], prepared: dict, sampling,
                       on_progress: OnProgress | None = None) -> list[MeshOutput]:
        t0 = time.time()
        pairs = []
        for group in by_prompt(rows):
            settings = prepared[group[0].prompt]
            pairs += [(r, s, settings) for r, s in zip(group, self.sample_rows(spec, group, settings, sampling,
                                                                                on_progress))]
        seconds = (time.time() - t0) / len(rows)
        outs = []
        for r, s, settings in sorted(pairs, key=lambda p: p[0].index):
            mesh = to_unit_cube(s.mesh, *self.frame)
            meta = self._metadata(spec, sampling, r, settings, mesh)
            skip = None if len(mesh.faces) else "no face decoded (sampled with --unconstrained)"
            outs.append(MeshOutput(r.index, r.seed, r.prompt, seconds, meta, skip_reason=skip, mesh=mesh,
                                   tokens=list(s.tokens), raw=to_unit_cube(s.raw, *self.frame), parsed=bool(s.parsed)))
        return outs

    def summary(self, outputs: list[Output]) -> str:
        faces = ", ".join(str(len(o.mesh.faces)) for o in outputs)
        return (f"{len(outputs)} mesh(es) in {sum(o.seconds for o in outputs):.2f} s ({self.name}), seed "
                f"{outputs[0].seed if outputs else '-'}, faces {faces}")

    def finish(self, outputs: list[Output], spec: MeshSpec, written: int, quiet: bool) -> None:
        empty = sum(o.skip_reason is not None for o in outputs)
        if empty:
            log(f"warning: {empty} of {len(outputs)} samples decoded to no face and were not written "
                "(drop --unconstrained: constrained sampling always gives a mesh)", quiet)
        if outputs and empty == len(outputs):
            raise ArgenError("no sample decoded to a mesh", hint="drop --unconstrained")

    def _metadata(self, spec: MeshSpec, sampling, row: Row, settings: dict[str, Any], mesh) -> dict[str, Any]:
        ref = self.ref
        return build_metadata(
            modality="mesh", prompt=row.prompt, seed=row.seed, model=self.name, family=self.family,
            model_sha256=weights_digest(ref, self.weight_file(settings)),
            model_path=None if ref is None or ref.bundled else str(ref.path), sampler="next-token",
            sampling=sampling.to_dict(), constrained=not spec.unconstrained, **settings,
            faces=int(len(mesh.faces)), vertices=int(len(mesh.vertices)), frame="unit cube [-0.5, 0.5]^3",
            device=str(self.device), dtype=str(self.model.dtype).removeprefix("torch."),
            quantize=quantize_record(self.model.quantize))

