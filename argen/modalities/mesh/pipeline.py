"""Text-to-mesh: caption -> prefix ids -> the engine's next-token sampler, constrained by the
mesh grammar -> mesh tokens -> a cleaned trimesh (+ metadata)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from argen.checkpoints import resolve as weights
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.engine.transformer import Transformer
from argen.errors import UsageError
from argen.io.metadata import build_metadata
from argen.modalities.base import OnProgress, Output, Pipeline, Row, load_argen_transformer, refuse_options, ticker
from argen.modalities.mesh.constraints import MeshConstraint, max_tokens, most_faces
from argen.modalities.mesh.spec import MeshSpec
from argen.modalities.mesh.tokenizer import MeshLayout

DEFAULT_MODEL = "shapes3d-mesh"
DEFAULT_FACES = 400


@dataclass
class MeshOutput(Output):
    mesh: Any = None  # trimesh.Trimesh in the unit cube [-0.5, 0.5]^3, cleaned
    tokens: list[int] | None = None
    raw: Any = None  # released families: the mesh exactly as decoded (degenerate or repeated faces kept)
    parsed: bool | None = None  # released families: the output was well formed in the model's own format

    suffixes: ClassVar[tuple[str, ...]] = (".obj", ".glb", ".ply", ".stl")

    def write(self, path: Path) -> Path:
        from argen.io.mesh import write_mesh

        return write_mesh(path, self.mesh, self.metadata)

    def write_preview(self, path: Path) -> Path:
        from argen.io.mesh_preview import write_preview

        return write_preview(path, self.mesh, self.metadata)

    def record(self) -> dict[str, Any]:
        return {"seed": self.seed, "prompt": self.prompt, "model": self.metadata.get("model"),
                "faces": int(len(self.mesh.faces)), "watertight": bool(self.mesh.is_watertight)}


class MeshPipeline(Pipeline):
    """A text-to-mesh model: ``argen.load("shapes3d-mesh")("a tall lamp", n=4, seed=0)``."""

    modality = "mesh"
    argen_section = "mesh"
    default_batch_size = 16

    def __init__(self, model: Transformer, layout: MeshLayout, ref: weights.ModelRef | None = None,
                 device: torch.device | str = "cpu", sampling: dict[str, float] | None = None) -> None:
        self.model, self.layout, self.ref = model, layout, ref
        self.device = torch.device(device)
        self.sampling_defaults = {"cfg_scale": 1.0, "temperature": 0.7, **(sampling or {})}

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 **options: Any) -> "MeshPipeline":
        refuse_options(options, "mesh", "bundled mesh")
        model, meta, layout, dev = load_argen_transformer(ref, device, dtype, "mesh", MeshLayout)
        pipe = cls(model, layout, ref, dev, meta.get("sampling"))
        pipe.compile = compile
        return pipe

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        return SamplingConfig(**{**self.sampling_defaults, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def name(self) -> str:
        return self.ref.name if self.ref else "in-memory"

    def check(self, spec: MeshSpec) -> None:
        for value, flag, why in ((spec.category, "--category", "has no category fine-tunes"),
                                 (spec.unconstrained or None, "--unconstrained", "always samples under its grammar"),
                                 (spec.max_new_tokens, "--max-new-tokens", "stops at --max-faces")):
            if value is not None:
                raise UsageError(f"{flag}: {self.name} {why}", hint=f"drop {flag} (it is for MeshXL or LLaMA-Mesh)")
        most = most_faces(self.layout.adjacent, self.layout.max_seq_len)
        if spec.max_faces is not None and spec.max_faces > most:
            per = "3 a face along a strip" if self.layout.adjacent else "10 a face"
            raise UsageError(f"--max-faces must be in 1..{most} for this model ({self.layout.max_seq_len} mesh tokens, "
                             f"{per}), got {spec.max_faces}", hint=f"e.g. --max-faces {most}")

    def check_prompt(self, prompt: str | None) -> list[int]:
        """The prompt's prefix ids; for shapes3d models the caption grammar is checked too."""
        if prompt is None:
            raise UsageError("no prompt given (this mesh model draws from a caption)", hint='e.g. -p "a tall lamp"')
        if self.layout.dataset == "shapes3d":
            from argen.modalities.mesh.grammar import parse_caption

            parse_caption(prompt)
        return self.layout.caption_ids(prompt)

    def sample_tokens(self, prompt_ids: list[list[int]], seeds: list[int], sampling: SamplingConfig,
                      max_faces: int = 400, use_cache: bool = True,
                      on_progress: OnProgress | None = None) -> list[list[int]]:
        """Mesh tokens (each ending with EOS) for one prompt's prefix ids and seed per row. The
        grammar runs on the logits, outside the (with --compile on CUDA: graph-captured) step."""
        lay, b = self.layout, len(seeds)
        budget = min(max_tokens(max_faces), lay.max_seq_len)
        gens = None if sampling.greedy else [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        constraint = MeshConstraint(b, lay.adjacent, max_faces, lay.mesh_vocab, budget)
        return generate(self.model, [ids + [lay.bos] for ids in prompt_ids], budget, sampling, generators=gens,
                        eos_id=lay.eos, use_cache=use_cache, compile=self.compile,
                        rules=token_rules(lay.mesh_vocab, [lay.null_ids() + [lay.bos]] * b, constraint),
                        on_token=ticker(on_progress, budget, "tokens"))

    @torch.inference_mode()
    def generate_batch(self, spec: MeshSpec, rows: list[Row], prepared: dict, sampling: SamplingConfig,
                       on_progress: OnProgress | None = None) -> list[MeshOutput]:
        t0 = time.time()
        # 1. sample mesh tokens under the grammar constraint
        tokens = self.sample_tokens([prepared[r.prompt] for r in rows], [r.seed for r in rows], sampling,
                                    spec.max_faces or DEFAULT_FACES, self.use_cache, on_progress)
        # 2. tokens -> meshes
        meshes = [self.layout.detokenize(t) for t in tokens]
        seconds = (time.time() - t0) / len(rows)
        # 3. one record per mesh
        return [MeshOutput(r.index, r.seed, r.prompt, seconds, self._metadata(spec, sampling, r.prompt, r.seed, mesh),
                           mesh=mesh, tokens=toks) for mesh, toks, r in zip(meshes, tokens, rows)]

    def summary(self, outputs: list[Output]) -> str:
        return (f"{len(outputs)} mesh(es) in {sum(o.seconds for o in outputs):.2f} s ({self.name}), seed "
                f"{outputs[0].seed if outputs else '-'}, faces {', '.join(str(len(o.mesh.faces)) for o in outputs)}")

    def _metadata(self, spec: MeshSpec, sampling: SamplingConfig, prompt: str, seed: int, mesh) -> dict[str, Any]:
        ref = self.ref
        return build_metadata(
            modality="mesh", prompt=prompt, seed=seed, model=self.name,
            model_sha256=weights.digest(ref) if ref else None,
            model_path=None if ref is None or ref.bundled else str(ref.path), sampler="next-token",
            sampling=sampling.to_dict(), tokenization="adjacent" if self.layout.adjacent else "plain",
            max_faces=spec.max_faces or DEFAULT_FACES, faces=int(len(mesh.faces)), vertices=int(len(mesh.vertices)),
            device=str(self.device))
