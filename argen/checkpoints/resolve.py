"""Resolving a model name or path to a verified folder: a registered name (its files checked
against their sha256, bundled or pulled) or a local path."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from argen.checkpoints.files import sha256_file
from argen.checkpoints.registry import RegistryEntry, bundled_dir, default_model, load_registry, verify  # noqa: F401
from argen.errors import ArgenError


def file_status(root: Path, entry: RegistryEntry, name: str | None = None) -> str:
    """"ok", "missing" or "MISMATCH" for the entry's files (hub models: in the cache, by ``name``)."""
    if entry.hub is not None and entry.hub.cache == "huggingface":
        from argen.checkpoints.hf_cache import snapshot

        return "ok" if snapshot(entry.hub.repo_id, entry.hub.revision) is not None else "missing"
    if entry.hub is not None:
        from argen.checkpoints.hub import cache_dir, expected_hashes

        root, hashes = cache_dir(name or ""), expected_hashes(name or "", entry)
    else:
        hashes = {f.file: f.sha256 for f in entry.files}
    for file, sha in hashes.items():
        p = root / file
        if not p.is_file():
            return "missing"
        if sha is None or sha256_file(p) != sha:
            return "MISMATCH"
    return "ok"


@dataclass
class ModelRef:
    """A resolved model: its folder and, for bundled ones, its registry name and digest."""

    path: Path
    name: str
    bundled: bool = False
    sha256: str | None = None  # digest of the main weight file
    files: dict[str, str] = field(default_factory=dict)
    family: str | None = None  # the registry's family, for models whose config.json cannot tell (LLaMA-Mesh)


def resolve(name_or_path: str, modality: str | None = None) -> ModelRef:
    """A registry name (verified against its sha256), an existing local path, or a hub id
    (``ORG/NAME``: see :mod:`argen.checkpoints.hf_cache`). A registered name
    always means the registry's model: a folder of that name in the working directory is used only
    when given as a path (``./NAME``), and is then recorded by that path, never as the registered
    name (whose digest it does not have)."""
    reg = load_registry()
    entry = reg.models.get(name_or_path)
    p = Path(name_or_path).expanduser()
    if entry is None and p.exists():
        name = p.resolve().name
        return ModelRef(path=p, name=str(name_or_path) if name in reg.models else name)
    if entry is None:
        from argen.checkpoints.hf_cache import is_hub_id

        if is_hub_id(name_or_path):  # ORG/NAME: the Hugging Face cache, then argen's pull of its entry
            return _resolve_hub_id(name_or_path, modality)
        names = ", ".join(sorted(n for n, e in reg.models.items() if modality in (None, e.modality)))
        raise ArgenError(f"unknown model {name_or_path!r}: not a registered name nor an existing path",
                         hint=f"bundled models: {names or 'none'} (see `argen models`), or pass a folder path")
    if modality is not None and entry.modality != modality:
        raise ArgenError(f"model {name_or_path!r} is a {entry.modality} model, not {modality}",
                         hint="see `argen models` for each model's modality")
    if entry.hub is not None and entry.hub.cache == "huggingface":  # used as it is from the HF cache
        from argen.checkpoints.hf_cache import find, weights_sha

        folder = find(entry.hub.repo_id, entry.hub.revision, name_or_path)
        return ModelRef(path=folder, name=name_or_path, bundled=True, sha256=weights_sha(folder, {}), family=entry.family)
    if entry.hub is not None:
        from argen.checkpoints.hub import cache_dir, expected_hashes, verify_pulled

        if entry.hub.convert is None and not cache_dir(name_or_path).is_dir():  # not pulled: the HF cache's copy
            ref = _hf_cache_ref(name_or_path, entry)
            if ref is not None:
                return ref
        folder = verify_pulled(name_or_path, entry)
        hashes = expected_hashes(name_or_path, entry)
        weights = next((sha for f, sha in hashes.items() if f.endswith((".safetensors", ".pt", ".pth", ".tar.gz"))), None)
        return ModelRef(path=folder, name=name_or_path, bundled=True, sha256=weights, files=dict(hashes),
                        family=entry.family)
    root = bundled_dir()
    verify(root, name_or_path, entry)
    tops = [f for f in entry.files if f.file.endswith(".safetensors")]
    # the model's own file, not a codec's or tokenizer's in a subfolder
    tops.sort(key=lambda f: f.file.count("/") - entry.path.count("/"))
    weights = tops[0].sha256 if tops else None
    return ModelRef(path=root / entry.path, name=name_or_path, bundled=True, sha256=weights,
                    files={f.file: f.sha256 for f in entry.files})


def _hf_cache_ref(name: str, entry: RegistryEntry) -> ModelRef | None:
    """The Hugging Face cache's complete snapshot of a registered hub model, named ``name``."""
    from argen.checkpoints.hf_cache import snapshot_files

    found = snapshot_files(entry)
    return None if found is None else ModelRef(path=found[0], name=name, sha256=found[2], files=found[1],
                                                family=entry.family)


def _resolve_hub_id(repo_id: str, modality: str | None) -> ModelRef:
    """``ORG/NAME``: the Hugging Face cache's snapshot, else argen's pull of the registry entry
    for that repository, else one error naming what to download (argen/checkpoints/hf_cache.py)."""
    from argen.checkpoints.hf_cache import hub_id_entry, not_downloaded, snapshot, weights_sha
    from argen.checkpoints.hub import is_pulled

    name, entry = hub_id_entry(repo_id, modality)
    if entry is None:
        snap = snapshot(repo_id)
        if snap is None:
            raise not_downloaded(None, None, repo_id)
        return ModelRef(path=snap, name=repo_id, sha256=weights_sha(snap, {}))
    ref = _hf_cache_ref(repo_id, entry)
    if ref is not None:
        return ref
    if is_pulled(name, entry):
        return resolve(name, modality)  # verified there
    raise not_downloaded(name, entry, repo_id)


def digest(ref: ModelRef, limit: int = 1 << 29) -> str | None:
    """sha256 of the model's weight file: the registry's for bundled models, computed for local
    folders whose single weight file is under ``limit`` bytes (larger ones are not hashed)."""
    if ref.sha256 or ref.bundled:
        return ref.sha256
    files = sorted(ref.path.glob("*.safetensors"))
    if len(files) == 1 and files[0].stat().st_size < limit:
        return sha256_file(files[0])
    return None
