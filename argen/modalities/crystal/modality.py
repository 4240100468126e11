"""`argen crystal` on the modality contract: rows of (composition, seed) -> the CrystaLLM-style
pipeline (argen/modalities/crystal/pipeline.py) -> CIF outputs that save themselves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from argen.console import log
from argen.errors import ArgenError, UsageError
from argen.modalities.base import OnProgress, Output, Pipeline, Row, is_argen_model, refuse_options
from argen.modalities.crystal.spec import CrystalSpec


@dataclass
class CrystalOutput(Output):
    cif: str = ""  # post-processed CIF (symmetry restored)
    text: str = ""  # the generated text, as CrystaLLM writes it
    valid: bool = True
    failed_checks: tuple[str, ...] = ()
    attempts: int = 1
    checks: dict[str, Any] | None = None
    structure: Any = None  # pymatgen Structure, when the CIF could be read

    suffixes: ClassVar[tuple[str, ...]] = (".cif",)

    def write(self, path: Path) -> Path:
        from argen.io.cif import write_cif

        warning = None if self.valid else f"failed checks: {', '.join(self.failed_checks)} after {self.attempts} attempts"
        return write_cif(path, self.cif, self.metadata, warning)

    def write_preview(self, path: Path) -> Path:
        from argen.io.cif_preview import write_cell_preview

        if self.structure is None:
            raise ArgenError("no readable structure to preview", hint="the CIF could not be parsed")
        declared = (self.checks or {}).get("spacegroup_found")
        return write_cell_preview(path, self.structure, self.metadata, title=self.prompt or "", declared_group=declared)

    def record(self) -> dict[str, Any]:
        # the seed of the attempt that made it (the file's record), not the one asked for
        return {"valid": self.valid, "seed": self.metadata.get("seed", self.seed), "attempts": self.attempts,
                "checks": self.checks}


class CrystalModalityPipeline(Pipeline):
    """CrystaLLM-style models: ``argen.load("crystal-perov5")("BaTiO3", n=4, seed=0)``."""

    modality = "crystal"
    default_batch_size = 32

    def __init__(self, inner) -> None:
        self.inner, self.ref = inner, inner.ref

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def compile(self) -> bool:  # --compile lives on the inner pipeline, which runs the loop
        return self.inner.compile

    @compile.setter
    def compile(self, value: bool) -> None:
        self.inner.compile = value

    @classmethod
    def matches(cls, config: dict[str, Any] | None, path: Path) -> bool:
        if config is None:  # a single file: CrystaLLM's own ckpt.pt (its keys are checked when it loads)
            return path.is_file()
        return is_argen_model(config, "crystal")

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 **options: Any) -> "CrystalModalityPipeline":
        from argen.engine.device import resolve_device, resolve_dtype
        from argen.modalities.crystal.pipeline import CrystalPipeline

        refuse_options(options, "crystal")
        inner = CrystalPipeline.from_pretrained(str(ref.path) if not ref.bundled else ref.name, device=device)
        dev = resolve_device(device)
        inner.model.to(dtype=resolve_dtype(dtype, dev))
        pipe = cls(inner)
        pipe.compile = compile
        return pipe

    def default_sampling(self, **overrides: Any):
        from argen.engine.sampling.processors import SamplingConfig

        return SamplingConfig(**{**self.inner.default_sampling, **{k: v for k, v in overrides.items() if v is not None}})

    def check(self, spec: CrystalSpec) -> None:
        from argen.modalities.crystal.cif_text import check_spacegroup

        check_spacegroup(spec.spacegroup)

    def check_prompt(self, prompt: str | None) -> str:
        if not prompt or not prompt.strip():
            raise UsageError("give a composition", hint="e.g. --composition BaTiO3")
        return prompt

    def generate_batch(self, spec: CrystalSpec, rows: list[Row], prepared: dict, sampling,
                       on_progress: OnProgress | None = None) -> list[CrystalOutput]:
        from argen.modalities.crystal.pipeline import CrystalRequest

        outs: list[CrystalOutput] = []
        for group in runs(rows):  # consecutive seeds of one composition: one request
            first = group[0]
            req = CrystalRequest(first.prompt.strip(), spec.formula_units, spec.spacegroup, len(group), first.seed,
                                 sampling, spec.max_attempts, spec.keep_invalid, spec.max_new_tokens)
            for row, s in zip(group, self.inner(req)):
                meta = {k: v for k, v in s.metadata.items() if k != "seconds"}  # same seed, same bytes
                skip = None if (s.valid or spec.keep_invalid) else "failed checks"
                outs.append(CrystalOutput(row.index, row.seed, row.prompt, 0.0, meta, skip_reason=skip, cif=s.cif,
                                          text=s.text, valid=s.valid, failed_checks=tuple(s.report.failed()),
                                          attempts=s.attempts, checks=s.report.to_dict(), structure=s.structure))
            if on_progress is not None:
                on_progress(len(outs), len(rows), "structures")
        return outs

    def summary(self, outputs: list[Output]) -> str:
        valid = sum(o.valid for o in outputs)
        return f"{valid} of {len(outputs)} structure(s) passed every check ({self.name})"

    def finish(self, outputs: list[Output], spec: CrystalSpec, written: int, quiet: bool) -> None:
        dropped = sum(not o.valid for o in outputs)
        if dropped:
            what = "written with a warning" if spec.keep_invalid else "not written (--keep-invalid writes them)"
            log(f"warning: {dropped} of {len(outputs)} structures failed a check after {spec.max_attempts} attempts; "
                f"{what}", quiet)
        if outputs and not any(o.valid or spec.keep_invalid for o in outputs):
            raise ArgenError(f"no valid structure for {outputs[0].prompt} in {spec.max_attempts} attempts per sample",
                             hint="raise --max-attempts, lower --temperature, or pass --keep-invalid")


def runs(rows: list[Row]) -> list[list[Row]]:
    """Rows split where the prompt changes or the seeds stop being consecutive."""
    out: list[list[Row]] = []
    for r in rows:
        if out and out[-1][-1].prompt == r.prompt and out[-1][-1].seed + 1 == r.seed:
            out[-1].append(r)
        else:
            out.append([r])
    return out
