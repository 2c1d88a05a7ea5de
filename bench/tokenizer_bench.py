#!/usr/bin/env python3
"""Tokenizer benchmark: ballast vs Hugging Face `tokenizers`, single thread.

For each tokenizer in shared/tokenizers: load time, encode throughput (MB/s) over a
~10 MB mixed corpus (encoded line by line, no special tokens added) and peak RSS.
ballast is driven through `tok_cli bench` (tests/tokenizer/tools/build_tok_cli.sh).

usage: bench/tokenizer_bench.py [--bin build/bin/tok_cli] [--mb 10] [--names gpt2,gemma3]
"""
import argparse
import json
import os
import pathlib
import random
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tokenizer"))
import corpus  # noqa: E402
from conftest import decompress_tree  # noqa: E402


def make_corpus(path, mb, seed=5):
    rng = random.Random(seed)
    words = []
    for s in corpus.SAMPLES:
        words += s.split()
    parts, size = [], 0
    while size < mb * 1_000_000:
        r = rng.random()
        if r < 0.5:  # prose-like: shuffled words from every script
            s = " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))
        elif r < 0.8:
            s = rng.choice(corpus.SAMPLES)
        else:
            s = corpus.random_text(rng, rng.randint(5, 60))
        parts.append(s + rng.choice(["\n", "\n\n", " "]))
        size += len(parts[-1].encode())
    pathlib.Path(path).write_text("".join(parts), encoding="utf-8")


HF_SCRIPT = r"""
import json, os, resource, sys, time
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer, models, pre_tokenizers, decoders
d, path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
if os.path.exists(os.path.join(d, "tokenizer.json")):
    tk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
else:
    tk = Tokenizer(models.BPE.from_file(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt")))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
load = time.perf_counter() - t0
text = open(path, encoding="utf-8", newline="").read()
import re
lines = re.findall(r"[^\n]*\n|[^\n]+$", text)
best = 1e9
for _ in range(reps):
    t0 = time.perf_counter()
    n = sum(len(e.ids) for e in tk.encode_batch(lines, add_special_tokens=False))
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"load_s": load, "encode_s": best, "mb_per_s": len(text.encode()) / 1e6 / best, "tokens": n,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "build" / "bin" / "tok_cli"))
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--names", default="gpt2,llama3_1,gemma3,qwen3,llama2,deepseek_v3,gptoss")
    ap.add_argument("--shared", default=os.environ.get("BALLAST_SHARED", str(ROOT.parent / "shared")))
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="tokbench"))
    text_path = tmp / "corpus.txt"
    make_corpus(text_path, args.mb)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", RAYON_NUM_THREADS="1")
    print(f"corpus: {text_path.stat().st_size / 1e6:.1f} MB; single thread; best of {args.reps}")
    print(f"{'tokenizer':12} {'ours MB/s':>10} {'HF MB/s':>9} {'speedup':>8} {'ours load':>10} {'HF load':>8} "
          f"{'ours RSS':>9} {'HF RSS':>7} tokens")
    for name in args.names.split(","):
        d = decompress_tree(pathlib.Path(args.shared) / "tokenizers" / name, tmp / name)
        ours = json.loads(subprocess.run([args.bin, "bench", "--tokenizer", str(d), "--file", str(text_path),
                                          "--reps", str(args.reps)], capture_output=True, check=True,
                                         text=True).stdout)
        hf = json.loads(subprocess.run([sys.executable, "-c", HF_SCRIPT, str(d), str(text_path), str(args.reps)],
                                       capture_output=True, check=True, text=True, env=env).stdout)
        same = "same" if ours["tokens"] == hf["tokens"] else f"DIFF {ours['tokens']} vs {hf['tokens']}"
        print(f"{name:12} {ours['mb_per_s']:10.2f} {hf['mb_per_s']:9.2f} {ours['mb_per_s'] / hf['mb_per_s']:7.2f}x "
              f"{ours['load_s']:9.3f}s {hf['load_s']:7.3f}s {ours['peak_rss_mb']:8.0f}M {hf['peak_rss_mb']:6.0f}M {same}",
              flush=True)


if __name__ == "__main__":
    main()
