#!/usr/bin/env python3
"""Server benchmark: requests/s for 1-token completions, streamed tokens/s and time to first
streamed token at 1, 8 and 32 concurrent clients (--clients), against a running
OpenAI-compatible server (--url: `ballast serve`, llama-server) or a `ballast serve` started
here (--model).

  .venv/bin/python bench/server_bench.py --model ~/.cache/ballast/models/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args):
    port = free_port()
    cmd = [args.bin, "serve", "--model", args.model, "--port", str(port), "--max-batch", str(args.max_batch),
           "--max-queue", "256", "--ctx-size", str(args.ctx_size)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit("server did not become ready")


def run_clients(n_clients, duration, fn):
    """Runs fn(client) in n_clients threads for `duration` seconds; returns summed counts."""
    stop = time.time() + duration
    totals = []
    lock = threading.Lock()

    def worker():
        count = 0
        with httpx.Client(timeout=300) as c:
            while time.time() < stop:
                count += fn(c)
        with lock:
            totals.append(count)

    threads = [threading.Thread(target=worker) for _ in range(n_clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(totals), time.time() - t0


def bench(url, headers, clients, duration, stream_tokens):
    def one_token(c):
        r = c.post(url + "/v1/completions", headers=headers,
                   json={"prompt": "Hello", "max_tokens": 1, "temperature": 0})
        r.raise_for_status()
        return 1

    ttfts = []

    def streamed(c):
        n = 0
        t0 = time.time()
        with c.stream("POST", url + "/v1/completions", headers=headers,
                      json={"prompt": "Once upon a time", "max_tokens": stream_tokens, "temperature": 0.8,
                            "ignore_eos": True, "stream": True}) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    if n == 0:
                        ttfts.append(time.time() - t0)
                    n += 1 if json.loads(line[6:])["choices"][0]["text"] is not None else 0
        return n

    rows = []
    for k in clients:
        reqs, t = run_clients(k, duration, one_token)
        ttfts.clear()
        toks, t2 = run_clients(k, duration, streamed)
        ttft = sorted(ttfts)[len(ttfts) // 2] * 1e3 if ttfts else float("nan")
        rows.append({"clients": k, "one_token_req_per_s": reqs / t, "stream_tok_per_s": toks / t2,
                     "ttft_ms_median": ttft})
        print(f"clients={k:3d}  1-token completions: {reqs / t:7.1f} req/s   streamed: {toks / t2:7.1f} tok/s"
              f"   TTFT median {ttft:6.1f} ms", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="a running server (else one is started with --model)")
    ap.add_argument("--model", default=os.path.join(os.environ.get("BALLAST_MODEL_DIR", os.path.expanduser(
        "~/.cache/ballast/models")), "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--bin", default=os.environ.get("BALLAST_BIN", str(ROOT / "build" / "bin" / "ballast")))
    ap.add_argument("--api-key", default=os.environ.get("BALLAST_API_KEY", ""))
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    ap.add_argument("--stream-tokens", type=int, default=64)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--ctx-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    proc = None
    url = args.url
    if not url:
        proc, url = start_server(args)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        rows = bench(url, headers, [int(x) for x in args.clients.split(",")], args.duration, args.stream_tokens)
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"url": url, "model": args.model, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
