#!/usr/bin/env python3
"""Build the T5 (encoder-decoder) fixtures under tests/fixtures and record transformers' fp32
reference, in the format of tools/make_fixtures.py (docs/fixtures.md):

    /work/torchenv/bin/python tools/make_t5_fixtures.py --out tests/fixtures [--only t5]

Each case's `prompt_ids` are the ENCODER input (the tokenizer's ids, `</s>` appended as T5's
post-processor does); `ids` are the greedy decoder ids after decoder_start_token_id (not
included), `steps` the top-10 logprobs of each decoder step.

The tokenizer is T5-shaped but small: a Unigram model trained here with HF `tokenizers` on a
fixed corpus (Metaspace pre-tokenizer, `<pad>`=0 `</s>`=1 `<unk>`=2, `<extra_id_0..99>` as the
last 100 ids, `$A </s>` post-processor). No PyPI package ships the real T5 `spiece.model`, so
this one is committed with the fixture (tens of KB). The embedding has 28 more rows than the
tokenizer has ids, as flan-t5 (32,128 rows over 32,100 ids): padding rows the audit masks.
Weights are seeded; the Unigram training is not reproducible run to run, hence the committed tokenizer.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import MAX_NEW, PROMPTS, REPO, TOP_K, valid_mask  # noqa: E402

N_EXTRA = 100
PAD_ROWS = 28

SPECS = [
    # flan-t5 / T5 v1.1: gated-GELU, untied head, encoder and decoder of different depths.
    dict(name="t5", seed=21, vocab=700,
         cfg=dict(d_model=16, d_kv=8, d_ff=24, num_layers=3, num_decoder_layers=2, num_heads=2,
                  relative_attention_num_buckets=8, relative_attention_max_distance=20,
                  feed_forward_proj="gated-gelu", tie_word_embeddings=False, layer_norm_epsilon=1e-6,
                  decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, is_encoder_decoder=True),
         notes="flan-t5 shape: gated-GELU, untied head, 3 encoder / 2 decoder layers (transformers 5.17 sizes the decoder cache by the encoder count, so the decoder has fewer), d_kv 8, "
               "8 relative buckets up to distance 20 (the long prompt saturates them)"),
    # Original T5: ReLU feed-forward, tied head with the d_model^-0.5 rescale.
    dict(name="t5_relu_tied", seed=22, vocab=700,
         cfg=dict(d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4, num_decoder_layers=2,
                  relative_attention_num_buckets=32, relative_attention_max_distance=128,
                  feed_forward_proj="relu", tie_word_embeddings=True, layer_norm_epsilon=1e-6,
                  decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, is_encoder_decoder=True),
         notes="original T5: ReLU feed-forward, tied head (output rescaled by d_model^-0.5), 4 heads of 4"),
]

CORPUS = PROMPTS + [
    "translate English to German: The house is wonderful.",
    "summarize: studies have shown that owning a dog is good for you",
    "Answer the following question. What is the capital of France?",
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
    "Grüße aus München! Ça va? ¿Qué tal? 日本語のテキスト 🙂 1234567890 def f(x): return x * 2",
]


def train_tokenizer(vocab: int) -> tuple[bytes, bytes]:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", shrinking_factor=0.75, n_sub_iterations=2)
    corpus = CORPUS * 20 + [f"Chapter {i}: the river past the old mill, {i * 7} sacks" for i in range(200)]
    tok.train_from_iterator(corpus, trainer=trainer)
    n = tok.get_vocab_size()
    # Sentinels as T5 has them: <extra_id_0> is the highest id.
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken(f"<extra_id_{N_EXTRA - 1 - i}>", special=True) for i in range(N_EXTRA)])
    assert tok.token_to_id("<extra_id_0>") == n + N_EXTRA - 1, tok.token_to_id("<extra_id_0>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    tj = json.dumps(json.loads(tok.to_str()), indent=1, ensure_ascii=False).encode()
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "</s>", "pad_token": "<pad>",
          "unk_token": "<unk>", "model_max_length": 512,
          "additional_special_tokens": [f"<extra_id_{i}>" for i in range(N_EXTRA)]}
    return tj, (json.dumps(tc, indent=1) + "\n").encode()


def init_weights(model, seed: int):
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "layer_norm" in name:
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.3)
            elif name in ("shared.weight", "lm_head.weight"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif "relative_attention_bias" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith((".q.weight", ".k.weight")):
                # T5 does not scale scores by 1/sqrt(d_kv): moderate q/k keep the softmax from
                # saturating, so bf16 backends stay comparable (scores of std ~2, not ~10).
                p.copy_(torch.randn(p.shape, generator=g) * 0.6 / p.shape[1] ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 2.0 / p.shape[1] ** 0.5)


def make(spec: dict, out: Path):
    import torch
    import transformers
    from transformers import AutoTokenizer, GenerationConfig, LogitsProcessor

    dst = out / spec["name"]
    dst.mkdir(parents=True, exist_ok=True)
    tj, tc = train_tokenizer(spec["vocab"])
    (dst / "tokenizer.json").write_bytes(tj)
    (dst / "tokenizer_config.json").write_bytes(tc)
    tok_json = json.loads(tj)
    n_ids = len(tok_json["model"]["vocab"]) + len([t for t in tok_json["added_tokens"]
                                                   if t["id"] >= len(tok_json["model"]["vocab"])])
    rows = n_ids + PAD_ROWS
    config = transformers.T5Config(vocab_size=rows, **spec["cfg"])
    config.architectures = ["T5ForConditionalGeneration"]
    torch.manual_seed(spec["seed"])
    model = transformers.T5ForConditionalGeneration(config).eval()
    init_weights(model, spec["seed"])
    # transformers 5 always ties T5's head to the shared embedding (scale_decoder_outputs
    # carries the original-T5 rescale). flan-t5 checkpoints have their own lm_head.weight and
    # tie_word_embeddings: false: the untied fixture gets a separate head here, is saved by
    # hand in that form, and the reference is this in-memory model (bf16-rounded weights).
    untied = spec["cfg"].get("tie_word_embeddings") is False
    if untied:
        g = torch.Generator().manual_seed(spec["seed"] + 1000)
        model.lm_head.weight = torch.nn.Parameter(torch.randn(rows, config.d_model, generator=g))
        model.config.scale_decoder_outputs = False
    model.to(torch.bfloat16)
    from safetensors.torch import save_file
    skip = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"} | (set() if untied else {"lm_head.weight"})
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k not in skip}, str(dst / "model.safetensors"),
              metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg["architectures"] = ["T5ForConditionalGeneration"]
    if untied:  # as flan-t5's config.json says it
        cfg["tie_word_embeddings"] = False
        cfg.pop("scale_decoder_outputs", None)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    gen = {"decoder_start_token_id": config.decoder_start_token_id, "eos_token_id": 1, "pad_token_id": 0}
    (dst / "generation_config.json").write_text(json.dumps(gen, indent=2, sort_keys=True) + "\n")
    valid = valid_mask(tok_json, rows)
    assert sum(valid) == n_ids

    tok = AutoTokenizer.from_pretrained(dst)
    ref = model.float().eval()
    if hasattr(ref, "set_attn_implementation"):
        ref.set_attn_implementation("eager")
    invalid = torch.tensor([not v for v in valid])

    class MaskInvalid(LogitsProcessor):
        def __call__(self, input_ids, scores):
            return scores.masked_fill(invalid, float("-inf"))

    gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=None, pad_token_id=0,
                               decoder_start_token_id=config.decoder_start_token_id,
                               output_logits=True, return_dict_in_generate=True)
    cases, worst = [], 0.0
    for text in PROMPTS:
        ids = tok(text)["input_ids"]
        assert ids[-1] == 1, ids
        with torch.no_grad():
            o = ref.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             generation_config=gen_cfg, logits_processor=[MaskInvalid()])
            seq = o.sequences[0].tolist()
            assert seq[0] == config.decoder_start_token_id
            gen = seq[1:]
            assert len(gen) == MAX_NEW
            full = ref(input_ids=torch.tensor([ids]), decoder_input_ids=torch.tensor([seq])).logits[0].float()
        steps = []
        for i, raw in enumerate(o.logits):
            raw = raw[0].float()
            lp = torch.log_softmax(raw.masked_fill(invalid, float("-inf")), -1)
            lp_full = torch.log_softmax(full[i].masked_fill(invalid, float("-inf")), -1)
            top = torch.topk(lp, TOP_K + 1)
            worst = max(worst, (lp_full[top.indices] - top.values).abs().max().item())
            assert top.indices[0].item() == gen[i]
            steps.append({"top": [[int(j), round(float(v), 6)] for j, v in zip(top.indices[:TOP_K], top.values[:TOP_K])],
                          "margin": round(float(top.values[0] - top.values[1]), 6),
                          "boundary_gap": round(float(top.values[TOP_K - 1] - top.values[TOP_K]), 6)})
        cases.append({"prompt": text, "prompt_ids": ids, "ids": gen, "steps": steps})
    expected = {"fixture": spec["name"], "architecture": "T5ForConditionalGeneration", "rows": rows,
                "valid_ids": sum(valid), "ignore_eos": True, "max_new_tokens": MAX_NEW, "top_k": TOP_K,
                "compute": "float32 (weights stored bfloat16)", "attn_implementation": "eager",
                "decoder_start_token_id": config.decoder_start_token_id,
                "generator": {"transformers": transformers.__version__, "torch": torch.__version__,
                              "device": "cpu", "python": sys.version.split()[0]},
                "reference_self_consistency_max_abs": worst, "cases": cases}
    (dst / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    manifest = {"name": spec["name"], "architecture": "T5ForConditionalGeneration", "tokenizer": None,
                "tokenizer_committed": True, "config_form": "new", "notes": spec["notes"]}
    (dst / "fixture.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    print(f"{spec['name']}: {rows} rows, {n_ids} tokenizer ids, {(dst / 'model.safetensors').stat().st_size} bytes, "
          f"self-consistency {worst:.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures"))
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    for spec in SPECS:
        if not a.only or spec["name"] in a.only:
            make(spec, Path(a.out))


if __name__ == "__main__":
    main()
