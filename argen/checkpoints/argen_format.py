"""argen's own model folders: config.json + model.safetensors (+ tokenizer.json, README.md).

config.json holds ``{"format": "argen", "modality": ..., "transformer": {...}, ...}``; the
loader rebuilds the model from the ``transformer`` dataclass fields, with no name matching.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any, Callable

import torch

from argen import __version__
from argen.checkpoints.memory import check_memory
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer, rope_freqs
from argen.errors import ArgenError
from argen.io.atomic import atomic_path


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a model folder's file; a missing, non-UTF-8 or invalid file is one line."""
    from argen.io.files import read_utf8

    text = read_utf8(path, "model file", hint="check the model folder")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ArgenError(f"{path} is not valid JSON: {e}", hint="the file is corrupt; restore it") from None
    if not isinstance(data, dict):
        raise ArgenError(f"{path} does not hold a JSON object", hint="the file is corrupt; restore it")
    return data


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a .safetensors file, on CPU; a corrupt file is a clear error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from argen.io.files import check_file

    check_file(path, "weight file", hint="the model folder is incomplete")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ArgenError(f"{path} is not a readable safetensors file ({first_line(e)})",
                         hint="the file is corrupt or truncated; restore or re-download it") from None


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def is_torch_file(path: Path) -> bool:
    """Whether a file starts like what ``torch.save`` writes: a zip archive (``PK``), or a
    legacy pickle (protocol 2 or later opens with ``\\x80``)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return head[:2] == b"PK" or head[:1] == b"\x80"


NOT_A_CHECKPOINT = "the file is corrupt or truncated, or not a checkpoint; restore or re-download it"


def check_torch_file(path: str | Path, what: str = "weight file", missing_hint: str = "the model folder is incomplete",
                     hint: str = NOT_A_CHECKPOINT) -> Path:
    """``path`` if it is a file that starts like a PyTorch checkpoint (:func:`is_torch_file`); a
    one-line ArgenError otherwise: missing or a folder (:func:`check_file`, ``missing_hint``), or
    no checkpoint at all (``hint``), before torch is asked to unpickle it."""
    from argen.io.files import check_file

    p = check_file(path, what, hint=missing_hint)
    if not is_torch_file(p):
        raise ArgenError(f"{p} is not a PyTorch checkpoint (neither a torch.save archive nor a pickle)", hint=hint)
    return p


def unpickler_reason(e: BaseException) -> str | None:
    """The one sentence of torch's weights-only refusal that names what was refused ("Unsupported
    global: GLOBAL os.system ..."), without its terminal escapes; None when the error is not such a
    refusal (a damaged pickle also raises UnpicklingError)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    if "Weights only load failed" not in text:
        return None
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            reason = line.split("WeightsUnpickler error:", 1)[1].strip()
            return reason.split(". Please use")[0].rstrip(".")[:300]
    return "it holds objects other than tensors and plain data"


def load_torch_file(path: Path) -> Any:
    """Whatever a foreign .bin/.pt/.pth file holds, opened with ``weights_only=True`` so that no
    pickled code runs; a file that needs it is refused with a clear one-line error, and a file
    that is no PyTorch checkpoint at all (text, random bytes) is called that, not a pickle."""
    path = check_torch_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = unpickler_reason(e)
        if reason is None:
            raise ArgenError(f"{path} is not a readable PyTorch checkpoint ({first_line(e)})",
                             hint=NOT_A_CHECKPOINT) from None
        raise ArgenError(f"refused to load {path}: it would need to run pickled code ({reason})",
                         hint="convert the checkpoint to safetensors in a trusted environment, then load that") from None
    except (RuntimeError, EOFError, OSError, ValueError, MemoryError) as e:
        raise ArgenError(f"{path} is not a readable PyTorch checkpoint ({first_line(e)})", hint=NOT_A_CHECKPOINT) from None


def read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    """A foreign flat state dict from a .bin/.pt/.pth file (see :func:`load_torch_file`)."""
    state = load_torch_file(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArgenError(f"{path} does not hold a flat dict of tensors", hint="expected a plain state dict")
    return state


def write_safetensors(target: Path, state: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> None:
    """Write ``state`` to ``target`` atomically, floating-point tensors cast to ``dtype``."""
    from safetensors.torch import save_file

    state = {k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
             for k, v in state.items()}
    with atomic_path(target) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "argen_version": __version__})


def save_folder(out: Path, state: dict[str, torch.Tensor], meta: dict[str, Any],
                dtype: torch.dtype = torch.float32) -> None:
    """Write an argen folder: model.safetensors (float tensors in ``dtype``) and config.json
    (``meta`` after the format and version fields), each atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(out / "model.safetensors", state, dtype)
    with atomic_path(out / "config.json") as tmp:
        tmp.write_text(json.dumps({"format": "argen", "argen_version": __version__, **meta}, indent=2) + "\n")


def load_folder(path: Path, key: str, config_cls: type, build: Callable[[Any], torch.nn.Module], what: str):
    """Load an argen folder whose config.json holds ``config_cls``'s fields under ``key``:
    (model in eval mode, CPU, float32; the whole config.json). A bad config or weights that do
    not fit it are one-line errors naming ``what`` the folder should hold."""
    path = Path(path)
    meta = read_json(path / "config.json")
    try:
        cfg = config_cls.from_dict(meta[key])
    except (KeyError, TypeError, ValueError) as e:
        raise ArgenError(f"{path / 'config.json'}: invalid {what} config ({first_line(e)})",
                         hint=f"the file is corrupt or not a {what}") from None
    model = build(cfg)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in read_safetensors(path / "model.safetensors").items()})
    except RuntimeError as e:
        raise ArgenError(f"{path}: weights do not match the config ({first_line(e)})",
                         hint="the config.json and weight files come from different models") from None
    return model.eval(), meta


def copy_folder(src: Path, dst: Path) -> None:
    """Copy an argen folder's files (weights, config.json, model card) into ``dst``: a trained
    tokenizer or codec travels inside the model folder that was trained on its codes."""
    import shutil

    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json", "README.md"):
        if (Path(src) / name).is_file():
            shutil.copyfile(Path(src) / name, dst / name)


def save_model_dir(out: Path, model: Transformer, modality: str, extra: dict[str, Any] | None = None,
                   dtype: torch.dtype = torch.float32) -> None:
    """Write a transformer's folder: model.safetensors (tensors in ``dtype``) and config.json."""
    state = dict(model.state_dict())
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    save_folder(out, state, {"modality": modality, "transformer": model.cfg.to_dict(), **(extra or {})}, dtype)


def check_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Size], source: str, against: str,
                hint: str) -> None:
    """A one-line ArgenError unless ``state`` holds exactly ``expected``'s keys, each at its shape;
    ``against``: what ``expected`` comes from, for the message ("config", "model", ...)."""
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    if missing or unexpected:
        raise ArgenError(f"{source}: weights do not match the {against} (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]})", hint=hint)
    for k, v in state.items():
        if v.shape != expected[k]:
            raise ArgenError(f"{source}: {k} has shape {tuple(v.shape)}, the {against} expects {tuple(expected[k])}",
                             hint=hint)


def build_model(cfg: TransformerConfig, state: dict[str, torch.Tensor], source: str) -> Transformer:
    """Instantiate a Transformer and load ``state`` strictly (every key present, none extra)."""
    # an absurd config (a million layers, a 1e9 width) would take minutes to build and more memory
    # than there is: its smallest size is checked against the weights before anything is built
    held = sum(t.numel() for t in state.values())
    least = cfg.n_layer * cfg.d_model * (cfg.n_head + 2 * cfg.n_kv_head) * cfg.head_dim
    if least > 2 * held + (1 << 20):
        raise ArgenError(f"{source}: the config describes a model of at least {least:,} parameters, "
                         f"the weights hold {held:,}", hint="the config.json and weight files come from different models")
    # the weights are in memory already; building allocates the model's float32 parameters again
    check_memory(4 * cfg.num_params(), source)
    with torch.device("meta"):
        model = Transformer(cfg)
    model = model.to_empty(device="cpu")
    if cfg.tie_embeddings:
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    tied = {"lm_head.weight"} if cfg.tie_embeddings else set()
    check_state(state, {k: v.shape for k, v in model.state_dict().items() if k not in tied}, source, "config",
                hint="the config.json and weight files come from different models")
    model.load_state_dict(state, strict=False, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed.weight
    if model.inv_freq is not None:  # a non-persistent buffer: left uninitialised by to_empty
        model.inv_freq = rope_freqs(cfg)
    return model.eval()


def load_model_dir(path: Path) -> tuple[Transformer, dict[str, Any]]:
    """Load an argen model folder; returns the model (eval mode, CPU, float32) and its config."""
    path = Path(path)
    meta = read_json(path / "config.json")
    try:
        cfg = TransformerConfig.from_dict(meta["transformer"])
    except (KeyError, TypeError, ValueError) as e:
        raise ArgenError(f"{path / 'config.json'}: invalid transformer config ({e})",
                         hint="the file is corrupt or from another tool") from None
    weights = path / "model.safetensors"
    if weights.is_file():  # reading a file larger than the free memory would swap, then be killed
        check_memory(weights.stat().st_size, str(path), "its weight file")
    state = read_safetensors(weights)
    model = build_model(cfg, {k: v.float() for k, v in state.items()}, str(path))
    return model, meta
