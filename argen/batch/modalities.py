"""What the batch runner needs from each modality: load a pipeline, generate a batch of
samples (same flags, own prompts and seeds), write one output."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from argen.batch.plan import Sample


class Adapter(Protocol):
    def load(self, params: dict[str, Any]) -> Any: ...
    def generate(self, pipe: Any, samples: list[Sample]) -> list[tuple[Any, dict[str, Any]]]: ...
    def write(self, path: Path, content: Any, meta: dict[str, Any]) -> None: ...


class TextAdapter:
    def load(self, params: dict[str, Any]):
        from argen.pipelines.text import TextPipeline

        return TextPipeline.from_pretrained(params["model"], device=params["device"], dtype=params["dtype"],
                                            quantize=params["quantize"])

    def generate(self, pipe, samples: list[Sample]) -> list[tuple[str, dict[str, Any]]]:
        from argen.pipelines.text import TextRequest
        from argen.samplers.processors import SamplingConfig

        p = samples[0].params
        sampling = SamplingConfig(temperature=p["temperature"], top_k=p["top_k"], top_p=p["top_p"], min_p=p["min_p"],
                                  repetition_penalty=p["repetition_penalty"])
        req = TextRequest(prompts=[s.prompt for s in samples], seeds=[s.seed for s in samples],
                          max_new_tokens=p["max_new_tokens"], sampling=sampling, stop=list(p["stop"]))
        return [(o.text, o.metadata) for o in pipe(req)]

    def write(self, path: Path, content: str, meta: dict[str, Any]) -> None:
        from argen.io.text import write_text

        write_text(path, content, meta)


class ImageAdapter:
    """Captions for the shapes models; class labels (ids or names) for VAR and LlamaGen."""

    def load(self, params: dict[str, Any]):
        from argen.pipelines.class_image import ClassImagePipeline, family_of
        from argen.pipelines.image import ImagePipeline

        if params["model"] and family_of(params["model"]):
            return ClassImagePipeline.from_pretrained(params["model"], device=params["device"])
        return ImagePipeline.from_pretrained(params["model"], device=params["device"], sampler=params["sampler"])

    def generate(self, pipe, samples: list[Sample]) -> list[tuple[Any, dict[str, Any]]]:
        from argen.pipelines.class_image import ClassImagePipeline, ClassImageRequest
        from argen.pipelines.image import ImageRequest
        from argen.pipelines.llamagen import cfg_tokens_from_interval

        p = samples[0].params
        interval = p.get("cfg_interval")
        sampling = pipe.default_sampling(temperature=p["temperature"], top_k=p["top_k"], top_p=p["top_p"],
                                         cfg_scale=p["cfg"], cfg_schedule=p["cfg_schedule"],
                                         cfg_tokens=cfg_tokens_from_interval(interval) if interval is not None else None)
        if isinstance(pipe, ClassImagePipeline):
            from argen.data.imagenet import class_index

            req = ClassImageRequest([class_index(s.prompt) for s in samples], seeds=[s.seed for s in samples],
                                    sampling=sampling, batch_size=len(samples))
            return [(o.image, o.metadata) for o in pipe(req)]
        req = ImageRequest([s.prompt for s in samples], seeds=[s.seed for s in samples], sampling=sampling,
                           batch_size=len(samples))
        return [(o.image, o.metadata) for o in pipe(req)]

    def write(self, path: Path, content: Any, meta: dict[str, Any]) -> None:
        from argen.io.png import write_png

        write_png(path, content, meta)


class AudioAdapter:
    """One request per sample: a melody's length comes from its own prompt."""

    def load(self, params: dict[str, Any]):
        from argen.pipelines.audio import AudioPipeline

        return AudioPipeline.from_pretrained(params["model"], device=params["device"])

    def generate(self, pipe, samples: list[Sample]) -> list[tuple[Any, dict[str, Any]]]:
        from argen.pipelines.audio import AudioRequest

        p = samples[0].params
        sampling = pipe.default_sampling(cfg_scale=p["cfg"], temperature=p["temperature"], top_k=p["top_k"])
        outs = [pipe(AudioRequest(prompt=s.prompt, seconds=p["seconds"], sampling=sampling, seed=s.seed)) for s in samples]
        return [((o.samples, o.sample_rate), o.metadata) for o in outs]

    def write(self, path: Path, content: Any, meta: dict[str, Any]) -> None:
        from argen.io.audio import write_audio

        samples, rate = content
        write_audio(path, samples, rate, meta)


class VideoAdapter:
    def load(self, params: dict[str, Any]):
        from argen.pipelines.video import VideoPipeline

        return VideoPipeline.from_pretrained(params["model"], device=params["device"])

    def generate(self, pipe, samples: list[Sample]) -> list[tuple[Any, dict[str, Any]]]:
        from argen.pipelines.video import VideoRequest

        p = samples[0].params
        outs = [pipe(VideoRequest(prompt=s.prompt, frames=p["frames"], steps=p["steps"], scheduler=p["scheduler"],
                                  context=p["context"], sink=p["sink"], cond_noise=p["cond_noise"], seed=s.seed))
                for s in samples]
        return [((o.frames, o.fps), o.metadata) for o in outs]

    def write(self, path: Path, content: Any, meta: dict[str, Any]) -> None:
        from argen.io.video import write_mp4

        frames, fps = content
        write_mp4(path, frames, fps, meta)


ADAPTERS: dict[str, Adapter] = {"text": TextAdapter(), "image": ImageAdapter(), "audio": AudioAdapter(),
                                "video": VideoAdapter()}
