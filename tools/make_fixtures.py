#!/usr/bin/env python3
"""Build the tiny random-weight model fixtures under tests/fixtures and record transformers' fp32
reference (greedy ids + top-10 logprobs per step). docs/fixtures.md describes every fixture.

    python tools/make_fixtures.py --out tests/fixtures [--only NAME ...]

Deterministic: weights come from seeded CPU generators, so any machine (CPU or GPU host) writes
the same model.safetensors; expected.json records the transformers/torch versions and device.
Tokenizer files are NOT committed (tens of MB): each fixture's fixture.json names a tokenizer of
../shared/tokenizers (plus an optional patch), and materialize() rebuilds tokenizer.json /
tokenizer_config.json from it; the tests call materialize() before using a fixture.
This module imports torch/transformers only inside the generator functions, so the tests can
import materialize() with nothing but the standard library.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
TOP_K = 10
MAX_NEW = 8

PROMPTS = [
    "Hello, my name is",
    # Longer than the Gemma 3 fixtures' sliding window (8) on its own.
    "The quick brown fox jumps over the lazy dog, and then it runs back into the forest to",
    "Grüße aus München! 日本語 🙂 def f(x):\n    return x * 2",
    # 500+ tokens with every tokenizer: attention spans several 256-key chunks, positions pass the
    # llama3 fixture's original_max_position_embeddings (64) many times over.
    " ".join(f"Chapter {i}: the river {w} past the old mill, and the miller counted {i * 7} sacks of grain "
             "before nightfall." for i, w in enumerate(["ran", "wound", "rushed", "crept", "flowed"] * 4)),
]


# ----------------------------------------------------------------------------------------------
# Tokenizer materialization (standard library only; the tests use it too)
# ----------------------------------------------------------------------------------------------

def shared_dir() -> Path:
    return Path(os.environ.get("BALLAST_SHARED", REPO.parent / "shared"))


def _read_shared_tokenizer_file(name: str, fname: str) -> bytes:
    base = shared_dir() / "tokenizers" / name
    plain, packed = base / fname, base / (fname + ".zst")
    if plain.exists():
        return plain.read_bytes()
    if packed.exists():
        return subprocess.run(["zstd", "-q", "-d", "-c", str(packed)], check=True, capture_output=True).stdout
    raise FileNotFoundError(f"{base}: neither {fname} nor {fname}.zst")


def apply_tokenizer_patch(files: dict[str, bytes], patch: dict) -> dict[str, bytes]:
    """Patch = {"add_tokens": [{"id", "content", "special", optional "rstrip"}...], "remove_tokens": [content...]}.
    Applied at the JSON level so HF and ballast read byte-identical files."""
    if not patch:
        return files
    tj = json.loads(files["tokenizer.json"])
    tc = json.loads(files["tokenizer_config.json"])
    dec = tc.setdefault("added_tokens_decoder", {})
    for content in patch.get("remove_tokens", []):
        gone = [t["id"] for t in tj["added_tokens"] if t["content"] == content]
        tj["added_tokens"] = [t for t in tj["added_tokens"] if t["content"] != content]
        for i in gone:
            dec.pop(str(i), None)
    for t in patch.get("add_tokens", []):
        entry = {"id": t["id"], "content": t["content"], "single_word": False, "lstrip": False,
                 "rstrip": t.get("rstrip", False), "normalized": not t.get("special", True),
                 "special": t.get("special", True)}
        tj["added_tokens"].append(entry)
        dec[str(t["id"])] = {k: entry[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
    return {"tokenizer.json": json.dumps(tj, ensure_ascii=False, indent=2).encode(),
            "tokenizer_config.json": json.dumps(tc, ensure_ascii=False, indent=2).encode()}


def tokenizer_files(manifest: dict) -> dict[str, bytes]:
    files = {f: _read_shared_tokenizer_file(manifest["tokenizer"], f) for f in TOKENIZER_FILES}
    return apply_tokenizer_patch(files, manifest.get("tokenizer_patch") or {})


def materialize(fixture_dir: Path) -> Path:
    """Write the fixture's tokenizer files next to its weights (atomically; idempotent)."""
    fixture_dir = Path(fixture_dir)
    manifest = json.loads((fixture_dir / "fixture.json").read_text())
    if not manifest.get("tokenizer"):
        return fixture_dir
    want = manifest.get("tokenizer_sha256", {})
    if all((fixture_dir / f).exists() and _sha(fixture_dir / f) == want.get(f) for f in TOKENIZER_FILES):
        return fixture_dir
    for fname, data in tokenizer_files(manifest).items():
        if want.get(fname) and hashlib.sha256(data).hexdigest() != want[fname]:
            raise RuntimeError(f"{fixture_dir.name}: {fname} from ../shared/tokenizers/{manifest['tokenizer']} "
                               "differs from the one the fixture was made with; rerun tools/make_fixtures.py")
        fd, tmp = tempfile.mkstemp(dir=fixture_dir, prefix=f".{fname}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, fixture_dir / fname)
    return fixture_dir


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Fixture specifications
# ----------------------------------------------------------------------------------------------

# Phi-3-mini's tokens added to the llama2 vocabulary: 32011 ids for 32064 embedding rows.
PHI3_ADDED = [{"id": 32000, "content": "<|endoftext|>", "special": True}] + [
    {"id": 32001 + i, "content": c, "special": True, "rstrip": True}
    for i, c in enumerate(["<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>",
                           "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>",
                           "<|user|>"])]

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               # Small so that all three llama3 branches (kept, smoothed, scaled) hit head_dim 8.
               "original_max_position_embeddings": 64}

SPECS: list[dict] = [
    dict(name="llama", arch="LlamaForCausalLM", tokenizer="llama3_1", seed=1, form="new",
         cfg=dict(vocab_size=128256, hidden_size=16, intermediate_size=40, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                  rope_parameters=dict(rope_theta=10000.0, **LLAMA3_ROPE), rms_norm_eps=1e-5,
                  tie_word_embeddings=True, bos_token_id=128000, eos_token_id=[128001, 128008, 128009]),
         notes="Llama 3.x: llama3 RoPE scaling (new rope_parameters form), GQA, tied head"),
    # Same weights as "llama" (identical model.safetensors, deduplicated by git): only config.json
    # differs, written in the older rope_theta/rope_scaling form.
    dict(name="llama_oldcfg", like="llama", form="old",
         notes="as llama, config.json in the older rope_theta + rope_scaling form"),
    dict(name="mistral", arch="MistralForCausalLM", tokenizer="llama2", seed=2, form="old",
         cfg=dict(vocab_size=32000, hidden_size=16, intermediate_size=48, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=2048,
                  rope_parameters=dict(rope_type="default", rope_theta=1000000.0), rms_norm_eps=1e-5,
                  sliding_window=None, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
         notes="Mistral: untied LM head, head_dim 8 != hidden/heads (Nemo-like), older config form"),
    dict(name="qwen2", arch="Qwen2ForCausalLM", tokenizer="qwen3", seed=3, form="old",
         cfg=dict(vocab_size=151936, hidden_size=16, intermediate_size=40, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                  rope_parameters=dict(rope_type="default", rope_theta=1000000.0), rms_norm_eps=1e-6,
                  tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
                  use_sliding_window=False),
         notes="Qwen2: q/k/v biases, 151936 rows vs 151669 tokenizer ids (padding rows masked), older config form"),
    dict(name="qwen3", arch="Qwen3ForCausalLM", tokenizer="qwen3", seed=4, form="new",
         cfg=dict(vocab_size=151936, hidden_size=8, intermediate_size=24, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=2048,
                  rope_parameters=dict(rope_type="default", rope_theta=1000000.0), rms_norm_eps=1e-6,
                  tie_word_embeddings=True, bos_token_id=151643, eos_token_id=[151645, 151643],
                  use_sliding_window=False),
         notes="Qwen3: q/k RMSNorm, head_dim 16 with hidden 8 (explicit head_dim), padding rows masked"),
    # Gemma 3 1B / 270M shape: exactly 262144 rows, so the tokenizer's <image_soft_token> = 262144
    # is unembeddable (issue 4 fixture (b) uses this one too).
    dict(name="gemma3", arch="Gemma3ForCausalLM", tokenizer="gemma3", seed=5, form="new",
         cfg=dict(vocab_size=262144, hidden_size=8, intermediate_size=24, num_hidden_layers=4,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=24,
                  sliding_window=8, max_position_embeddings=2048,
                  layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
                  rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                   "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}},
                  rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=2, eos_token_id=[1, 106],
                  pad_token_id=0),
         notes="Gemma 3 text (1B-like, 262144 rows): scaled embeddings, pre/post norms, q/k norms, "
               "sliding(8)/global layers with their own RoPE bases (rope_parameters form), "
               "query_pre_attn_scalar 24 != head_dim 16, GeGLU, tied head"),
    # GPT-2 / DialoGPT: learned positions, LayerNorm with bias, Conv1D (in, out) weights, fused c_attn,
    # biases everywhere, tied head. 32000 rows with the llama2 tokenizer (the math is what is tested).
    dict(name="gpt2", arch="GPT2LMHeadModel", config_class="GPT2Config", tokenizer="llama2", seed=9, form="new",
         cfg=dict(vocab_size=32000, n_embd=16, n_layer=2, n_head=2, n_positions=1024, n_inner=None,
                  activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True,
                  bos_token_id=1, eos_token_id=2),
         notes="GPT-2: learned absolute positions, LayerNorm + bias, Conv1D (in, out) linears transposed at "
               "load, fused q|k|v with bias, GELU (tanh), tied head"),
    # Phi-3-mini's shape of vocabulary (32064 rows over 32011 tokenizer ids: 53 padding rows) and its
    # config form (rope_scaling + top-level original_max_position_embeddings). LongRoPE with distinct
    # short / long factors around an original context of 64: the 500+-token prompt runs on the long
    # factors, the short prompts on the short ones, and the 5th prompt (60 tokens) switches to the long
    # factors from the decode step at position 64 on (K of earlier positions stays as cached), as transformers' cached generate does. Partial rotary (12 of 16 dims,
    # as Phi-4-mini), GQA 2:1, untied head, sliding window 512 (every layer; the 582-token prompt passes it).
    dict(name="phi3", arch="Phi3ForCausalLM", tokenizer="llama2", seed=10, form="old",
         tokenizer_patch={"add_tokens": PHI3_ADDED},
         cfg=dict(vocab_size=32064, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                  original_max_position_embeddings=64, partial_rotary_factor=0.75,
                  rope_parameters=dict(rope_type="longrope", rope_theta=10000.0,
                                       short_factor=[1.0, 1.05, 1.2, 1.5, 2.0, 2.6],
                                       long_factor=[1.0, 1.8, 3.5, 7.0, 14.0, 30.0]),
                  sliding_window=512, rms_norm_eps=1e-5, tie_word_embeddings=False,
                  bos_token_id=1, eos_token_id=32000, pad_token_id=32000),
         generation_config_override={"eos_token_id": [32000, 32001, 32007]},
         prompts=PROMPTS + ["Once upon a time, in a quiet village by the sea, there lived an old fisherman who "
                            "told stories about the storms he had survived, the nets he had mended, and the fish "
                            "he had caught before dawn on cold winter mornings when the harbour lay still and"],
         longrope_original_max=64, hub_rope_scaling=True,
         notes="Phi-3: fused qkv_proj / gate_up_proj, LongRoPE short/long factors (original context 64, "
               "attention factor sqrt(1 + ln 16 / ln 64)), partial rotary 0.75, GQA, sliding window 512, "
               "untied head, 32064 rows over 32011 tokenizer ids"),
    # Issue 4 (a): Gemma 3 4B-like row count (262208) whose padding rows are the raw argmax.
    dict(name="vocab_gemma3_padding_rows", arch="Gemma3ForCausalLM", tokenizer="gemma3", seed=6, form="old",
         cfg=dict(vocab_size=262208, hidden_size=8, intermediate_size=24, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
                  sliding_window=8, max_position_embeddings=2048,
                  layer_types=["sliding_attention", "full_attention"],
                  rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                   "full_attention": {"rope_type": "linear", "factor": 8.0,
                                                      "rope_theta": 1000000.0}},
                  rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=2, eos_token_id=[1, 106],
                  pad_token_id=0),
         post="padding_argmax", gemma_post=2.0,
         notes="262208 rows, tokenizer ids 0..262144: rows 262145..262207 are built to be the raw argmax; "
               "reference = transformers with those rows masked. Older config form (rope_theta, "
               "rope_local_base_freq, linear rope_scaling on global layers like Gemma 3 4B)"),
    # Issue 4 (c): tokens added to the tokenizer without resizing the model.
    dict(name="vocab_added_tokens", arch="LlamaForCausalLM", tokenizer="llama2", seed=7, form="old",
         cfg=dict(vocab_size=32000, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                  rope_parameters=dict(rope_type="default", rope_theta=10000.0), rms_norm_eps=1e-5,
                  tie_word_embeddings=True, bos_token_id=1, eos_token_id=2),
         resize_reference=True,
         tokenizer_patch={"add_tokens": [{"id": 32000, "content": "<|tool_call|>", "special": True},
                                         {"id": 32001, "content": "<|tool_result|>", "special": True},
                                         {"id": 32002, "content": "<|ballast_extra|>", "special": True}]},
         notes="llama2 tokenizer + 3 added special tokens (ids 32000..32002) with 32000 rows: unembeddable"),
    # Issue 4 (d): eos out of range in generation_config.json (same weights as vocab_added_tokens).
    dict(name="vocab_eos_out_of_range", like="vocab_added_tokens", tokenizer_patch=None, resize_reference=False,
         generation_config_override={"eos_token_id": [2, 40000]},
         notes="generation_config.json eos_token_id [2, 40000] with 32000 rows: 40000 is dropped from the stop set"),
    # Issue 4 (e): one NaN weight in layer 1.
    dict(name="vocab_nan_weight", arch="LlamaForCausalLM", tokenizer="llama2", seed=8, form="old",
         cfg=dict(vocab_size=32000, hidden_size=8, intermediate_size=16, num_hidden_layers=3,
                  num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                  rope_parameters=dict(rope_type="default", rope_theta=10000.0), rms_norm_eps=1e-5,
                  tie_word_embeddings=True, bos_token_id=1, eos_token_id=2),
         post="nan_layer1", reference=False,
         notes="model.layers.1.mlp.down_proj.weight[3, 5] = NaN: layer 1's output is NaN at every position"),
]

# Issue 11 item 4: "gpt2"'s weights as torch.save writes them, in directories without safetensors.
# Same weights, so the reference is gpt2's expected.json (copied). The files are equivalent but not
# byte-identical across runs: the legacy format keys storages by memory address.
TORCH_BIN = [
    dict(name="gpt2_bin", source="gpt2", legacy=False, dtype="bfloat16",
         notes="gpt2's weights as pytorch_model.bin, torch.save zip format (torch >= 1.6), bfloat16; "
               "lm_head.weight and transformer.wte.weight share one storage (tied)"),
    dict(name="gpt2_bin_legacy", source="gpt2", legacy=True, dtype="float32",
         notes="gpt2's weights as pytorch_model.bin in the legacy format (_use_new_zipfile_serialization=False, "
               "as 2019-era uploads like DialoGPT), float32 (exact: every bfloat16 is a float32); tied storage"),
]

CORRUPT = [
    dict(name="corrupt_truncated_safetensors", source="vocab_eos_out_of_range",
         notes="model.safetensors cut in the middle of its tensor data (header intact)"),
    dict(name="corrupt_gguf_offset", notes="tiny llama GGUF (bad.gguf) with one tensor offset past the end of the "
         "file; good.gguf is the same file unpatched"),
]


def resolve(spec: dict) -> dict:
    if "like" not in spec:
        return spec
    base = next(s for s in SPECS if s["name"] == spec["like"])
    out = copy.deepcopy(resolve(base))
    out.update({k: v for k, v in spec.items() if k != "like"})
    return out


# ----------------------------------------------------------------------------------------------
# Generation (torch + transformers from here on)
# ----------------------------------------------------------------------------------------------

def to_old_form(cfg: dict) -> dict:
    """Rewrite a transformers-5 config.json dict into the pre-rope_parameters form."""
    cfg = dict(cfg)
    rp = cfg.pop("rope_parameters", None)
    if rp is None:
        return cfg
    if "sliding_attention" in rp or "full_attention" in rp:  # Gemma 3
        full, local = rp.get("full_attention", {}), rp.get("sliding_attention", {})
        cfg["rope_theta"] = full.get("rope_theta", 1000000.0)
        cfg["rope_local_base_freq"] = local.get("rope_theta", 10000.0)
        scaling = {k: v for k, v in full.items() if k != "rope_theta"}
        cfg["rope_scaling"] = scaling if scaling.get("rope_type", "default") != "default" else None
    else:
        cfg["rope_theta"] = rp.get("rope_theta", 10000.0)
        scaling = {k: v for k, v in rp.items() if k != "rope_theta"}
        cfg["rope_scaling"] = scaling if scaling.get("rope_type", "default") != "default" else None
    return dict(sorted(cfg.items()))


def init_weights(model, seed: int, gemma: bool, gain: float = 2.0, gemma_post: float = 8.0):
    """Weights large enough that the layers matter next to the embedding (gain 1 makes a tied random
    model repeat its last token) and logits spread wide (few near-ties)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if ("norm" in name or ".ln_" in name) and not name.endswith(".bias"):
                noise = torch.randn(p.shape, generator=g) * 0.3
                if not gemma:
                    p.copy_(1.0 + noise)
                elif "post_" in name:  # Gemma norms scale by (1 + w); big post-norms keep the
                    p.copy_(gemma_post + noise)  # layers from drowning in the scaled embedding
                else:
                    p.copy_((1.0 if name == "model.norm.weight" else 0.0) + noise)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif "embed_tokens" in name or "lm_head" in name or ".wte." in name or ".wpe." in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * gain / p.shape[1] ** 0.5)


def build_model(spec: dict):
    import torch
    import transformers
    cfg_cls = getattr(transformers, spec.get("config_class") or
                      spec["arch"].replace("ForCausalLM", "Config").replace("Gemma3Config", "Gemma3TextConfig"))
    config = cfg_cls(**spec["cfg"])
    config.architectures = [spec["arch"]]
    torch.manual_seed(spec["seed"])
    model = getattr(transformers, spec["arch"])(config).eval()
    init_weights(model, spec["seed"], gemma="Gemma" in spec["arch"], gain=spec.get("gain", 2.0),
                 gemma_post=spec.get("gemma_post", 8.0))
    return model


def post_process(model, spec: dict, valid: list[bool]):
    import torch
    with torch.no_grad():
        if spec.get("post") == "padding_argmax":
            emb = model.get_input_embeddings().weight
            rows = emb.shape[0]
            pads = [i for i in range(rows) if not valid[i]]
            # Constant component in dim 0 of every real row keeps the final hidden's dim 0 positive
            # (it is a common shift of all real logits); the padding rows are far out along it.
            emb[:, 0] = 5.0
            for k, i in enumerate(pads):
                emb[i].zero_()
                emb[i, 0] = 40.0 + 0.01 * k
        elif spec.get("post") == "nan_layer1":
            model.model.layers[1].mlp.down_proj.weight[3, 5] = float("nan")


def valid_mask(tok_json: dict, rows: int) -> list[bool]:
    """valid ids = ids the tokenizer defines and the model embeds (DESIGN.md)."""
    ok = [False] * rows
    for _, i in tok_json["model"]["vocab"].items() if isinstance(tok_json["model"]["vocab"], dict) else \
            ((p[0], n) for n, p in enumerate(tok_json["model"]["vocab"])):
        if i < rows:
            ok[i] = True
    for t in tok_json["added_tokens"]:
        if t["id"] < rows:
            ok[t["id"]] = True
    return ok


def reference(model_dir: Path, spec: dict, valid: list[bool], tok) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig, LogitsProcessor

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    rows = model.get_output_embeddings().weight.shape[0]
    invalid = torch.tensor([not v for v in valid[:rows]] + [True] * (rows - len(valid)))

    class MaskInvalid(LogitsProcessor):
        def __call__(self, input_ids, scores):
            return scores.masked_fill(invalid, float("-inf"))

    gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=None, pad_token_id=0,
                               output_logits=True, return_dict_in_generate=True)
    cases = []
    worst_self = 0.0
    for text in spec.get("prompts", PROMPTS):
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            # Explicit all-ones mask: otherwise generate() masks prompt tokens equal to pad_token_id.
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 generation_config=gen_cfg, logits_processor=[MaskInvalid()])
            seq = out.sequences[0].tolist()
            gen = seq[len(ids):]
            assert len(gen) == MAX_NEW, "reference stopped early"
            # Cross-check the cached steps against one uncached forward over the whole sequence.
            full = model(torch.tensor([seq])).logits[0].float()
        step_logits = out.logits
        # LongRoPE: past the original context the long factors apply to the whole sequence. transformers'
        # Phi-3 generate drops its cache at that point to recompute it, but its input preparation then feeds
        # only the newest token (5.17: from there on each token attends to itself alone). The reference for
        # such a prompt is what the recompute intends: every step one uncached forward over the sequence
        # so far (the table chosen by its length). generate's ids are recorded beside it.
        orig = spec.get("longrope_original_max")
        switch = orig is not None and len(ids) <= orig < len(seq)
        if switch:
            tf_ids, tf_logits, seq = gen, out.logits, list(ids)
            step_logits = []
            with torch.no_grad():
                for _ in range(MAX_NEW):
                    raw = model(torch.tensor([seq])).logits[0, -1:].float()
                    step_logits.append(raw)
                    seq.append(int(raw[0].masked_fill(invalid, float("-inf")).argmax()))
            gen = seq[len(ids):]

            def max_diff(other):
                return max((torch.log_softmax(a[0].float().masked_fill(invalid, float("-inf")), -1) -
                            torch.log_softmax(b[0].masked_fill(invalid, float("-inf")), -1))[~invalid].abs().max().item()
                           for a, b in zip(other, step_logits))
            # The cached path without the recompute (K of the short steps kept), on the same ids.
            from transformers import DynamicCache
            cache, kept = DynamicCache(config=model.config), []
            with torch.no_grad():
                kept.append(model(torch.tensor([ids]), past_key_values=cache, use_cache=True).logits[:, -1])
                for t in gen[:-1]:
                    kept.append(model(torch.tensor([[t]]), past_key_values=cache, use_cache=True).logits[:, -1])
            tf_diff, kept_diff = max_diff(tf_logits), max_diff(kept)
        steps = []
        case_self = 0.0
        for i, raw in enumerate(step_logits):
            raw = raw[0].float()
            lp = torch.log_softmax(raw.masked_fill(invalid, float("-inf")), -1)
            lp_full = torch.log_softmax(full[len(ids) - 1 + i].masked_fill(invalid, float("-inf")), -1)
            top = torch.topk(lp, TOP_K + 1)
            case_self = max(case_self, (lp_full[top.indices] - top.values).abs().max().item())
            assert top.indices[0].item() == gen[i]
            step = {"top": [[int(j), round(float(v), 6)] for j, v in zip(top.indices[:TOP_K], top.values[:TOP_K])],
                    "margin": round(float(top.values[0] - top.values[1]), 6),
                    "boundary_gap": round(float(top.values[TOP_K - 1] - top.values[TOP_K]), 6)}
            if spec.get("post") == "padding_argmax":
                raw_arg = int(raw.argmax())
                assert not valid[raw_arg], "padding rows are not the raw argmax"
                step["raw_argmax"] = raw_arg
            steps.append(step)
        case = {"prompt": text, "prompt_ids": ids, "ids": gen, "steps": steps}
        if switch:
            case["longrope_switch"] = {"original_max_position_embeddings": orig,
                                       "reference": "uncached forward over the sequence at every step",
                                       "transformers_generate_ids": tf_ids,
                                       "transformers_generate_max_abs_logprob_diff": tf_diff,
                                       "cached_without_recompute_max_abs_logprob_diff": kept_diff}
        else:
            worst_self = max(worst_self, case_self)
        cases.append(case)
    return {"cases": cases, "self_consistency_max_abs": worst_self,
            "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                         "device": "cpu", "python": sys.version.split()[0]}}


def make_fixture(spec: dict, out: Path):
    import torch
    from transformers import AutoTokenizer
    spec = resolve(spec)
    name = spec["name"]
    dst = out / name
    dst.mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "architecture": spec["arch"], "tokenizer": spec["tokenizer"],
                "tokenizer_patch": spec.get("tokenizer_patch"), "config_form": spec["form"],
                "notes": spec.get("notes", "")}
    files = tokenizer_files(manifest)
    manifest["tokenizer_sha256"] = {f: hashlib.sha256(d).hexdigest() for f, d in files.items()}
    for f, d in files.items():
        (dst / f).write_bytes(d)
    tok_json = json.loads(files["tokenizer.json"])
    tok = AutoTokenizer.from_pretrained(dst)

    model = build_model(spec)
    rows = model.get_input_embeddings().weight.shape[0]
    valid = valid_mask(tok_json, rows)
    post_process(model, spec, valid)
    model.to(torch.bfloat16).save_pretrained(dst, safe_serialization=True)
    cfg = json.loads((dst / "config.json").read_text())
    if spec["form"] == "old":
        cfg = to_old_form(cfg)
    if spec.get("hub_rope_scaling"):  # as the Phi-3 hub configs: {"type", "short_factor", "long_factor"}
        rs = cfg["rope_scaling"]
        cfg["rope_scaling"] = {"type": rs["rope_type"], "short_factor": rs["short_factor"],
                               "long_factor": rs["long_factor"]}
    (dst / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    gcfg = json.loads((dst / "generation_config.json").read_text())
    gcfg.update(spec.get("generation_config_override") or {})
    (dst / "generation_config.json").write_text(json.dumps(gcfg, indent=2, sort_keys=True) + "\n")

    if spec.get("reference", True):
        ref = reference(dst, spec, valid, tok)
        expected = {"fixture": name, "architecture": spec["arch"], "rows": rows,
                    "valid_ids": sum(valid), "ignore_eos": True, "max_new_tokens": MAX_NEW, "top_k": TOP_K,
                    "compute": "float32 (weights stored bfloat16)", "attn_implementation": "eager",
                    "generator": ref["versions"],
                    "reference_self_consistency_max_abs": ref["self_consistency_max_abs"],
                    "cases": ref["cases"]}
        if name == "gemma3":
            expected["image_soft_token_text"] = image_token_case(files)
        if spec.get("resize_reference"):
            size = max(max(tok_json["model"]["vocab"].values()), max(t["id"] for t in tok_json["added_tokens"])) + 1
            expected["resize_embeddings"] = resize_reference(dst, tok, size)
        (dst / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    (dst / "fixture.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    print(f"{name}: {rows} rows, {sum(valid)} valid ids, {(dst / 'model.safetensors').stat().st_size} bytes")


def resize_reference(model_dir: Path, tok, rows: int) -> dict:
    """--resize-embeddings (issue 4 item 2): embedding and LM head grown to cover every tokenizer
    id, new rows = mean of the existing rows. Reference: the same done to the fp32 model."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        old = model.get_input_embeddings().weight.detach().clone()
        model.resize_token_embeddings(rows, mean_resizing=False)
        emb = model.get_input_embeddings().weight
        emb[: old.shape[0]] = old
        emb[old.shape[0]:] = old.mean(0)
        if not model.config.tie_word_embeddings:
            raise NotImplementedError("resize reference for untied heads")
        assert model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()
    text = "Call <|tool_call|> then <|tool_result|> done"
    from tokenizers import Tokenizer
    ids = Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(text).ids
    assert any(i >= old.shape[0] for i in ids), ids
    gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=None, pad_token_id=0,
                               output_logits=True, return_dict_in_generate=True)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             generation_config=gen_cfg)
    steps = []
    for raw in out.logits:
        lp = torch.log_softmax(raw[0].float(), -1)
        top = torch.topk(lp, TOP_K + 1)
        steps.append({"top": [[int(j), round(float(v), 6)] for j, v in zip(top.indices[:TOP_K], top.values[:TOP_K])],
                      "margin": round(float(top.values[0] - top.values[1]), 6),
                      "boundary_gap": round(float(top.values[TOP_K - 1] - top.values[TOP_K]), 6)})
    return {"rows": rows, "cases": [{"prompt": text, "prompt_ids": ids, "ids": out.sequences[0, len(ids):].tolist(),
                                     "steps": steps}]}


def image_token_case(files: dict[str, bytes]) -> dict:
    """Prompt text holding the unembeddable <image_soft_token> literal: expected ids = the literal
    tokenized as plain text (the added token removed from the tokenizer)."""
    from tokenizers import Tokenizer
    text = "Describe <image_soft_token> in one word:"
    plain = apply_tokenizer_patch(dict(files), {"remove_tokens": ["<image_soft_token>"]})
    ids = Tokenizer.from_str(plain["tokenizer.json"].decode()).encode(text).ids
    return {"prompt": text, "prompt_ids": ids}


def make_torch_bin(out: Path, spec: dict):
    """torch.save(model.state_dict()) of an existing fixture's weights, as older save_pretrained did."""
    import torch
    from transformers import AutoModelForCausalLM
    src, dst = out / spec["source"], out / spec["name"]
    dst.mkdir(parents=True, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=getattr(torch, spec["dtype"])).eval()
    sd = model.state_dict()
    assert sd["lm_head.weight"].data_ptr() == sd["transformer.wte.weight"].data_ptr(), "head not tied"
    torch.save(sd, dst / "pytorch_model.bin", _use_new_zipfile_serialization=not spec["legacy"])
    back = torch.load(dst / "pytorch_model.bin", weights_only=True)
    for k, v in sd.items():
        assert torch.equal(back[k], v), k
    for f in ("config.json", "generation_config.json", "expected.json"):
        shutil.copy(src / f, dst / f)
    manifest = json.loads((src / "fixture.json").read_text())
    manifest.update(name=spec["name"], notes=spec["notes"], weights_from=spec["source"],
                    torch_save={"format": "legacy" if spec["legacy"] else "zip", "dtype": spec["dtype"],
                                "torch": torch.__version__})
    (dst / "fixture.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    print(f"{spec['name']}: {(dst / 'pytorch_model.bin').stat().st_size} bytes")


# ----------------------------------------------------------------------------------------------
# Corrupt files (issue 4 (f))
# ----------------------------------------------------------------------------------------------

def make_truncated_safetensors(out: Path, source: str, name: str):
    src, dst = out / source, out / name
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "generation_config.json"):
        shutil.copy(src / f, dst / f)
    data = (src / "model.safetensors").read_bytes()
    (hlen,) = struct.unpack("<Q", data[:8])
    body = len(data) - 8 - hlen
    (dst / "model.safetensors").write_bytes(data[: 8 + hlen + body // 2])
    manifest = json.loads((src / "fixture.json").read_text())
    manifest.update(name=name, notes=next(c["notes"] for c in CORRUPT if c["name"] == name),
                    full_size=len(data), truncated_size=8 + hlen + body // 2)
    (dst / "fixture.json").write_text(json.dumps(manifest, indent=2) + "\n")


def make_gguf(out: Path, name: str):
    import numpy as np
    import gguf
    dst = out / name
    dst.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(9)
    n_vocab, hidden, ffn, heads = 64, 8, 16, 2
    good = dst / "good.gguf"
    w = gguf.GGUFWriter(str(good), "llama")
    w.add_name("ballast-corrupt-fixture")
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_block_count(1)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_rope_dimension_count(hidden // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(32)] + \
             ["▁", "a", "b", "c", "d", "e", "▁a", "▁b", "▁c", "ab", "bc", "cd"]
    tokens += [f"t{i}" for i in range(n_vocab - len(tokens))]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(n_vocab)])
    w.add_token_types([2, 3, 3] + [6] * 32 + [1] * (n_vocab - 35))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def t(shape):
        return (rng.standard_normal(shape) / (shape[-1] ** 0.5)).astype(np.float32)
    w.add_tensor("token_embd.weight", t((n_vocab, hidden)))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(hidden, np.float32))
    w.add_tensor("blk.0.attn_q.weight", t((hidden, hidden)))
    w.add_tensor("blk.0.attn_k.weight", t((hidden, hidden)))
    w.add_tensor("blk.0.attn_v.weight", t((hidden, hidden)))
    w.add_tensor("blk.0.attn_output.weight", t((hidden, hidden)))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(hidden, np.float32))
    w.add_tensor("blk.0.ffn_gate.weight", t((ffn, hidden)))
    w.add_tensor("blk.0.ffn_up.weight", t((ffn, hidden)))
    w.add_tensor("blk.0.ffn_down.weight", t((hidden, ffn)))
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    w.add_tensor("output.weight", t((n_vocab, hidden)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    data = bytearray(good.read_bytes())
    reader = gguf.GGUFReader(str(good))
    target = "blk.0.ffn_down.weight"
    ti = next(t for t in reader.tensors if t.name == target)
    # Tensor info = name, n_dims, dims, type, offset: the offset is the field's last part.
    off_pos = int(ti.field.offset) + sum(int(p.nbytes) for p in ti.field.parts[:-1])
    (old,) = struct.unpack_from("<Q", data, off_pos)
    assert old == ti.data_offset - reader.data_offset, (old, ti.data_offset)
    new = len(data) + 4096
    struct.pack_into("<Q", data, off_pos, new)
    (dst / "bad.gguf").write_bytes(bytes(data))
    manifest = {"name": name, "tokenizer": None, "notes": next(c["notes"] for c in CORRUPT if c["name"] == name),
                "patched_tensor": target, "original_offset": old, "patched_offset": new,
                "file_size": len(data)}
    (dst / "fixture.json").write_text(json.dumps(manifest, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures"))
    ap.add_argument("--only", nargs="*", help="fixture names to (re)build")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    want = set(args.only or [])
    for spec in SPECS:
        if not want or spec["name"] in want:
            make_fixture(spec, out)
    for spec in TORCH_BIN:
        if not want or spec["name"] in want:
            make_torch_bin(out, spec)
    if not want or "corrupt_truncated_safetensors" in want:
        make_truncated_safetensors(out, "vocab_eos_out_of_range", "corrupt_truncated_safetensors")
    if not want or "corrupt_gguf_offset" in want:
        make_gguf(out, "corrupt_gguf_offset")


if __name__ == "__main__":
    main()
