#!/usr/bin/env python3
"""Record transformers' fp32 reference for the two real default GGUF models (issue 2 item 8):
transformers loads the same .gguf (dequantizing every weight to fp32 with the gguf package), and
we keep greedy ids and the top-10 logprobs of the first generated steps for a few prompts.
tests/models/test_gguf_reference.py compares ballast against tests/fixtures/gguf_reference.json.

    python tools/gguf_reference.py --models /tmp/models --out tests/fixtures/gguf_reference.json

Needs torch, transformers, accelerate and gguf (pip). Deterministic (greedy, fp32, CPU)."""
import argparse
import hashlib
import json
import sys
from pathlib import Path

MODELS = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village by the sea, there lived",
]
STEPS = 6
TOP_K = 10


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="/tmp/models", help="directory holding the .gguf files")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/fixtures/gguf_reference.json"))
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    result = {"generator": {"transformers": transformers.__version__, "torch": torch.__version__, "device": "cpu",
                            "compute": "float32 (GGUF weights dequantized by transformers/gguf)",
                            "python": sys.version.split()[0]},
              "steps": STEPS, "top_k": TOP_K, "models": []}
    for fname in MODELS:
        path = Path(args.models) / fname
        tok = AutoTokenizer.from_pretrained(args.models, gguf_file=fname)
        model = AutoModelForCausalLM.from_pretrained(args.models, gguf_file=fname, dtype=torch.float32,
                                                     attn_implementation="eager").eval()
        gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=STEPS, eos_token_id=None, pad_token_id=0,
                                   output_logits=True, return_dict_in_generate=True)
        cases = []
        for text in PROMPTS:
            ids = tok(text)["input_ids"]
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 generation_config=gen_cfg)
            gen = out.sequences[0, len(ids):].tolist()
            steps = []
            for raw in out.logits:
                lp = torch.log_softmax(raw[0].float(), -1)
                top = torch.topk(lp, TOP_K + 1)
                steps.append({"top": [[int(i), round(float(v), 5)] for i, v in zip(top.indices[:TOP_K], top.values[:TOP_K])],
                              "margin": round(float(top.values[0] - top.values[1]), 5)})
            cases.append({"prompt": text, "prompt_ids": ids, "ids": gen, "text": tok.decode(gen), "steps": steps})
            print(f"{fname}: {text!r} -> {tok.decode(gen)!r}", flush=True)
        result["models"].append({"file": fname, "sha256": sha256(path), "architecture": type(model).__name__,
                                 "rows": model.get_output_embeddings().weight.shape[0], "cases": cases})
        del model
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
