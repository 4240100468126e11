"""Generation metadata: built once per output, embedded in the file's own metadata slot where
the format has one, otherwise written beside it as ``<file>.meta.json``; ``argen info`` reads
either back.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from argen import __version__
from argen.errors import ArgenError
from argen.io.atomic import write_text_atomic

# suffix -> "module:function" reading embedded metadata (imported only when needed, so that
# `argen info` stays light); each format module that embeds metadata adds its line here
EMBEDDED_READERS: dict[str, str] = {".png": "argen.io.png:read_png_metadata"}
EMBEDDED_READERS.update({".obj": "argen.io.mesh:read_obj_metadata", ".ply": "argen.io.mesh:read_ply_metadata",
                         ".glb": "argen.io.mesh:read_glb_metadata"})  # .stl: the sidecar
EMBEDDED_READERS.update({s: "argen.io.audio:read_audio_metadata" for s in (".wav", ".flac", ".mp3", ".ogg")})
EMBEDDED_READERS[".mp4"] = "argen.io.video:read_video_metadata"
EMBEDDED_READERS[".cif"] = "argen.io.cif:read_cif_metadata"
EMBEDDED_READERS.update({s: "argen.io.video_preview:read_animated_metadata" for s in (".gif", ".webp")})  # video previews


def build_metadata(**fields: Any) -> dict[str, Any]:
    """The generation record: given fields plus the argen version, ``None`` values dropped, every
    value plain JSON (numpy scalars and arrays, tuples and paths converted)."""
    return {"generator": "argen", "argen_version": __version__,
            **{k: jsonable(v) for k, v in fields.items() if v is not None}}


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples, sets and paths turned into JSON's own types."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars (np.bool_, np.float32, ...), 0-d tensors
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return item()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return value


def sidecar_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".meta.json")


def write_sidecar(path: str | Path, meta: dict[str, Any]) -> Path:
    side = sidecar_path(path)
    write_text_atomic(side, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return side


def written_files(path: str | Path, plain_text: bool) -> list[Path]:
    """Every file an output at ``path`` takes: the file, and its metadata sidecar where the format
    has no slot for it (plain text whatever its suffix; STL)."""
    p = Path(path)
    if plain_text or p.suffix.lower() not in EMBEDDED_READERS:
        return [p, sidecar_path(p)]
    return [p]


SIDECAR_LIMIT = 16 << 20  # bytes: argen's records are a few KB


def _record(meta: Any, where: Path) -> dict[str, Any]:
    """``meta`` if it is a record (a JSON object), else a one-line error naming ``where``."""
    if not isinstance(meta, dict):
        raise ArgenError(f"{where}: the metadata is a JSON {type(meta).__name__}, not an object",
                         hint="the metadata is corrupt")
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Metadata argen wrote into or beside ``path``; a clear error when there is none."""
    p = Path(path)
    if not p.exists():
        raise ArgenError(f"{p} not found", hint="pass the path of a file argen generated")
    if not p.is_file():  # a folder, a FIFO, a device (a link to /dev/zero): reading would hang or never end
        what = "a folder" if p.is_dir() else "not a regular file"
        raise ArgenError(f"{p} is {what}", hint="pass the path of a file argen generated")
    target = EMBEDDED_READERS.get(p.suffix.lower())
    if target is not None:
        module, func = target.split(":")
        meta = getattr(importlib.import_module(module), func)(p)
        if meta is not None:
            return _record(meta, p)
    side = sidecar_path(p)
    if side.is_file():
        if side.stat().st_size > SIDECAR_LIMIT:
            raise ArgenError(f"{side} is too large to be argen's metadata", hint="the metadata file is corrupt")
        try:
            return _record(json.loads(side.read_text(encoding="utf-8")), side)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError; RecursionError: deep nesting
            reason = "too deeply nested" if isinstance(e, RecursionError) else str(e)
            raise ArgenError(f"{side} is not valid JSON ({reason})", hint="the metadata file is corrupt") from None
    raise ArgenError(f"{p} carries no argen metadata", hint="only files written by argen have it")
