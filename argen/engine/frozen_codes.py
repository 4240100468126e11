"""Codecs whose decoder can be trained again while every input keeps its codes.

A tokenizer's codes are what a language model is trained on. Fine-tuning only the decoder (the
encoder and the quantiser kept exactly as they are) sharpens reconstructions without making
that language model's tokens stale. The models here have ``encoder``, ``quantizer`` and
``decoder`` children.
"""

from __future__ import annotations

from torch import nn


class FreezableCodes(nn.Module):
    codes_frozen = False

    def freeze_codes(self):
        """Keep the encoder and the quantiser as they are: no gradients, and eval mode even while
        the model trains (no codebook EMA updates), so only the decoder learns."""
        self.codes_frozen = True
        self.encoder.requires_grad_(False)
        self.quantizer.requires_grad_(False)
        return self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.codes_frozen:
            self.encoder.eval()
            self.quantizer.eval()
        return self
