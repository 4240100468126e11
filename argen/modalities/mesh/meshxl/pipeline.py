"""`argen mesh --model <MeshXL>`: MeshXL's base models, their category fine-tunes and the
text-conditioned x-mesh-xl on the modality contract (see :mod:`argen.modalities.mesh.released`
for what the released families share, :mod:`.model` for the model).

A folder whose only weights are one fine-tune (e.g. ``meshxl-125m-chair.pth`` beside its size's
config.json, or that file given as the model) samples that category without ``--category``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from argen.errors import ArgenError, UsageError
from argen.modalities.base import OnProgress, Prepared, Row, load_pretrained
from argen.modalities.mesh.meshxl.model import DEFAULT_FACES, MeshXL
from argen.modalities.mesh.meshxl.model import matches as meshxl_config
from argen.modalities.mesh.released import ReleasedMeshPipeline
from argen.modalities.mesh.spec import MeshSpec


class MeshXLPipeline(ReleasedMeshPipeline):
    """``argen.load("meshxl-125m")(n=4, seed=0)``, ``argen.load(folder)(category="chair")``,
    ``argen.load("x-meshxl-350m")("3d model of a table")``."""

    family = "meshxl"
    title = "MeshXL"
    frame = (0.5, 0.0)  # MeshXL's [-1, 1] on the longest side
    default_batch_size = 8

    def __init__(self, model: MeshXL, ref=None) -> None:
        self.model, self.ref, self.device = model, ref, model.device

    @classmethod
    def matches(cls, config: dict[str, Any] | None, path: Path) -> bool:
        if config is None:  # a fine-tune .pth, its size's config.json beside it
            from argen.modalities.loading import read_config

            if path.suffix != ".pth" or not (path.parent / "config.json").is_file():
                return False
            try:
                config = read_config(path.parent)
            except ArgenError:
                return False
        return meshxl_config(config)

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 **options: Any) -> "MeshXLPipeline":
        pipe = cls(load_pretrained(MeshXL, ref, device, dtype, options, "mesh", "MeshXL"), ref)
        pipe.compile = compile
        return pipe

    def check(self, spec: MeshSpec) -> None:
        super().check(spec)
        if spec.max_new_tokens is not None:
            raise UsageError("--max-new-tokens: MeshXL's length is set by --max-faces (9 tokens a face)",
                             hint=f"e.g. --max-faces {min(DEFAULT_FACES, self.model.max_faces_limit)}")

    def category(self, spec: MeshSpec) -> str | None:
        """``--category``, or the one fine-tune of a folder that holds nothing else."""
        m = self.model
        if spec.category is None and m.base is None and len(m.fine_tunes) == 1:
            return next(iter(m.fine_tunes))
        return spec.category

    def prepare(self, spec: MeshSpec, rows: list[Row] | None = None) -> Prepared:
        job = super().prepare(spec, rows)
        settings = {"category": self.category(spec),
                    "max_faces": spec.max_faces or min(DEFAULT_FACES, self.model.max_faces_limit)}
        for prompt in job.prompts:  # a prompt for the base models, none for x-mesh-xl, a category...
            self.model.check(settings["category"], prompt, settings["max_faces"])
        job.prompts = {p: settings for p in job.prompts}
        return job

    def weight_file(self, settings: dict[str, Any]) -> Path | None:
        c = settings.get("category")
        return self.model.fine_tunes[c] if c is not None else self.model.base

    def sample_rows(self, spec: MeshSpec, rows: list[Row], settings: dict[str, Any], sampling,
                    on_progress: OnProgress | None) -> list[Any]:
        return self.model.sample(seeds=[r.seed for r in rows], category=settings["category"],
                                 max_faces=settings["max_faces"], sampling=sampling,
                                 constrained=not spec.unconstrained, prompt=rows[0].prompt, batch_size=len(rows),
                                 use_cache=self.use_cache, on_progress=on_progress, compile=self.compile)
