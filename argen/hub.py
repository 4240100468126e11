"""Models that live on the Hugging Face hub rather than in weights/: `argen weights pull NAME`
downloads a registered model's files into argen's cache, checks each against the sha256 the
registry names (a corrupt download is deleted and fetched again), and leaves them where
`--model NAME` finds them. Nothing is downloaded implicitly at generation time.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from argen.errors import ArgenError
from argen.weights import RegistryEntry, sha256_file


def argen_home() -> Path:
    """$ARGEN_HOME, else $XDG_CACHE_HOME/argen, else ~/.cache/argen."""
    env = os.environ.get("ARGEN_HOME")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "argen"


def cache_dir(name: str) -> Path:
    return argen_home() / "models" / name


def verify_pulled(name: str, entry: RegistryEntry) -> None:
    """Every file of a hub model is in the cache with its sha256, or a clear error."""
    folder = cache_dir(name)
    for f in entry.hub.files:
        p = folder / f.file
        if not p.is_file():
            raise ArgenError(f"model {name!r} is not downloaded ({p} is missing)",
                             hint=f"run `argen weights pull {name}`")
        if sha256_file(p) != f.sha256:
            raise ArgenError(f"model {name!r}: {p} does not match its sha256 (corrupt or replaced)",
                             hint=f"delete it and run `argen weights pull {name}`")


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
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    folder = cache_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    for f in hub.files:
        dest = folder / f.file
        if dest.is_file() and sha256_file(dest) == f.sha256:
            _log(f"{f.file}: present, sha256 ok", quiet)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            with tempfile.TemporaryDirectory(dir=folder, prefix=".pull-") as staging:
                try:
                    got = _download(hub.repo_id, f.file, hub.revision, Path(staging), endpoint)
                except ConnectionError as e:
                    raise ArgenError(f"cannot download {f.file} from {hub.repo_id} ({e})",
                                     hint=f"offline? copy the file to {dest} (sha256 {f.sha256}) "
                                          f"and run `argen weights pull {name}` again to check it") from None
                if sha256_file(got) == f.sha256:
                    os.replace(got, dest)  # same filesystem: the file appears whole or not at all
                    _log(f"{f.file}: downloaded, sha256 ok", quiet)
                    break
            _log(f"{f.file}: sha256 mismatch on attempt {attempt} of {attempts}; discarded", quiet)
        else:
            raise ArgenError(f"{f.file} from {hub.repo_id} did not match its sha256 in {attempts} attempts",
                             hint="the download is being corrupted, or the file changed on the hub; try again later")
    return folder


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)
