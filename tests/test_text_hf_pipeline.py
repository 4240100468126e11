"""`argen text --model FOLDER` with a Hugging Face folder (weights + tokenizer.json), end to end."""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CORPUS = ["the quick brown fox jumps over the lazy dog", "a stitch in time saves nine",
          "to be or not to be that is the question"] * 20


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    out = tmp_path_factory.mktemp("hf") / "tiny-llama"
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=256, eos_token_id=tok.token_to_id("</s>"),
                                   bos_token_id=None)
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.5)  # peaked distributions: greedy ties cannot happen
    model.save_pretrained(out, safe_serialization=True)
    tok.save(str(out / "tokenizer.json"))
    return out, model, tok


def test_greedy_text_equals_transformers(cli, hf_folder):
    folder, model, tok = hf_folder
    prompt = "the quick brown"
    ids = torch.tensor([tok.encode(prompt).ids])
    with torch.no_grad():
        ref = model.generate(ids, max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=0)
    expected = tok.decode(ref[0, ids.shape[1]:].tolist(), skip_special_tokens=False)
    code, out, err = cli("text", "--model", folder, "--prompt", prompt, "--max-new-tokens", "20",
                         "--temperature", "0", "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["text"] == expected.split("</s>")[0]  # argen stops at the eos token
    assert rec["model"] == "tiny-llama"


def test_missing_tokenizer_is_a_clear_error(cli, hf_folder, tmp_path):
    folder, _, _ = hf_folder
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in folder.iterdir():
        if f.name != "tokenizer.json":
            (bare / f.name).write_bytes(f.read_bytes())
    code, _, err = cli("text", "--model", bare, "--prompt", "the")
    assert code == 1 and "no tokenizer.json" in err
