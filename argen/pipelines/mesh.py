"""Text-to-mesh: caption -> prefix ids -> the engine's next-token sampler, constrained by the
mesh grammar -> mesh tokens -> a cleaned trimesh (+ metadata)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from argen import weights
from argen.device import resolve_device
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.models.mesh_tokenizer import MeshLayout
from argen.models.transformer import Transformer
from argen.pipelines.rows import PromptRows
from argen.samplers.mesh_constraints import MeshConstraint, max_tokens
from argen.samplers.next_token import generate
from argen.samplers.processors import SamplingConfig

DEFAULT_MODEL = "shapes3d-mesh"


@dataclass
class MeshRequest(PromptRows):
    prompt: str | list[str]  # a list pairs with ``seeds``, one seed per prompt
    n: int = 1
    seed: int | None = None
    seeds: list[int] | None = None
    sampling: SamplingConfig | None = None  # None: the model's defaults (config.json "sampling")
    max_faces: int = 400
    batch_size: int = 16
    use_cache: bool = True

    def __post_init__(self) -> None:
        self.check_rows()
        if self.max_faces < 1:
            raise UsageError(f"--max-faces must be at least 1, got {self.max_faces}", hint="e.g. --max-faces 400")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}", hint="e.g. 16")


@dataclass
class MeshOutput:
    mesh: Any  # trimesh.Trimesh in the unit cube
    tokens: list[int]
    prompt: str
    seed: int
    index: int
    seconds: float
    metadata: dict[str, Any]


class MeshPipeline:
    """``MeshPipeline.from_pretrained("shapes3d-mesh")(MeshRequest("a tall lamp", n=4))``."""

    modality = "mesh"

    def __init__(self, model: Transformer, layout: MeshLayout, ref: weights.ModelRef | None = None,
                 device: torch.device | str = "cpu", sampling: dict[str, float] | None = None) -> None:
        self.model, self.layout, self.ref = model, layout, ref
        self.device = torch.device(device)
        self.sampling_defaults = {"cfg_scale": 1.0, "temperature": 0.7, **(sampling or {})}

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str = "auto") -> "MeshPipeline":
        from argen.models.loader import load_transformer

        if name_or_path is None:
            try:
                name_or_path = weights.default_model("mesh")
            except ArgenError:
                name_or_path = DEFAULT_MODEL
        ref = weights.resolve(name_or_path, "mesh")
        model, info = load_transformer(ref.path)
        meta = info.get("config") or {}
        if info.get("modality") != "mesh" or "mesh" not in meta:
            raise ArgenError(f"{ref.name} is not a mesh model", hint="pick a mesh model (see `argen models`)")
        try:
            layout = MeshLayout.from_dict(meta["mesh"])
        except (TypeError, ValueError) as e:
            raise ArgenError(f"{ref.path / 'config.json'}: invalid mesh layout ({e})",
                             hint="the file is corrupt or from another tool") from None
        dev = resolve_device(device)
        return cls(model.to(dev), layout, ref, dev, meta.get("sampling"))

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        return SamplingConfig(**{**self.sampling_defaults, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def name(self) -> str:
        return self.ref.name if self.ref else "in-memory"

    def check_prompt(self, prompt: str) -> list[int]:
        """The prompt's prefix ids; for shapes3d models the caption grammar is checked too."""
        if self.layout.dataset == "shapes3d":
            from argen.data.shapes3d import parse_caption

            parse_caption(prompt)
        return self.layout.caption_ids(prompt)

    def sample_tokens(self, prompt_ids: list[list[int]], seeds: list[int], sampling: SamplingConfig,
                      max_faces: int = 400, use_cache: bool = True) -> list[list[int]]:
        """Mesh tokens (each ending with EOS) for one prompt's prefix ids and seed per row."""
        lay, b = self.layout, len(seeds)
        budget = min(max_tokens(max_faces), lay.max_seq_len)
        gens = None if sampling.greedy else [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        constraint = MeshConstraint(b, lay.adjacent, max_faces, lay.mesh_vocab, budget)
        return generate(self.model, [ids + [lay.bos] for ids in prompt_ids], budget, sampling, generators=gens,
                        eos_id=lay.eos, uncond_prompts=[lay.null_ids() + [lay.bos]] * b,
                        vocab_limit=lay.mesh_vocab, allowed=constraint, use_cache=use_cache)

    @torch.inference_mode()
    def __call__(self, req: MeshRequest) -> list[MeshOutput]:
        # 1. check the prompts
        rows = req.rows()
        ids = {p: self.check_prompt(p) for p in dict.fromkeys(p for p, _ in rows)}
        sampling = req.sampling or self.default_sampling()
        outputs = []
        for start in range(0, len(rows), req.batch_size):
            chunk = rows[start:start + req.batch_size]
            t0 = time.time()
            # 2. sample mesh tokens under the grammar constraint
            tokens = self.sample_tokens([ids[p] for p, _ in chunk], [s for _, s in chunk], sampling,
                                        req.max_faces, req.use_cache)
            # 3. tokens -> meshes
            meshes = [self.layout.detokenize(t) for t in tokens]
            seconds = (time.time() - t0) / len(chunk)
            # 4. one record per mesh
            for j, (mesh, toks, (prompt, seed)) in enumerate(zip(meshes, tokens, chunk)):
                meta = self._metadata(req, sampling, prompt, seed, mesh)
                outputs.append(MeshOutput(mesh, toks, prompt, seed, start + j, seconds, meta))
        return outputs

    def _metadata(self, req: MeshRequest, sampling: SamplingConfig, prompt: str, seed: int, mesh) -> dict[str, Any]:
        ref = self.ref
        return build_metadata(
            modality="mesh", prompt=prompt, seed=seed, model=self.name,
            model_sha256=weights.digest(ref) if ref else None,
            model_path=None if ref is None or ref.bundled else str(ref.path), sampler="next-token",
            sampling=sampling.to_dict(), tokenization="adjacent" if self.layout.adjacent else "plain",
            max_faces=req.max_faces, faces=int(len(mesh.faces)), vertices=int(len(mesh.vertices)),
            device=str(self.device))
