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
from argen.engine.sampling.window import ContextWindow
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.modalities.crystal.checks import CheckReport, check_cif, restore_symmetry
from argen.modalities.crystal.cif_text import check_spacegroup, make_prompt, parse_composition, require_pymatgen
from argen.modalities.crystal.tokenizer import CIFTokenizer

BATCH = 256  # rows decoded together (finished rows leave the batch)
MAX_NEW_TOKENS = 3000  # CrystaLLM's bin/sample.py and bin/generate_cifs.py default
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
    max_new_tokens: int | None = MAX_NEW_TOKENS  # past the context the window slides; None: stop at the context

    def __post_init__(self) -> None:
        if self.n < 1:
            raise UsageError(f"-n must be at least 1, got {self.n}", hint="e.g. -n 10")
        if self.max_attempts < 1:
            raise UsageError(f"--max-attempts must be at least 1, got {self.max_attempts}", hint="e.g. --max-attempts 5")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}", hint="CrystaLLM uses 3000")


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
    compile = False  # --compile: the cached phase's decode step graph-captured on CUDA (see _decode)

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
        from argen.modalities.crystal.crystallm.spacegroup_fit import check_fit

        comp = parse_composition(composition, formula_units)
        sg = check_spacegroup(spacegroup)
        check_fit(comp, sg)  # a group whose sites cannot hold the counts is refused before sampling
        return make_prompt(comp, sg)

    def sample_texts(self, prompt: str, seeds: list[int], sampling: SamplingConfig,
                     max_new_tokens: int | None = MAX_NEW_TOKENS) -> list[str]:
        """One CIF text per seed (row ``i`` is drawn with a generator seeded ``seeds[i]``)."""
        return self.sample_many([prompt] * len(seeds), seeds, sampling, max_new_tokens)

    def sample_many(self, prompts: list[str], seeds: list[int], sampling: SamplingConfig,
                    max_new_tokens: int | None = MAX_NEW_TOKENS, batch: int = BATCH) -> list[str]:
        """One CIF text per row: ``prompts[i]`` continued with a generator seeded ``seeds[i]``.

        Rows are decoded ``batch`` at a time through the KV cache (any mix of prompts; a row
        leaves the batch when it ends), so a row's text does not depend on the others. A CIF
        ends at two newlines in a row. A row that reaches the model's context goes on as
        CrystaLLM's ``GPT.generate`` does, on its last ``block_size`` tokens, until
        ``max_new_tokens`` new tokens (CrystaLLM: 3000); ``None`` stops it at the context.
        """
        outs = self.sample_ids(prompts, seeds, sampling, max_new_tokens, batch)
        return [p + self.tokenizer.decode(o) for p, o in zip(prompts, outs)]

    @torch.inference_mode()
    def sample_ids(self, prompts: list[str], seeds: list[int], sampling: SamplingConfig,
                   max_new_tokens: int | None = MAX_NEW_TOKENS, batch: int = BATCH) -> list[list[int]]:
        """:meth:`sample_many`'s new token ids, one list per row."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        ids = [self.tokenizer.encode(p) for p in prompts]
        context = self.model.cfg.max_seq_len
        too_long = [len(i) for i in ids if len(i) >= context]
        if too_long and max_new_tokens is None:
            raise UsageError(f"the prompt ({too_long[0]} tokens) fills the model's context ({context})",
                             hint="use a smaller composition")
        nl = self.tokenizer.newline_id
        device = self.model.embed.weight.device
        outs: list[list[int]] = [[] for _ in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))  # similar widths share a batch
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            gens = [torch.Generator(device=device).manual_seed(seeds[i]) for i in rows]
            self._decode([ids[i] for i in rows], gens, sampling, max_new_tokens, [outs[i] for i in rows], nl)
        return outs

    def _decode(self, ids: list[list[int]], gens: list[torch.Generator], sampling: SamplingConfig,
                max_new_tokens: int | None, outs: list[list[int]], nl: int) -> None:
        """Fill ``outs`` (one list per row) with new tokens: through the cache up to the context,
        then, for rows still going, on a sliding window (recomputed each step: learned positions).
        With ``compile`` the cached phase keeps every row in the batch (compaction would move the
        cache that a CUDA graph reads in place); each row's tokens are the same either way."""
        context = self.model.cfg.max_seq_len
        budget = [max_new_tokens if max_new_tokens is not None else max(0, context - len(i)) for i in ids]

        def ended(new: list[int]) -> bool:
            return len(new) >= 2 and new[-1] == nl and new[-2] == nl

        # 1. cached, each row up to the context (or its budget)
        first = [r for r, i in enumerate(ids) if len(i) < context and budget[r] > 0]
        if first:
            cap = [min(budget[r], context - len(ids[r])) for r in first]

            def stop1(j: int, new: list[int]) -> bool:
                return ended(new) or len(new) >= cap[j]

            got = generate(self.model, [ids[r] for r in first], max(cap), sampling,
                           generators=[gens[r] for r in first], stop=stop1, compact=not self.compile,
                           compile=self.compile)
            for r, g in zip(first, got):
                outs[r].extend(g)
        # 2. rows that filled the context without ending, on CrystaLLM's cropped window
        more = [r for r in range(len(ids)) if not ended(outs[r]) and len(outs[r]) < budget[r]
                and len(ids[r]) + len(outs[r]) >= context]
        if more:
            left = [budget[r] - len(outs[r]) for r in more]

            def stop2(j: int, new: list[int]) -> bool:
                return ended(outs[more[j]] + new[-2:]) or len(new) >= left[j]

            got = generate(self.model, [ids[r] + outs[r] for r in more], max(left), sampling,
                           generators=[gens[r] for r in more], stop=stop2, compact=True,
                           window=ContextWindow(context, crop=True))
            for r, g in zip(more, got):
                outs[r].extend(g)

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
            texts = self.sample_texts(prompt, seeds, sampling, req.max_new_tokens)
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
                sampling=sampling.to_dict(), checks=s.report.to_dict(),
                max_new_tokens=None if req.max_new_tokens == MAX_NEW_TOKENS else req.max_new_tokens,
                seconds=round(seconds, 3))
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
