"""`argen weights pull` of a file at a plain URL with a pinned checksum (CrystaLLM's Zenodo
releases: ``<name>.tar.gz`` holding ``<name>/ckpt.pt``), against a loopback HTTP server: the
archive is checked, extracted safely, converted, and the model generates."""

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest
import torch
from test_crystal_convert import random_nanogpt_state, save_checkpoint

pytest.importorskip("pymatgen")


class FileServer:
    """Serves ``files`` at /files/{name}; ``corrupt[name]`` GETs come back with a flipped byte."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.corrupt, self.gets = files, {}, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.split("?")[0].removeprefix("/files/")
                if name not in outer.files:
                    self.send_error(404)
                    return
                outer.gets.append(name)
                body = outer.files[name]
                if outer.corrupt.get(name, 0) > 0:
                    outer.corrupt[name] -= 1
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[bytes, Path]:
    """A CrystaLLM-layout release archive of a tiny random model, and its ckpt.pt."""
    ckpt = save_checkpoint(tmp_path_factory.mktemp("rel") / "ckpt.pt", random_nanogpt_state(block_size=48), block_size=48)
    return tar_gz({"crystallm_tiny/": b"", "crystallm_tiny/ckpt.pt": ckpt.read_bytes()}), ckpt


def registry(tmp_path, monkeypatch, server, name: str, md5: str | None = None, sha256: str | None = None):
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    lines = ["models:", "  tiny-url:", "    modality: crystal", "    hub:", "      convert: crystallm", "      files:",
             f"        - file: {name}", f"          url: {server.url}/{name}"]
    lines += [f"          md5: {md5}"] if md5 else []
    lines += [f"          sha256: {sha256}"] if sha256 else []
    (weights / "registry.yaml").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("ARGEN_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "models" / "tiny-url"


@pytest.fixture
def server(release):
    s = FileServer({"crystallm_tiny.tar.gz": release[0]})
    yield s
    s.close()


def test_pull_checks_the_md5_retries_a_corrupt_download_and_converts(cli, server, release, tmp_path, monkeypatch):
    from argen.modalities.crystal.crystallm_convert import load_crystallm_checkpoint
    from argen.modalities.crystal.pipeline import CrystalPipeline

    data, ckpt = release
    folder = registry(tmp_path, monkeypatch, server, "crystallm_tiny.tar.gz", md5=hashlib.md5(data).hexdigest())
    code, _, err = cli("crystal", "--model", "tiny-url", "--composition", "BaTiO3")
    assert code == 1 and "argen weights pull tiny-url" in err
    server.corrupt["crystallm_tiny.tar.gz"] = 1
    code, out, err = cli("weights", "pull", "tiny-url")
    assert code == 0, err
    assert "checksum mismatch on attempt 1 of 3" in err and server.gets.count("crystallm_tiny.tar.gz") == 2
    assert Path(out.strip()) == folder and (folder / "argen" / "model.safetensors").is_file()
    # the sha256 of the download that matched the md5 is recorded, and loads check it
    assert hashlib.sha256(data).hexdigest() in (folder / ".sha256.json").read_text()
    pipe = CrystalPipeline.from_pretrained("tiny-url")
    ref, _ = load_crystallm_checkpoint(ckpt)
    idx = torch.randint(0, 371, (2, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(pipe.model(idx), ref(idx))
    code, out, err = cli("crystal", "--model", "tiny-url", "--composition", "BaTiO3", "--seed", "0", "--keep-invalid",
                         "--max-attempts", "1", "--max-new-tokens", "60", "-o", tmp_path / "x.cif")
    assert code == 0, err
    # a second pull downloads nothing
    assert cli("weights", "pull", "tiny-url")[0] == 0 and server.gets.count("crystallm_tiny.tar.gz") == 2
    (folder / "crystallm_tiny.tar.gz").write_bytes(b"\0" + data[1:])  # replaced after the pull
    code, _, err = cli("crystal", "--model", "tiny-url", "--composition", "BaTiO3")
    assert code == 1 and "does not match its sha256" in err


def test_a_wrong_checksum_is_refused_every_time_and_nothing_is_kept(cli, server, tmp_path, monkeypatch):
    folder = registry(tmp_path, monkeypatch, server, "crystallm_tiny.tar.gz", md5="ab" * 16)
    code, _, err = cli("weights", "pull", "tiny-url", "--attempts", "2")
    assert code == 1 and "did not match its pinned checksum in 2 attempts" in err
    assert err.count("checksum mismatch") == 2 and server.gets.count("crystallm_tiny.tar.gz") == 2
    assert not (folder / "crystallm_tiny.tar.gz").exists() and not (folder / "argen").exists()


def test_offline_names_the_file_and_its_checksum(cli, tmp_path, monkeypatch):
    class Nowhere:
        url = "http://127.0.0.1:9/files"  # nothing listens

    registry(tmp_path, monkeypatch, Nowhere, "crystallm_tiny.tar.gz", sha256="a" * 64)
    code, _, err = cli("weights", "pull", "tiny-url")
    assert code == 1 and err.startswith("Error: cannot download crystallm_tiny.tar.gz") and "sha256 aaaa" in err


@pytest.mark.parametrize("members,needle", [
    ({"crystallm_tiny/ckpt.pt": b"x", "../evil.txt": b"x"}, "outside the archive"),
    ({"/tmp/evil.txt": b"x"}, "outside the archive"),
    ({"a/ckpt.pt": b"x", "b/ckpt.pt": b"x"}, "holds 2 files named ckpt.pt"),
    ({"crystallm_tiny/model.bin": b"x"}, "holds 0 files named ckpt.pt"),
])
def test_unsafe_or_foreign_archives_are_refused(tmp_path, members, needle):
    from argen.errors import ArgenError
    from argen.modalities.crystal.crystallm_convert import convert_crystallm

    archive = tmp_path / "rel" / "crystallm_tiny.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(tar_gz(members))
    with pytest.raises(ArgenError, match=needle):
        convert_crystallm(archive, tmp_path / "out" / "argen")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "argen").exists()


def test_a_symlink_member_is_refused(tmp_path):
    from argen.errors import ArgenError
    from argen.modalities.crystal.crystallm_convert import extract_member

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("crystallm_tiny/ckpt.pt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(ArgenError, match="is a link"):
        extract_member(archive, "ckpt.pt", tmp_path / "ckpt.pt")
    assert not (tmp_path / "ckpt.pt").exists()


def test_the_registry_pins_every_crystallm_release():
    """CrystaLLM's Zenodo models (record 10642388, md5 as its ARTIFACTS.md lists them)."""
    from argen.checkpoints.resolve import load_registry

    reg = load_registry().models
    names = [n for n in reg if n.startswith("crystallm-")]
    assert {"crystallm-v1-small", "crystallm-v1-large", "crystallm-perov-5-small", "crystallm-mp-20-large",
            "crystallm-mpts-52-small", "crystallm-carbon-24-large"} <= set(names)
    for n in names:
        f = reg[n].hub.files[0]
        assert reg[n].modality == "crystal" and reg[n].hub.convert == "crystallm"
        assert f.url == f"https://zenodo.org/records/10642388/files/{f.file}" and f.md5
