"""Generation specs: every flag of a modality, declared once.

A spec is a pydantic model. Its fields are what a sample depends on (prompt, seeds, sampling,
modality flags); each field's ``flag(...)`` metadata says how the CLI spells it. From one spec
come the Typer options of `argen <modality>` (argen/cli/spec_options.py), the job schema of
batch recipes (argen/batch/recipe.py) and the checks of the Python API (``pipe(prompt, **flags)``).
This module is light (pydantic only): `argen --help` builds every command from it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SEED_LIMIT = 2**63  # seeds are 63-bit: what torch.Generator.manual_seed accepts for every row's seed + i
MAX_SAMPLES = 100_000  # -n: one command's samples (a recipe's seeds are bounded per job the same way)


def flag(default: Any, *names: str, help: str, metavar: str | None = None, recipe: bool = True,
         cli: bool = True, **constraints: Any) -> Any:
    """A spec field with its CLI spelling: ``names`` (``"--top-k"``, ``"-k"``), help text and
    metavar. ``recipe=False`` keeps it out of batch recipes (e.g. streaming to a terminal);
    ``cli=False`` out of the command line (set by the API or a recipe only)."""
    extra = {"flags": list(names), "help": help, "metavar": metavar, "recipe": recipe, "cli": cli}
    return Field(default, json_schema_extra={"argen": extra}, **constraints)


def flag_info(field) -> dict[str, Any] | None:
    """The CLI metadata of a spec field (see :func:`flag`), or None for internal fields."""
    extra = field.json_schema_extra
    return extra.get("argen") if isinstance(extra, dict) else None


class GenerationSpec(BaseModel):
    """The flags every generating command shares, with the same names, meaning and checks.

    ``None`` for a sampling flag means "the model's default" (its config.json ``sampling`` or its
    family's published settings), so the API and the CLI sample exactly as the model intends.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    modality: ClassVar[str] = ""
    # how --prompt-file is read: "whole" (the file is one prompt, e.g. text to continue) or
    # "lines" (one prompt per non-empty line)
    prompt_file_mode: ClassVar[Literal["whole", "lines"]] = "lines"
    prompt_help: ClassVar[str] = "The prompt."
    prompt_flags: ClassVar[tuple[str, ...]] = ("--prompt", "-p")
    preview_suffixes: ClassVar[tuple[str, ...]] = (".png",)  # what --preview writes, where a modality has it

    prompt: list[str] | None = flag(None, "--prompt", "-p", help="(set per modality)", metavar="TEXT")
    model: str | None = flag(None, "--model", "-m", metavar="NAME|PATH",
                             help="Registered model name or hub id (see `argen models`), or a model folder (./name).")
    n: int = flag(1, "--num", "-n", help="Samples per prompt, with seeds S, S+1, ...", metavar="N",
                  ge=1, le=MAX_SAMPLES)
    seed: int | None = flag(None, "--seed", help="Random seed; sample i uses seed + i. Default: random (recorded).",
                            ge=0, lt=SEED_LIMIT)
    device: str = flag("auto", "--device", metavar="auto|cpu|cuda|mps", help="Where to run.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = flag(
        "auto", "--dtype", metavar="auto|float32|bfloat16|float16",
        help="Compute dtype; auto: float32 on CPU, bfloat16 on CUDA.")
    quantize: Literal["none", "int8"] = flag(
        "none", "--quantize", metavar="none|int8",
        help="int8: weight-only int8 linear layers in an autoregressive model's decoder (faster CPU decoding, ~1-3% "
             "logit error; --dtype auto then means bfloat16 on CPU). Models that cannot take it say so.")
    compile: bool = flag(False, "--compile", help="Compile the next-token decode step (on CUDA: a static KV cache and a CUDA graph); "
                                                   "next-scale and diffusion models refuse it.")
    batch_size: int | None = flag(None, "--batch-size", metavar="B", ge=1, le=4096,
                                  help="Samples generated together (default: the model's; outputs do not depend on it).")
    temperature: float | None = flag(None, "--temperature", "-t", ge=0, le=100,
                                     help="Softmax temperature; 0 is greedy (default: the model's).")
    top_k: int | None = flag(None, "--top-k", ge=1, help="Keep the k most likely tokens (default: the model's).")
    top_p: float | None = flag(None, "--top-p", gt=0, le=1, help="Nucleus sampling mass, in (0, 1] (default: the model's).")
    cfg: float | None = flag(None, "--cfg", ge=0, le=100,
                             help="Classifier-free guidance scale (default: the model's; see `argen models` for what "
                                  "1 and 0 mean for each family).")

    @field_validator("temperature", "top_p", "cfg", mode="before", check_fields=False)
    @classmethod
    def _no_inf_nan(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda", "mps") and not v.startswith("cuda:"):
            raise ValueError(f"unknown device {v!r}; use auto, cpu, cuda, cuda:N or mps")
        return v

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    missing_prompt_message: ClassVar[str] = "no prompt given"

    @classmethod
    def prompt_needed(cls, values: dict[str, Any]) -> bool:
        """Whether a request with these flags needs a prompt (one is read from stdin if piped)."""
        return True

    @classmethod
    def default_model(cls, options: dict[str, Any]) -> str | None:
        """The bundled model to load when none is named (None: the registry's default)."""
        return None

    def load_options(self) -> dict[str, Any]:
        """What loading the pipeline depends on (samples that share these share one pipeline)."""
        return {"model": self.model, "device": self.device, "dtype": self.dtype, "compile": self.compile,
                "quantize": self.quantize}


def recipe_fields(spec: type[GenerationSpec]) -> list[str]:
    """The fields a batch recipe job may set for this modality (its prompts and seeds aside)."""
    out = []
    for name, f in spec.model_fields.items():
        info = flag_info(f)
        if info is not None and info["recipe"] and name != "prompt":
            out.append(name)
    return out
