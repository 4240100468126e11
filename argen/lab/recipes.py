"""Training recipes: which task, which data, which model config, how long. Validated with
pydantic before anything runs (argen/yaml_config.py reports the file, line and key)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator

from argen.yaml_config import Strict, read_yaml, validate


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

    task: Literal["text", "text-block-diffusion", "image-tokenizer", "image", "crystal", "mesh", "audio-codec", "audio",
                  "video-codec", "video"]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    data: DataSection
    model: dict[str, Any]
    train: TrainLoop = TrainLoop()
    # the model's sampling defaults (config.json): image cfg_scale / temperature, video cfg_scale / context
    sampling: dict[str, float] | None = None
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

        from argen.engine.config import TransformerConfig
        from argen.modalities.image.vq import VQConfig

        task = info.data.get("task")
        if task == "image-tokenizer":
            known = {f.name for f in dataclasses.fields(VQConfig)}
        elif task == "audio-codec":
            from argen.modalities.audio.codec import CodecConfig

            known = {f.name for f in dataclasses.fields(CodecConfig)}
        elif task in ("video-codec", "video"):
            from argen.modalities.video.codec import FrameCodecConfig
            from argen.modalities.video.dit import VideoModelConfig

            known = {f.name for f in dataclasses.fields(FrameCodecConfig if task == "video-codec" else VideoModelConfig)}
            derived = {"latent_mean", "latent_std"}  # set from the data, not the recipe
            known -= derived | ({"latent_channels", "latent_size", "text_vocab"} if task == "video" else set())
        else:
            known = {f.name for f in dataclasses.fields(TransformerConfig)} - {"vocab_size", "max_seq_len"}
            if task in ("image", "mesh"):
                known -= {"prefix_len", "block_size", "block_sizes"}  # set by the tokenizer's layout
            if task == "audio":
                known -= {"n_streams", "cond_vocab"}  # set by the codec's codebooks and the prompt words
            if task == "text-block-diffusion":
                known |= {"token_shift"}  # the objective's, not the network's (Fast-dLLM v2's shift)
        unknown = sorted(set(v) - known)
        if unknown:
            raise ValueError(f"unknown model key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return v


def load_train_recipe(path: str | Path) -> TrainRecipe:
    data, node = read_yaml(path)
    return validate(TrainRecipe, data, node, path)


