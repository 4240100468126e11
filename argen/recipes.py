"""Recipes: the only place that reads YAML. Validated with pydantic before anything runs.

Errors name the file, the line and the key, e.g.
``recipes/train/x.yaml:12: train.lr: Input should be greater than 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, ValidationInfo,
                      field_validator)

from argen.errors import ArgenError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextData(Strict):
    path: str
    tokenizer: Literal["char"] = "char"
    val_fraction: float = Field(0.1, gt=0, lt=1)


class ShapesData(Strict):
    """The procedural shapes dataset (argen/data/shapes.py): sample i of a split is a pure
    function of (seed, split, i)."""

    dataset: Literal["shapes"]
    seed: int = 0
    train_size: int = Field(50_000, ge=1)
    val_size: int = Field(1_000, ge=1)
    tokenizer: str | None = None  # image task: the trained image tokenizer's folder
    eval_prompts: int = Field(200, ge=1)  # image task: prompt-adherence check after training
    # image task, next-scale tokenizers: what a scale's positions read, the coarser scale's codes
    # upsampled ("codes") or VAR's running feature map f_hat area-downsampled ("features")
    scale_inputs: Literal["codes", "features"] = "codes"
    # image task, next-scale tokenizers: how many of the coarsest scales are sampled token by token
    # (raster order, each token read by the next) before the rest go in parallel; 0 is plain VAR
    raster_scales: int = Field(0, ge=0)
    # image task, with raster_scales > 1: the share of each training batch that also trains the
    # parallel scales; the rest stop after the token-by-token scales, whose logits the later scales
    # cannot change (block-causal), so those sequences cost only their raster part
    parallel_share: float = Field(1.0, gt=0, le=1)
    # image-tokenizer task: a trained tokenizer folder whose encoder and quantiser are kept as they
    # are while only its decoder trains on (its codes, and so an image model's tokens, stay valid)
    decoder_finetune: str | None = None


class CrystalData(Strict):
    """A CDVAE-style CSV of CIFs (argen/data/crystal.py); the last ``val_size`` rows are held out
    for the validation loss; ``eval_split`` (first ``eval_limit`` rows) is scored after training."""

    dataset: Literal["crystal-csv"]
    path: str
    val_size: int = Field(200, ge=1)
    symprec: float = Field(0.1, gt=0)
    eval_split: str | None = None
    eval_limit: int = Field(100, ge=1)
    eval_n: int = Field(20, ge=1)


class Shapes3DData(Strict):
    """The procedural shapes3d mesh dataset (argen/data/shapes3d.py): sample i of a split is a
    pure function of (seed, split, i)."""

    dataset: Literal["shapes3d"]
    seed: int = 0
    train_size: int = Field(20_000, ge=1)
    val_size: int = Field(500, ge=1)
    adjacent: bool = True  # MeshAnything V2's adjacent-mesh tokenisation
    eval_n: int = Field(60, ge=1)  # mesh task: held-out captions sampled and scored after training
    eval_max_faces: int = Field(400, ge=1)  # mesh task: the face limit of those samples


class MelodiesData(Strict):
    """The procedural melodies dataset (argen/data/melodies.py): sample i of a split is a pure
    function of (seed, split, i); training crops ``crop_seconds`` from random melodies."""

    dataset: Literal["melodies"]
    seed: int = 0
    train_size: int = Field(20_000, ge=1)
    val_size: int = Field(200, ge=1)
    crop_seconds: float = Field(0.5, gt=0)  # audio-codec task: training crops
    # audio-codec task: a trained codec folder whose encoder and codebooks are kept as they are
    # while only its decoder trains on (its codes, and so a language model's tokens, stay valid)
    decoder_finetune: str | None = None
    codec: str | None = None  # audio task: the trained codec's folder
    max_silence: float = Field(1.0, ge=0)  # audio task: up to this much silence after each melody
    eval_prompts: int = Field(100, ge=1)  # audio task: held-out prompts scored after training


class BouncingData(Strict):
    """The procedural bouncing-objects dataset (argen/data/bouncing.py): clip i of a split is a
    pure function of (seed, split, i); training takes random ``frames``-long windows of
    ``clip_frames``-long clips. The video task reads latents through ``codec`` (a trained frame
    codec folder)."""

    dataset: Literal["bouncing"]
    seed: int = 0
    train_size: int = Field(1_000, ge=1)
    val_size: int = Field(100, ge=1)
    clip_frames: int = Field(24, ge=2)
    frames: int = Field(16, ge=2)
    # the objects bounce off each other as well as off the walls, and never overlap (else they pass
    # over each other); a video model trained so is evaluated on clips made so (its config.json says)
    collide: bool = False
    codec: str | None = None
    # video task: the loss weight of latent positions that show some of an object, against the
    # black background's 1 (about a quarter of the positions show an object)
    foreground_weight: float = Field(1.0, ge=1.0)
    # video task, with foreground_weight: share the extra weight out per object, from the objects'
    # geometry, so that each object's positions together weigh the same whatever its size
    object_balance: bool = False
    # video task: how training sequences read their context. diffusion-forcing: one copy of the
    # window, leading blocks clean and every later block at its own noise level (so most blocks read
    # noisy blocks before them); clean-copy: the clean window then the noisy one, every noisy block
    # reading the clean blocks before it, as in generation (ACDiT's skip-causal mask; twice the tokens).
    # On the bouncing recipe clean-copy predicted 8 frames better but lost more objects over 32 (README)
    layout: Literal["diffusion-forcing", "clean-copy"] = "diffusion-forcing"
    # video task: how often training draws clips with one, two and three objects (relative weights;
    # unset: every clip equally, about a third each)
    object_weights: tuple[float, float, float] | None = None
    # video task, diffusion-forcing layout: share of training sequences whose context is partly the
    # model's own frames (argen/tasks/video_rollout.py): after 1-3 true blocks the model generates
    # the next blocks with rollout_steps flow-Euler steps, and only the blocks after those are scored
    rollout: float = Field(0.0, ge=0.0, le=1.0)
    rollout_steps: int = Field(4, ge=1, le=100)
    # video task: how the noise times of scored blocks are drawn: uniform t mapped to s t / (1 + (s - 1) t)
    # (SD3's timestep shift; above 1 favours high noise, where objects get their place; 1: uniform)
    time_shift: float = Field(1.0, gt=0.0, le=100.0)

    @field_validator("object_weights")
    @classmethod
    def _weights_draw_something(cls, v: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if v is not None and (min(v) < 0 or sum(v) <= 0):
            raise ValueError("object_weights are three weights >= 0, not all 0, e.g. [1, 2, 3]")
        return v


class TrainLoop(Strict):
    seq_len: int = Field(256, ge=2)
    batch_size: int = Field(32, ge=1)
    max_steps: int = Field(2000, ge=1)
    max_minutes: float | None = Field(None, gt=0)  # a safety stop; the schedule is step-based
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(100, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)
    dtype: Literal["float32", "bfloat16"] = "bfloat16"
    save_dtype: Literal["float32", "float16"] = "float32"  # how the weights are stored; loads upcast to float32
    eval_every: int = Field(250, ge=1)
    eval_batches: int = Field(40, ge=1)
    seed: int = 1337
    threads: int | None = Field(None, ge=1)
    # attention kernel for training steps: "auto" lets SDPA choose; "math" forces the composite
    # kernel, which measured 10-15% faster than the CPU flash kernel on the next-scale image recipe
    # (no faster on the video recipe)
    attention: Literal["auto", "math"] = "auto"
    # fine-tuning: a model (registered name, checked against its sha256, or a folder) whose
    # model.safetensors starts the training; its tensors must fit the recipe's model: section
    init: str | None = None
    # an exponential moving average of the weights with this decay (e.g. 0.999) is what is
    # evaluated, kept and saved, as diffusion models are usually sampled (DDPM, DiT); None: off
    ema: float | None = Field(None, gt=0, lt=1)
    # which weights are saved: "best", the validation checkpoint with the lowest loss; "last", the
    # final ones (a fine-tune whose objective the validation loss does not measure, e.g. data.rollout,
    # may never score below its starting weights and would otherwise save them unchanged)
    keep: Literal["best", "last"] = "best"


def _dataset_of(v: Any) -> str:
    """Which data section a recipe's ``data`` is: its ``dataset``, or a text corpus without one."""
    return str((v.get("dataset") if isinstance(v, dict) else getattr(v, "dataset", None)) or "text")


# the data section by its ``dataset`` key, so that a bad value is reported against that dataset's
# own fields (tags are "dataset=..." so that error locations can drop them)
DataSection = Annotated[Union[
    Annotated[TextData, Tag("dataset=text")], Annotated[ShapesData, Tag("dataset=shapes")],
    Annotated[CrystalData, Tag("dataset=crystal-csv")], Annotated[Shapes3DData, Tag("dataset=shapes3d")],
    Annotated[MelodiesData, Tag("dataset=melodies")], Annotated[BouncingData, Tag("dataset=bouncing")],
], Discriminator(lambda v: f"dataset={_dataset_of(v)}", custom_error_type="dataset",
                 custom_error_message="data.dataset must be shapes, crystal-csv, shapes3d, melodies or bouncing "
                                      "(or left out, with data.path, for a text corpus)")]


class TrainRecipe(Strict):
    """A training recipe: which task, which data, which model config, how long."""

    task: Literal["text", "text-block-diffusion", "image-tokenizer", "image", "crystal", "mesh", "audio-codec", "audio", "video-codec", "video"]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    data: DataSection
    model: dict[str, Any]
    train: TrainLoop = TrainLoop()
    sampling: dict[str, float] | None = None  # the model's sampling defaults (config.json): image cfg_scale / temperature, video cfg_scale / context
    output: str | None = None

    @field_validator("data")
    @classmethod
    def _data_fits_task(cls, v: TextData | ShapesData, info: ValidationInfo) -> TextData | ShapesData:
        task = info.data.get("task")
        if task in ("text", "text-block-diffusion") and not isinstance(v, TextData):
            raise ValueError("a text recipe needs a corpus: data.path")
        if task in ("image", "image-tokenizer") and not isinstance(v, ShapesData):
            raise ValueError(f"an {task} recipe needs data.dataset: shapes")
        if task == "crystal" and not isinstance(v, CrystalData):
            raise ValueError("a crystal recipe needs data.dataset: crystal-csv and data.path")
        if task == "mesh" and not isinstance(v, Shapes3DData):
            raise ValueError("a mesh recipe needs data.dataset: shapes3d")
        if task in ("audio-codec", "audio") and not isinstance(v, MelodiesData):
            raise ValueError(f"an {task} recipe needs data.dataset: melodies")
        if task == "audio" and not v.codec:
            raise ValueError("an audio recipe needs data.codec: the folder of a trained audio codec")
        if task in ("video-codec", "video") and not isinstance(v, BouncingData):
            raise ValueError(f"a {task} recipe needs data.dataset: bouncing")
        if task == "video" and not v.codec:
            raise ValueError("a video recipe needs data.codec: the folder of a trained frame codec")
        if task == "image" and not v.tokenizer:
            raise ValueError("an image recipe needs data.tokenizer: the folder of a trained image tokenizer")
        return v

    @field_validator("model")
    @classmethod
    def _known_model_keys(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        import dataclasses

        from argen.models.config import TransformerConfig
        from argen.models.image_vq import VQConfig

        task = info.data.get("task")
        if task == "image-tokenizer":
            known = {f.name for f in dataclasses.fields(VQConfig)}
        elif task == "audio-codec":
            from argen.models.audio_codec import CodecConfig

            known = {f.name for f in dataclasses.fields(CodecConfig)}
        elif task in ("video-codec", "video"):
            from argen.models.video_codec import FrameCodecConfig
            from argen.models.video_dit import VideoModelConfig

            known = {f.name for f in dataclasses.fields(FrameCodecConfig if task == "video-codec" else VideoModelConfig)}
            known -= {"latent_mean", "latent_std", "latent_channels", "latent_size", "text_vocab"} if task == "video" else {"latent_mean", "latent_std"}
        else:
            known = {f.name for f in dataclasses.fields(TransformerConfig)} - {"vocab_size", "max_seq_len"}
            if task in ("image", "mesh"):
                known -= {"prefix_len", "block_size", "block_sizes"}  # set by the tokenizer's layout
            if task == "audio":
                known -= {"n_streams", "cond_vocab"}  # set by the codec's codebooks and the prompt words
        unknown = sorted(set(v) - known)
        if unknown:
            raise ValueError(f"unknown model key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return v


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Line (1-based) of the YAML node at key path ``loc``, or of its deepest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
            if nxt is None:
                nxt_key = next((k for k, v in node.value if k.value == key), None)
                return nxt_key.start_mark.line + 1 if nxt_key is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def read_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; returns the data and its node tree (for line numbers)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ArgenError(f"cannot read recipe {p}: {e.strerror or e}", hint="check the path") from None
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ArgenError(f"{p}{where}: invalid YAML: {getattr(e, 'problem', e)}",
                         hint="fix the syntax (indentation, colons, quotes)") from None


def validate(model: type[BaseModel], data: Any, node: yaml.Node | None, path: str | Path) -> BaseModel:
    """Validate ``data`` against ``model``; the first problem becomes a one-line ArgenError."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        # an unknown key usually explains a missing one (a typo), so it is reported first
        err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith(("function-", "dataset="))))
        key = ".".join(str(x) for x in loc) or "(top level)"
        line = _line_of(node, loc)
        where = f"{path}:{line}" if line else str(path)
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise ArgenError(f"{where}: {key}: {err['msg']}{more}", hint="see the recipe examples under recipes/") from None


def load_train_recipe(path: str | Path) -> TrainRecipe:
    data, node = read_yaml(path)
    return validate(TrainRecipe, data, node, path)


# ----------------------------------------------------------------------------- batch recipes

class TextParams(Strict):
    """The flags of `argen text` that a batch recipe may set (in defaults, a job, or a grid)."""

    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    quantize: Literal["none", "int8"] = "none"
    batch_size: int = Field(8, ge=1, le=1024)
    max_new_tokens: int = Field(500, ge=1)
    temperature: float = Field(0.8, ge=0)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    min_p: float | None = Field(None, ge=0, lt=1)
    repetition_penalty: float = Field(1.0, gt=0)
    stop: list[str] = []


class ImageParams(Strict):
    """The flags of `argen image` that a batch recipe may set. With an ImageNet class model
    (VAR, LlamaGen) the job's prompts are class labels: ids or names, e.g. "207" or "golden_retriever"."""

    model: str | None = None
    sampler: Literal["next-scale", "next-token"] | None = None
    device: str = "auto"
    batch_size: int = Field(32, ge=1, le=1024)
    cfg: float | None = Field(None, ge=0)  # None: the model's default
    cfg_schedule: Literal["constant", "linear", "var"] | None = None  # None: the model's default
    cfg_interval: float | None = None  # LlamaGen's cfg_interval (guide tokens 0..K+1); -1: all
    temperature: float | None = Field(None, ge=0)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)


class AudioParams(Strict):
    """The flags of `argen audio` that a batch recipe may set (prompts follow the melodies grammar)."""

    model: str | None = None
    device: str = "auto"
    seconds: float | None = Field(None, gt=0, le=600)  # None: the prompted melody's length
    cfg: float | None = Field(None, ge=0)
    temperature: float | None = Field(None, ge=0)
    top_k: int | None = Field(None, ge=1)


class VideoParams(Strict):
    """The flags of `argen video` that a batch recipe may set (prompts list the objects)."""

    model: str | None = None
    device: str = "auto"
    frames: int = Field(32, ge=1, le=10_000)
    steps: int = Field(20, ge=1, le=1000)
    scheduler: Literal["flow-euler", "ddim"] = "flow-euler"
    context: int | None = Field(None, ge=1)  # None: the model's default
    sink: int = Field(0, ge=0)
    cond_noise: float = Field(0.0, ge=0, lt=1)


# modality -> (its parameter model, the suffix of its outputs)
MODALITIES: dict[str, tuple[type[Strict], str]] = {"text": (TextParams, "txt"), "image": (ImageParams, "png"),
                                                   "audio": (AudioParams, "wav"), "video": (VideoParams, "mp4")}


class SeedRange(Strict):
    start: int = 0
    count: int = Field(ge=1, le=1_000_000)


class Job(BaseModel):
    """One job: a modality, prompts x seeds x grid points, and any of the modality's flags."""

    model_config = ConfigDict(extra="allow")  # the flags; checked against the modality's model

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    modality: str
    prompts: list[str] | str = Field(min_length=1)  # a list, or a file with one prompt per line
    seeds: list[int] | SeedRange = Field(default_factory=lambda: [0])
    grid: dict[str, list[Any]] = {}
    output: str = "{job}/{i:04d}-{seed}.{ext}"

    @field_validator("modality")
    @classmethod
    def _known_modality(cls, v: str) -> str:
        if v not in MODALITIES:
            raise ValueError(f"unknown modality {v!r}; available: {', '.join(MODALITIES)}")
        return v

    @field_validator("grid")
    @classmethod
    def _non_empty_axes(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"grid axis {key!r} has no values")
        return v

    @property
    def flags(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def seed_list(self) -> list[int]:
        if isinstance(self.seeds, SeedRange):
            return list(range(self.seeds.start, self.seeds.start + self.seeds.count))
        return list(self.seeds)


class RunRecipe(Strict):
    """A batch recipe: ``defaults`` (flags for every job) and ``jobs``."""

    defaults: dict[str, Any] = {}
    jobs: list[Job] = Field(min_length=1)

    @field_validator("jobs")
    @classmethod
    def _unique_names(cls, v: list[Job]) -> list[Job]:
        names = [j.name for j in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"job names must be unique; repeated: {', '.join(dup)}")
        return v


def load_run_recipe(path: str | Path) -> tuple[RunRecipe, yaml.Node | None]:
    """Parse and validate a batch recipe; returns it with its YAML node tree (for line numbers)."""
    data, node = read_yaml(path)
    return validate(RunRecipe, data, node, path), node


def fail_at(path: str | Path, node: yaml.Node | None, loc: tuple, message: str) -> ArgenError:
    """An ArgenError naming ``path:line: key.path: message`` for the YAML key at ``loc``."""
    line = _line_of(node, loc)
    where = f"{path}:{line}" if line else str(path)
    key = ".".join(str(x) for x in loc)
    return ArgenError(f"{where}: {key}: {message}", hint="see the recipe examples under recipes/")
