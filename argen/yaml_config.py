"""YAML that people write (recipes, registries): parsed once, validated with pydantic, and every
problem reported as one line naming the file, the line and the key, e.g.
``recipes/train/x.yaml:12: train.lr: Input should be greater than 0``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from argen.errors import ArgenError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
        # an unknown key usually explains a missing one (a typo), so it is reported first
        err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith(("function-", "dataset="))))
        key = ".".join(str(x) for x in loc) or "(top level)"
        line = _line_of(node, loc)
        where = f"{path}:{line}" if line else str(path)
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise ArgenError(f"{where}: {key}: {err['msg']}{more}", hint="see the recipe examples under recipes/") from None


def fail_at(path: str | Path, node: yaml.Node | None, loc: tuple, message: str) -> ArgenError:
    """An ArgenError naming ``path:line: key.path: message`` for the YAML key at ``loc``."""
    line = _line_of(node, loc)
    where = f"{path}:{line}" if line else str(path)
    key = ".".join(str(x) for x in loc)
    return ArgenError(f"{where}: {key}: {message}", hint="see the recipe examples under recipes/")
