#!/usr/bin/env python3
"""Logprob drift of ballast's default mode and of llama.cpp, on the same prompt ids and positions.

For each model and case of tests/fixtures/gguf_reference.json (transformers, fp32, same GGUF) and
each of its greedy steps i, every engine is given prompt_ids + reference_ids[:i] as token ids and
asked for the next token's top logprobs (one request / run per step, so all engines are compared
at the same positions even where a greedy choice would diverge):

  exact    ballast generate --exact (dequantized weights, fp32 sgemm)
  default  ballast generate (8-bit activations, integer kernels)
  llama    llama-server /completion {"prompt": [ids], "n_predict": 1, "n_probs": K,
           "temperature": 0, "cache_prompt": false}; its "top_logprobs" are log(softmax(logits))
           over the whole vocabulary (post_sampling_probs off), not the sampler's probabilities

--extra-steps N continues each case N positions further along ballast --exact's greedy ids
(transformers' logprobs are not there, so those positions count against --exact only).

Drift of X against a reference R (transformers, or ballast --exact): over R's top-10 ids at every
step, |logprob_X(id) - logprob_R(id)|, looked up in X's top-K (K = 40, so R's top-10 is covered;
ids missing from X's top-K are counted, not scored). Reported: max, mean, and how often X's argmax
equals R's greedy id.

  .venv/bin/python bench/drift_compare.py --llama-server /path/to/llama-server \
      [--ballast build/bin/ballast] [--out bench/results/drift_compare.json]

A model llama.cpp cannot load (e.g. Gemma 3 in a llama.cpp older than March 2025) is reported
as such and its llama column left empty.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF_PATH = ROOT / "tests" / "fixtures" / "gguf_reference.json"
K = 40  # top-K asked of each engine; the reference's top-10 is looked up in it


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ballast_step(binary: str, model: Path, ids: list[int], exact: bool, threads: int) -> dict[int, float]:
    cmd = [binary, "generate", "--model", str(model), "--prompt-ids", ",".join(map(str, ids)),
           "--max-tokens", "1", "--temperature", "0", "--top-logprobs", str(K), "--ignore-eos",
           "--json", "-t", str(threads)] + (["--exact"] if exact else [])
    env = dict(os.environ)
    env.pop("BALLAST_EXACT", None)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc {r.returncode}: {r.stderr[-2000:]}")
    out = json.loads(r.stdout)
    assert out["prompt_ids"] == ids, "ballast changed the prompt ids"
    return {int(a): float(b) for a, b in out["top_logprobs"][0]}


class LlamaServer:
    def __init__(self, binary: str, model: Path, threads: int, extra: tuple[str, ...] = ()):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(f"/tmp/drift_llama_server_{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port), "-t", str(threads),
             "-c", "512", "-np", "1", *extra], stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 120
        while True:
            if self.proc.poll() is not None:
                errs = [l for l in Path(self.log.name).read_text().splitlines() if "error" in l.lower()]
                raise RuntimeError(f"llama-server exited (rc {self.proc.returncode}): "
                                   + (errs[0].strip() if errs else f"see {self.log.name}"))
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.time() > deadline:
                raise RuntimeError("llama-server did not become healthy")
            time.sleep(0.3)

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())

    def step(self, ids: list[int]) -> dict[int, float]:
        out = self.post("/completion", {"prompt": ids, "n_predict": 1, "n_probs": K, "temperature": 0,
                                        "cache_prompt": False})
        assert out["tokens_evaluated"] == len(ids), (out["tokens_evaluated"], len(ids))
        probs = out["completion_probabilities"]
        assert len(probs) == 1, probs
        return {int(e["id"]): float(e["logprob"]) for e in probs[0]["top_logprobs"]}

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def drift(engine_steps: list[dict[int, float]], ref_steps: list[dict[int, float]], greedy: list[int]) -> dict:
    diffs, missing, agree = [], 0, 0
    for ours, ref, g in zip(engine_steps, ref_steps, greedy):
        top10 = sorted(ref.items(), key=lambda kv: -kv[1])[:10]
        for tid, lp in top10:
            if tid in ours:
                diffs.append(abs(ours[tid] - lp))
            else:
                missing += 1
        agree += max(ours, key=ours.get) == g
    return {"max": max(diffs), "mean": statistics.fmean(diffs), "entries": len(diffs), "missing": missing,
            "argmax_agree": agree, "steps": len(engine_steps)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ballast", default=str(ROOT / "build" / "bin" / "ballast"))
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--model-dir", default=os.environ.get("BALLAST_MODEL_DIR") or str(Path.home() / ".cache/ballast/models"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra-steps", type=int, default=0,
                    help="positions past the reference's, along ballast --exact's greedy ids (vs --exact only)")
    ap.add_argument("--llama-args", default="", help="extra llama-server flags, e.g. '-ctk f32 -ctv f32'")
    ap.add_argument("--models", default="", help="comma-separated substrings of model files to run (default all)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "drift_compare.json"))
    args = ap.parse_args()

    ref = json.loads(REF_PATH.read_text())
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    result = {"reference": str(REF_PATH.relative_to(ROOT)), "reference_generator": ref["generator"],
              "ballast_commit": commit, "ballast": args.ballast, "llama_server": args.llama_server, "llama_args": args.llama_args, "top_k_asked": K,
              "extra_steps": args.extra_steps, "host": platform.node(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "models": []}
    for m in ref["models"]:
        if args.models and not any(x and x in m["file"] for x in args.models.split(",")):
            continue
        path = Path(args.model_dir) / m["file"]
        entry = {"file": m["file"], "cases": []}
        result["models"].append(entry)
        if not path.exists() or sha256(path) != m["sha256"]:
            entry["skipped"] = f"{path} missing or not the reference's file"
            print(entry["skipped"], file=sys.stderr)
            continue
        server, llama_err = None, None
        try:
            server = LlamaServer(args.llama_server, path, args.threads, tuple(args.llama_args.split()))
        except RuntimeError as e:
            llama_err = str(e).splitlines()[0][:300]
            entry["llama_error"] = llama_err
            print(f"{m['file']}: llama.cpp cannot run it: {llama_err}", file=sys.stderr)
        try:
            for ci, case in enumerate(m["cases"]):
                ref_steps = [{int(a): float(b) for a, b in s["top"]} for s in case["steps"]]
                n_ref = len(ref_steps)
                greedy = list(case["ids"][:n_ref])
                runs = {"exact": [], "default": [], "llama": []}
                # the reference's steps, then --extra-steps more along ballast --exact's greedy ids
                # (compared against --exact only: transformers' logprobs stop at the reference's end)
                for i in range(n_ref + args.extra_steps):
                    ids = case["prompt_ids"] + greedy[:i]
                    runs["exact"].append(ballast_step(args.ballast, path, ids, True, args.threads))
                    if i >= n_ref:
                        ex = runs["exact"][-1]
                        greedy.append(max(ex, key=ex.get))
                    runs["default"].append(ballast_step(args.ballast, path, ids, False, args.threads))
                    if server:
                        runs["llama"].append(server.step(ids))
                c = {"case": ci, "prompt": case["prompt"], "n_prompt": len(case["prompt_ids"]), "ids": greedy,
                     "vs_transformers": {}, "vs_ballast_exact": {}}
                for name, steps in runs.items():
                    if not steps:
                        continue
                    c["vs_transformers"][name] = drift(steps[:n_ref], ref_steps, greedy)
                    if name != "exact":
                        c["vs_ballast_exact"][name] = drift(steps, runs["exact"], greedy)
                entry["cases"].append(c)
                print(f"{m['file']} case {ci}: " + json.dumps({k: {n: (round(v['max'], 4), round(v['mean'], 4))
                                                                     for n, v in d.items()}
                                                                 for k, d in (("tr", c["vs_transformers"]),
                                                                              ("ex", c["vs_ballast_exact"]))}),
                      file=sys.stderr)
        finally:
            if server:
                server.close()
        # model totals: max over cases, mean over all scored entries
        for basis in ("vs_transformers", "vs_ballast_exact"):
            tot = {}
            for name in {n for c in entry["cases"] for n in c[basis]}:
                ds = [c[basis][name] for c in entry["cases"] if name in c[basis]]
                n = sum(d["entries"] for d in ds)
                tot[name] = {"max": max(d["max"] for d in ds),
                             "mean": sum(d["mean"] * d["entries"] for d in ds) / n, "entries": n,
                             "missing": sum(d["missing"] for d in ds),
                             "argmax_agree": f"{sum(d['argmax_agree'] for d in ds)}/{sum(d['steps'] for d in ds)}"}
            entry[basis] = tot

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("| model | engine | vs transformers max / mean | vs ballast --exact max / mean | argmax = ref greedy |")
    print("|---|---|---|---|---|")
    for e in result["models"]:
        if "vs_transformers" not in e:
            continue
        for name in ("exact", "default", "llama"):
            t = e["vs_transformers"].get(name)
            if not t:
                print(f"| {e['file']} | llama | cannot load: {e.get('llama_error', '')[:120]} | | |")
                continue
            x = e["vs_ballast_exact"].get(name)
            xs = f"{x['max']:.3g} / {x['mean']:.3g}" if x else "-"
            print(f"| {e['file']} | {name} | {t['max']:.3g} / {t['mean']:.3g} | {xs} | {t['argmax_agree']} |")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
