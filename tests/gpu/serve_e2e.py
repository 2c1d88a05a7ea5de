"""End-to-end checks of `ballast serve --device cuda` (run by tools/test_gpu.sh on a GPU
machine; standard library only, since the GPU machine has no pip index).

Usage: serve_e2e.py PORT MODEL. Exits non-zero on the first failed check."""
import json
import sys
import urllib.error
import urllib.request

PORT, MODEL = int(sys.argv[1]), sys.argv[2]
BASE = f"http://127.0.0.1:{PORT}"
failed = 0


def post(path, body, stream=False):
    req = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read().decode()
            return r.status, raw if stream else json.loads(raw)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "{}")


def check(name, cond, detail=""):
    global failed
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))
    failed += 0 if cond else 1


def comp(**kw):
    return post("/v1/completions", {"model": MODEL, "prompt": [1, 2, 3, 4], "max_tokens": 6, **kw})


s, greedy = comp(temperature=0)
check("greedy completion", s == 200 and greedy["choices"][0]["finish_reason"] in ("length", "stop"), greedy)
s, again = comp(temperature=0)
check("greedy is deterministic", s == 200 and again["choices"][0]["text"] == greedy["choices"][0]["text"], again)

s, bad = comp(prompt=[1, 10**6])
check("out-of-range id -> 400 invalid_token_id", s == 400 and "invalid_token_id" in json.dumps(bad), (s, bad))
s, after = comp(temperature=0)
check("next request still served (no dead CUDA context)",
      s == 200 and after["choices"][0]["text"] == greedy["choices"][0]["text"], (s, after))

# GPU sampling: seeded draws repeat; different seeds usually differ.
s1, a = comp(temperature=1.0, top_p=0.9, seed=7, max_tokens=16)
s2, b = comp(temperature=1.0, top_p=0.9, seed=7, max_tokens=16)
check("seeded sampling is reproducible", s1 == s2 == 200 and a["choices"][0]["text"] == b["choices"][0]["text"], (a, b))
texts = {comp(temperature=1.5, seed=k, max_tokens=16)[1]["choices"][0]["text"] for k in range(6)}
check("different seeds give different samples", len(texts) > 1, texts)

# top_k=1 equals greedy; penalties and logit_bias run on the GPU.
s, k1 = comp(temperature=0.8, top_k=1, seed=3)
check("top_k=1 equals greedy", s == 200 and k1["choices"][0]["text"] == greedy["choices"][0]["text"], k1)
s, pen = comp(temperature=0.7, frequency_penalty=1.5, presence_penalty=0.5, top_k=40, min_p=0.05, seed=1)
check("penalties + top_k + min_p", s == 200 and pen["choices"][0]["finish_reason"] in ("length", "stop"), pen)
s, lp = comp(temperature=0, logprobs=5)
ok = s == 200 and lp["choices"][0]["logprobs"] is not None
if ok:
    tops = lp["choices"][0]["logprobs"]["top_logprobs"]
    ok = len(tops) == 6 and all(len(t) == 5 for t in tops)
    ok = ok and lp["choices"][0]["text"] == greedy["choices"][0]["text"]
check("logprobs=5 (top logprobs from the GPU), greedy text unchanged", ok, lp)

# Streaming.
s, raw = post("/v1/completions", {"model": MODEL, "prompt": [1, 2, 3, 4], "max_tokens": 6, "temperature": 0,
                                  "stream": True}, stream=True)
events = [l[6:] for l in raw.splitlines() if l.startswith("data: ")]
text = "".join(json.loads(e)["choices"][0]["text"] for e in events if e != "[DONE]")
check("streamed text equals the non-streamed text", s == 200 and events[-1] == "[DONE]" and
      text == greedy["choices"][0]["text"], raw[-500:])

sys.exit(1 if failed else 0)
