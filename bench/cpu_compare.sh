#!/usr/bin/env bash
# ballast vs llama.cpp on the CPU, side by side: alternates `ballast bench` and
# `llama-bench` runs on the same model and thread count, then prints per-test
# median/min t/s of each and the median of the paired ratios (ours / llama.cpp).
#
#   bench/cpu_compare.sh LLAMA_BENCH_BINARY [MODEL] [ROUNDS]
#
# Env: THREADS (2), PP ("128,512,2048"), TG (64), DEPTH (2048), BALLAST (build/bin/ballast),
#      BALLAST_ARGS (extra flags for ours, e.g. --exact), OUT (bench/results/cpu_compare_<date>.jsonl),
#      REPS (repetitions inside each run, 3), FIRST_ROUND (1; > 1 appends rounds to an existing OUT).
# llama-bench builds without -d (before mid-2025) get "tg @ depth" from -pg DEPTH,TG:
# t(tg) = t(pp DEPTH + tg) - t(pp DEPTH), both from the same llama-bench run.
set -euo pipefail
LLAMA=${1:?usage: bench/cpu_compare.sh LLAMA_BENCH_BINARY [MODEL] [ROUNDS]}
MODEL=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/ballast/models/SmolLM2-135M-Instruct.Q4_1.gguf}
ROUNDS=${3:-3}
THREADS=${THREADS:-2}
PP=${PP:-128,512,2048}
TG=${TG:-64}
DEPTH=${DEPTH:-2048}
BALLAST=${BALLAST:-build/bin/ballast}
OUT=${OUT:-bench/results/cpu_compare_$(date +%Y-%m-%d).jsonl}
REPS=${REPS:-3}
FIRST_ROUND=${FIRST_ROUND:-1}
mkdir -p "$(dirname "$OUT")"
[ "$FIRST_ROUND" -gt 1 ] || : > "$OUT"
has_depth=0
"$LLAMA" --help 2>&1 | grep -q -- "-d, --n-depth" && has_depth=1

for r in $(seq "$FIRST_ROUND" "$ROUNDS"); do
  echo "round $r/$ROUNDS: ballast" >&2
  "$BALLAST" bench --model "$MODEL" -t "$THREADS" -p "$PP" -n "$TG" -r "$REPS" --json ${BALLAST_ARGS:-} |
    python3 -c '
import json, sys
for l in sys.stdin:
    j = json.loads(l); print(json.dumps({"engine": "ballast", "round": int(sys.argv[1]), "test": j["test"], "tps": j["avg_tok_s"], "rss_mib": j["peak_rss_mib"]}))' "$r" >> "$OUT"
  "$BALLAST" bench --model "$MODEL" -t "$THREADS" -p 0 -n "$TG" -d "$DEPTH" -r "$REPS" --json ${BALLAST_ARGS:-} |
    python3 -c '
import json, sys
for l in sys.stdin:
    j = json.loads(l); print(json.dumps({"engine": "ballast", "round": int(sys.argv[1]), "test": j["test"], "tps": j["avg_tok_s"]}))' "$r" >> "$OUT"
  echo "round $r/$ROUNDS: llama.cpp" >&2
  if [ "$has_depth" = 1 ]; then
    extra=(-d "0,$DEPTH")
  else
    extra=(-pg "$DEPTH,$TG")
  fi
  "$LLAMA" -m "$MODEL" -t "$THREADS" -p "$PP" -n "$TG" -r "$REPS" -o jsonl "${extra[@]}" 2>/dev/null |
    python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
r = int(sys.argv[1]); depth = int(sys.argv[2])
pp_time = {}
for j in rows:
    p, n, d = j["n_prompt"], j["n_gen"], j.get("n_depth", 0)
    if n == 0: pp_time[p] = j["avg_ns"] / 1e9
for j in rows:
    p, n, d = j["n_prompt"], j["n_gen"], j.get("n_depth", 0)
    if n == 0 and d == 0: test, tps = f"pp{p}", j["avg_ts"]
    elif p == 0: test, tps = f"tg{n}" + (f" @ d{d}" if d else ""), j["avg_ts"]
    elif p == depth and n > 0:  # -pg: subtract the prompt time of the same run
        dt = j["avg_ns"] / 1e9 - pp_time.get(p, float("nan"))
        test, tps = f"tg{n} @ d{p}", n / dt if dt > 0 else float("nan")
    else: continue
    print(json.dumps({"engine": "llama.cpp", "round": r, "test": test, "tps": tps}))' "$r" "$DEPTH" >> "$OUT"
done
# llama-bench -pg needs pp DEPTH in the same run: PP must list DEPTH (the default does).

python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tests = []
for r in rows:
    if r["test"] not in tests: tests.append(r["test"])
print("| test | ballast t/s (median, min) | llama.cpp t/s (median, min) | ratio (median of paired rounds) |")
print("|---|---|---|---|")
for t in tests:
    ours = {r["round"]: r["tps"] for r in rows if r["test"] == t and r["engine"] == "ballast"}
    theirs = {r["round"]: r["tps"] for r in rows if r["test"] == t and r["engine"] == "llama.cpp"}
    ratios = [ours[k] / theirs[k] for k in ours if k in theirs and theirs[k] > 0]
    f = lambda v: f"{statistics.median(v):.1f}, {min(v):.1f}" if v else "-"
    rt = f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}x)" if ratios else "-"
    print(f"| {t} | {f(list(ours.values()))} | {f(list(theirs.values()))} | {rt} |")
EOF
echo "raw results: $OUT" >&2
