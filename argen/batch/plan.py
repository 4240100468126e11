"""Expanding a batch recipe into samples: prompts x seeds x grid points, each with its
validated flags, its output path (inside the output folder) and a stable key for resuming."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import ValidationError

from argen.batch.recipe import Job, RunRecipe
from argen.errors import ArgenError
from argen.modalities.registry import MODALITIES, spec_of
from argen.modalities.spec import flag_info
from argen.yaml_config import fail_at

PIPELINE_FLAGS = ("model", "device", "dtype", "compile", "quantize", "sampler")  # what loading a pipeline depends on
JOB_KEYS = ("name", "modality", "prompts", "seeds", "grid", "output", "n", "seed")
MAX_PLAN = 1_000_000  # samples in one recipe: a plan is held in memory (and checked) before the run
RUN_FILES = ("manifest.jsonl", ".argen-run.lock", "index.html")  # the run's own files in the output folder
PREVIEWED = ("mesh", "crystal")  # a run writes a PNG preview beside each of these outputs (for the gallery)


def preview_of(rel: str) -> str:
    """The preview a run writes beside output ``rel`` (``mesh/0000-0.obj`` -> ``mesh/0000-0.obj.png``)."""
    return rel + ".png"


def sheet_of(job: str) -> str:
    """The labelled grid sheet a run writes for an image job with a grid (``JOB-grid.png``)."""
    return f"{job}-grid.png"


@dataclass(frozen=True)
class Sample:
    job: str
    index: int  # position within its job
    modality: str
    params: dict[str, Any]  # every flag of the modality, validated
    prompt: str | None
    seed: int
    path: str  # relative to the output folder, POSIX separators
    key: str  # stable id: same recipe entry, same key

    def pipeline_key(self) -> tuple:
        return (self.modality, *(self.params.get(k) for k in PIPELINE_FLAGS))

    def batch_key(self) -> str:
        """Samples with the same batch key differ only in prompt and seed: one request."""
        return json.dumps([self.modality, self.params], sort_keys=True)

    def record(self) -> dict[str, Any]:
        return {"key": self.key, "job": self.job, "index": self.index, "modality": self.modality,
                "params": self.params, "prompt": self.prompt, "seed": self.seed, "path": self.path}


def read_prompts(job: Job, j: int, base: Path, recipe_path, node, allow_outside: bool = False) -> list[str | None]:
    """A job's prompts: its list, or its prompt file (resolved against the recipe's folder, which it
    may not leave unless ``allow_outside``); a job whose modality needs no prompt may have none."""
    if job.prompts is None:
        if spec_of(job.modality).prompt_needed({**job.flags}):
            raise fail_at(recipe_path, node, ("jobs", j), "prompts: Field required")
        return [None]
    if isinstance(job.prompts, list):
        if not job.prompts:
            raise fail_at(recipe_path, node, ("jobs", j, "prompts"), "a list of at least one prompt")
        for k, p in enumerate(job.prompts):
            if not p.strip():
                raise fail_at(recipe_path, node, ("jobs", j, "prompts", k), "empty prompt")
        return list(job.prompts)
    f = (base / job.prompts).expanduser().resolve()
    if not allow_outside and not f.is_relative_to(base.resolve()):
        raise fail_at(recipe_path, node, ("jobs", j, "prompts"),
                      f"prompt file {job.prompts} is outside the recipe's folder (argen run --allow-outside reads it)")
    from argen.io.files import read_utf8

    try:
        lines = [line for line in read_utf8(f, "prompt file").splitlines() if line.strip()]
    except ArgenError as e:
        raise fail_at(recipe_path, node, ("jobs", j, "prompts"), e.message) from None
    if not lines:
        raise fail_at(recipe_path, node, ("jobs", j, "prompts"), f"prompt file {f} has no prompts")
    return lines


def safe_relative(path: str) -> str | None:
    """The normalised relative path, or None if it is absolute or climbs out with '..'."""
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute() or not p.parts or ".." in p.parts or path.startswith("~"):
        return None
    return str(p)


def recipe_keys(modality: str) -> list[str]:
    """The flags a job of ``modality`` may set: its spec's recipe fields."""
    spec = spec_of(modality)
    return [k for k, f in spec.model_fields.items()
            if (info := flag_info(f)) is not None and info["recipe"] and k not in ("prompt", "n", "seed")]


def check_keys(recipe: RunRecipe, job: Job, j: int, recipe_path, node) -> None:
    """Every key of the job (and of the defaults it takes) is a flag of its modality; an unknown
    one is named with the nearest known key, before anything it might explain (a misspelt
    ``promts`` is reported as itself, not as missing prompts)."""
    import difflib

    allowed = recipe_keys(job.modality)
    defaults = [k for k in recipe.defaults if k not in ("n", "seed")]
    for loc in [("defaults", k) for k in defaults] + [("jobs", j, k) for k in job.flags] + \
               [("jobs", j, "grid", k) for k in job.grid]:
        key = loc[-1]
        if key not in allowed:
            near = difflib.get_close_matches(key, allowed + list(JOB_KEYS), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise fail_at(recipe_path, node, loc, f"{job.modality} has no flag {key!r}{hint}")


def _params(recipe: RunRecipe, job: Job, j: int, point: dict[str, Any], recipe_path, node) -> dict[str, Any]:
    """Every flag of one sample, checked against the modality's spec (the CLI's spec)."""
    spec = spec_of(job.modality)
    merged = {**{k: v for k, v in recipe.defaults.items() if k not in ("n", "seed")}, **job.flags, **point}
    try:
        return spec.model_validate(merged).model_dump(exclude={"prompt", "n", "seed"})
    except ValidationError as e:
        err = e.errors()[0]
        key = err["loc"][0] if err["loc"] else None
        if key in point:
            loc = ("jobs", j, "grid", key)
        elif key in job.flags:
            loc = ("jobs", j, key)
        elif key in recipe.defaults:
            loc = ("defaults", key)
        else:
            loc = ("jobs", j)
        raise fail_at(recipe_path, node, loc, err["msg"].replace("Value error, ", "")) from None


def build_plan(recipe: RunRecipe, node: yaml.Node | None, recipe_path: str | Path,
               allow_outside: bool = False) -> list[Sample]:
    """Every sample of the recipe, in job order; errors name the file, line and key."""
    base = Path(recipe_path).parent
    samples: list[Sample] = []
    seen: dict[str, str] = {}
    sheets = {sheet_of(job.name) for job in recipe.jobs if job.modality == "image" and job.grid}
    for j, job in enumerate(recipe.jobs):
        check_keys(recipe, job, j, recipe_path, node)
        prompts = read_prompts(job, j, base, recipe_path, node, allow_outside)
        axes = list(job.grid)
        n_points = math.prod(len(job.grid[a]) for a in axes)
        planned = n_points * len(prompts) * len(job.seed_list())
        if len(samples) + planned > MAX_PLAN:  # counted before anything is expanded
            raise fail_at(recipe_path, node, ("jobs", j), f"this job plans {planned} samples; argen run plans at most "
                                                          f"{MAX_PLAN} per recipe ({len(samples)} before this job)")
        points = [dict(zip(axes, values)) for values in itertools.product(*(job.grid[a] for a in axes))]
        ext = MODALITIES[job.modality].suffixes[0][1:]
        i = 0
        for point in points:
            params = _params(recipe, job, j, point, recipe_path, node)
            # the key hashes json.dumps([job, modality, params, prompt, seed, rel], sort_keys=True): the
            # params part is the same for the whole point, so it is serialised once
            head = json.dumps([job.name, job.modality, params], sort_keys=True)[:-1]
            for p_idx, prompt in enumerate(prompts):
                prompt_json = json.dumps(prompt)
                for seed in job.seed_list():
                    fields = {**{k: v for k, v in point.items()}, "job": job.name, "i": i, "seed": seed,
                              "prompt_index": p_idx, "ext": ext}
                    try:
                        raw = job.output.format(**fields)
                    except (KeyError, IndexError, ValueError) as e:
                        raise fail_at(recipe_path, node, ("jobs", j, "output"),
                                      f"bad output pattern ({e}); fields: {', '.join(fields)}") from None
                    rel = safe_relative(raw)
                    if rel is None:
                        raise fail_at(recipe_path, node, ("jobs", j, "output"),
                                      f"output {raw!r} would escape the output folder")
                    top = rel.split("/", 1)[0]
                    if top in RUN_FILES or rel in sheets:
                        raise fail_at(recipe_path, node, ("jobs", j, "output"),
                                      f"output {raw!r} would replace the run's own {top if top in RUN_FILES else rel}")
                    writes = [rel, preview_of(rel)] if job.modality in PREVIEWED else [rel]
                    for w in writes:
                        if w in seen:
                            raise fail_at(recipe_path, node, ("jobs", j, "output"),
                                          f"two samples would write {w} (also {seen[w]}); add {{i}} or {{seed}}")
                        seen[w] = f"{job.name} #{i}" + (" (its preview)" if w != rel else "")
                    ident = f"{head}, {prompt_json}, {seed}, {json.dumps(rel)}]"
                    key = hashlib.sha256(ident.encode()).hexdigest()[:20]
                    samples.append(Sample(job.name, i, job.modality, params, prompt, seed, rel, key))
                    i += 1
    return samples


def resolve_inside(out_dir: Path, rel: str) -> Path:
    """The absolute path of ``rel`` under ``out_dir``; refused if a symlink leads outside."""
    root = out_dir.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise ArgenError(f"output {rel} resolves outside {root} (through a symlink)",
                         hint="remove the symlink or pick another output pattern")
    return target
