#!/usr/bin/env bash
# ballast serve vs llama-server on the CPU, side by side: each round starts llama-server,
# runs bench/server_bench.py against it, stops it, then does the same with `ballast serve`
# (same model, threads, parallel slots), and prints per-round ratios of streamed tok/s and
# time to first token at each client count.
#
#   bench/server_compare.sh LLAMA_SERVER_BINARY [MODEL] [ROUNDS]
#
# Env: THREADS (2), CLIENTS (1,4,16), SLOTS (16: --max-batch / -np), DURATION (6 s per
#      measurement), BALLAST (build/bin/ballast), PY (.venv/bin/python),
#      OUT (bench/results/server_compare_<date>.jsonl).
set -euo pipefail
LLAMA=${1:?usage: bench/server_compare.sh LLAMA_SERVER_BINARY [MODEL] [ROUNDS]}
MODEL=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/ballast/models/SmolLM2-135M-Instruct.Q4_1.gguf}
ROUNDS=${3:-2}
THREADS=${THREADS:-2}
CLIENTS=${CLIENTS:-1,4,16}
SLOTS=${SLOTS:-16}
DURATION=${DURATION:-6}
BALLAST=${BALLAST:-build/bin/ballast}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench/results/server_compare_$(date +%Y-%m-%d).jsonl}
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${lpid:-}" ] && kill "$lpid" 2>/dev/null || true' EXIT
port=$((20000 + RANDOM % 20000))

for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS: llama-server" >&2
  # Context per slot as ballast's default sequence budget: 2048 x slots.
  "$LLAMA" -m "$MODEL" -t "$THREADS" -np "$SLOTS" -c $((2048 * SLOTS)) --port "$port" --host 127.0.0.1 \
    >"$tmp/llama.log" 2>&1 &
  lpid=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  "$PY" bench/server_bench.py --url "http://127.0.0.1:$port" --clients "$CLIENTS" --duration "$DURATION" \
    --json "$tmp/llama.json" >&2 || true
  kill "$lpid"; wait "$lpid" 2>/dev/null || true; lpid=
  echo "round $r/$ROUNDS: ballast" >&2
  "$PY" bench/server_bench.py --bin "$BALLAST" --model "$MODEL" --threads "$THREADS" --max-batch "$SLOTS" \
    --clients "$CLIENTS" --duration "$DURATION" --json "$tmp/ballast.json" >&2
  "$PY" - "$r" "$tmp/llama.json" "$tmp/ballast.json" >> "$OUT" <<'PY'
import json, sys
r = int(sys.argv[1])
for eng, path in (("llama.cpp", sys.argv[2]), ("ballast", sys.argv[3])):
    for row in json.load(open(path))["results"]:
        print(json.dumps({"engine": eng, "round": r, **row}))
PY
done

"$PY" - "$OUT" <<'PY'
import json, sys, collections, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(dict)
for x in rows:
    by[(x["round"], x["clients"])][x["engine"]] = x
print("| clients | round | ballast tok/s | llama.cpp tok/s | ratio | ballast TTFT ms | llama.cpp TTFT ms |")
print("|---|---|---|---|---|---|---|")
for (r, k), e in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    b, l = e.get("ballast"), e.get("llama.cpp")
    if not b or not l:
        continue
    if not b["stream_tok_per_s"] or not l["stream_tok_per_s"]:  # a run that failed (see its log)
        print(f"| {k} | {r} | {b['stream_tok_per_s']:.1f} | {l['stream_tok_per_s']:.1f} | failed run | | |")
        continue
    print(f"| {k} | {r} | {b['stream_tok_per_s']:.1f} | {l['stream_tok_per_s']:.1f} | "
          f"{b['stream_tok_per_s'] / l['stream_tok_per_s']:.2f}x | {b['ttft_ms_median']:.0f} | {l['ttft_ms_median']:.0f} |")
PY
