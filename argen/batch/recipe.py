"""Batch recipes: ``defaults`` (flags for every job) and ``jobs``. A job names its modality, its
prompts (a list, or a file with one per line), its seeds and an optional grid; every other key is
a flag of that modality, checked against the modality's spec (argen/modalities/<m>/spec.py), the
same spec the CLI's options come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from argen.modalities.registry import MODALITIES
from argen.modalities.spec import MAX_SAMPLES, SEED_LIMIT
from argen.yaml_config import Strict, read_yaml, validate


class SeedRange(Strict):
    start: int = Field(0, ge=0, lt=SEED_LIMIT)
    count: int = Field(ge=1, le=MAX_SAMPLES)


class Job(BaseModel):
    """One job: a modality, prompts x seeds x grid points, and any of the modality's flags. ``n``
    and ``seed`` (as on the command line) stand for ``seeds: {start: seed, count: n}``."""

    model_config = ConfigDict(extra="allow")  # the flags; checked against the modality's spec

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    modality: str
    prompts: list[str] | str | None = None  # a list, or a file with one prompt per line (relative to the recipe)
    seeds: list[int] | SeedRange | None = None
    grid: dict[str, list[Any]] = {}
    output: str = "{job}/{i:04d}-{seed}.{ext}"
    n: int | None = Field(None, ge=1, le=MAX_SAMPLES, strict=True)
    seed: int | None = Field(None, ge=0, lt=SEED_LIMIT, strict=True)

    @field_validator("modality")
    @classmethod
    def _known_modality(cls, v: str) -> str:
        if v not in MODALITIES:
            raise ValueError(f"unknown modality {v!r}; available: {', '.join(MODALITIES)}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds_in_range(cls, v: list[int] | SeedRange | None) -> list[int] | SeedRange | None:
        if isinstance(v, list):
            if not v:
                raise ValueError("seeds must list at least one seed")
            if len(v) > MAX_SAMPLES or any(not 0 <= s < SEED_LIMIT for s in v):
                raise ValueError(f"seeds are integers in [0, 2^63), at most {MAX_SAMPLES} of them")
        return v

    @field_validator("grid")
    @classmethod
    def _non_empty_axes(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"grid axis {key!r} has no values")
        return v

    @model_validator(mode="after")
    def _seeds_once(self) -> "Job":
        if self.seeds is not None and (self.n is not None or self.seed is not None):
            raise ValueError("give seeds, or n and seed, not both")
        if not isinstance(self.seeds, list):
            start, count = (self.seeds.start, self.seeds.count) if self.seeds else (self.seed or 0, self.n or 1)
            if start + count > SEED_LIMIT:
                raise ValueError("the seeds run past 2^63 - 1, the largest seed; start lower")
        return self

    @property
    def flags(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def seed_list(self) -> list[int] | range:
        """The job's seeds (a range is not expanded: a plan counts before it lists)."""
        if isinstance(self.seeds, SeedRange):
            return range(self.seeds.start, self.seeds.start + self.seeds.count)
        if isinstance(self.seeds, list):
            return list(self.seeds)
        start = self.seed or 0
        return range(start, start + (self.n or 1))


class RunRecipe(Strict):
    """A batch recipe: ``defaults`` (flags for every job) and ``jobs``."""

    defaults: dict[str, Any] = {}
    jobs: list[Job] = Field(min_length=1)

    @field_validator("jobs")
    @classmethod
    def _unique_names(cls, v: list[Job]) -> list[Job]:
        names = [j.name for j in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"job names must be unique; repeated: {', '.join(dup)}")
        return v


def load_run_recipe(path: str | Path) -> tuple[RunRecipe, yaml.Node | None]:
    """Parse and validate a batch recipe; returns it with its YAML node tree (for line numbers)."""
    data, node = read_yaml(path)
    return validate(RunRecipe, data, node, path), node
