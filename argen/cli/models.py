"""List the models: bundled ones and hub ones (pulled or not): name, modality, family, parameters, size on
disk, sha256 status, and what --cfg 1 and 0 mean for the model's family."""

from __future__ import annotations

import json

from argen.cli import options as opt


def models(json_out: opt.Json = False) -> None:
    from rich.console import Console
    from rich.table import Table

    from argen.checkpoints.resolve import bundled_dir, file_status, load_registry

    root = bundled_dir()
    rows = []
    for name, entry in load_registry().models.items():
        if entry.hub is not None:  # pulled into the cache by `argen weights pull`
            from argen.checkpoints.hub import cache_dir, model_folder

            folder, files = cache_dir(name), [cache_dir(name) / f.file for f in entry.hub.files]
            weights = sorted(model_folder(name, entry).glob("**/*.safetensors")) if entry.hub.convert else files
        else:
            folder, files = root / entry.path, [root / f.file for f in entry.files]
            weights = files
        size = sum(p.stat().st_size for p in files if p.is_file())
        params = count_params([p for p in weights if p.suffix == ".safetensors"])
        status = file_status(root, entry, name)
        family = entry.hub.convert if entry.hub is not None and entry.hub.convert else "argen"
        rows.append({"name": name, "modality": entry.modality, "family": family, "params": params,
                     "published_params": entry.params, "bytes": size,
                     "sha256": "not pulled" if entry.hub is not None and status == "missing" else status,
                     "default": entry.default, "path": str(folder), "cfg": guidance_note(family)})
    if json_out:
        for r in rows:
            print(json.dumps(r))
        return
    table = Table(title=None, box=None, header_style="bold")
    for col in ("name", "modality", "family", "parameters", "size", "sha256", "default", "--cfg"):
        table.add_column(col)
    for r in rows:
        params = f"{r['params'] / 1e6:.2f}M" if r["params"] else (r["published_params"] or "?")
        table.add_row(r["name"], r["modality"], r["family"], params, f"{r['bytes'] / 1e6:.1f} MB", r["sha256"],
                      "yes" if r["default"] else "", r["cfg"])
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=160)
    console.print(table)


def guidance_note(family: str) -> str:
    """What --cfg 1 and 0 do for a family, in a few words (argen/modalities/image/guidance.py has the whole story)."""
    from argen.modalities.image.guidance import GUIDANCE

    g = GUIDANCE.get(family, GUIDANCE["shapes"])
    note = f"{g.unguided:g} off" + (", 1 guides" if g.unguided == 0 else "")
    return note + (f", {g.unconditional:g} uncond." if g.unconditional is not None else "")


def count_params(files) -> int | None:
    """Parameters stored in safetensors files (read from their headers; tokenizers included)."""
    from safetensors import safe_open

    total = 0
    try:
        for path in files:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    n = 1
                    for d in f.get_slice(key).get_shape():
                        n *= d
                    total += n
    except Exception:  # noqa: BLE001 - a missing or corrupt file shows as "?" (its sha256 column says why)
        return None
    return total or None
