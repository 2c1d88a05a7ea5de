#!/usr/bin/env python3
"""Prefix-cache benchmark: time to first token of a multi-turn chat (a long system prompt, each
turn resending the whole conversation), one `ballast serve` with the prefix cache and one with
--no-prefix-cache, started here one after the other on the same model and threads.

  /work/main/.venv/bin/python bench/prefix_cache_bench.py \\
      --model ~/.cache/ballast/models/SmolLM2-135M-Instruct.Q4_1.gguf --threads 2
"""
import argparse
import json
import pathlib
import socket
import statistics
import subprocess
import time

import openai

ROOT = pathlib.Path(__file__).resolve().parents[1]

SYSTEM = ("You are the support assistant of a company that sells garden tools. Answer politely and briefly. "
          "The catalogue: spades (19 euros), rakes (14 euros), hoes (17 euros), watering cans in three sizes "
          "(8, 11 and 15 euros), pruning shears (23 euros), gloves (6 euros a pair), wheelbarrows (79 euros), "
          "hoses of 15 and 25 metres (21 and 32 euros) and seed packets (2 euros each). Delivery takes three "
          "working days and is free above 50 euros; returns are accepted within 30 days with the receipt. "
          "Never promise discounts, never invent products, and say so when you do not know an answer. ") * 3
QUESTIONS = ["Hello! Do you sell spades?", "How much is a rake?", "And the gloves?",
             "What does delivery cost for an order of 40 euros?", "Can I return a hose after two weeks?",
             "Which watering can would you recommend for a balcony?", "Thanks, that is all."]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, extra):
    port = free_port()
    cmd = [args.bin, "serve", "--model", args.model, "--port", str(port), "--ctx-size", "2048",
           "--threads", str(args.threads)] + extra
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=300)
    for _ in range(600):
        try:
            client.models.list()
            return proc, client
        except openai.APIError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def conversation(client, max_tokens):
    """TTFT (s), prompt tokens and cached tokens of every turn."""
    msgs = [{"role": "system", "content": SYSTEM}]
    out = []
    for q in QUESTIONS:
        msgs.append({"role": "user", "content": q})
        t0 = time.perf_counter()
        ttft, text, usage = None, "", None
        for ch in client.chat.completions.create(model=client.models.list().data[0].id, messages=msgs,
                                                 max_tokens=max_tokens, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}):
            if ch.usage is not None:
                usage = ch.usage
            for c in ch.choices:
                if c.delta.content and ttft is None:
                    ttft = time.perf_counter() - t0
                text += c.delta.content or ""
        msgs.append({"role": "assistant", "content": text})
        out.append({"ttft_s": ttft, "prompt_tokens": usage.prompt_tokens,
                    "cached_tokens": usage.prompt_tokens_details.cached_tokens})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--bin", default=str(ROOT / "build" / "bin" / "ballast"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    results = {}
    for name, extra in (("prefix_cache", []), ("no_prefix_cache", ["--no-prefix-cache"])):
        proc, client = start(args, extra)
        try:
            runs = [conversation(client, args.max_tokens) for _ in range(args.repeats)]
        finally:
            proc.terminate()
            proc.wait()
        # Turn 1 of the first run is cold on both; later turns (and every turn of later runs on
        # the cached server) are what the cache speeds up. Report turns 2.. of every run.
        later = [t["ttft_s"] for r in runs for t in r[1:]]
        results[name] = {"turns": runs[0], "median_ttft_turns_2plus_s": statistics.median(later),
                         "mean_ttft_turns_2plus_s": statistics.mean(later)}
    a, b = results["prefix_cache"], results["no_prefix_cache"]
    results["speedup_median_ttft"] = b["median_ttft_turns_2plus_s"] / a["median_ttft_turns_2plus_s"]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
