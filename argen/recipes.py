"""Recipes: the only place that reads YAML. Validated with pydantic before anything runs.

Errors name the file, the line and the key, e.g.
``recipes/train/x.yaml:12: train.lr: Input should be greater than 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from argen.errors import ArgenError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextData(Strict):
    path: str
    tokenizer: Literal["char"] = "char"
    val_fraction: float = Field(0.1, gt=0, lt=1)


class TrainLoop(Strict):
    seq_len: int = Field(256, ge=2)
    batch_size: int = Field(32, ge=1)
    max_steps: int = Field(2000, ge=1)
    max_minutes: float | None = Field(None, gt=0)  # a safety stop; the schedule is step-based
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(100, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)
    dtype: Literal["float32", "bfloat16"] = "bfloat16"
    eval_every: int = Field(250, ge=1)
    eval_batches: int = Field(40, ge=1)
    seed: int = 1337
    threads: int | None = Field(None, ge=1)


class TrainRecipe(Strict):
    """A training recipe: which task, which data, which model config, how long."""

    task: Literal["text"]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    data: TextData
    model: dict[str, Any]
    train: TrainLoop = TrainLoop()
    output: str | None = None

    @field_validator("model")
    @classmethod
    def _known_model_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        import dataclasses

        from argen.models.config import TransformerConfig

        known = {f.name for f in dataclasses.fields(TransformerConfig)} - {"vocab_size", "max_seq_len"}
        unknown = sorted(set(v) - known)
        if unknown:
            raise ValueError(f"unknown model key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return v


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Line (1-based) of the YAML node at key path ``loc``, or of its deepest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
            if nxt is None:
                nxt_key = next((k for k, v in node.value if k.value == key), None)
                return nxt_key.start_mark.line + 1 if nxt_key is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def read_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; returns the data and its node tree (for line numbers)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ArgenError(f"cannot read recipe {p}: {e.strerror or e}", hint="check the path") from None
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ArgenError(f"{p}{where}: invalid YAML: {getattr(e, 'problem', e)}",
                         hint="fix the syntax (indentation, colons, quotes)") from None


def validate(model: type[BaseModel], data: Any, node: yaml.Node | None, path: str | Path) -> BaseModel:
    """Validate ``data`` against ``model``; the first problem becomes a one-line ArgenError."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        key = ".".join(str(x) for x in loc) or "(top level)"
        line = _line_of(node, loc)
        where = f"{path}:{line}" if line else str(path)
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise ArgenError(f"{where}: {key}: {err['msg']}{more}", hint="see the recipe examples under recipes/") from None


def load_train_recipe(path: str | Path) -> TrainRecipe:
    data, node = read_yaml(path)
    return validate(TrainRecipe, data, node, path)
