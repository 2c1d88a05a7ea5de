"""llama.cpp's tokenizer test vectors (shared/peer-tests/llama.cpp-vocab): every
ggml-vocab-NAME.gguf present is loaded through ballast's GGUF vocabulary adapter and
must reproduce NAME.gguf.out exactly (add_special=false, parse_special=false). Where the
GGUF is missing, a tokenizer.json of the same family stands in (llama-bpe ~ llama3_1,
qwen2 ~ qwen3)."""
import pathlib
import sys

import pytest

sys.path.insert(0, __import__("os").path.dirname(__file__))
from conftest import Cli, ballast_bin, decompress_tree, shared_dir  # noqa: E402

VOCAB = shared_dir() / "peer-tests" / "llama.cpp-vocab"
SEP = "\n__ggml_vocab_test__\n"
GGUF_NAMES = sorted(p.name[len("ggml-vocab-"):-len(".gguf.zst")] for p in VOCAB.glob("ggml-vocab-*.gguf.zst")
                    if (VOCAB / p.name.replace(".zst", ".inp")).exists())
STAND_INS = {"llama-bpe": "llama3_1", "qwen2": "qwen3"}


def load_vectors(name):
    inp = (VOCAB / f"ggml-vocab-{name}.gguf.inp").read_text(encoding="utf-8")
    out = (VOCAB / f"ggml-vocab-{name}.gguf.out").read_text(encoding="utf-8")
    texts = inp.split(SEP)
    if texts and texts[-1] == "":
        texts.pop()
    if texts and texts[-1].endswith("\n__ggml_vocab_test__"):
        texts[-1] = texts[-1][: -len("\n__ggml_vocab_test__")]
    ids = [[int(x) for x in line.split()] for line in out.split("\n")]
    ids = ids[: len(texts)]
    assert len(ids) == len(texts), (name, len(ids), len(texts))
    return texts, ids


def compare(cli, texts, ref):
    ours = cli.encode(texts, add_special=False, parse_special=False)
    bad = [i for i in range(len(texts)) if ours[i] != ref[i]]
    detail = ""
    if bad:
        i = bad[0]
        detail = f"{len(bad)}/{len(texts)} differ; first text={texts[i]!r}\n ours={ours[i]}\n  ref={ref[i]}"
    return detail


@pytest.mark.parametrize("name", GGUF_NAMES)
def test_gguf_vectors(name, tok_root):
    d = tok_root / "llama.cpp-vocab"
    d.mkdir(exist_ok=True)
    gguf = d / f"ggml-vocab-{name}.gguf"
    if not gguf.exists():
        import subprocess
        subprocess.run(["zstd", "-q", "-d", str(VOCAB / f"ggml-vocab-{name}.gguf.zst"), "-o", str(gguf)], check=True)
    texts, ref = load_vectors(name)
    detail = compare(Cli(ballast_bin(), gguf), texts, ref)
    assert not detail, f"{name}: {detail}"


@pytest.mark.parametrize("name", sorted(STAND_INS))
def test_tokenizer_json_stand_in(name, tok_root):
    if not (VOCAB / f"ggml-vocab-{name}.gguf.inp").exists():
        pytest.skip("no vectors")
    tname = STAND_INS[name]
    src = shared_dir() / "tokenizers" / tname
    d = decompress_tree(src, tok_root / tname)
    texts, ref = load_vectors(name)
    detail = compare(Cli(ballast_bin(), d / "tokenizer.json"), texts, ref)
    assert not detail, f"{name} via {tname}: {detail}"
