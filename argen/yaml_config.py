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
    except UnicodeDecodeError as e:
        raise ArgenError(f"{p} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})",
                         hint="save the file as UTF-8") from None
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ArgenError(f"{p}{where}: invalid YAML: {getattr(e, 'problem', e)}",
                         hint="fix the syntax (indentation, colons, quotes)") from None


def _is_tag(part: Any, data: Any) -> bool:
    """A part of a pydantic error location that names a union member (``list[int]``,
    ``SeedRange``) or a validator rather than a key of the data."""
    if not isinstance(part, str) or (isinstance(data, dict) and part in data):
        return False
    return part.startswith(("function-", "dataset=")) or "[" in part or part[:1].isupper()


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """``loc`` without union-member and validator tags, walking ``data`` alongside."""
    out = []
    for part in loc:
        if _is_tag(part, data):
            continue
        out.append(part)
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            data = None
    return tuple(out)


def validate(model: type[BaseModel], data: Any, node: yaml.Node | None, path: str | Path) -> BaseModel:
    """Validate ``data`` against ``model``; the first problem becomes a one-line ArgenError. An
    unknown key is named with the nearest missing one (``jobz``: did you mean ``jobs``?)."""
    import difflib

    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = [{**x, "loc": _clean_loc(x["loc"], data), "tagged": len(_clean_loc(x["loc"], data)) < len(x["loc"])}
                  for x in e.errors()]
        # an unknown key usually explains a missing one (a typo), so it is reported first; a union
        # member whose type did not fit at all (a list expected, a mapping given) explains least
        err = sorted(errors, key=lambda x: (x["type"] != "extra_forbidden",
                                            x["tagged"] and x["type"].endswith("_type")))[0]
        loc, msg, rest = err["loc"], err["msg"], len(errors) - 1
        if err["type"] == "extra_forbidden":
            missing = [x["loc"][-1] for x in errors if x["type"] == "missing" and x["loc"][:-1] == loc[:-1]]
            near = difflib.get_close_matches(str(loc[-1]), [str(m) for m in missing], n=1)
            if near:
                msg, rest = f"{msg}; did you mean {near[0]!r}?", rest - 1  # the missing key is explained
        key = ".".join(str(x) for x in loc) or "(top level)"
        line = _line_of(node, loc)
        where = f"{path}:{line}" if line else str(path)
        more = f" (and {rest} more)" if rest > 0 else ""
        raise ArgenError(f"{where}: {key}: {msg}{more}", hint="see the recipe examples under recipes/") from None


def fail_at(path: str | Path, node: yaml.Node | None, loc: tuple, message: str) -> ArgenError:
    """An ArgenError naming ``path:line: key.path: message`` for the YAML key at ``loc``."""
    line = _line_of(node, loc)
    where = f"{path}:{line}" if line else str(path)
    key = ".".join(str(x) for x in loc)
    return ArgenError(f"{where}: {key}: {message}", hint="see the recipe examples under recipes/")
