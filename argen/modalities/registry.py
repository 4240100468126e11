"""The modalities argen serves, one entry each, and the model families of each modality.

Adding a model family is one folder under its modality plus one line in ``families`` here; adding
a modality is one folder (spec.py, pipeline.py, ...) plus one :class:`Modality` entry. Entries
name their classes as ``"module:Class"`` strings, so this module stays light: the CLI builds
every command from the specs without importing torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Modality:
    name: str
    spec: str  # "module:Class" of its GenerationSpec
    help: str  # the command's help text (first line: the summary)
    output: str  # default -o pattern ("" for text: stdout)
    suffixes: tuple[str, ...]  # output suffixes it writes; the first is a recipe's {ext}
    families: tuple[str, ...]  # "module:Class" of its pipelines, asked in order which one loads a model

    def spec_class(self):
        return load_object(self.spec)

    def family_classes(self) -> list[type]:
        return [load_object(f) for f in self.families]


def load_object(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


_M = "argen.modalities"
MODALITIES: dict[str, Modality] = {m.name: m for m in (
    Modality("text", f"{_M}.text.spec:TextSpec",
             "Generate text with a language model (bundled default: shakespeare-char).\n\nThe prompt comes from "
             "--prompt, --prompt-file, or stdin. Text streams to stdout as it is made; -o writes it to a file with "
             "its generation metadata beside it (FILE.meta.json).",
             "", (".txt",), (f"{_M}.text.block_diffusion.pipeline:BlockDiffusionPipeline", f"{_M}.text.pipeline:TextPipeline")),
    Modality("image", f"{_M}.image.spec:ImageSpec",
             "Generate images: 64x64 from a caption with the bundled shapes models, pictures from a sentence with "
             "Janus-Pro and LlamaGen text-to-image (--model janus-pro-1b --prompt \"a photo of a cat\"), or ImageNet "
             "classes with VAR and LlamaGen checkpoints (--model var-d16 --class-label golden_retriever).\n\nWrites one PNG per sample "
             "(generation metadata inside; `argen info FILE` prints it) and prints each path. --inpaint/--mask "
             "regenerate only the white part of the mask.",
             "image-{seed}.png", (".png",),
             (f"{_M}.image.text_to_image:JanusPipeline", f"{_M}.image.text_to_image:LlamaGenT2IPipeline",
              f"{_M}.image.class_pipeline:ClassImagePipeline", f"{_M}.image.pipeline:ImagePipeline")),
    Modality("video", f"{_M}.video.spec:VideoSpec",
             "Generate video by block diffusion: from a caption (--prompt \"a red circle and a blue square\"), or "
             "continuing a clip (--extend clip.mp4, any format ffmpeg reads).\n\nWrites an MP4 (H.264, generation "
             "metadata inside; `argen info FILE` prints it) and prints its path.\n\nModels: the bundled bouncing-video "
             "(the default: 32x32 shapes, runs on a CPU); on a GPU, after `argen weights pull NAME` (or with the model "
             "in the Hugging Face cache): skyreels-v2-df-1.3b (extends clips; about 14.7 GB of GPU memory at 960x544, "
             "SkyReels-V2 README), wan2.1-t2v-1.3b (81 frames at once; 8.19 GB at 832x480 with offloading, Wan2.1 "
             "README), self-forcing (causal, 4 steps; a GPU with at least 24 GB, Self-Forcing README). The causal "
             "cache adds its keys and values: up to 18.8 GB a seed for SkyReels-V2-DF at 960x544 with 97-frame "
             "windows and guidance in bfloat16; a smaller --context needs less, --no-causal-cache none.",
             "video-{seed}.mp4", (".mp4",),
             (f"{_M}.video.pipeline:VideoPipeline", f"{_M}.video.skyreels.family:SkyReelsPipeline")),
    Modality("audio", f"{_M}.audio.spec:AudioSpec",
             "Generate audio with codec tokens and the delay pattern: a melody from a prompt (--prompt \"square C4 E4 "
             "G4 C5 at 120 bpm\"), music with MusicGen (--model musicgen-small --prompt \"lo-fi beat\" --seconds 8), "
             "or the continuation of a clip (--extend clip.wav, any file ffmpeg reads).\n\n"
             "Writes WAV, FLAC, MP3 or Ogg by the output's suffix (generation metadata in its tags; `argen info FILE` "
             "prints it) and prints the path.",
             "audio-{seed}.wav", (".wav", ".flac", ".mp3", ".ogg"),
             (f"{_M}.audio.musicgen.pipeline:MusicGenPipeline", f"{_M}.audio.pipeline:AudioPipeline")),
    Modality("mesh", f"{_M}.mesh.spec:MeshSpec",
             "Generate triangle meshes: from a caption with the bundled shapes3d model (--prompt \"a tall lamp\" -o "
             "lamp.obj --preview lamp.png), unconditionally or per --category with MeshXL (--model meshxl-350m), "
             "from text with x-mesh-xl or LLaMA-Mesh (--model llama-mesh -p \"a wooden chair\").\n\nWrites one mesh "
             "per sample (.obj, .glb, .ply or .stl, in the unit cube; generation metadata inside, STL's beside it; "
             "`argen info FILE` prints it) and prints each path. Sampling masks impossible tokens, so every output is a "
             "valid mesh (--unconstrained turns that off for MeshXL and LLaMA-Mesh).",
             "mesh-{seed}.obj", (".obj", ".glb", ".ply", ".stl"),
             (f"{_M}.mesh.pipeline:MeshPipeline", f"{_M}.mesh.meshxl.pipeline:MeshXLPipeline",
              f"{_M}.mesh.llama_mesh.pipeline:LlamaMeshPipeline")),
    Modality("crystal", f"{_M}.crystal.spec:CrystalSpec",
             "Generate crystal structures as CIF files from a composition, CrystaLLM-style (--composition BaTiO3 -n 10 "
             "-o out/).\n\nEvery sample is post-processed (the space group's symmetry operators restored) and checked "
             "(formula, site multiplicity, bond lengths, space group, cell); invalid samples are drawn again up to "
             "--max-attempts, then dropped, or written with a warning comment under --keep-invalid. Each CIF's header "
             "comments carry the generation record; `argen info FILE.cif` prints it. --model also takes a CrystaLLM "
             "(nanoGPT) ckpt.pt, loaded without unpickling code.",
             "crystals/", (".cif",), (f"{_M}.crystal.modality:CrystalModalityPipeline",)),
)}


@cache
def spec_of(modality: str):
    return MODALITIES[modality].spec_class()
