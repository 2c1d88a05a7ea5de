"""Byte-exact conformance of ballast's tokenizer with Hugging Face `tokenizers` on the
real tokenizers in shared/tokenizers: encode (add_special on/off, special parsing
off) and decode (skip_special on/off) over a multilingual corpus plus seeded fuzz."""
import json
import zlib
import random
import sys

import pytest

sys.path.insert(0, __import__("os").path.dirname(__file__))
import corpus  # noqa: E402
from conftest import Cli, ballast_bin, decompress_tree, shared_dir  # noqa: E402

tokenizers = pytest.importorskip("tokenizers")

NAMES = ["gpt2", "llama2", "llama3_1", "qwen3", "gemma3", "deepseek_v3", "gptoss"]


def hf_tokenizer(d):
    if (d / "tokenizer.json").exists():
        return tokenizers.Tokenizer.from_file(str(d / "tokenizer.json"))
    # Legacy GPT-2 files: what transformers' GPT2TokenizerFast builds.
    from tokenizers import decoders, models, pre_tokenizers
    tk = tokenizers.Tokenizer(models.BPE.from_file(str(d / "vocab.json"), str(d / "merges.txt")))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(["<|endoftext|>"])
    return tk


def clean_up(s):
    for a, b in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                 (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]:
        s = s.replace(a, b)
    return s


@pytest.fixture(scope="module", params=NAMES)
def case(request, tok_root):
    name = request.param
    src = shared_dir() / "tokenizers" / name
    if not src.exists():
        pytest.skip(f"{src} missing")
    d = decompress_tree(src, tok_root / name)
    hf = hf_tokenizer(d)
    cfg = {}
    if (d / "tokenizer_config.json").exists():
        cfg = json.load(open(d / "tokenizer_config.json"))
    specials = [t.content for t in hf.get_added_tokens_decoder().values()]
    texts = corpus.build(specials, seed=zlib.crc32(name.encode()) % 1000 + 7)
    return name, d, hf, cfg, texts


def first_diff(texts, ours, ref):
    bad = [i for i in range(len(texts)) if ours[i] != ref[i]]
    if not bad:
        return ""
    i = bad[0]
    return f"{len(bad)}/{len(texts)} differ; first: text={texts[i]!r}\n ours={ours[i]}\n   hf={ref[i]}"


@pytest.mark.parametrize("add_special,parse_special", [(True, True), (False, True), (True, False)])
def test_encode(case, add_special, parse_special):
    name, d, hf, cfg, texts = case
    hf.encode_special_tokens = not parse_special
    try:
        ref = [e.ids for e in hf.encode_batch(texts, add_special_tokens=add_special)]
    finally:
        hf.encode_special_tokens = False
    ours = Cli(ballast_bin(), d).encode(texts, add_special=add_special, parse_special=parse_special)
    msg = first_diff(texts, ours, ref)
    assert not msg, f"{name}: {msg}"


@pytest.mark.parametrize("skip_special", [False, True])
def test_decode(case, skip_special):
    name, d, hf, cfg, texts = case
    id_lists = [e.ids for e in hf.encode_batch(texts, add_special_tokens=True)]
    rng = random.Random(99)
    n = hf.get_vocab_size(with_added_tokens=True)
    # Random id soup: splits UTF-8 sequences, mixes specials and byte tokens.
    id_lists += [[rng.randrange(n) for _ in range(rng.randint(1, 30))] for _ in range(400)]
    id_lists += [[rng.randrange(min(n, 600)) for _ in range(rng.randint(1, 30))] for _ in range(200)]
    ref = hf.decode_batch(id_lists, skip_special_tokens=skip_special)
    if cfg.get("clean_up_tokenization_spaces"):
        ref = [clean_up(s) for s in ref]
    ours = Cli(ballast_bin(), d).decode(id_lists, skip_special=skip_special)
    msg = first_diff(id_lists, ours, ref)
    assert not msg, f"{name}: {msg}"
