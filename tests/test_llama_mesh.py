"""LLaMA-Mesh: the OBJ grammar over a BPE vocabulary whose tokens span fields and lines; the
chat template rendered as transformers renders it; a tiny random Llama in a Hugging Face folder,
loaded through argen's Llama path, writes only parseable OBJ under the grammar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from argen.errors import UsageError
from argen.modalities.mesh.llama_mesh.chat import read_template, render
from argen.modalities.mesh.llama_mesh.grammar import START, ObjConstraint, ObjGrammar
from argen.modalities.mesh.llama_mesh.model import LlamaMesh, matches
from argen.modalities.mesh.llama_mesh.obj import is_well_formed, obj_to_mesh, read_obj
from argen.modalities.mesh.metrics import mesh_metrics

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
# a Llama-3-style template (system header with a date, user turns, the assistant header)
TEMPLATE = (
    "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nToday Date: ' + date_string + '<|eot_id|>' }}"
    "{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _reference_obj(seed: int = 0, mesh: trimesh.Trimesh | None = None) -> str:
    """A mesh on LLaMA-Mesh's 64-level grid, written by trimesh (integers: digits=0)."""
    mesh = mesh if mesh is not None else trimesh.creation.icosphere(1)
    v = np.asarray(mesh.vertices)
    q = np.round((v - v.min(0)) / np.ptp(v, 0).max() * 63)
    grid = trimesh.Trimesh(q, mesh.faces, process=False)
    return grid.export(file_type="obj", include_normals=False, include_texture=False, digits=0)


def _body(obj: str) -> str:
    """The v/f lines of an OBJ file (trimesh adds a comment header and blank lines)."""
    return "".join(line + "\n" for line in obj.splitlines() if line.startswith(("v ", "f ")))


@pytest.fixture(scope="module")
def bpe():
    """A byte-level BPE trained on OBJ text with no pre-tokenizer split, so its merges cross
    spaces and newlines (tokens like ' 12', '3\\nv', '\\nf 1')."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [_body(_reference_obj(mesh=m)) for m in (trimesh.creation.icosphere(2), trimesh.creation.box(),
                                                       trimesh.creation.cylinder(0.5, 2.0, sections=24))]
    corpus += ["Create a 3D model of a wooden chair. a table, a lamp, a sword; user assistant system Today Date"]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 4, trainer)
    return tok


@pytest.fixture(scope="module")
def grammar(bpe):
    return ObjGrammar.from_tokenizer(bpe, [bpe.token_to_id("<|eot_id|>")])


def _feed(g: ObjGrammar, ids: list[int], budget: int = 10_000) -> int | None:
    """Run token ids through the constraint; the index of the first refused one (None: all taken)."""
    c = ObjConstraint(g, 1, budget)
    out: list[list[int]] = [[]]
    for i, t in enumerate(ids):
        if not c(i, out)[0, t]:
            return i
        out[0].append(t)
    return None


def test_multi_character_tokens_exist(grammar):
    texts = [grammar.texts[i] for i in grammar.other_ids]
    assert any(" " in t and any(ch.isdigit() for ch in t) for t in texts)  # e.g. ' 12'
    assert any("\n" in t and len(t) > 1 for t in texts)  # e.g. '3\nv'


@pytest.mark.parametrize("mesh", [trimesh.creation.icosphere(1), trimesh.creation.box(),
                                  trimesh.creation.cone(0.5, 1.0, sections=7)])
def test_grammar_accepts_every_line_trimesh_writes(bpe, grammar, mesh):
    body = _body(_reference_obj(mesh=mesh))
    assert body.count("\n") == len(mesh.vertices) + len(mesh.faces)
    assert is_well_formed(body) and grammar.advance(START, body) is not None
    ids = bpe.encode(body).ids
    assert bpe.decode(ids) == body and len(ids) < len(body)  # multi-character tokens in use
    eot = bpe.token_to_id("<|eot_id|>")
    assert _feed(grammar, ids + [eot]) is None  # every token, then the end
    v, f = read_obj(body)
    back = obj_to_mesh(body, clean=False)
    assert len(back.faces) == len(mesh.faces) and np.array_equal(f, mesh.faces)


@pytest.mark.parametrize("bad", ["v 64 0 0\n", "v 01 2 3\n", "v 1 2\n", "v 1  2 3\n", "v -1 2 3\n", "v 1.5 2 3\n",
                                 "v 1 2 3 \n", " v 1 2 3\n", "# comment\n", "vt 1 2 3\n", "\n",
                                 "v 1 2 3\nv 4 5 6\nf 1 2 3\n",  # a face before three vertices
                                 "v 1 2 3\nv 4 5 6\nv 7 8 9\nf 1 2 4\n",  # an unwritten vertex
                                 "v 1 2 3\nv 4 5 6\nv 7 8 9\nf 1 1 2\n",  # a repeated index
                                 "v 1 2 3\nv 4 5 6\nv 7 8 9\nf 0 1 2\n",
                                 "v 1 2 3\nv 4 5 6\nv 7 8 9\nf 1 2 3\nv 1 1 1\n",  # a vertex after faces
                                 "v 1 2 3\nv 4 5 6\nv 7 8 9\nf 1 2 3"])  # no final newline
def test_grammar_rejects_malformed_text(bpe, grammar, bad):
    eot = bpe.token_to_id("<|eot_id|>")
    assert not is_well_formed(bad)
    assert _feed(grammar, bpe.encode(bad).ids + [eot]) is not None
    good = "v 1 2 3\nv 4 5 6\nv 7 8 9\nf 1 2 3\n"
    assert is_well_formed(good) and _feed(grammar, bpe.encode(good).ids + [eot]) is None


def test_vectorised_digits_agree_with_character_checks(bpe, grammar):
    """Along a real OBJ, the allowed set equals running every token's text character by character."""
    body = _body(_reference_obj(mesh=trimesh.creation.icosphere(1)))
    state = START
    for k, ch in enumerate(body):
        if k % 17 == 0:
            got = grammar.allowed(state, left=10_000)
            want = np.zeros(grammar.vocab, dtype=bool)
            for i, t in enumerate(grammar.texts):
                want[i] = bool(t) and grammar.advance(state, t) is not None
            if state[0] == "" and state[5] > 0:
                want[grammar.end_ids] = True
            assert np.array_equal(got, want), (k, body[max(0, k - 10):k])
        state = grammar.step(state, ch)


def _llama_folder(tmp: Path, bpe, seed: int = 0) -> Path:
    import transformers

    tmp.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=64, intermediate_size=96,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=512, bos_token_id=bpe.token_to_id("<|begin_of_text|>"),
                                   eos_token_id=bpe.token_to_id("<|end_of_text|>"))
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.3)
    model.save_pretrained(tmp)
    bpe.save(str(tmp / "tokenizer.json"))
    (tmp / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                                                           "chat_template": TEMPLATE}))
    return tmp


def test_chat_template_matches_transformers(tmp_path, bpe):
    transformers = pytest.importorskip("transformers")
    folder = _llama_folder(tmp_path / "m", bpe)
    template, specials = read_template(folder)
    msgs = [{"role": "user", "content": "  Create a 3D model of a wooden chair "}]
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|begin_of_text|>",
                                              eos_token="<|eot_id|>")
    hf.chat_template = TEMPLATE
    assert render(template, msgs, specials) == hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    m = LlamaMesh.from_pretrained(folder)
    want = hf.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
    want = want["input_ids"] if isinstance(want, dict) or hasattr(want, "keys") else want
    assert m.prompt_ids(msgs[0]["content"]) == list(want)


def test_tiny_llama_under_the_grammar_writes_only_parseable_obj(tmp_path, bpe):
    folder = _llama_folder(tmp_path / "llama-mesh", bpe)
    m = LlamaMesh.from_pretrained(folder)
    assert m.end_ids == [bpe.token_to_id("<|end_of_text|>"), bpe.token_to_id("<|eot_id|>")]
    held = m.sample(6, prompt="a wooden chair", max_new_tokens=160, max_faces=12)
    free = m.sample(6, prompt="a wooden chair", max_new_tokens=160, max_faces=12, constrained=False)
    for s in held:
        assert s.parsed and is_well_formed(s.text, max_faces=12), s.text
        assert len(s.raw.faces) >= 1 and s.tokens[-1] in m.end_ids and len(s.tokens) <= 160
    on = mesh_metrics([s.raw for s in held], [s.parsed for s in held])
    off = mesh_metrics([s.raw for s in free], [s.parsed for s in free])
    print(f"\ntiny random Llama, 6 replies, 160 tokens: constrained {on}; unconstrained {off}")
    assert on["parse"] == 1.0 and off["parse"] < 1.0
    tight = m.sample(2, prompt="a lamp", max_new_tokens=40, seeds=[3, 4])  # ends in time even when short
    assert all(s.parsed and len(s.tokens) <= 40 for s in tight)


def test_matches_and_bad_requests(tmp_path, bpe):
    assert matches({"model_type": "llama", "_name_or_path": "Zhengyi/LLaMA-Mesh"})
    assert matches({"model_type": "llama", "argen_family": "llama-mesh"})
    assert not matches({"model_type": "llama", "_name_or_path": "meta-llama/Llama-3.1-8B-Instruct"})
    assert not matches({"model_type": "opt", "_name_or_path": "llama-mesh"})
    m = LlamaMesh.from_pretrained(_llama_folder(tmp_path / "m", bpe))
    for kwargs, msg in [(dict(prompt=None), "needs a text prompt"), (dict(prompt="a", category="chair"), "no categories"),
                        (dict(prompt="a", max_faces=501), "--max-faces must be in 1..500"),
                        (dict(prompt="a", max_new_tokens=10), "--max-new-tokens"),
                        (dict(prompt="a", max_new_tokens=10_000), "--max-new-tokens")]:
        with pytest.raises(UsageError, match=msg) as e:
            m.generate(1, **kwargs)
        assert "\n" not in str(e.value)
