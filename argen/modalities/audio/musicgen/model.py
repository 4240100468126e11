"""MusicGen on argen's engine: load a transformers MusicGen folder, generate audio.

``MusicGen.from_pretrained(folder)`` reads config.json (:mod:`.config`), converts the decoder
into argen's :class:`~argen.engine.transformer.Transformer` (:mod:`.convert`) and keeps T5 and
EnCodec in transformers (:mod:`.hf_parts`). ``generate`` runs, per window of at most 30 s:
conditioning (:mod:`.conditioning`) -> the delay pattern's prompt and fixed slots (:mod:`.delay`)
-> argen's next-token loop (static KV cache, cross-attention keys/values computed once,
classifier-free guidance by batch doubling, one generator per row) -> codes; then EnCodec
decodes all windows' codes at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from argen.checkpoints.argen_format import build_model, read_json
from argen.checkpoints.hf_convert import _read_weights
from argen.engine.quantize import check_mode, quantize_weights
from argen.engine.sampling.next_token import generate as next_token_generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.engine.transformer import Transformer
from argen.errors import ArgenError, UsageError
from argen.modalities.audio.musicgen import delay
from argen.modalities.audio.musicgen.chroma import chromagram
from argen.modalities.audio.musicgen.conditioning import Conditioning, cross_memory, melody_prefix
from argen.modalities.audio.musicgen.config import DEFAULTS, EXTEND_STRIDE_S, MAX_DURATION_S, MusicGenSpec, matches
from argen.modalities.audio.musicgen.convert import convert_decoder, rename_weight_norm, split_state
from argen.modalities.audio.musicgen.hf_parts import Codec, TextEncoder, load_submodel

__all__ = ["MusicGen", "matches", "MAX_SECONDS"]
MAX_SECONDS = 3600.0
Progress = Callable[[int, int], None]  # (decoding steps done, steps in all)


def _linear(part: dict[str, torch.Tensor], d_in: int, d_out: int, what: str) -> nn.Linear | None:
    if not part:
        return None
    lin = nn.Linear(d_in, d_out)
    try:
        lin.load_state_dict({k: v.float() for k, v in part.items()})
    except RuntimeError as e:
        raise ArgenError(f"the {what} weights do not match config.json ({str(e).splitlines()[0]})",
                         hint="the checkpoint is corrupt or from another model") from None
    return lin.eval()


class MusicGen:
    """A MusicGen checkpoint ready to generate: ``decoder`` (argen's Transformer), ``text``
    (T5, or None), ``codec`` (EnCodec), ``chroma_proj`` (melody layout)."""

    def __init__(self, spec: MusicGenSpec, decoder: Transformer, text: TextEncoder | None, codec: Codec,
                 chroma_proj: nn.Linear | None = None, name: str = "musicgen", quantize: str = "none") -> None:
        self.spec, self.decoder, self.text, self.codec, self.chroma_proj = spec, decoder, text, codec, chroma_proj
        self.name, self.quantize = name, quantize

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, quantize: str = "none") -> "MusicGen":
        """Load a transformers MusicGen / MusicGen-Melody folder (config.json + safetensors, as
        ``save_pretrained`` writes it, with the tokenizer files). The decoder runs in ``dtype``;
        T5 and EnCodec stay in float32. ``quantize="int8"``: int8 weights in the decoder's
        self- and cross-attention, MLPs and codebook heads (T5 and EnCodec run once, kept)."""
        check_mode(quantize)
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise ArgenError(f"{folder} has no config.json", hint="point at a MusicGen model folder")
        cfg = read_json(folder / "config.json")
        spec = MusicGenSpec.from_config(cfg)
        parts = split_state(_read_weights(folder))
        state = {k: v.float() for k, v in convert_decoder(parts["decoder"], spec).items()}
        decoder = quantize_weights(build_model(spec.transformer_config(), state, str(folder)).to(device, dtype), quantize)
        if not parts["audio_encoder"]:
            raise ArgenError(f"{folder} holds no EnCodec weights (audio_encoder.*)", hint="the checkpoint is incomplete")
        codec_model = load_submodel(cfg["audio_encoder"], rename_weight_norm(parts["audio_encoder"]), "audio codec", text=False)
        codec = Codec(codec_model.to(device), spec.channels, spec.n_codebooks)
        text = None
        if spec.text_dim is not None:
            proj = _linear(parts["enc_to_dec_proj"], spec.text_dim, spec.d_model, "text projection")
            if proj is None and spec.text_dim != spec.d_model:
                raise ArgenError("the checkpoint lacks enc_to_dec_proj (T5 and decoder widths differ)",
                                 hint="the checkpoint is incomplete")
            text = TextEncoder.load(folder, cfg["text_encoder"], parts["text_encoder"], proj)
            if text is not None:
                text.t5.to(device)
                text.proj = None if text.proj is None else text.proj.to(device)
        chroma_proj = None
        if spec.melody and spec.num_chroma != spec.d_model:
            chroma_proj = _linear(parts["audio_enc_to_dec_proj"], spec.num_chroma, spec.d_model, "chroma projection")
            if chroma_proj is None:
                raise ArgenError("the melody checkpoint lacks audio_enc_to_dec_proj", hint="the checkpoint is incomplete")
            chroma_proj = chroma_proj.to(device)
        return cls(spec, decoder.eval(), text, codec, chroma_proj, folder.resolve().name, quantize)

    # ------------------------------------------------------------------ facts

    @property
    def device(self) -> torch.device:
        return self.decoder.embed.weight.device

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def channels(self) -> int:
        return self.spec.channels

    @property
    def has_text_encoder(self) -> bool:
        return self.text is not None

    @property
    def has_melody(self) -> bool:
        return self.spec.melody

    @property
    def defaults(self) -> dict:
        """The published sampling settings (audiocraft's): top-k 250, temperature 1, guidance 3."""
        return dict(DEFAULTS)

    window_seconds = MAX_DURATION_S  # the longest a single window generates
    extend_stride_seconds = EXTEND_STRIDE_S  # how far each later window starts after the previous

    def new_audio_offset(self, clip_samples: int) -> int:
        """Where the new audio starts in :meth:`generate`'s output after a clip of
        ``clip_samples`` samples: EnCodec codes a clip in ``ceil(samples / hop)`` frames, and the
        output renders those frames first (a caller keeping the clip's own samples cuts here)."""
        return -(-clip_samples // self.spec.hop) * self.spec.hop

    # ------------------------------------------------------------------ generation

    def _check(self, prompts: list[str | None], seeds: list[int], seconds: float,
               audio_prompt: np.ndarray | None, melody: np.ndarray | None) -> None:
        if not prompts:
            raise UsageError("nothing to generate: no prompts", hint="give one prompt (or None) per sample")
        if len(seeds) != len(prompts):
            raise UsageError(f"{len(seeds)} seeds for {len(prompts)} prompts", hint="give one seed per sample")
        if not 0 < seconds <= MAX_SECONDS:
            raise UsageError(f"--seconds must be in (0, {MAX_SECONDS:g}], got {seconds:g}", hint="e.g. --seconds 8")
        if self.text is None and any(p is not None for p in prompts):
            raise UsageError(f"{self.name} has no text encoder, so it takes no prompt",
                             hint="leave the prompt out (unconditional generation)")
        if melody is not None and not self.has_melody:
            raise UsageError(f"{self.name} has no melody conditioning", hint="use a melody model, e.g. musicgen-melody")
        for what, arr in (("audio to extend", audio_prompt), ("melody", melody)):
            if arr is not None:
                a = np.asarray(arr)
                if a.ndim not in (1, 2) or a.shape[-1] == 0 or not np.issubdtype(a.dtype, np.floating) \
                        or not np.isfinite(a).all():
                    raise ArgenError(f"the {what} is empty or not audio (shape {a.shape}, {a.dtype})",
                                     hint="give float samples (T,) or (channels, T) at the model's sample rate")

    def _text_states(self, prompts: list[str | None]) -> list[torch.Tensor]:
        zero = torch.zeros(1, self.spec.d_model, device=self.device)  # no prompt: one null vector
        return [zero if p is None else self.text.encode(p).to(self.device) for p in prompts]

    def _window_melody(self, melody: np.ndarray | None, offset_frames: int) -> torch.Tensor:
        """The chroma of the tune for a window starting ``offset_frames`` in: the tune itself for
        the first window; later ones read it periodically from their start time (audiocraft's
        ``_generate_tokens``: ``positions % wav_length`` over ``max_duration``)."""
        if melody is None:
            null = torch.zeros(1, self.spec.num_chroma)
            null[0, 0] = 1.0
            return null
        wav = np.asarray(melody, dtype=np.float32)
        wav = wav if wav.ndim == 1 else wav.mean(0)
        window_s = self.spec.max_frames / self.spec.frame_rate
        if offset_frames:
            start = int(offset_frames / self.spec.frame_rate * self.sample_rate)
            wav = wav[(start + np.arange(int(window_s * self.sample_rate))) % wav.shape[0]]
        return chromagram(wav, self.sample_rate, self.spec.num_chroma, window_s)

    def conditioning(self, texts: list[torch.Tensor], guided: bool, melody: np.ndarray | None = None,
                     offset_frames: int = 0) -> Conditioning:
        """The decoder's conditioning for rows with text states ``texts`` (and their twins)."""
        if not self.has_melody:
            return cross_memory(self.decoder, texts, guided)
        chroma = self._window_melody(melody, offset_frames)
        return melody_prefix([chroma] * len(texts), texts, self.chroma_proj, self.spec.chroma_length, guided, self.device)

    @torch.inference_mode()
    def logits(self, steps: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Teacher-forced decoder logits: delay-pattern steps (B, T, K) (BOS first) -> (B, K, T,
        codebook_size) float32, each position's prediction of the next step."""
        b, t, k = steps.shape
        pos, prefix = None, None
        if cond.prefix is not None:
            prefix, ppos = cond.prefix
            start = ppos.max(dim=1, keepdim=True).values + 1  # (B, 1): each row's first token position
            pos = torch.cat([ppos, start + torch.arange(t, device=ppos.device)], dim=1)
        out = self.decoder(steps.to(self.device), pos=pos, memory=cond.memory, prefix=prefix)[:, -t:]
        return out.view(b, t, k, -1)[..., : self.spec.codebook_size].transpose(1, 2).float()

    def _window(self, known: torch.Tensor, frames: int, cond: Conditioning, generators: list[torch.Generator],
                sampling: SamplingConfig, use_cache: bool, tick: Callable, compile: bool = False) -> torch.Tensor:
        """One call of the engine's loop: known codes (B, K, F0) -> codes (B, K, frames). With
        ``compile`` on CUDA its decode step is graph-captured: the text memory is a static input
        (the same keys/values for every step of the window), the melody prefix is prefill-only."""
        delays, k = self.spec.delays(), self.spec.n_codebooks
        splits = [delay.split(delay.grid(row, frames, delays, self.spec.pad)) for row in known]
        prompts = [[tuple(s) for s in p.tolist()] for p, _ in splits]
        forced = torch.stack([f for _, f in splits])  # (B, N, K): PADs and known codes; -1 sampled
        rules = token_rules(vocab_limit=self.spec.codebook_size, forced=forced,
                            uncond_prompts=prompts if sampling.guided else None)
        out = next_token_generate(self.decoder, prompts, forced.shape[1], sampling, rules=rules, generators=generators,
                                  on_token=tick, use_cache=use_cache, condition=cond, compile=compile)
        steps = [torch.cat([p, torch.tensor(o, dtype=torch.long).view(-1, k)]) for (p, _), o in zip(splits, out)]
        return torch.stack([delay.codes_from_steps(s, delays) for s in steps])

    @torch.inference_mode()
    def generate_codes(self, prompts: list[str | None], seeds: list[int], seconds: float,
                       sampling: SamplingConfig | None = None, audio_prompt: np.ndarray | None = None,
                       melody: np.ndarray | None = None, on_progress: Progress | None = None,
                       use_cache: bool = True, prompt_codes: torch.Tensor | None = None,
                       compile: bool = False) -> torch.Tensor:
        """Codes (B, K, F0 + F): the audio prompt's F0 frames (or ``prompt_codes`` (K, F0) given
        directly), then ``seconds`` of new frames (rounded up to whole frames). Past the 30 s
        window the generation continues window by window, each window starting 18 s after the
        previous one and prompted with the previous window's last 12 s (audiocraft's
        ``GenModel._generate_tokens``)."""
        self._check(prompts, seeds, seconds, audio_prompt, melody)
        sampling = sampling or SamplingConfig(**DEFAULTS)
        b, spec = len(prompts), self.spec
        known = torch.zeros(spec.n_codebooks, 0, dtype=torch.long) if prompt_codes is None else prompt_codes.cpu()
        if audio_prompt is not None:
            a = np.asarray(audio_prompt, dtype=np.float32)
            known = self.codec.encode(a[None] if a.ndim == 1 else a).cpu()  # (K, F0)
        new = int(np.ceil(seconds * spec.frame_rate - 1e-6))
        total = known.shape[1] + new
        # a clip longer than a window: its last (window - stride) frames prompt the first window
        context = spec.max_frames - spec.stride_frames if known.shape[1] >= spec.max_frames else known.shape[1]
        head, prompt = known[:, : known.shape[1] - context], known[:, known.shape[1] - context:]
        texts = self._text_states(prompts)
        generators = [torch.Generator(self.device).manual_seed(int(s)) for s in seeds]
        spans, offset, plen, todo = [], 0, prompt.shape[1], total - head.shape[1]
        while offset + plen < todo:  # the window plan first, for the progress total
            chunk = min(todo - offset, spec.max_frames)
            spans.append((offset, chunk, plen))
            plen, offset = chunk - spec.stride_frames, offset + spec.stride_frames
        steps_total = sum(chunk - p + max(spec.delays()) for _, chunk, p in spans)
        done = [0]

        def tick(_tok: torch.Tensor) -> None:
            done[0] += 1
            if on_progress is not None:
                on_progress(done[0], steps_total)

        pieces = [head[None].expand(b, -1, -1), prompt[None].expand(b, -1, -1)]
        rows = prompt[None].expand(b, -1, -1)
        for offset, chunk, plen in spans:
            cond = self.conditioning(texts, sampling.guided, melody, offset)
            codes = self._window(rows, chunk, cond, generators, sampling, use_cache, tick, compile)  # (B, K, chunk)
            pieces.append(codes[:, :, plen:])
            rows = codes[:, :, spec.stride_frames:]
        return torch.cat(pieces, dim=2)

    def generate(self, prompts: list[str | None], seeds: list[int], seconds: float,
                 sampling: SamplingConfig | None = None, audio_prompt: np.ndarray | None = None,
                 melody: np.ndarray | None = None, on_progress: Progress | None = None,
                 use_cache: bool = True, compile: bool = False) -> list[np.ndarray]:
        """One waveform per prompt: float32 (channels, samples) at :attr:`sample_rate`.

        ``prompts``: text, or None for no text; ``seeds``: one per row (a row's audio is the same
        alone or in a batch); ``seconds``: new audio, in (0, 3600]; ``sampling``: argen's settings
        (default: :attr:`defaults`); ``audio_prompt`` (T,) or (C, T) at :attr:`sample_rate`: the
        clip to continue (the output starts with the codec's rendering of it); ``melody``: a tune
        for the melody layout; ``on_progress(done, total)`` after every decoding step; ``compile``:
        the loop's --compile (on CUDA the graph-captured decode step).
        """
        codes = self.generate_codes(prompts, seeds, seconds, sampling, audio_prompt, melody, on_progress, use_cache,
                                    compile=compile)
        audio = self.codec.decode(codes)  # (B, C, T)
        return [a.numpy() for a in audio.cpu()]
