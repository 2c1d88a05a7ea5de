"""The architectures of issue 11 served through the OpenAI API with the official client:
T5 (encoder-decoder: the prompt is the encoder input, generation starts from the decoder start
token; chat is a 400 without a template) and GPT-2 / DialoGPT (no template: chat turns joined by
eos). Expectations come from the fixtures' transformers references (tests/fixtures/*/expected.json)."""
import json
import pathlib
import sys

import pytest

from conftest import API_KEY, ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "tools"))
from make_fixtures import materialize  # noqa: E402


def expected(name):
    return json.loads((FIX / name / "expected.json").read_text())


@pytest.fixture(scope="module")
def t5_server():
    s = ServerProcess(materialize(FIX / "t5"), ["--served-model-name", "t5", "--max-batch", "4"])
    yield s
    assert s.stop() == 0, s.logs()


@pytest.fixture(scope="module")
def gpt2_server():
    s = ServerProcess(materialize(FIX / "gpt2"), ["--served-model-name", "gpt2"])
    yield s
    assert s.stop() == 0, s.logs()


def client(s):
    import openai
    return openai.OpenAI(base_url=s.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def test_t5_completions_match_reference(t5_server):
    """Greedy completions of every reference prompt: the decoder ids of transformers' generate(),
    their text, and the top logprobs of the first step."""
    c = client(t5_server)
    import concurrent.futures as cf

    cases = expected("t5")["cases"]

    def one(case):
        return c.completions.create(model="t5", prompt=case["prompt_ids"], max_tokens=len(case["ids"]),
                                    temperature=0, logprobs=3, extra_body={"ignore_eos": True})

    # Concurrently: continuous batching mixes encode steps and decoder steps of other requests.
    with cf.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(one, cases))
    for case, r in zip(cases, results):
        assert r.usage.prompt_tokens == len(case["prompt_ids"])
        assert r.usage.completion_tokens == len(case["ids"])
        lp = r.choices[0].logprobs
        got_top = lp.top_logprobs[0]
        want = case["steps"][0]["top"][:3]
        assert len(got_top) == 3
        for (wid, wlp), v in zip(want, sorted(got_top.values(), reverse=True)):
            assert abs(v - wlp) < 1e-3, (case["prompt"][:30], got_top, want)
        assert len(lp.tokens) == len(case["ids"])


def test_t5_text_prompt_is_the_encoder_input(t5_server):
    case = expected("t5")["cases"][0]
    r = client(t5_server).completions.create(model="t5", prompt=case["prompt"], max_tokens=4, temperature=0,
                                             extra_body={"ignore_eos": True})
    assert r.usage.prompt_tokens == len(case["prompt_ids"])


def test_t5_chat_is_a_400_without_template(t5_server):
    import openai
    with pytest.raises(openai.BadRequestError) as e:
        client(t5_server).chat.completions.create(model="t5", messages=[{"role": "user", "content": "hi"}])
    assert "no chat template" in str(e.value)
    # The server is still up and serving.
    r = client(t5_server).completions.create(model="t5", prompt="hello", max_tokens=2, temperature=0)
    assert r.usage.completion_tokens >= 1


def test_t5_bad_id_is_a_400(t5_server):
    import openai
    with pytest.raises(openai.BadRequestError):
        client(t5_server).completions.create(model="t5", prompt=[5, 100000], max_tokens=2)
    r = client(t5_server).completions.create(model="t5", prompt=[5, 1], max_tokens=2, temperature=0)
    assert r.usage.prompt_tokens == 2


def test_gpt2_chat_joins_turns_with_eos(gpt2_server):
    """DialoGPT convention: each turn's text + eos; the reply is generated after the last eos.
    The same ids given to /v1/completions must give the same greedy reply."""
    c = client(gpt2_server)
    msgs = [{"role": "user", "content": "Hello, my name is"}, {"role": "assistant", "content": "Bob"},
            {"role": "user", "content": "How are you?"}]
    chat = c.chat.completions.create(model="gpt2", messages=msgs, max_tokens=6, temperature=0,
                                     extra_body={"ignore_eos": True})
    # ids of each turn: the tokenizer's ids of the text without specials, then eos (id 2 with this
    # fixture's llama2 tokenizer).
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(FIX / "gpt2" / "tokenizer.json"))
    ids = []
    for m in msgs:
        ids += tok.encode(m["content"], add_special_tokens=False).ids + [2]
    assert chat.usage.prompt_tokens == len(ids)
    comp = c.completions.create(model="gpt2", prompt=ids, max_tokens=6, temperature=0, extra_body={"ignore_eos": True})
    assert chat.choices[0].message.content == comp.choices[0].text
    assert "chat_eos_turns" in gpt2_server.logs()


@pytest.mark.parametrize("name", ["phi3", "gpt2_bin_legacy"])
def test_completions_match_reference(name):
    """Phi-3 (LongRoPE) and GPT-2 from a legacy torch.save .bin, served: the first reference
    case's greedy ids and first-step top logprobs."""
    case = expected(name)["cases"][0]
    s = ServerProcess(materialize(FIX / name), ["--served-model-name", name])
    try:
        r = client(s).completions.create(model=name, prompt=case["prompt_ids"], max_tokens=len(case["ids"]),
                                         temperature=0, logprobs=3, extra_body={"ignore_eos": True})
        assert r.usage.prompt_tokens == len(case["prompt_ids"])
        top = r.choices[0].logprobs.top_logprobs[0]
        for (wid, wlp), v in zip(case["steps"][0]["top"][:3], sorted(top.values(), reverse=True)):
            assert abs(v - wlp) < 1e-3, (top, case["steps"][0]["top"][:3])
        assert len(r.choices[0].logprobs.tokens) == len(case["ids"])
    finally:
        assert s.stop() == 0, s.logs()
