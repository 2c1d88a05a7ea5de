"""Issue 14 (smaller defects): --tokenizer pairs a model with another tokenizer everywhere.
`inspect` labels each special id with the source it was read from (the tokenizer's, not the
model's format), and `tokenize` accepts --model with --tokenizer like generate/inspect/serve."""
import json
import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "models"))
from fixture_lib import ballast_bin, fixture, run  # noqa: E402

SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smol():
    d = os.environ.get("BALLAST_MODEL_DIR") or os.path.expanduser("~/.cache/ballast/models")
    p = pathlib.Path(d) / SMOL
    if not p.exists():
        pytest.fail(f"{p} missing: run make models")
    return p


def specials(*args):
    r = run("inspect", *args, "--json")
    assert r.rc == 0, repr(r)
    return {(s["role"], s["source"]) for s in r.json["vocab"]["specials"]}


def test_gguf_model_with_hf_tokenizer_labels_tokenizer_config():
    tok = fixture("llama")
    got = specials("--model", str(smol()), "--tokenizer", str(tok))
    srcs = {src for _, src in got}
    assert "gguf tokenizer" not in srcs, got
    assert "tokenizer_config.json" in srcs, got
    assert "gguf" in srcs, got  # the model's own GGUF keys are still the model's


def test_hf_model_with_gguf_tokenizer_labels_gguf_tokenizer():
    got = specials("--model", str(fixture("llama")), "--tokenizer", str(smol()))
    srcs = {src for _, src in got}
    assert "gguf tokenizer" in srcs and "tokenizer_config.json" not in srcs, got
    assert "config.json" in srcs, got


def test_plain_gguf_still_labels_gguf_tokenizer():
    srcs = {src for _, src in specials("--model", str(smol()))}
    assert "gguf tokenizer" in srcs and "tokenizer_config.json" not in srcs


def tokenize(*args, text="Hello world"):
    import subprocess
    return subprocess.run([ballast_bin(), "tokenize", *map(str, args)], input=text, capture_output=True, text=True,
                          timeout=120)


def test_tokenize_accepts_model_and_tokenizer():
    tok = fixture("llama")
    both = tokenize("--model", smol(), "--tokenizer", tok)
    alone = tokenize("--tokenizer", tok)
    model_only = tokenize("--model", smol())
    assert both.returncode == 0 and alone.returncode == 0 and model_only.returncode == 0, (both, alone, model_only)
    assert json.loads(both.stdout) == json.loads(alone.stdout)
    assert json.loads(both.stdout) != json.loads(model_only.stdout)  # the --tokenizer's ids, not the model's


def test_tokenize_needs_one_of_them():
    r = tokenize()
    assert r.returncode != 0 and "give --model or --tokenizer" in r.stdout + r.stderr
