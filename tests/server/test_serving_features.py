"""Issue 13 serving features end to end with the official openai client: prefix caching
(usage.prompt_tokens_details.cached_tokens, /metrics, --no-prefix-cache, results equal with and
without a hit), echo with prompt logprobs, n / best_of sharing the prompt, and the seed reported
back. References: the fixtures' transformers runs (tests/fixtures/*/expected.json) and the same
server with the cache off."""
import json
import math
import pathlib
import sys
import uuid

import httpx
import openai
import pytest

from conftest import API_KEY, ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "tools"))
from make_fixtures import materialize  # noqa: E402

MODEL = "smol"
LOGPROB_TOL = 1e-3  # the fixtures' tolerance against transformers fp32 (--exact)


def expected(name):
    return json.loads((FIX / name / "expected.json").read_text())


def client_of(s):
    return openai.OpenAI(base_url=s.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def metric(s, name):
    r = httpx.get(s.url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def cached(usage):
    return usage.prompt_tokens_details.cached_tokens


def unique_system():
    # A system prompt no other test sent, long enough for several full 16-token blocks.
    tag = uuid.uuid4().hex[:8]
    return (f"Session {tag}. You are a careful assistant for a small bakery. Answer in one short sentence, "
            "mention prices in euros, never invent products, and be friendly to every customer who asks.")


# Equality of results with and without a cache hit is asserted on --exact servers: in the default
# CPU mode (no AVX-512 VNNI panels) a step of >= 24 tokens multiplies in fp32 and a smaller one with
# 8-bit activations, so a token's numbers depend on the size of the step that computed it (chunked
# prefill, concurrent batches and cache hits alike; docs/server.md "Prefix caching").
@pytest.fixture(scope="module")
def nocache_server(model_path):
    s = ServerProcess(model_path, ["--ctx-size", "512", "--served-model-name", "smol", "--no-prefix-cache", "--exact"])
    yield s
    assert s.stop() == 0, s.logs()


@pytest.fixture(scope="module")
def nocache(nocache_server):
    return client_of(nocache_server)


@pytest.fixture(scope="module")
def exact_server(model_path):
    s = ServerProcess(model_path, ["--ctx-size", "512", "--served-model-name", "smol", "--exact"])
    yield s
    assert s.stop() == 0, s.logs()


@pytest.fixture(scope="module")
def exact(exact_server):
    return client_of(exact_server)


# --- prefix caching ---------------------------------------------------------------------------

def test_prefix_cache_hit_on_shared_system_prompt(server, client, exact, nocache):
    system = unique_system()
    msgs = lambda q: [{"role": "system", "content": system}, {"role": "user", "content": q}]  # noqa: E731
    q0 = metric(server, "ballast_prefix_cache_queries_total")
    h0 = metric(server, "ballast_prefix_cache_hits_total")
    a = client.chat.completions.create(model=MODEL, messages=msgs("Do you sell bread?"), max_tokens=12, temperature=0)
    assert cached(a.usage) == 0
    b = client.chat.completions.create(model=MODEL, messages=msgs("Do you sell cake?"), max_tokens=12, temperature=0)
    # The system prompt's full blocks (16 tokens each) come from the cache.
    n = cached(b.usage)
    assert n >= 32 and n % 16 == 0 and n < b.usage.prompt_tokens, (n, b.usage)
    assert metric(server, "ballast_prefix_cache_queries_total") - q0 == a.usage.prompt_tokens + b.usage.prompt_tokens
    assert metric(server, "ballast_prefix_cache_hits_total") - h0 == n
    assert metric(server, "ballast_prefix_cache_enabled") == 1
    assert 0 < metric(server, "ballast_prefix_cache_hit_rate") <= 1
    # Same answer as a server that computes the whole prompt (--exact on both).
    exact.chat.completions.create(model=MODEL, messages=msgs("Do you sell bread?"), max_tokens=12, temperature=0)
    hit = exact.chat.completions.create(model=MODEL, messages=msgs("Do you sell cake?"), max_tokens=12, temperature=0,
                                        logprobs=True)
    assert cached(hit.usage) >= n  # --exact recomputes only the last token's block
    ref = nocache.chat.completions.create(model=MODEL, messages=msgs("Do you sell cake?"), max_tokens=12,
                                          temperature=0, logprobs=True)
    assert cached(ref.usage) == 0
    assert hit.choices[0].message.content == ref.choices[0].message.content
    for x, y in zip(hit.choices[0].logprobs.content, ref.choices[0].logprobs.content):
        assert x.token == y.token and abs(x.logprob - y.logprob) < 1e-3, (x, y)


def test_prefix_cache_greedy_ids_equal_without_cache(client, exact, nocache):
    """Greedy ids (logprob tokens) of a cache hit equal a full prefill's. --exact: logprobs to 1e-3.
    Default mode: the same ids on this prompt; logprobs differ as a partial prefill's do (up to ~0.3,
    within that mode's documented drift from transformers)."""
    prompt = ("Session 5e1f. You are a careful assistant for a small bakery. Answer in one short sentence, "
              "mention prices in euros, never invent products. Question: what is the cheapest item on the "
              "menu? Answer:")
    args = dict(model=MODEL, prompt=prompt, max_tokens=16, temperature=0, logprobs=3, extra_body={"ignore_eos": True})
    ref = nocache.completions.create(**args)
    for c, tol in ((exact, 1e-3), (client, 0.4)):
        first = c.completions.create(**args)
        hit = c.completions.create(**args)
        n = cached(hit.usage)
        # --exact: every full block before the last token; default mode (AVX2 rows): at least
        # 24 tokens are recomputed, so they run in fp32 as the first request's prefill did.
        if c is exact:
            assert n == (hit.usage.prompt_tokens - 1) // 16 * 16 > 0
        else:
            assert 0 < n <= (hit.usage.prompt_tokens - 1) // 16 * 16 and n % 16 == 0
        for x, y in zip(hit.choices[0].logprobs.token_logprobs, first.choices[0].logprobs.token_logprobs):
            assert abs(x - y) < tol, (x, y)
        for r in (first, hit):
            assert r.choices[0].logprobs.tokens == ref.choices[0].logprobs.tokens
            assert r.choices[0].text == ref.choices[0].text
            for x, y in zip(r.choices[0].logprobs.token_logprobs, ref.choices[0].logprobs.token_logprobs):
                assert abs(x - y) < tol, (x, y)


def test_prefix_cache_multi_turn_chat_and_stream_usage(exact, nocache):
    client = exact
    system = unique_system()
    turn1 = [{"role": "system", "content": system}, {"role": "user", "content": "Hi! What do you bake?"}]
    r1 = client.chat.completions.create(model=MODEL, messages=turn1, max_tokens=20, temperature=0)
    turn2 = turn1 + [{"role": "assistant", "content": r1.choices[0].message.content},
                     {"role": "user", "content": "And how much is a croissant?"}]
    stream = client.chat.completions.create(model=MODEL, messages=turn2, max_tokens=12, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    text, usage = "", None
    for ch in stream:
        if ch.usage is not None:
            usage = ch.usage
        for c in ch.choices:
            text += c.delta.content or ""
    # Turn 1's prompt (and the part of the reply that re-tokenizes alike) is reused.
    assert cached(usage) >= (r1.usage.prompt_tokens // 16) * 16, (usage, r1.usage)
    ref = nocache.chat.completions.create(model=MODEL, messages=turn2, max_tokens=12, temperature=0)
    assert text == ref.choices[0].message.content


def test_no_prefix_cache_flag(nocache_server, nocache):
    system = unique_system()
    for _ in range(2):
        r = nocache.chat.completions.create(model=MODEL, max_tokens=2, temperature=0,
                                            messages=[{"role": "system", "content": system},
                                                      {"role": "user", "content": "Hello"}])
        assert cached(r.usage) == 0
    assert metric(nocache_server, "ballast_prefix_cache_enabled") == 0
    assert metric(nocache_server, "ballast_prefix_cache_hits_total") == 0


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def fixture_server(request):
    # --exact: the fixtures' references hold to 1e-3; gemma3 has sliding-window layers (window 8).
    s = ServerProcess(materialize(FIX / request.param), ["--served-model-name", "m", "--exact", "--max-batch", "4"])
    s.fixture = request.param
    yield s
    assert s.stop() == 0, s.logs()


def test_prefix_cache_hits_match_transformers(fixture_server):
    """The long reference case (525 tokens) twice and after a shorter prefix: every cache hit gives
    transformers' greedy ids and logprobs (to the fixtures' 1e-3)."""
    c = client_of(fixture_server)
    case = expected(fixture_server.fixture)["cases"][3]
    p = case["prompt_ids"]
    n = len(case["ids"])
    texts = []
    # Cold, then a full hit; then a prompt sharing the first 300 tokens (a partial hit).
    # A hit recomputes at least the CPU backend's uniform step (8 tokens: prompt attention
    # tiles), so the cached part is the whole 16-token blocks before that.
    for expect_cached in (0, (len(p) - 8) // 16 * 16):
        r = c.completions.create(model="m", prompt=p, max_tokens=n, temperature=0, logprobs=1,
                                 extra_body={"ignore_eos": True})
        assert cached(r.usage) == expect_cached, r.usage
        lps = r.choices[0].logprobs.token_logprobs
        assert len(lps) == n
        for k, lp in enumerate(lps):
            assert abs(lp - case["steps"][k]["top"][0][1]) < LOGPROB_TOL, (k, lp, case["steps"][k]["top"][0])
        texts.append((r.choices[0].text, r.choices[0].logprobs.tokens))
    assert texts[0] == texts[1]
    r = c.completions.create(model="m", prompt=p[:300] + [p[5]] * 40, max_tokens=2, temperature=0)
    assert cached(r.usage) == 300 // 16 * 16


def test_echo_logprobs_match_transformers(fixture_server):
    """echo + logprobs on prompt + the reference's greedy continuation: the continuation's prompt
    logprobs are transformers' chosen-token logprobs; the first token has none."""
    c = client_of(fixture_server)
    case = expected(fixture_server.fixture)["cases"][1]
    p, ids = case["prompt_ids"], case["ids"]
    full = p + ids[:-1]
    r = c.completions.create(model="m", prompt=full, max_tokens=1, temperature=0, logprobs=2, echo=True,
                             extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(full) + 1
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert all(x is not None for x in lp.token_logprobs[1:])
    for k in range(len(ids)):
        got = lp.token_logprobs[len(p) + k]
        assert abs(got - case["steps"][k]["top"][0][1]) < LOGPROB_TOL, (k, got, case["steps"][k]["top"][0])
        assert len(lp.top_logprobs[len(p) + k]) == 2
        assert abs(max(lp.top_logprobs[len(p) + k].values()) - case["steps"][k]["top"][0][1]) < LOGPROB_TOL
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)


@pytest.fixture(scope="module")
def t5_server():
    s = ServerProcess(materialize(FIX / "t5"), ["--served-model-name", "t5"])
    yield s
    assert s.stop() == 0, s.logs()


def test_prefix_cache_off_for_encoder_decoder(t5_server):
    c = client_of(t5_server)
    ids = expected("t5")["cases"][0]["prompt_ids"]
    for _ in range(2):
        r = c.completions.create(model="t5", prompt=ids, max_tokens=2, temperature=0)
        assert cached(r.usage) == 0
    assert metric(t5_server, "ballast_prefix_cache_enabled") == 0
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model="t5", prompt=ids, max_tokens=1, logprobs=1, echo=True)
    assert e.value.param == "echo"


# --- echo with logprobs on SmolLM2 --------------------------------------------------------------

def test_echo_logprobs_consistent_with_generation(exact):
    """A greedy continuation's logprobs, re-read as prompt logprobs of prompt + continuation, are
    the same numbers (prefill vs decode; --exact: the default mode decodes with 8-bit activations
    and prefills >= 24 tokens in fp32)."""
    client = exact
    prompt = "The three primary colors are"
    gen = client.completions.create(model=MODEL, prompt=prompt, max_tokens=8, temperature=0, logprobs=3,
                                    extra_body={"ignore_eos": True})
    g = gen.choices[0].logprobs
    full = prompt + gen.choices[0].text
    r = client.completions.create(model=MODEL, prompt=full, max_tokens=1, temperature=0, logprobs=3, echo=True)
    lp = r.choices[0].logprobs
    n_prompt = r.usage.prompt_tokens
    assert r.choices[0].text.startswith(full)
    assert len(lp.tokens) == n_prompt + 1 and len(lp.token_logprobs) == n_prompt + 1
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    # The last 8 prompt tokens are the continuation (if the text re-tokenizes alike).
    assert lp.tokens[n_prompt - 8:n_prompt] == g.tokens
    for a, b in zip(lp.token_logprobs[n_prompt - 8:n_prompt], g.token_logprobs):
        assert abs(a - b) < 1e-3, (a, b)
    for a, b in zip(lp.top_logprobs[n_prompt - 8:n_prompt], g.top_logprobs):
        assert list(a) == list(b)


def test_echo_logprobs_streamed_equals_whole(client):
    args = dict(model=MODEL, prompt="Roses are red, violets are", max_tokens=4, temperature=0, logprobs=1, echo=True)
    whole = client.completions.create(**args)
    tokens, lps, text = [], [], ""
    for ch in client.completions.create(stream=True, **args):
        for c in ch.choices:
            text += c.text
            if c.logprobs:
                tokens += c.logprobs.tokens
                lps += c.logprobs.token_logprobs
    w = whole.choices[0]
    assert text == w.text
    assert tokens == w.logprobs.tokens
    assert lps == w.logprobs.token_logprobs
    assert lps[0] is None


def test_echo_logprobs_with_n_gives_every_choice_the_prompt(client):
    r = client.completions.create(model=MODEL, prompt="Count: one, two,", max_tokens=3, temperature=0.8, seed=3,
                                  n=2, logprobs=0, echo=True)
    a, b = r.choices
    n_prompt = r.usage.prompt_tokens
    assert a.logprobs.tokens[:n_prompt] == b.logprobs.tokens[:n_prompt]
    assert a.logprobs.token_logprobs[:n_prompt] == b.logprobs.token_logprobs[:n_prompt]


# --- n and best_of ------------------------------------------------------------------------------

def test_n_shares_the_prompt(exact_server, exact):
    """n choices prefill the prompt once: the other choices take its full blocks from the cache."""
    server, client = exact_server, exact
    prompt = unique_system() + " Write a haiku about flour:"
    r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=6, temperature=1.0, seed=11, n=4)
    assert len(r.choices) == 4
    assert cached(r.usage) == 0  # counted once per prompt, for the choice that prefilled it
    h0 = metric(server, "ballast_prefix_cache_hits_total")
    r2 = client.completions.create(model=MODEL, prompt=prompt + " (again)", max_tokens=6, temperature=1.0, seed=11,
                                   n=3)
    assert metric(server, "ballast_prefix_cache_hits_total") - h0 >= 3 * 32
    # Seeds seed + i per choice: the same request gives the same choices.
    again = client.completions.create(model=MODEL, prompt=prompt, max_tokens=6, temperature=1.0, seed=11, n=4)
    assert [c.text for c in again.choices] == [c.text for c in r.choices]
    assert len(r2.choices) == 3


def test_best_of_returns_the_most_likely(client):
    prompt = "My favourite animal is the"
    args = dict(model=MODEL, prompt=prompt, max_tokens=5, temperature=1.0, seed=21, logprobs=0,
                extra_body={"ignore_eos": True})
    all5 = client.completions.create(n=5, **args)
    sums = [sum(c.logprobs.token_logprobs) for c in all5.choices]
    best = client.completions.create(n=2, best_of=5, **args)
    assert [c.index for c in best.choices] == [0, 1]
    order = sorted(range(5), key=lambda i: -sums[i])[:2]
    assert [c.text for c in best.choices] == [all5.choices[i].text for i in order]
    assert best.usage.completion_tokens == all5.usage.completion_tokens  # all 5 were generated


def test_best_of_chat(client):
    msgs = [{"role": "user", "content": "Say a fruit."}]
    args = dict(model=MODEL, messages=msgs, max_tokens=6, temperature=1.0, seed=5, logprobs=True)
    all3 = client.chat.completions.create(n=3, **args)
    sums = [sum(t.logprob for t in c.logprobs.content) for c in all3.choices]
    best = client.chat.completions.create(n=1, extra_body={"best_of": 3}, **args)
    assert best.choices[0].message.content == all3.choices[max(range(3), key=lambda i: sums[i])].message.content


def test_best_of_errors(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=1, n=3, best_of=2)
    assert e.value.param == "best_of" and "at least" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=1, best_of=2, stream=True)
    assert e.value.param == "best_of" and "stream" in e.value.message


# --- seed reported back -------------------------------------------------------------------------

def test_seed_is_reported_and_reproduces(client):
    args = dict(model=MODEL, prompt="Invent a word:", max_tokens=10, temperature=1.3)
    a = client.completions.create(**args)
    seed = a.model_extra["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2 ** 53
    b = client.completions.create(seed=seed, **args)
    assert b.model_extra["seed"] == seed
    assert b.choices[0].text == a.choices[0].text
    # Chat, streamed: every chunk names the seed; n > 1 reproduces every choice.
    msgs = [{"role": "user", "content": "Tell me a random number."}]
    chunks = list(client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=8, temperature=1.3, n=2,
                                                 stream=True))
    seeds = {ch.model_extra["seed"] for ch in chunks}
    assert len(seeds) == 1
    texts = {}
    for ch in chunks:
        for c in ch.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
    again = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=8, temperature=1.3, n=2,
                                           seed=seeds.pop())
    assert [c.message.content for c in again.choices] == [texts[0], texts[1]]


def test_client_seed_is_echoed(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2,
                                       seed=-7)
    assert r.model_extra["seed"] == -7
