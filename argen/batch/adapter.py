"""What the batch runner needs from a modality, the same for all six: load its pipeline from a
sample's flags, generate a batch of samples (same flags, own prompts and seeds) through the
pipeline's ``generate`` (the CLI's and the API's path), write one output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from argen.batch.plan import Sample
from argen.errors import ArgenError
from argen.modalities.base import Output, Row, make_spec
from argen.modalities.registry import MODALITIES, spec_of


class SpecAdapter:
    def __init__(self, modality: str) -> None:
        self.modality = modality

    def load(self, params: dict[str, Any]):
        from argen.modalities.loading import load

        spec = make_spec(spec_of(self.modality), params)
        opts = spec.load_options()
        return load(opts.pop("model"), self.modality, device=opts.pop("device"), dtype=opts.pop("dtype"),
                    compile=opts.pop("compile"), **opts)

    def generate(self, pipe, samples: list[Sample]) -> list[tuple[Output, dict[str, Any]]]:
        spec = make_spec(spec_of(self.modality), samples[0].params)
        rows = [Row(s.index, s.prompt, s.seed) for s in samples]
        outs = list(pipe.generate(spec, rows))
        for out in outs:
            if out.skip_reason:
                raise SampleRefused(out.skip_reason)
        return [(o, o.metadata) for o in outs]

    def write(self, path: Path, content: Output, meta: dict[str, Any]) -> None:
        content.metadata = meta
        content.write(path)


class SampleRefused(ArgenError):
    """A sample the pipeline made but will not stand behind (e.g. a crystal that failed its checks)."""


ADAPTERS: dict[str, SpecAdapter] = {m: SpecAdapter(m) for m in MODALITIES}
