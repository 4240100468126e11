"""Models that live on the Hugging Face hub rather than in weights/: `argen weights pull NAME`
downloads a registered model's files into argen's cache, checks each against the sha256 the
registry names (a corrupt download is deleted and fetched again), and leaves them where
`--model NAME` finds them. Nothing is downloaded implicitly at generation time. A file the
registry does not pin is checked against what the hub publishes for it (an LFS file's sha256, or a
small file's git blob id), and the sha256 of the download that matched is recorded.

A registry file may instead name a plain ``url`` (e.g. a Zenodo record's file) with a pinned
checksum: its sha256, or the md5 its publisher lists, in which case the sha256 of the download
that matched is recorded and checked at every later load, as for unpinned hub files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from argen.checkpoints.files import sha256_file
from argen.checkpoints.registry import RegistryEntry, RegistryFile
from argen.errors import ArgenError
from argen.io.atomic import write_text_atomic


def argen_home() -> Path:
    """$ARGEN_HOME, else $XDG_CACHE_HOME/argen, else ~/.cache/argen."""
    env = os.environ.get("ARGEN_HOME")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "argen"


def cache_dir(name: str) -> Path:
    return argen_home() / "models" / name


LOCK = ".sha256.json"  # in a pulled model's folder: the sha256 each file was verified against
CONVERTED = "argen"  # in a pulled model's folder: the converted copy, when the registry names a converter


def recorded_hashes(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / LOCK).read_text())
        return {str(k): str(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def expected_hashes(name: str, entry: RegistryEntry) -> dict[str, str | None]:
    """Each hub file's sha256: the registry's pin, else the one recorded when it was pulled."""
    recorded = recorded_hashes(cache_dir(name))
    return {f.file: f.sha256 or recorded.get(f.file) for f in entry.hub.files}


def model_folder(name: str, entry: RegistryEntry) -> Path:
    """Where a pulled model is loaded from: its cache folder, or the converted copy inside it."""
    return cache_dir(name) / CONVERTED if entry.hub.convert else cache_dir(name)


def is_pulled(name: str, entry: RegistryEntry) -> bool:
    """Every file of the entry is in argen's own cache (verified when it is loaded)."""
    return all((cache_dir(name) / f.file).is_file() for f in entry.hub.files)


def verify_pulled(name: str, entry: RegistryEntry) -> Path:
    """Every file of a hub model is in the cache with its sha256 (and converted, when the
    registry says how), or a clear error; returns the folder to load."""
    folder = cache_dir(name)
    for file, sha in expected_hashes(name, entry).items():
        p = folder / file
        if not p.is_file():
            raise ArgenError(f"model {name!r} is not downloaded ({p} is missing)",
                             hint=f"run `argen weights pull {name}`")
        if sha is None or sha256_file(p) != sha:
            raise ArgenError(f"model {name!r}: {p} does not match its sha256 (corrupt or replaced)",
                             hint=f"delete it and run `argen weights pull {name}`")
    out = model_folder(name, entry)
    if not (out / "config.json").is_file() and not (out / "model_index.json").is_file():  # a diffusers pipeline's
        raise ArgenError(f"model {name!r} is downloaded but not converted ({out} is missing)",
                         hint=f"run `argen weights pull {name}` again to convert it")
    return out


def check_endpoint(endpoint: str, where: str) -> str:
    """``endpoint`` if it is an http(s) URL with a host (what the hub client can reach); a one-line
    ArgenError naming ``where`` it came from (``--endpoint`` or ``HF_ENDPOINT``) otherwise."""
    from urllib.parse import urlsplit

    try:
        url = urlsplit(endpoint)
        ok = url.scheme in ("http", "https") and bool(url.hostname) and (url.port is None or url.port > 0)
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        ok = False
    if not ok:
        raise ArgenError(f"{where} {endpoint!r} is not an http(s) URL",
                         hint="give the hub's address, e.g. https://huggingface.co (or a mirror's)")
    return endpoint


def published_checksum(repo_id: str, filename: str, revision: str, endpoint: str | None) -> tuple[str, str]:
    """The checksum the hub publishes for a file, as (kind, value): large files are stored
    through git LFS, whose object id (the ETag the hub sends) is the sha256 of the content,
    ("sha256", oid); small files stored in git itself (config.json, tokenizer.json) get their
    git blob id, the sha1 of ``b"blob <size>\\0" + content``, ("git-sha1", id)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    try:
        meta = get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint))
    except HfHubHTTPError as e:
        raise ConnectionError((str(e).strip().splitlines() or [type(e).__name__])[0][:200]) from None
    except Exception as e:  # noqa: BLE001 - the HTTP client's errors (requests', httpx's) depend on the version
        raise ConnectionError((str(e).strip().splitlines() or [type(e).__name__])[0][:200]) from None
    etag = (meta.etag or "").strip('"').lower()
    if len(etag) in (40, 64) and all(c in "0123456789abcdef" for c in etag):
        return ("sha256" if len(etag) == 64 else "git-sha1"), etag
    raise ArgenError(f"the hub publishes no checksum for {repo_id}/{filename} (ETag {etag or 'none'})",
                     hint="pin the file's sha256 in the registry entry")


def git_blob_sha1(path: Path, chunk: int = 1 << 20) -> str:
    """The git blob id of a file (what the hub publishes for files kept out of LFS)."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _download(repo_id: str, filename: str, revision: str, staging: Path, endpoint: str | None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, local_dir=staging, endpoint=endpoint,
                                    force_download=True))
    except (OSError, HfHubHTTPError, ValueError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ConnectionError(reason) from None


def pull(name: str, entry: RegistryEntry, endpoint: str | None = None, attempts: int = 3,
         quiet: bool = False) -> Path:
    """Download (or re-verify) every file of hub model ``name``; returns its cache folder.

    A file already in place with the right sha256 is kept, so a file copied there by hand on an
    offline machine is accepted. A download whose sha256 differs is discarded and fetched again,
    up to ``attempts`` times. ``endpoint`` (default: $HF_ENDPOINT, else the public hub) serves
    the hub's URL layout.
    """
    if entry.hub is None:
        raise ArgenError(f"model {name!r} is bundled with argen; there is nothing to pull",
                         hint="it is ready to use: see `argen models`")
    hub = entry.hub
    if endpoint:
        check_endpoint(endpoint, "--endpoint")
    elif os.environ.get("HF_ENDPOINT"):
        endpoint = check_endpoint(os.environ["HF_ENDPOINT"], "HF_ENDPOINT")
    if hub.cache == "huggingface":
        from argen.checkpoints import hf_cache

        return hf_cache.pull(hub.repo_id, hub.revision, hub.allow, endpoint, quiet)
    folder = cache_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    known = expected_hashes(name, entry)
    verified: dict[str, str] = {}
    downloaded = False
    for f in hub.files:
        dest = folder / f.file
        want = known[f.file]
        if want and dest.is_file() and sha256_file(dest) == want:
            _log(f"{f.file}: present, sha256 ok", quiet)
            verified[f.file] = want
            continue
        if f.url is not None:
            present = _file_hashes(dest) if not want and dest.is_file() else None  # copied by hand, not yet recorded
            if present and _matches(f, *present):
                _log(f"{f.file}: present, checksum ok", quiet)
                verified[f.file] = present[1]
                continue
            verified[f.file] = _pull_url(name, f, dest, folder, attempts, quiet)
            downloaded = True
            continue
        try:
            kind, want = ("sha256", f.sha256) if f.sha256 else published_checksum(hub.repo_id, f.file, hub.revision,
                                                                                  endpoint)
        except ConnectionError as e:
            raise _offline(name, hub.repo_id, f.file, dest, f.sha256, e) from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            with tempfile.TemporaryDirectory(dir=folder, prefix=".pull-") as staging:
                try:
                    got = _download(hub.repo_id, f.file, hub.revision, Path(staging), endpoint)
                except ConnectionError as e:
                    raise _offline(name, hub.repo_id, f.file, dest, want if kind == "sha256" else None, e) from None
                sha = sha256_file(got)
                if (sha if kind == "sha256" else git_blob_sha1(got)) == want:
                    os.replace(got, dest)  # same filesystem: the file appears whole or not at all
                    _log(f"{f.file}: downloaded, {kind} ok", quiet)
                    verified[f.file] = sha  # later loads check the content's sha256
                    downloaded = True
                    break
            _log(f"{f.file}: {kind} mismatch on attempt {attempt} of {attempts}; discarded", quiet)
        else:
            raise ArgenError(f"{f.file} from {hub.repo_id} did not match its {kind} in {attempts} attempts",
                             hint="the download is being corrupted, or the file changed on the hub; try again later")
    write_text_atomic(folder / LOCK, json.dumps(verified, indent=1) + "\n")
    if hub.convert:
        out = model_folder(name, entry)
        if downloaded and out.exists():  # a conversion of the files this pull replaced
            shutil.rmtree(out)
        if not (out / "config.json").is_file():
            from argen.checkpoints.convert import convert

            _log(f"converting to argen's format ({hub.convert}) in {out}", quiet)
            convert(hub.convert, [folder / f.file for f in hub.files], out, name=name, **hub.options)
    return folder


def _file_hashes(path: Path, chunk: int = 1 << 20) -> tuple[str, str]:
    """(md5, sha256) of a file."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            md5.update(block)
            sha.update(block)
    return md5.hexdigest(), sha.hexdigest()


def _matches(f: RegistryFile, md5: str, sha: str) -> bool:
    """A url file's bytes carry every checksum the registry pins for it (at least one is pinned)."""
    return (f.sha256 is None or sha == f.sha256) and (f.md5 is None or md5 == f.md5)


def _pull_url(name: str, f: RegistryFile, dest: Path, folder: Path, attempts: int, quiet: bool) -> str:
    """Download ``f.url`` to ``dest`` until its bytes match the pinned checksum; returns their sha256."""
    pinned = f"sha256 {f.sha256}" if f.sha256 else f"md5 {f.md5}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        with tempfile.TemporaryDirectory(dir=folder, prefix=".pull-") as staging:
            got = Path(staging) / "download"
            try:
                req = urllib.request.Request(f.url, headers={"User-Agent": "argen"})
                with urllib.request.urlopen(req, timeout=60) as r, open(got, "wb") as out:
                    shutil.copyfileobj(r, out, 1 << 20)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = (str(getattr(e, "reason", None) or e).strip().splitlines() or [type(e).__name__])[0][:200]
                raise ArgenError(f"cannot download {f.file} from {f.url} ({reason})",
                                 hint=f"offline? copy the file to {dest} ({pinned}) and run "
                                      f"`argen weights pull {name}` again to check it") from None
            md5, sha = _file_hashes(got)
            if _matches(f, md5, sha):
                os.replace(got, dest)  # same filesystem: the file appears whole or not at all
                _log(f"{f.file}: downloaded, {pinned.split()[0]} ok", quiet)
                return sha
        _log(f"{f.file}: checksum mismatch on attempt {attempt} of {attempts} (expected {pinned}); discarded", quiet)
    raise ArgenError(f"{f.file} from {f.url} did not match its pinned checksum in {attempts} attempts",
                     hint="the download is being corrupted, or the file changed at its source; try again later")


def _offline(name: str, repo_id: str, file: str, dest: Path, sha: str | None, why: Exception) -> ArgenError:
    where = f"copy the file to {dest}" + (f" (sha256 {sha})" if sha else "")
    return ArgenError(f"cannot download {file} from {repo_id} ({why})",
                      hint=f"offline? {where} and run `argen weights pull {name}` again to check it")


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)
