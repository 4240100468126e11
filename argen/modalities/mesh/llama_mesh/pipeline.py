"""`argen mesh --model llama-mesh -p "a wooden chair"`: LLaMA-Mesh on the modality contract (see
:mod:`argen.modalities.mesh.released` for what the released families share, :mod:`.model` for
the model: its chat template, the OBJ grammar, the reply read into a mesh)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from argen.modalities.base import OnProgress, Prepared, Row, load_pretrained
from argen.modalities.mesh.llama_mesh.model import COORD_MAX, DEFAULT_NEW_TOKENS, MAX_FACES, LlamaMesh
from argen.modalities.mesh.llama_mesh.model import matches as llama_mesh_config
from argen.modalities.mesh.released import ReleasedMeshPipeline
from argen.modalities.mesh.spec import MeshSpec


class LlamaMeshPipeline(ReleasedMeshPipeline):
    """``argen.load("llama-mesh")("a wooden chair", n=2, seed=0)``."""

    family = "llama-mesh"
    title = "LLaMA-Mesh"
    frame = (1.0 / COORD_MAX, -0.5)  # integer coordinates 0..63
    default_batch_size = 4

    def __init__(self, model: LlamaMesh, ref=None) -> None:
        self.model, self.ref, self.device = model, ref, model.device

    @classmethod
    def matches(cls, config: dict[str, Any] | None, path: Path) -> bool:
        return llama_mesh_config(config)

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 **options: Any) -> "LlamaMeshPipeline":
        pipe = cls(load_pretrained(LlamaMesh, ref, device, dtype, options, "mesh", "LLaMA-Mesh"), ref)
        pipe.compile = compile
        return pipe

    def prepare(self, spec: MeshSpec, rows: list[Row] | None = None) -> Prepared:
        job = super().prepare(spec, rows)
        faces, settings = spec.max_faces or MAX_FACES, {}
        for prompt in job.prompts:
            tokens = spec.max_new_tokens
            if tokens is None:  # the app's 8192, or what the context leaves after this prompt
                room = self.model.context - len(self.model.prompt_ids(prompt)) if prompt and prompt.strip() else 0
                tokens = min(DEFAULT_NEW_TOKENS, room) if room > 0 else DEFAULT_NEW_TOKENS
            self.model.check(prompt, spec.category, faces, tokens)
            settings[prompt] = {"max_faces": faces, "max_new_tokens": tokens}
        job.prompts = settings
        return job

    def sample_rows(self, spec: MeshSpec, rows: list[Row], settings: dict[str, Any], sampling,
                    on_progress: OnProgress | None) -> list[Any]:
        return self.model.sample(seeds=[r.seed for r in rows], prompt=rows[0].prompt,
                                 max_faces=settings["max_faces"], sampling=sampling,
                                 constrained=not spec.unconstrained, max_new_tokens=settings["max_new_tokens"],
                                 batch_size=len(rows), use_cache=self.use_cache, on_progress=on_progress,
                                 compile=self.compile)
