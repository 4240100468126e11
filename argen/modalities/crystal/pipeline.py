"""Crystal generation: composition (+ space group) -> CrystaLLM prompt -> the engine's sampler ->
CIF text -> symmetry restored -> checked; invalid samples are drawn again up to max_attempts.

Facts from lantunes/CrystaLLM/crystallm/_model.py (a sample ends at two newlines in a row) and
bin/sample.py (defaults temperature 0.8, top-k 10).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from argen.checkpoints import resolve as weights
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.modalities.crystal.checks import CheckReport, check_cif, restore_symmetry
from argen.modalities.crystal.cif_text import check_spacegroup, make_prompt, parse_composition, require_pymatgen
from argen.modalities.crystal.tokenizer import CIFTokenizer

BATCH = 32  # samples drawn together
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass
class CrystalRequest:
    composition: str
    formula_units: int | None = None
    spacegroup: str | None = None
    n: int = 1
    seed: int | None = None
    sampling: SamplingConfig | None = None  # None: the model's defaults
    max_attempts: int = 3
    keep_invalid: bool = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise UsageError(f"-n must be at least 1, got {self.n}", hint="e.g. -n 10")
        if self.max_attempts < 1:
            raise UsageError(f"--max-attempts must be at least 1, got {self.max_attempts}", hint="e.g. --max-attempts 5")


@dataclass
class CrystalSample:
    index: int
    text: str  # the generated CIF as CrystaLLM writes it (identity symmetry loop, property block)
    cif: str  # post-processed: the space group's operators restored, property block removed
    report: CheckReport
    seed: int
    attempts: int
    metadata: dict[str, Any] = field(default_factory=dict)
    structure: Any = None  # pymatgen Structure, when the CIF could be read

    @property
    def valid(self) -> bool:
        return self.report.valid


class CrystalPipeline:
    def __init__(self, model, name: str = "", ref: weights.ModelRef | None = None,
                 default_sampling: dict | None = None) -> None:
        self.model = model.eval()
        self.name = name or (ref.name if ref else "")
        self.ref = ref
        self.tokenizer = CIFTokenizer()
        self.default_sampling = {"temperature": 0.8, "top_k": 10, **(default_sampling or {})}
        if self.default_sampling.get("top_k") is not None:  # recipes store sampling values as floats
            self.default_sampling["top_k"] = int(self.default_sampling["top_k"])
        if model.cfg.vocab_size != self.tokenizer.vocab_size:
            raise ArgenError(f"model {self.name} has a {model.cfg.vocab_size}-token vocabulary, not CrystaLLM's 371",
                             hint="pass a crystal model (argen folder or CrystaLLM ckpt.pt)")

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str = "auto") -> "CrystalPipeline":
        """A registered name, an argen model folder with modality "crystal", or a CrystaLLM
        (nanoGPT) ``ckpt.pt``."""
        from argen.engine.device import resolve_device

        require_pymatgen()
        ref = weights.resolve(name_or_path or weights.default_model("crystal"), "crystal")
        if ref.path.is_file():
            if ref.path.suffix.lower() not in CHECKPOINT_SUFFIXES:
                raise ArgenError(f"{ref.path} is neither a model folder nor a .pt checkpoint",
                                 hint="pass an argen model folder or CrystaLLM's ckpt.pt")
            from argen.modalities.crystal.crystallm_convert import load_crystallm_checkpoint

            model, meta = load_crystallm_checkpoint(ref.path)
        else:
            from argen.checkpoints.argen_format import load_model_dir, read_json

            if not (ref.path / "config.json").is_file():
                raise ArgenError(f"{ref.path} has no config.json", hint="pass an argen crystal model folder or CrystaLLM's ckpt.pt")
            head = read_json(ref.path / "config.json")
            if head.get("format") != "argen" or head.get("modality") != "crystal":
                raise ArgenError(f"model {ref.name} is a {head.get('modality') or head.get('model_type') or 'foreign'} model, "
                                 "not a crystal model", hint="pass a crystal model folder or CrystaLLM's ckpt.pt")
            model, meta = load_model_dir(ref.path)
        model = model.to(resolve_device(device))
        return cls(model, name=meta.get("name") or ref.name, ref=ref, default_sampling=meta.get("sampling"))

    def sampling(self, overrides: SamplingConfig | None) -> SamplingConfig:
        return overrides or SamplingConfig(**self.default_sampling)

    def prompt(self, composition: str, formula_units: int | None = None, spacegroup: str | None = None) -> str:
        comp = parse_composition(composition, formula_units)
        return make_prompt(comp, check_spacegroup(spacegroup))

    @torch.inference_mode()
    def sample_texts(self, prompt: str, seeds: list[int], sampling: SamplingConfig) -> list[str]:
        """One CIF text per seed (row ``i`` is drawn with a generator seeded ``seeds[i]``)."""
        ids = self.tokenizer.encode(prompt)
        room = self.model.cfg.max_seq_len - len(ids)
        if room < 1:
            raise UsageError(f"the prompt ({len(ids)} tokens) fills the model's context ({self.model.cfg.max_seq_len})",
                             hint="use a smaller composition")
        nl = self.tokenizer.newline_id

        def stop(_row: int, new: list[int]) -> bool:
            return len(new) >= 2 and new[-1] == nl and new[-2] == nl

        device = self.model.embed.weight.device
        texts = []
        for i in range(0, len(seeds), BATCH):
            chunk = seeds[i:i + BATCH]
            gens = [torch.Generator(device=device).manual_seed(s) for s in chunk]
            outs = generate(self.model, [ids] * len(chunk), room, sampling, generators=gens, stop=stop)
            texts += [prompt + self.tokenizer.decode(o) for o in outs]
        return texts

    def finish(self, text: str) -> tuple[str, CheckReport, Any]:
        """(post-processed CIF, check report, structure or None) for a generated text."""
        report, structure = check_cif(text)
        try:
            cif = restore_symmetry(text)
        except Exception as e:  # noqa: BLE001 - an unknown group symbol, a malformed loop
            cif = text
            report.error = report.error or f"post-processing failed: {e}"[:200]
        return cif, report, structure

    def __call__(self, req: CrystalRequest) -> list[CrystalSample]:
        # 1. prompt from the composition (and space group)
        prompt = self.prompt(req.composition, req.formula_units, req.spacegroup)
        sampling = self.sampling(req.sampling)
        base = req.seed if req.seed is not None else torch.seed() % 2**31
        # 2. sample, check, and draw the invalid ones again; attempt a of sample i uses seed base + a*n + i
        best: dict[int, CrystalSample] = {}
        todo = list(range(req.n))
        for attempt in range(req.max_attempts):
            if not todo:
                break
            t0 = time.time()
            seeds = [base + attempt * req.n + i for i in todo]
            texts = self.sample_texts(prompt, seeds, sampling)
            for i, seed, text in zip(todo, seeds, texts):
                cif, report, structure = self.finish(text)
                best[i] = CrystalSample(i, text, cif, report, seed, attempt + 1, structure=structure)
            todo = [i for i in todo if not best[i].valid]
            seconds = (time.time() - t0) / max(1, len(seeds))
        # 3. metadata for every sample; the caller writes the valid ones (and the rest with keep_invalid)
        samples = [best[i] for i in range(req.n)]
        for s in samples:
            s.metadata = build_metadata(
                modality="crystal", prompt=prompt, composition=req.composition, formula_units=req.formula_units,
                spacegroup=req.spacegroup, seed=s.seed, attempts=s.attempts, max_attempts=req.max_attempts,
                model=self.name, model_sha256=weights.digest(self.ref) if self.ref else None,
                sampling=sampling.to_dict(), checks=s.report.to_dict(), seconds=round(seconds, 3))
        return samples

def load_pipeline(model: str | None, device: str = "auto") -> CrystalPipeline:
    return CrystalPipeline.from_pretrained(model, device)


def output_paths(output: Path, n: int, composition: str) -> list[Path]:
    """``out_dir/`` -> out_dir/<composition>-<i>.cif; ``x.cif`` -> x.cif (n=1) or x-<i>.cif."""
    if str(output).endswith(("/", "\\")) or output.is_dir() or output.suffix.lower() != ".cif":
        if output.suffix and output.suffix.lower() != ".cif" and not output.is_dir():
            raise UsageError(f"-o {output}: crystals are written as .cif files", hint="give a folder/ or a path ending in .cif")
        return [output / f"{composition}-{i}.cif" for i in range(n)]
    if n == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(n)]
