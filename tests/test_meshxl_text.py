"""x-mesh-xl: a tiny random model in the layout of MeshXL's ``models/x_mesh_xl/get_model.py``
(transformers' CLIPModel text tower, Blip2QFormerModel, 32 query embeddings, out_project, an
OPT decoder) saved as its checkpoint; argen's prefix vectors, logits and greedy tokens match the
reference run the way ``sample_t2m.py`` runs it (``generate(inputs_embeds=prefix)``)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from argen.engine.sampling.next_token import generate  # noqa: E402
from argen.engine.sampling.processors import SamplingConfig  # noqa: E402
from argen.engine.sampling.rules import token_rules  # noqa: E402
from argen.errors import UsageError  # noqa: E402
from argen.modalities.mesh.meshxl import tokenizer as tok  # noqa: E402
from argen.modalities.mesh.meshxl.model import MeshXL  # noqa: E402
from argen.modalities.mesh.meshxl.text_encoder import encode_prompt  # noqa: E402
from tests.test_meshxl import _opt, _released_config  # noqa: E402

TOL = 1e-4
QUERIES = 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ConditionEncoder(nn.Module):
    """The reference: get_model.py's ConditionEncoder with tiny configs."""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        text = transformers.CLIPTextConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                           num_attention_heads=1, max_position_embeddings=77)
        vision = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                               num_attention_heads=1, image_size=32, patch_size=16)
        self.multi_encoder = transformers.CLIPModel(transformers.CLIPConfig(text_config=text.to_dict(),
                                                                            vision_config=vision.to_dict()))
        qcfg = transformers.Blip2QFormerConfig(num_hidden_layers=3, encoder_hidden_size=64, hidden_size=128,
                                               num_attention_heads=2, intermediate_size=256)
        self.qformer = transformers.Blip2QFormerModel(qcfg)
        self.query_embeds = nn.Embedding(QUERIES, 128)
        self.out_project = nn.Linear(128, out_dim)

    def forward(self, ids, mask):
        text = self.multi_encoder.text_model(input_ids=ids, attention_mask=mask).last_hidden_state
        q = self.query_embeds(torch.arange(QUERIES).expand(ids.shape[0], -1))
        out = self.qformer(query_embeds=q, encoder_hidden_states=text, encoder_attention_mask=mask)
        return self.out_project(out[0][:, :QUERIES])


class XMeshXL(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.transformer = _opt(seed=11)
        torch.manual_seed(12)
        self.condition_encoder = ConditionEncoder(self.transformer.config.hidden_size)
        g = torch.Generator().manual_seed(13)
        with torch.no_grad():
            for name, p in self.condition_encoder.named_parameters():
                noise = torch.randn(p.shape, generator=g)
                norm = ("norm" in name.lower()) and name.endswith("weight")
                p.copy_(1.0 + 0.2 * noise if norm else 0.15 * noise)


def _clip_like_tokenizer():
    """A small BPE with CLIP's special tokens and a post-processor that wraps the text in them."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|startoftext|>", "<|endoftext|>"], show_progress=False)
    t.train_from_iterator(["3d model of a table", "a wooden chair with four legs", "a tall lamp"] * 5, trainer)
    sot, eot = t.token_to_id("<|startoftext|>"), t.token_to_id("<|endoftext|>")
    t.post_processor = processors.TemplateProcessing(single="<|startoftext|> $A <|endoftext|>",
                                                     special_tokens=[("<|startoftext|>", sot), ("<|endoftext|>", eot)])
    return t


@pytest.fixture(scope="module")
def xmeshxl(tmp_path_factory):
    ref = XMeshXL().eval()
    folder = tmp_path_factory.mktemp("x") / "x-mesh-xl-350m"
    folder.mkdir()
    torch.save(ref.state_dict(), folder / "pytorch_model.bin")  # sample_t2m.py loads the whole module's state
    (folder / "config.json").write_text(json.dumps({**_released_config(ref.transformer, "350m")}))
    clip = folder / "clip-vit-base-patch32"
    clip.mkdir()
    _clip_like_tokenizer().save(str(clip / "tokenizer.json"))
    return folder, ref


def test_prompt_encoding_matches_transformers():
    t = _clip_like_tokenizer()
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<|endoftext|>")
    prompts = ["3d model of a table", "a wooden chair " * 30]  # the second is cut to 64 tokens
    want = hf(prompts, max_length=64, padding="max_length", truncation="longest_first", return_tensors="pt")
    ids, mask = encode_prompt(t, prompts)
    assert torch.equal(ids, want["input_ids"]) and torch.equal(mask, want["attention_mask"])


def test_prefix_logits_and_greedy_tokens_match_the_reference(xmeshxl):
    folder, ref = xmeshxl
    m = MeshXL.from_pretrained(folder)
    assert m.takes_prompt and m.prompt_len == QUERIES and m.max_faces_limit == (256 - QUERIES) // 9
    ids, mask = encode_prompt(m.text_tokenizer, ["3d model of a table"])
    assert mask.sum() < 64  # padding present: the masks matter
    with torch.no_grad():
        want_prefix = ref.condition_encoder(ids, mask)  # (1, 32, d)
        got_prefix = m.encoder(ids, mask)
        assert want_prefix.std() > 0.1 and (got_prefix - want_prefix).abs().max().item() <= TOL
        m.model.cond_embed.weight.data.copy_(got_prefix[0])
        head = list(range(tok.VOCAB, tok.VOCAB + QUERIES))
        coords = torch.randint(0, tok.LEVELS, (1, 20), generator=torch.Generator().manual_seed(0))
        want = ref.transformer(inputs_embeds=torch.cat([want_prefix, ref.transformer.get_input_embeddings()(coords)], 1)).logits
        got = m.model(torch.cat([torch.tensor([head]), coords], 1))
        assert (got - want).abs().max().item() <= TOL
        n = 40
        want_ids = ref.transformer.generate(inputs_embeds=want_prefix, do_sample=False, max_new_tokens=n,
                                            min_new_tokens=n, eos_token_id=tok.EOS, pad_token_id=tok.EOS)
    no_eos = lambda step, outs: torch.arange(tok.VOCAB)[None].expand(len(outs), -1) != tok.EOS  # noqa: E731
    got_ids = generate(m.model, [head], n, SamplingConfig(temperature=0.0), rules=token_rules(allowed=no_eos))
    assert got_ids == want_ids.tolist()


def test_text_to_mesh_sampling_and_errors(xmeshxl):
    folder, _ = xmeshxl
    m = MeshXL.from_pretrained(folder)
    samples = m.sample(3, prompt="a tall lamp", max_faces=10)
    assert all(s.parsed and tok.is_canonical(s.tokens) for s in samples)
    table = m.sample(3, prompt="3d model of a table", max_faces=10)
    assert [s.tokens for s in samples] != [s.tokens for s in table]  # the prompt matters
    assert [s.tokens for s in m.sample(3, prompt="a tall lamp", max_faces=10)] == [s.tokens for s in samples]
    with pytest.raises(UsageError, match="needs a text prompt"):
        m.generate(1)
    with pytest.raises(UsageError, match="--max-faces"):
        m.generate(1, prompt="a lamp", max_faces=m.max_faces_limit + 1)


def test_older_qformer_layouts_load_and_broken_ones_fail(xmeshxl, tmp_path):
    from argen.errors import ArgenError
    from argen.modalities.mesh.meshxl.text_encoder import condition_encoder

    folder, ref = xmeshxl
    state = dict(ref.state_dict())
    # transformers 4.x also built the (unused) text branch of every Q-Former layer
    state["condition_encoder.qformer.encoder.layer.0.intermediate.dense.weight"] = torch.zeros(256, 128)
    state["condition_encoder.qformer.encoder.layer.0.output.LayerNorm.bias"] = torch.zeros(128)
    enc = condition_encoder(state, "old")
    ids, mask = encode_prompt(_clip_like_tokenizer(), ["a tall lamp"])
    with torch.no_grad():
        assert (enc(ids, mask) - ref.condition_encoder(ids, mask)).abs().max().item() <= TOL
    del state["condition_encoder.out_project.bias"]
    with pytest.raises(ArgenError, match="out_project.bias"):
        condition_encoder(state, "broken")
    state["condition_encoder.out_project.bias"] = torch.zeros(64)
    state["condition_encoder.qformer.encoder.layer.1.crossattention.attention.query.weight"] = torch.zeros(128, 128)
    with pytest.raises(ArgenError, match="do not fit"):  # layer 1 has no cross-attention
        condition_encoder(state, "broken")
