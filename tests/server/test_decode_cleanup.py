"""Issue 14 (smaller defects): generated text is the lossless decode of the generated ids (as
the HF `tokenizers` package decodes them, like vLLM and TGI), even when tokenizer_config.json sets
clean_up_tokenization_spaces (the llama fixture does, as Llama 3.1 does); transformers' clean-up
stays available per request (`clean_up_tokenization_spaces`) and per server
(`--clean-up-tokenization-spaces`)."""
import json
import pathlib
import sys

import httpx
import pytest
from tokenizers import Tokenizer

from conftest import API_KEY, ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from make_fixtures import materialize  # noqa: E402

LLAMA = ROOT / "tests" / "fixtures" / "llama"


def transformers_clean_up(s):
    # transformers.PreTrainedTokenizerBase.clean_up_tokenization, written out as the reference.
    for a, b in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                 (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]:
        s = s.replace(a, b)
    return s


@pytest.fixture(scope="module")
def model_dir():
    d = materialize(LLAMA)
    assert json.loads((pathlib.Path(d) / "tokenizer_config.json").read_text())["clean_up_tokenization_spaces"] is True
    return pathlib.Path(d)


@pytest.fixture(scope="module")
def hf_tok(model_dir):
    return Tokenizer.from_file(str(model_dir / "tokenizer.json"))


@pytest.fixture(scope="module")
def forced(hf_tok):
    """A logit_bias that makes greedy decoding emit " ." then " ," forever, and the ids."""
    dot, comma = hf_tok.encode(" .", add_special_tokens=False).ids, hf_tok.encode(" ,", add_special_tokens=False).ids
    assert len(dot) == 1 and len(comma) == 1, (dot, comma)
    return dot[0], comma[0]


def complete(s, body, stream=False):
    h = {"Authorization": f"Bearer {API_KEY}"}
    if not stream:
        r = httpx.post(s.url + "/v1/completions", json=body, headers=h, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["text"]
    text = ""
    with httpx.stream("POST", s.url + "/v1/completions", json=dict(body, stream=True), headers=h, timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for c in json.loads(line[6:])["choices"]:
                    text += c["text"]
    return text


def body_for(dot):
    return {"prompt": "Hi", "max_tokens": 5, "temperature": 0, "ignore_eos": True, "logit_bias": {str(dot): 100}}


@pytest.fixture(scope="module")
def srv(model_dir):
    s = ServerProcess(model_dir, ["--ctx-size", "64"])
    yield s
    assert s.stop() == 0, s.logs()


@pytest.mark.parametrize("stream", [False, True])
def test_generated_text_is_lossless_by_default(srv, hf_tok, forced, stream):
    dot, _ = forced
    want = hf_tok.decode([dot] * 5, skip_special_tokens=True)
    assert want == " . . . . ."
    assert complete(srv, body_for(dot), stream) == want


@pytest.mark.parametrize("stream", [False, True])
def test_clean_up_per_request(srv, hf_tok, forced, stream):
    dot, _ = forced
    want = transformers_clean_up(hf_tok.decode([dot] * 5, skip_special_tokens=True))
    assert want == "....."
    got = complete(srv, dict(body_for(dot), clean_up_tokenization_spaces=True), stream)
    assert got == want
    assert complete(srv, dict(body_for(dot), clean_up_tokenization_spaces=None), stream) == " . . . . ."


def test_clean_up_must_be_boolean(srv, forced):
    r = httpx.post(srv.url + "/v1/completions", json=dict(body_for(forced[0]), clean_up_tokenization_spaces="yes"),
                   headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "clean_up_tokenization_spaces"


def test_clean_up_server_flag(model_dir, hf_tok, forced):
    dot, comma = forced
    s = ServerProcess(model_dir, ["--ctx-size", "64", "--clean-up-tokenization-spaces"])
    try:
        body = {"prompt": "Hi", "max_tokens": 4, "temperature": 0, "ignore_eos": True,
                "logit_bias": {str(comma): 100}}
        want = hf_tok.decode([comma] * 4)
        assert complete(s, body) == transformers_clean_up(want) == ",,,,"
        assert complete(s, dict(body, clean_up_tokenization_spaces=False), stream=True) == want == " , , , ,"
    finally:
        assert s.stop() == 0, s.logs()


def test_echo_is_lossless(srv, hf_tok, forced):
    dot, _ = forced
    ids = hf_tok.encode("Hi", add_special_tokens=False).ids + [dot, dot]
    r = httpx.post(srv.url + "/v1/completions", json={"prompt": ids, "max_tokens": 1, "echo": True,
                                                       "temperature": 0, "logit_bias": {str(dot): 100}},
                   headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == hf_tok.decode(ids + [dot])
