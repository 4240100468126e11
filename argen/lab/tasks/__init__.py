"""Training tasks: what `argen train TASK` fits. Each task supplies a model, batches, a loss, a
quick validation figure, its final metrics and how the result is saved; the loop in
:mod:`argen.lab.train` is shared.

A task is any object with these members::

    modality: str                                  # config.json's "modality"
    build_model(overrides: dict) -> nn.Module
    batch(batch_size: int, gen: torch.Generator) -> Any
    loss(model, batch) -> torch.Tensor             # scalar, called under autocast
    quick_val_loss(model, batches: int, batch_size: int, dtype) -> float
    final_metrics(model) -> dict
    save(out: Path, model, training: dict) -> None  # weights, config.json, assets
    card(summary: dict) -> str                     # the model card's data and score lines
"""

from __future__ import annotations

import importlib

# task name -> "module:class"; imported on use so that `argen train text` never loads images
TASKS = {
    "text": "argen.lab.tasks.text:TextTask",
    "image-tokenizer": "argen.lab.tasks.image_tokenizer:ImageTokenizerTask",
    "image": "argen.lab.tasks.image:ImageTask",
    "mesh": "argen.lab.tasks.mesh:MeshTask",
    "crystal": "argen.lab.tasks.crystal:CrystalTask",
    "audio-codec": "argen.lab.tasks.audio_codec:AudioCodecTask",
    "audio": "argen.lab.tasks.audio:AudioTask",
    "video-codec": "argen.lab.tasks.video_codec:VideoCodecTask",
    "video": "argen.lab.tasks.video:VideoTask",
}


def make_task(recipe):
    module, name = TASKS[recipe.task].split(":")
    return getattr(importlib.import_module(module), name)(recipe)
