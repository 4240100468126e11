"""Where models come from: the bundled registry (weights/registry.yaml), or a local folder.

Every bundled file is checked against the sha256 the registry names before it is loaded, so a
tampered or truncated file is refused with a clear error instead of producing garbage.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field, model_validator

from argen.checkpoints.files import sha256_file
from argen.errors import ArgenError
from argen.yaml_config import Strict, read_yaml, validate


class RegistryFile(Strict):
    file: str  # relative to the weights folder (hub files: the path inside the repository)
    # hub files may leave it out: the sha256 the hub publishes for the file (its LFS oid) is
    # checked at download and recorded in the cache, and every later load checks against that
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    # a file served at a plain URL (not a hub repository), e.g. a Zenodo record's file; such a
    # file needs a pinned checksum: its sha256, or the md5 its publisher lists (then the sha256
    # is recorded at the download that matched the md5, and later loads check against that)
    url: str | None = Field(None, pattern=r"^https?://\S+$")
    md5: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")

    @model_validator(mode="after")
    def _pinned_url(self) -> "RegistryFile":
        if self.url is not None and self.sha256 is None and self.md5 is None:
            raise ValueError(f"{self.file}: a file with a url needs a pinned sha256 or md5")
        if self.md5 is not None and self.url is None:
            raise ValueError(f"{self.file}: md5 is for files with a url")
        return self


class HubSource(Strict):
    """Where a model that is not bundled comes from: files of a Hugging Face hub repository,
    each with the sha256 it must have (``file`` is the path inside the repository)."""

    repo_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # None: every file has a url
    revision: str = "main"
    files: list[RegistryFile] = []
    # the converter that makes argen's format from the files
    convert: Literal["var", "llamagen", "llamagen_t2i", "crystallm", "self-forcing"] | None = None
    options: dict[str, Any] = {}  # passed to the converter (e.g. which architecture the files hold)
    # "huggingface": the repository is loaded as it is from the Hugging Face cache ($HF_HOME),
    # where `argen weights pull` downloads the files matching ``allow`` (argen/checkpoints/hf_cache.py)
    cache: Literal["argen", "huggingface"] = "argen"
    allow: list[str] = []

    @model_validator(mode="after")
    def _a_source_per_file(self) -> "HubSource":
        if self.repo_id is None and any(f.url is None for f in self.files):
            raise ValueError("files without a url need a repo_id")
        if self.cache == "huggingface":
            if self.repo_id is None or self.convert is not None or self.files:
                raise ValueError("a Hugging Face cache model names a repo_id and allow patterns, no files or converter")
        elif not self.files:
            raise ValueError("a hub model needs at least one file")
        return self


class RegistryEntry(Strict):
    modality: str
    path: str | None = None  # a bundled model's folder, relative to the weights folder
    description: str = ""
    params: str | None = None  # published parameter count, shown by `argen models` before a pull (e.g. "310M + 109M VAE")
    default: bool = False  # the default model of its modality
    # the model family, where the files cannot tell it (LLaMA-Mesh's config.json is a plain Llama's);
    # its pipeline reads it as config.json's "argen_family"
    family: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    files: list[RegistryFile] = []  # bundled files, relative to the weights folder
    hub: HubSource | None = None  # or: downloaded by `argen weights pull` into the cache

    @model_validator(mode="after")
    def _one_source(self) -> "RegistryEntry":
        if (self.hub is None) == (not self.files or self.path is None):
            raise ValueError("a model is either bundled (path and files) or on the hub (hub), not both or neither")
        if any(f.sha256 is None for f in self.files):
            raise ValueError("every bundled file needs its sha256")
        for rel in [self.path or "."] + [f.file for f in self.files]:  # nothing outside the weights folder
            parts = PurePosixPath(rel.replace("\\", "/")).parts
            if rel.startswith(("/", "~")) or ".." in parts or (parts and ":" in parts[0]):
                raise ValueError(f"{rel!r} leaves the weights folder; paths are relative to it, without '..'")
        return self


class Registry(Strict):
    models: dict[str, RegistryEntry]


def bundled_dir() -> Path:
    """The folder holding registry.yaml: $ARGEN_WEIGHTS_DIR, the clone's weights/, or the
    copy a wheel installs as ``argen/_weights``."""
    env = os.environ.get("ARGEN_WEIGHTS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[1] / "weights", here.parent / "_weights"):
        if (candidate / "registry.yaml").is_file():
            return candidate
    raise ArgenError("bundled weights not found (no weights/registry.yaml)",
                     hint="reinstall argen, or set ARGEN_WEIGHTS_DIR to a folder with registry.yaml")


def load_registry() -> Registry:
    """registry.yaml (the bundled models) plus, when present beside it, hub.yaml (the public
    models `argen weights pull` fetches); a name may appear in only one of them."""
    path = bundled_dir() / "registry.yaml"
    data, node = read_yaml(path)
    reg = validate(Registry, data, node, path)
    hub_path = path.with_name("hub.yaml")
    if hub_path.is_file():
        data, node = read_yaml(hub_path)
        hub = validate(Registry, data, node, hub_path)
        twice = sorted(set(hub.models) & set(reg.models))
        if twice:
            raise ArgenError(f"{hub_path}: {', '.join(twice)} also in {path.name}", hint="keep each model name in one file")
        reg.models.update(hub.models)
    return reg


def verify(root: Path, name: str, entry: RegistryEntry) -> None:
    for f in entry.files:
        p = root / f.file
        if not p.is_file():
            raise ArgenError(f"bundled model {name!r}: file {f.file} is missing",
                             hint="restore the weights folder (git checkout weights/) or reinstall argen")
        if sha256_file(p) != f.sha256:
            raise ArgenError(f"bundled model {name!r}: {f.file} does not match its sha256 (tampered or truncated)",
                             hint="restore the file (git checkout weights/) or reinstall argen")


def default_model(modality: str) -> str:
    reg = load_registry()
    for name, entry in reg.models.items():
        if entry.modality == modality and entry.default:
            return name
    raise ArgenError(f"no bundled default model for {modality}", hint="pass --model NAME|PATH")
