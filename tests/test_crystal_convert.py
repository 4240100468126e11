"""CrystaLLM (nanoGPT-format) checkpoints: logits match a reference nanoGPT forward; a file that
needs unpickling code, or is not such a checkpoint, is refused."""

import math

import pytest
import torch
import torch.nn.functional as F

from argen.errors import ArgenError
from argen.modalities.crystal.crystallm_convert import load_crystallm_checkpoint


def random_nanogpt_state(n_layer=2, n_head=2, n_embd=32, block_size=64, vocab_size=371, bias=True, seed=0):
    """A nanoGPT GPT state dict (key names and shapes of crystallm/_model.py), random values."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    s = {"transformer.wte.weight": r(vocab_size, n_embd), "transformer.wpe.weight": r(block_size, n_embd)}
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        s[p + "ln_1.weight"] = 1 + r(n_embd)
        s[p + "attn.c_attn.weight"] = r(3 * n_embd, n_embd)
        s[p + "attn.c_proj.weight"] = r(n_embd, n_embd)
        s[p + "ln_2.weight"] = 1 + r(n_embd)
        s[p + "mlp.c_fc.weight"] = r(4 * n_embd, n_embd)
        s[p + "mlp.c_proj.weight"] = r(n_embd, 4 * n_embd)
        if bias:
            for k, n in (("ln_1", n_embd), ("attn.c_attn", 3 * n_embd), ("attn.c_proj", n_embd), ("ln_2", n_embd),
                         ("mlp.c_fc", 4 * n_embd), ("mlp.c_proj", n_embd)):
                s[p + k + ".bias"] = r(n)
    s["transformer.ln_f.weight"] = 1 + r(n_embd)
    if bias:
        s["transformer.ln_f.bias"] = r(n_embd)
    s["lm_head.weight"] = s["transformer.wte.weight"]  # tied
    return s


def reference_forward(s, idx, n_layer, n_head, bias=True):
    """nanoGPT's forward written out: (B, T) ids -> (B, T, V) logits."""
    def lin(x, name):
        return F.linear(x, s[name + ".weight"], s.get(name + ".bias") if bias else None)

    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], s[name + ".weight"], s.get(name + ".bias") if bias else None, 1e-5)

    b, t = idx.shape
    x = s["transformer.wte.weight"][idx] + s["transformer.wpe.weight"][:t]  # (B, T, C)
    c = x.shape[-1]
    hs = c // n_head
    mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        q, k, v = lin(ln(x, p + "ln_1"), p + "attn.c_attn").split(c, dim=2)
        q, k, v = (z.view(b, t, n_head, hs).transpose(1, 2) for z in (q, k, v))  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, c)
        x = x + lin(y, p + "attn.c_proj")
        h = lin(ln(x, p + "ln_2"), p + "mlp.c_fc")
        h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))  # nanoGPT's GELU
        x = x + lin(h, p + "mlp.c_proj")
    return F.linear(ln(x, "transformer.ln_f"), s["lm_head.weight"])


def save_checkpoint(path, state, bias=True, compiled=True, **args):
    model_args = dict(n_layer=2, n_head=2, n_embd=32, block_size=64, bias=bias, vocab_size=371, dropout=0.0)
    model_args.update(args)
    prefix = "_orig_mod." if compiled else ""
    torch.save({"model": {prefix + k: v for k, v in state.items()}, "model_args": model_args, "iter_num": 250,
                "best_val_loss": torch.tensor(0.5), "config": {"dataset": "tokens_perov_5", "batch_size": 32}}, path)
    return path


@pytest.mark.parametrize("bias,compiled", [(True, True), (False, False)])
def test_logits_match_reference_nanogpt(tmp_path, bias, compiled):
    state = random_nanogpt_state(bias=bias)
    ckpt = save_checkpoint(tmp_path / "ckpt.pt", state, bias=bias, compiled=compiled)
    model, meta = load_crystallm_checkpoint(ckpt)
    assert meta["modality"] == "crystal" and model.cfg.max_seq_len == 64 and model.cfg.qkv_bias == bias
    idx = torch.randint(0, 371, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(idx)
    want = reference_forward(state, idx, 2, 2, bias)
    assert torch.allclose(ours, want, atol=1e-4, rtol=1e-4), (ours - want).abs().max()


def test_cached_sampling_from_a_checkpoint_pipeline(tmp_path):
    pytest.importorskip("pymatgen")
    from argen.engine.sampling.processors import SamplingConfig
    from argen.modalities.crystal.pipeline import CrystalPipeline

    ckpt = save_checkpoint(tmp_path / "ckpt.pt", random_nanogpt_state(block_size=48), block_size=48)
    pipe = CrystalPipeline.from_pretrained(str(ckpt))
    texts = pipe.sample_texts("data_Ba1Ti1O3\n", [0, 1], SamplingConfig(temperature=1.0), max_new_tokens=60)
    assert all(t.startswith("data_Ba1Ti1O3\n") for t in texts)
    assert texts == pipe.sample_texts("data_Ba1Ti1O3\n", [0, 1], SamplingConfig(temperature=1.0), 60)  # seeded
    assert texts[0] != texts[1]  # one generator per row


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_that_needs_unpickling_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "model_args": {}, "config": Evil()}, path)
    with pytest.raises(ArgenError) as e:
        load_crystallm_checkpoint(path)
    assert "pickled code" in str(e.value)
    assert "this must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("content,needle", [
    ({"state": 1}, "model_args"),
    ({"model": {"transformer.wte.weight": torch.zeros(371, 8)}, "model_args": {"n_layer": 1}}, "lacks vocab_size, n_head"),
    ({"model": {"transformer.h.0.attn.c_attn.weight": torch.zeros(3, 3), "foo.weight": torch.zeros(1)},
      "model_args": dict(n_layer=1, n_head=1, n_embd=1, block_size=4, bias=True, vocab_size=371)}, "unexpected key"),
])
def test_not_a_nanogpt_checkpoint(tmp_path, content, needle):
    path = tmp_path / "x.pt"
    torch.save(content, path)
    with pytest.raises(ArgenError) as e:
        load_crystallm_checkpoint(path)
    assert needle in str(e.value)


def test_other_vocabulary_is_refused(tmp_path):
    ckpt = save_checkpoint(tmp_path / "ckpt.pt", random_nanogpt_state(vocab_size=65), vocab_size=65)
    with pytest.raises(ArgenError, match="371"):
        load_crystallm_checkpoint(ckpt)
