"""Images to and from a square grid of VQ codes, for the text-to-image families whose decoder is
LlamaGen's VQ-16 (Janus-Pro, LlamaGen T2I): one mixin, so both read and write pixels the same way."""

from __future__ import annotations

import torch

from argen.errors import UsageError
from argen.modalities.image.vq import to_uint8, to_unit


class VQGrid:
    """Needs ``self.vq`` (a LlamaGen-style VQ model), ``self.grid`` (codes per side),
    ``self.num_tokens`` (grid * grid) and ``self.image_size`` (pixels per side)."""

    vq: torch.nn.Module
    grid: int
    num_tokens: int
    image_size: int

    @torch.inference_mode()
    def decode_float(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, grid * grid) -> images (B, 3, H, W), nominally in [-1, 1] (not clamped)."""
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        if tokens.dim() != 2 or tokens.shape[1] != self.num_tokens:
            raise UsageError(f"tokens have shape {tuple(tokens.shape)}, expected (B, {self.num_tokens})",
                             hint="decode what sample_tokens returned")
        return self.vq.decode(tokens.view(-1, self.grid, self.grid).to(self.vq.quant_conv.weight.device)).float()

    def decode(self, tokens: torch.Tensor):
        """Tokens (B, grid * grid) -> uint8 numpy images (B, H, W, 3)."""
        return to_uint8(self.decode_float(tokens))

    @torch.inference_mode()
    def encode(self, images) -> torch.Tensor:
        """uint8 images (B, H, W, 3) of the model's size -> tokens (B, grid * grid), for ``forced``
        (inpainting). Codes are matched after L2 normalisation, as the reference VQ's quantizer does."""
        x = to_unit(images)
        if tuple(x.shape[2:]) != (self.image_size, self.image_size):
            raise UsageError(f"the image is {x.shape[3]}x{x.shape[2]}, this model makes {self.image_size}x"
                             f"{self.image_size}", hint="resize the image to the model's size first")
        w = self.vq.quant_conv.weight
        return self.vq.encode(x.to(w.device, w.dtype)).flatten(1).cpu()
