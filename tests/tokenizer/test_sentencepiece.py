"""SentencePiece tokenizer.model vs the `sentencepiece` Python package.

Two tiny models are trained here (BPE with byte_fallback, Unigram without) with
user-defined and control symbols on a generated multilingual corpus. Reference rules
(transformers' slow LlamaTokenizer, legacy): with parse_special, control/unknown piece
literals split the text (leftmost-longest) and become their ids; each other segment is
sp.encode_as_ids'd on its own; BOS per add_bos_token (default true), EOS per add_eos_token.
decode: runs of ordinary ids -> sp.decode, special ids -> their piece (dropped with
skip_special, the rest then decoded as one run).
"""
import io
import json
import random
import subprocess

import pytest

sentencepiece = pytest.importorskip("sentencepiece")

from conftest import Cli, ballast_bin  # noqa: E402
import corpus  # noqa: E402

USER_SYMBOLS = ["<|user|>", "<tag>", "@@"]
CONTROL_SYMBOLS = ["<ctrl>", "<|end|>"]


def training_text():
    rng = random.Random(7)
    lines = []
    for _ in range(40):
        lines += corpus.SAMPLES
    lines += corpus.fuzz(99, 200, max_len=30)
    rng.shuffle(lines)
    return [l.replace("\n", " ") for l in lines if l.strip()]


def train(model_type, byte_fallback):
    buf = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(training_text()), model_writer=buf, model_type=model_type,
        vocab_size=800, hard_vocab_limit=False, character_coverage=0.99, byte_fallback=byte_fallback,
        user_defined_symbols=USER_SYMBOLS, control_symbols=CONTROL_SYMBOLS, pad_id=3,
        num_threads=4, minloglevel=2)
    return buf.getvalue()


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def model(request, tmp_path_factory):
    blob = train(request.param, byte_fallback=request.param == "bpe")
    d = tmp_path_factory.mktemp("sp_" + request.param)
    (d / "tokenizer.model").write_bytes(blob)
    sp = sentencepiece.SentencePieceProcessor(model_proto=blob)
    return request.param, d, sp


def special_ids(sp):
    return [i for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)]


def ref_encode(sp, text, add_bos, add_eos, parse_special):
    lits = {sp.id_to_piece(i): i for i in special_ids(sp) if sp.id_to_piece(i)}
    out = [sp.bos_id()] if add_bos else []
    segs, start, pos = [], 0, 0
    while parse_special and pos < len(text):
        best = max((l for l in lits if text.startswith(l, pos)), key=len, default=None)
        if best is None:
            pos += 1
            continue
        segs.append(text[start:pos])
        segs.append(lits[best])
        pos += len(best)
        start = pos
    segs.append(text[start:])
    for s in segs:
        if isinstance(s, int):
            out.append(s)
        elif s:
            out += sp.encode_as_ids(s)
    if add_eos:
        out.append(sp.eos_id())
    return out


def ref_decode(sp, ids, skip_special):
    special = set(special_ids(sp))
    ids = [i for i in ids if 0 <= i < sp.get_piece_size()]
    if skip_special:
        return sp.decode([i for i in ids if i not in special])
    out, run = "", []
    for i in ids:
        if i in special:
            out += sp.decode(run) + sp.id_to_piece(i)
            run = []
        else:
            run.append(i)
    return out + sp.decode(run)


def texts():
    lits = ["<s>", "</s>", "<unk>", "<pad>"] + CONTROL_SYMBOLS + USER_SYMBOLS
    t = corpus.build(special_contents=lits, seed=4321, n_fuzz=300)
    return [x for x in t if x.encode("utf-8", "surrogatepass").decode("utf-8", "replace") == x]


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None


@pytest.mark.parametrize("add_special,parse_special", [(True, True), (False, True), (True, False)])
def test_encode(model, add_special, parse_special):
    name, d, sp = model
    cli = Cli(ballast_bin(), d)
    ts = texts()
    got = cli.encode(ts, add_special=add_special, parse_special=parse_special)
    bad = [(t, g, ref_encode(sp, t, add_special, False, parse_special))
           for t, g in zip(ts, got) if g != ref_encode(sp, t, add_special, False, parse_special)]
    assert not bad, (name, len(bad), bad[:3])


def test_encode_config(model, tmp_path):
    name, d, sp = model
    (tmp_path / "tokenizer.model").write_bytes((d / "tokenizer.model").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"add_bos_token": False, "add_eos_token": True}))
    ts = texts()[:200]
    got = Cli(ballast_bin(), tmp_path).encode(ts)
    want = [ref_encode(sp, t, False, True, True) for t in ts]
    assert got == want
    # A .model file path works too (settings beside it are read).
    got = Cli(ballast_bin(), tmp_path / "tokenizer.model").encode(ts[:20])
    assert got == want[:20]


@pytest.mark.parametrize("skip_special", [False, True])
def test_decode(model, skip_special):
    name, d, sp = model
    ts = texts()
    id_lists = [ref_encode(sp, t, True, True, True) for t in ts]
    rng = random.Random(5)
    n = sp.get_piece_size()
    id_lists += [[rng.randrange(n) for _ in range(rng.randint(1, 30))] for _ in range(300)]
    got = Cli(ballast_bin(), d).decode(id_lists, skip_special=skip_special)
    want = [ref_decode(sp, ids, skip_special) for ids in id_lists]
    bad = [(ids, g, w) for ids, g, w in zip(id_lists, got, want) if g != w]
    assert not bad, (name, len(bad), bad[:3])


def test_not_a_model(tmp_path):
    (tmp_path / "tokenizer.model").write_bytes(b"this is not a protobuf \xff\xff\xff")
    r = subprocess.run([ballast_bin(), "tokenize", "--tokenizer", str(tmp_path), "--jsonl"],
                       input=b'{"text": "hi"}\n', capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"tokenizer.model: not a SentencePiece model" in r.stderr, r.stderr


def test_t5_spiece_model(tmp_path):
    """T5's slow tokenizer from spiece.model (no tokenizer.json): no BOS, eos appended, and the
    <extra_id_N> sentinels after the pieces with <extra_id_0> the highest id, split out of text
    as special tokens (transformers' T5Tokenizer conventions, encoding checked against the
    sentencepiece package)."""
    buf = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(training_text()), model_writer=buf, model_type="unigram", vocab_size=800,
        character_coverage=0.99, hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=4, minloglevel=2)
    sp = sentencepiece.SentencePieceProcessor(model_proto=buf.getvalue())
    n = sp.get_piece_size()
    (tmp_path / "spiece.model").write_bytes(buf.getvalue())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512, "extra_ids": 100}))
    cli = Cli(ballast_bin(), tmp_path)
    ts = [t for t in texts()[:40] if "<extra_id" not in t]
    assert cli.encode(ts) == [sp.encode_as_ids(t) + [1] for t in ts]
    got = cli.encode(["translate: <extra_id_0> the house <extra_id_99>."])[0]
    want = (sp.encode_as_ids("translate: ") + [n + 99] + sp.encode_as_ids(" the house ") + [n] +
            sp.encode_as_ids(".") + [1])
    assert got == want
    assert cli.decode([[n + 99, n]], skip_special=False)[0] == "<extra_id_0><extra_id_99>"
