"""The wheel ships every subpackage and the bundled weights, and finds them once installed."""

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT


def package_dirs() -> set[str]:
    return {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in (ROOT / "argen").rglob("__init__.py")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed in this environment")
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                        str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return next(out.glob("argen-*.whl"))


def test_wheel_holds_all_packages_and_weights(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for pkg in package_dirs():
        assert pkg.replace(".", "/") + "/__init__.py" in names, f"{pkg} missing from the wheel (pyproject packages)"
    import yaml

    registry = yaml.safe_load((ROOT / "weights" / "registry.yaml").read_text())
    files = ["registry.yaml", "hub.yaml"] + [f["file"] for m in registry["models"].values() for f in m.get("files", [])]
    assert len(files) > 8
    for f in files:
        assert "argen/_weights/" + f in names, f"{f} missing from the wheel (pyproject package-data)"
    assert "argen/modalities/image/imagenet_classes.tsv" in names


def test_installed_wheel_finds_and_verifies_bundled_weights(wheel, tmp_path):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    code = ("import argen.checkpoints.resolve as w; ref = w.resolve('shakespeare-char'); "
            "print(w.bundled_dir()); print(ref.sha256)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    where, digest = r.stdout.split()
    assert Path(where) == target / "argen" / "_weights" and len(digest) == 64


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash\n")[1:3]]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == blocks[1] and "pytest" in ci and "argen image --prompt" in blocks[0]
