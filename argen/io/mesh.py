"""Mesh files: OBJ, GLB, PLY and STL, written atomically with their generation metadata.

Where the metadata goes: OBJ a ``# argen-metadata {json}`` comment line at the top; PLY a
``comment argen-metadata {json}`` line in its header; GLB the glTF JSON's top-level
``extras.argen``. Binary STL has only an 80-byte header (too small for the record): it names
the ``<file>.meta.json`` sidecar that holds it. Readers here parse only the metadata slot, so
``argen info`` needs neither trimesh nor the whole file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from argen.errors import UsageError
from argen.io.atomic import atomic_path, atomic_paths

SUFFIXES = (".obj", ".glb", ".ply", ".stl")
OBJ_TAG = "# argen-metadata "
PLY_TAG = b"comment argen-metadata "


def check_suffix(path: str | Path) -> str:
    """The lower-case suffix of a path argen can write meshes to; otherwise a UsageError."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"cannot write a mesh as {suffix or 'a file without a suffix'} ({path})",
                         hint=f"give a path ending in {', '.join(SUFFIXES)}")
    return suffix


def _one_line(meta: dict[str, Any]) -> str:
    return json.dumps(meta, ensure_ascii=True, separators=(",", ":"))  # no newline can break the header


def mesh_bytes(mesh, suffix: str, meta: dict[str, Any] | None = None) -> bytes:
    """The file's bytes for a trimesh mesh, metadata embedded where the format has a slot."""
    meta = meta or {}
    if suffix == ".obj":
        body = mesh.export(file_type="obj", include_normals=False, include_texture=False)
        return (OBJ_TAG + _one_line(meta) + "\n" + body).encode("utf-8")
    if suffix == ".ply":
        data = mesh.export(file_type="ply", encoding="binary")
        first = data.index(b"\n", data.index(b"format")) + 1  # after "format ..." in the header
        return data[:first] + PLY_TAG + _one_line(meta).encode() + b"\n" + data[first:]
    if suffix == ".glb":
        from trimesh.exchange.gltf import export_glb

        def add_extras(tree: dict) -> None:
            tree["extras"] = {"argen": meta}

        return export_glb(mesh.scene() if hasattr(mesh, "scene") else mesh, tree_postprocessor=add_extras)
    if suffix == ".stl":
        data = bytearray(mesh.export(file_type="stl"))
        header = b"argen mesh; generation metadata in the .meta.json beside this file"[:80]
        data[:80] = header.ljust(80, b" ")  # never starts with "solid": readers keep it binary
        return bytes(data)
    raise UsageError(f"cannot write a mesh as {suffix}", hint=f"give a path ending in {', '.join(SUFFIXES)}")


def write_mesh(path: str | Path, mesh, meta: dict[str, Any] | None = None) -> Path:
    """Write ``mesh`` to ``path`` (format from the suffix) atomically; STL also gets a sidecar."""
    from argen.io.metadata import sidecar_path

    path = Path(path)
    suffix = check_suffix(path)
    data = mesh_bytes(mesh, suffix, meta)
    if suffix == ".stl" and meta:  # the mesh and its sidecar land together or not at all
        with atomic_paths(path, sidecar_path(path)) as (tmp, side):
            tmp.write_bytes(data)
            side.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _parse(text: str, path: Path) -> dict[str, Any]:
    from argen.errors import ArgenError

    try:
        meta = json.loads(text)
    except ValueError as e:
        raise ArgenError(f"{path}: its argen metadata is not valid JSON ({e})", hint="the file is corrupt") from None
    return meta if isinstance(meta, dict) else {}


def read_obj_metadata(path: str | Path) -> dict[str, Any] | None:
    path = Path(path)
    with open(path, "rb") as f:
        for _ in range(8):  # the record is the first line; allow a few comments before it
            line = f.readline(1 << 20).decode("utf-8", "replace")  # bounded: a huge file may have no newline
            if line.startswith(OBJ_TAG):
                return _parse(line[len(OBJ_TAG):], path)
            if not line.startswith("#"):
                break
    return None


def read_ply_metadata(path: str | Path) -> dict[str, Any] | None:
    path = Path(path)
    with open(path, "rb") as f:
        for _ in range(64):
            line = f.readline()
            if line.startswith(PLY_TAG):
                return _parse(line[len(PLY_TAG):].decode("utf-8", "replace"), path)
            if not line or line.strip() == b"end_header":
                break
    return None


def read_glb_metadata(path: str | Path) -> dict[str, Any] | None:
    """extras.argen of a GLB's JSON chunk (header: magic, version, length; then the chunk)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(20)
        if len(head) < 20 or head[:4] != b"glTF":
            return None
        length, kind = struct.unpack("<I4s", head[12:20])
        if kind != b"JSON":
            return None
        tree = _parse(f.read(length).decode("utf-8", "replace"), path)
    extras = tree.get("extras")
    return extras.get("argen") if isinstance(extras, dict) and isinstance(extras.get("argen"), dict) else None
