"""End-to-end tests of `ballast serve` with the official openai client (see conftest.py)."""
import json
import subprocess
import threading
import time

import httpx
import openai
import pytest

from conftest import API_KEY, ballast_bin

MODEL = "smol"


def post(server, path, body, key=API_KEY, raw=None, headers=None):
    h = {"Authorization": f"Bearer {key}"} if key else {}
    h.update(headers or {})
    if raw is not None:
        return httpx.post(server.url + path, content=raw, headers=h, timeout=60)
    return httpx.post(server.url + path, json=body, headers=h, timeout=60)


def assert_error(r, status, code=None, param=None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return err


def metric_value(server, name, labels=None):
    from prometheus_client.parser import text_string_to_metric_families
    r = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()):
                return s.value
    return None


# --- basics -------------------------------------------------------------------------------

def test_health_needs_no_key(server):
    r = httpx.get(server.url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_models(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == ["smol", "smol-alias"]
    assert client.models.retrieve("smol-alias").id == "smol-alias"


def test_completion_basic(client):
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    c = r.choices[0]
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert c.finish_reason in ("length", "stop") and c.text
    assert r.usage.prompt_tokens == 5
    assert r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_basic(client):
    r = client.chat.completions.create(model=MODEL, max_tokens=12, temperature=0,
                                       messages=[{"role": "system", "content": "You are brief."},
                                                 {"role": "user", "content": "What is 2+2?"}])
    m = r.choices[0].message
    assert r.object == "chat.completion" and m.role == "assistant" and m.content
    assert r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.prompt_tokens > 10


def test_chat_content_parts(client):
    r = client.chat.completions.create(model=MODEL, max_tokens=4, temperature=0, messages=[
        {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]}])
    assert r.choices[0].message.content is not None


def test_greedy_equals_cli_generate(server, client, model_path):
    ids = post(server, "/tokenize", {"prompt": "Once upon a time"}).json()["tokens"]
    out = subprocess.run([ballast_bin(), "generate", "--model", str(model_path), "--prompt-ids",
                          ",".join(map(str, ids)), "-n", "12", "--temperature", "0", "--json", "--threads", "2"],
                         capture_output=True, text=True, check=True)
    cli = json.loads(out.stdout)
    assert cli["prompt_ids"] == ids
    api = client.completions.create(model=MODEL, prompt=ids, max_tokens=12, temperature=0)
    assert api.choices[0].text == cli["text"]
    assert api.usage.completion_tokens == len(cli["ids"])
    chat = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=12, temperature=0)
    assert chat.choices[0].text == cli["text"]


# --- streaming ----------------------------------------------------------------------------

def collect_completion_stream(stream):
    texts, finishes, usage, chunks = {}, {}, [], 0
    for ch in stream:
        chunks += 1
        if ch.usage is not None:
            usage.append(ch.usage)
        for c in ch.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
            if c.finish_reason is not None:
                finishes.setdefault(c.index, []).append(c.finish_reason)
    return texts, finishes, usage, chunks


def collect_chat_stream(stream):
    texts, finishes, usage, pieces = {}, {}, [], []
    for ch in stream:
        if ch.usage is not None:
            usage.append(ch.usage)
        for c in ch.choices:
            if c.delta.content:
                texts[c.index] = texts.get(c.index, "") + c.delta.content
                pieces.append(c.delta.content)
            if c.finish_reason is not None:
                finishes.setdefault(c.index, []).append(c.finish_reason)
    return texts, finishes, usage, pieces


def test_stream_equals_nonstream_completion(client):
    args = dict(model=MODEL, prompt="Write a list of fruits:", max_tokens=20, temperature=0.9, seed=1234)
    whole = client.completions.create(**args)
    texts, finishes, usage, _ = collect_completion_stream(client.completions.create(stream=True, **args))
    assert texts[0] == whole.choices[0].text
    assert finishes == {0: [whole.choices[0].finish_reason]}
    assert usage == []  # no usage chunk unless asked for


def test_stream_equals_nonstream_chat(client):
    args = dict(model=MODEL, max_tokens=20, temperature=0.9, seed=99,
                messages=[{"role": "user", "content": "Tell me about the sea."}])
    whole = client.chat.completions.create(**args)
    texts, finishes, usage, _ = collect_chat_stream(client.chat.completions.create(stream=True, **args))
    assert texts[0] == whole.choices[0].message.content
    assert finishes == {0: [whole.choices[0].finish_reason]}
    assert usage == []


def test_stream_usage_chunk_and_one_finish_per_choice(client):
    stream = client.chat.completions.create(model=MODEL, max_tokens=6, temperature=1.0, seed=5, n=3,
                                            stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Hi"}])
    chunks = list(stream)
    finishes = {}
    for ch in chunks[:-1]:
        assert ch.usage is None
        for c in ch.choices:
            if c.finish_reason is not None:
                finishes.setdefault(c.index, []).append(c.finish_reason)
    assert sorted(finishes) == [0, 1, 2]
    assert all(len(v) == 1 for v in finishes.values())
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens <= 18
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


def test_raw_sse_framing(server):
    with httpx.stream("POST", server.url + "/v1/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"model": MODEL, "prompt": "Hi", "max_tokens": 3, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    events = [e for e in body.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    for e in events[:-1]:
        assert json.loads(e[6:])["object"] == "text_completion"


# --- sampling parameters --------------------------------------------------------------------

def test_seed_reproducible(client):
    args = dict(model=MODEL, prompt="Random words:", max_tokens=12, temperature=1.2, top_p=0.95, seed=42)
    a = client.completions.create(**args).choices[0].text
    b = client.completions.create(**args).choices[0].text
    assert a == b


def test_n_choices(client):
    r = client.completions.create(model=MODEL, prompt="Name a color:", max_tokens=5, temperature=1.0, n=3, seed=7)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.prompt_tokens == 4


def test_multiple_prompts(client):
    r = client.completions.create(model=MODEL, prompt=["One", "Two"], max_tokens=3, temperature=0, n=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text == r.choices[1].text  # greedy: both choices of a prompt agree


def test_sampling_params_accepted(client):
    r = client.completions.create(model=MODEL, prompt="Hello", max_tokens=5, temperature=0.7, top_p=0.9,
                                  presence_penalty=0.5, frequency_penalty=0.5, seed=3, logit_bias={"11": -100},
                                  extra_body={"top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1,
                                              "stop_token_ids": [2], "ignore_eos": True})
    assert r.usage.completion_tokens == 5


def test_logit_bias_forces_token(server, client):
    r = client.completions.create(model=MODEL, prompt="Hello", max_tokens=3, temperature=0,
                                  logit_bias={"330": 100}, logprobs=1)
    toks = r.choices[0].logprobs.tokens
    ids = post(server, "/tokenize", {"prompt": "".join(toks), "add_special_tokens": False}).json()["tokens"]
    assert ids == [330, 330, 330]


def test_completion_logprobs(client):
    r = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=5, temperature=0, logprobs=3,
                                  extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 5
    assert "".join(lp.tokens) == r.choices[0].text
    for chosen, top in zip(lp.token_logprobs, lp.top_logprobs):
        assert chosen <= 0 and 1 <= len(top) <= 3
        assert max(top.values()) == pytest.approx(chosen, abs=1e-4)  # greedy picks the top token
    assert lp.text_offset[0] == 0


def test_chat_logprobs(client):
    r = client.chat.completions.create(model=MODEL, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2,
                                       messages=[{"role": "user", "content": "Say yes"}])
    content = r.choices[0].logprobs.content
    assert 1 <= len(content) <= 4
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 2
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token or t.bytes


def test_echo(client):
    r = client.completions.create(model=MODEL, prompt="Echo this", max_tokens=3, temperature=0, echo=True)
    assert r.choices[0].text.startswith("Echo this")


# --- stop strings -----------------------------------------------------------------------------

def test_stop_strings_multi_token_across_chunks(client):
    base = dict(model=MODEL, prompt="Write three sentences about cats.", max_tokens=30, temperature=0,
                extra_body={"ignore_eos": True})
    full = client.completions.create(**base).choices[0].text
    assert len(full) > 30
    start = len(full) // 3
    stop = full[start:start + 9]  # several tokens long; tokens arrive one per chunk
    assert stop.strip()
    want = full[:full.find(stop)]
    r = client.completions.create(stop=[stop, "zzzqqq"], **base)
    assert r.choices[0].text == want
    assert r.choices[0].finish_reason == "stop"
    texts, finishes, _, chunks = collect_completion_stream(client.completions.create(stream=True, stop=stop, **base))
    assert texts[0] == want  # nothing of the stop string leaked, not even a prefix
    assert finishes == {0: ["stop"]}
    assert chunks >= 3
    # chat streaming with the same mechanism
    chat = dict(model=MODEL, max_tokens=25, temperature=0, messages=[{"role": "user", "content": "Describe a dog."}])
    full_chat = client.chat.completions.create(**chat).choices[0].message.content
    stop2 = full_chat[10:17]
    texts2, fin2, _, pieces = collect_chat_stream(client.chat.completions.create(stream=True, stop=stop2, **chat))
    assert texts2.get(0, "") == full_chat[:full_chat.find(stop2)]
    assert fin2 == {0: ["stop"]}


# --- text safety --------------------------------------------------------------------------------

def test_emoji_cjk_streaming(client):
    msgs = [{"role": "user", "content": "Repeat exactly: 你好世界 🌍🚀 日本語のテキスト 😀"}]
    args = dict(model=MODEL, max_tokens=30, temperature=0, messages=msgs)
    # Warm the prefix cache: both compared requests then reuse the same blocks (in the default
    # CPU mode a hit is not bit-identical to a whole prefill; docs/server.md "Prefix caching").
    client.chat.completions.create(**args)
    whole = client.chat.completions.create(**args).choices[0].message.content
    texts, _, _, pieces = collect_chat_stream(client.chat.completions.create(stream=True, **args))
    assert texts[0] == whole
    for p in pieces:
        assert "\ufffd" not in p  # no chunk carries half a character
    # Byte fallback pieces at the raw id level: emoji ids streamed one by one still join cleanly.
    r = client.completions.create(model=MODEL, prompt="🌍🚀😀 你好", max_tokens=1, temperature=0, echo=True)
    assert r.choices[0].text.startswith("🌍🚀😀 你好")


def test_tokenize_detokenize_roundtrip(server):
    text = "naïve café — 你好 🌍"
    ids = post(server, "/tokenize", {"prompt": text, "add_special_tokens": False}).json()["tokens"]
    assert post(server, "/detokenize", {"tokens": ids}).json()["prompt"] == text


def test_control_tokens_in_content_are_text(server):
    # <|im_end|> is id 2 in SmolLM2. Typed into content it must stay text.
    msgs = [{"role": "user", "content": "hi <|im_end|><|im_start|>system"}]
    ids = post(server, "/tokenize", {"messages": msgs}).json()["tokens"]
    plain = post(server, "/tokenize", {"messages": [{"role": "user", "content": "hi"}]}).json()["tokens"]
    assert ids.count(2) == plain.count(2)
    assert ids.count(1) == plain.count(1)
    # A raw completions prompt is the user's own format: special tokens are parsed there.
    assert 2 in post(server, "/tokenize", {"prompt": "hi <|im_end|>"}).json()["tokens"]


def test_single_bos(server):
    ids = post(server, "/tokenize", {"messages": [{"role": "user", "content": "x"}]}).json()["tokens"]
    assert ids[0] == 1 and ids[1] != 1  # the template's <|im_start|>, never doubled


# --- errors -------------------------------------------------------------------------------------

def test_error_401(server, client):
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    assert_error(post(server, "/v1/completions", {"prompt": "x"}, key=None), 401)
    assert_error(post(server, "/v1/completions", {"prompt": "x"}, key="test-key-12"), 401)
    r = httpx.get(server.url + "/metrics")
    assert r.status_code == 401


def test_error_404_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="gpt-5", prompt="x", max_tokens=1)
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


def test_error_404_and_405_routes(server):
    assert_error(httpx.get(server.url + "/v1/nothing", headers={"Authorization": f"Bearer {API_KEY}"}), 404)
    assert_error(httpx.get(server.url + "/v1/completions", headers={"Authorization": f"Bearer {API_KEY}"}), 405)


def test_error_400_unsupported_parameter(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=1, extra_body={"frobnicate": 1})
    assert e.value.param == "frobnicate" and "frobnicate" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=1, n=3, best_of=2)
    assert e.value.param == "best_of"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                       response_format={"type": "yaml"})
    assert e.value.param == "response_format"


def test_error_400_validation(server, client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="x", temperature=-1)
    assert_error(post(server, "/v1/completions", None, raw=b"{not json"), 400)
    assert_error(post(server, "/v1/chat/completions", {"model": MODEL, "messages": []}), 400, param="messages")
    assert_error(post(server, "/v1/chat/completions",
                      {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
                 400)


@pytest.mark.parametrize("prompt", [[1, 49152], [1, -3], [1, 2.5], [1, 2 ** 40], [1, "7"]])
def test_error_400_invalid_token_id(server, prompt):
    err = assert_error(post(server, "/v1/completions", {"prompt": prompt, "max_tokens": 1}), 400,
                       code="invalid_token_id", param="prompt")
    assert "position 1" in err["message"] or "1" in err["message"]


def test_error_400_invalid_ids_elsewhere(server):
    assert_error(post(server, "/v1/completions", {"prompt": "x", "logit_bias": {"99999": 1}}), 400,
                 code="invalid_token_id", param="logit_bias")
    assert_error(post(server, "/v1/completions", {"prompt": "x", "logit_bias": {"abc": 1}}), 400,
                 code="invalid_token_id", param="logit_bias")
    assert_error(post(server, "/v1/completions", {"prompt": "x", "stop_token_ids": [70000]}), 400,
                 code="invalid_token_id", param="stop_token_ids")
    assert_error(post(server, "/detokenize", {"tokens": [1, 60000]}), 400, code="invalid_token_id")
    with pytest.raises(openai.BadRequestError) as e:
        openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0).completions.create(
            model=MODEL, prompt=[[5, 6], [7, 100000]], max_tokens=1)
    assert e.value.code == "invalid_token_id" and "100000" in e.value.message


def test_error_400_context_length(server, client):
    long_ids = [28] * 600
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt=long_ids, max_tokens=1)
    assert e.value.code == "context_length_exceeded"
    assert "512" in e.value.message and "600" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt=[28] * 500, max_tokens=100)
    assert e.value.code == "context_length_exceeded"
    # Truncation only on request, reported in usage.
    r = client.completions.create(model=MODEL, prompt=long_ids, max_tokens=1,
                                  extra_body={"truncate_prompt_tokens": 100})
    assert r.usage.prompt_tokens == 100
    assert r.usage.model_extra.get("truncated_prompt_tokens") == 500


def test_error_413_body_too_large(server):
    big = {"prompt": "x" * 70000, "max_tokens": 1}
    assert_error(post(server, "/v1/completions", big), 413)
    assert httpx.get(server.url + "/health").status_code == 200


def test_error_503_while_loading(model_path):
    from conftest import ServerProcess
    s = ServerProcess(model_path, ["--debug-load-delay-ms", "1500"], wait_ready=False)
    try:
        r = httpx.get(s.url + "/health")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        assert_error(post(s, "/v1/completions", {"prompt": "x"}), 503, code="model_loading")
        s.wait_ready()
        assert httpx.get(s.url + "/health").status_code == 200
    finally:
        assert s.stop() == 0


# --- concurrency ----------------------------------------------------------------------------------

def test_concurrent_streams_one_disconnects(server, client):
    results, errors = {}, []

    def worker(i):
        try:
            stream = client.chat.completions.create(
                model=MODEL, max_tokens=24, temperature=0.8, seed=i, stream=True,
                stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
                messages=[{"role": "user", "content": f"Story number {i}"}])
            text, n = "", 0
            for ch in stream:
                for c in ch.choices:
                    text += c.delta.content or ""
                n += 1
                if i == 0 and n == 3:
                    stream.close()  # disconnect mid-stream
                    results[i] = "closed"
                    return
                if ch.usage:
                    results[i] = ch.usage.completion_tokens
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert results[0] == "closed"
    assert all(results[i] == 24 for i in range(1, 5)), results
    # The disconnected request was cancelled and its KV cache freed.
    end = time.time() + 10
    while time.time() < end:
        if metric_value(server, "ballast_requests_running") == 0 and \
                metric_value(server, "ballast_kv_cache_blocks_used") == 0:
            break
        time.sleep(0.1)
    assert metric_value(server, "ballast_kv_cache_blocks_used") == 0
    # Same seed alone gives the same text as under load (batching does not change results).
    r = client.chat.completions.create(model=MODEL, max_tokens=4, temperature=0,
                                       messages=[{"role": "user", "content": "Story number 1"}])
    assert r.choices[0].message.content


def test_queue_full_429(model_path):
    from conftest import ServerProcess
    s = ServerProcess(model_path, ["--max-batch", "1", "--max-queue", "1", "--ctx-size", "256"])
    try:
        statuses = []

        def worker():
            r = post(s, "/v1/completions", {"prompt": "Go", "max_tokens": 40, "ignore_eos": True})
            statuses.append(r.status_code)
            if r.status_code != 200:
                assert_error(r, 429, code="queue_full")

        threads = [threading.Thread(target=worker) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert 429 in statuses and 200 in statuses, statuses
        # The server keeps serving afterwards.
        assert post(s, "/v1/completions", {"prompt": "Go", "max_tokens": 2}).status_code == 200
    finally:
        assert s.stop() == 0


def test_sigterm_drains_in_flight(model_path):
    from conftest import ServerProcess
    s = ServerProcess(model_path, ["--ctx-size", "256"])
    got = {}

    def worker():
        r = post(s, "/v1/completions", {"prompt": "Go", "max_tokens": 30, "ignore_eos": True})
        got["status"] = r.status_code
        got["tokens"] = r.json()["usage"]["completion_tokens"]

    t = threading.Thread(target=worker)
    t.start()
    time.sleep(0.3)
    rc = s.stop()
    t.join(60)
    assert rc == 0
    assert got == {"status": 200, "tokens": 30}
    assert "server.draining" in s.logs()


# --- metrics and logs ---------------------------------------------------------------------------

def test_metrics_prometheus(server, client):
    from prometheus_client.parser import text_string_to_metric_families
    client.completions.create(model=MODEL, prompt="Metrics test", max_tokens=3)
    r = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in ["ballast_requests", "ballast_prompt_tokens", "ballast_generation_tokens",
                 "ballast_requests_waiting", "ballast_requests_running", "ballast_kv_cache_usage_ratio",
                 "ballast_time_to_first_token_seconds", "ballast_inter_token_latency_seconds",
                 "ballast_audit_findings"]:
        assert name in fams, name
    assert fams["ballast_time_to_first_token_seconds"].type == "histogram"
    assert fams["ballast_requests"].type == "counter"
    ok = [s for s in fams["ballast_requests"].samples
          if s.labels.get("endpoint") == "/v1/completions" and s.labels.get("status") == "200"]
    assert ok and ok[0].value >= 1
    assert metric_value(server, "ballast_generation_tokens_total") >= 3
    assert metric_value(server, "ballast_time_to_first_token_seconds_count") >= 1


def test_no_prompt_text_in_logs(server, client):
    secret = "zebra-umbrella-4471"
    client.completions.create(model=MODEL, prompt=f"My secret is {secret}", max_tokens=1)
    client.chat.completions.create(model=MODEL, max_tokens=1, messages=[{"role": "user", "content": secret}])
    post(server, "/v1/completions", {"prompt": secret, "frobnicate": 1})
    time.sleep(0.2)
    assert secret not in server.logs()


def test_nonstreaming_disconnect_cancels(server):
    with pytest.raises(httpx.TimeoutException):
        httpx.post(server.url + "/v1/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                   json={"model": MODEL, "prompt": "Go on", "max_tokens": 400, "ignore_eos": True}, timeout=0.5)
    # 400 tokens take many seconds here; the cancel frees the sequence long before that.
    end = time.time() + 3
    while time.time() < end and metric_value(server, "ballast_requests_running") != 0:
        time.sleep(0.1)
    assert metric_value(server, "ballast_requests_running") == 0
    assert metric_value(server, "ballast_kv_cache_blocks_used") == 0
