"""GPT-2 (Conv1D (in, out) weights, learned positions, LayerNorm + bias, fused c_attn) against a
float64 numpy forward of the same tiny random checkpoint, written here in safetensors by hand. The
transformers fixture (tests/fixtures/gpt2, when present) checks the same architecture against HF."""
import json
import os
import struct

import numpy as np

from fixture_lib import run


def build(d):
    rng = np.random.default_rng(0)
    V, H, L, NH, P = 300, 16, 2, 2, 64
    F = 4 * H
    t = {}
    t["transformer.wte.weight"] = rng.standard_normal((V, H)).astype(np.float32)
    t["transformer.wpe.weight"] = (rng.standard_normal((P, H)) * 0.5).astype(np.float32)
    for l in range(L):
        p = f"transformer.h.{l}."
        t[p+"ln_1.weight"] = (1 + 0.3*rng.standard_normal(H)).astype(np.float32)
        t[p+"ln_1.bias"] = (0.3*rng.standard_normal(H)).astype(np.float32)
        t[p+"attn.c_attn.weight"] = (rng.standard_normal((H, 3*H)) * 2 / H**0.5).astype(np.float32)
        t[p+"attn.c_attn.bias"] = (0.5*rng.standard_normal(3*H)).astype(np.float32)
        t[p+"attn.c_proj.weight"] = (rng.standard_normal((H, H)) * 2 / H**0.5).astype(np.float32)
        t[p+"attn.c_proj.bias"] = (0.5*rng.standard_normal(H)).astype(np.float32)
        t[p+"ln_2.weight"] = (1 + 0.3*rng.standard_normal(H)).astype(np.float32)
        t[p+"ln_2.bias"] = (0.3*rng.standard_normal(H)).astype(np.float32)
        t[p+"mlp.c_fc.weight"] = (rng.standard_normal((H, F)) * 2 / H**0.5).astype(np.float32)
        t[p+"mlp.c_fc.bias"] = (0.5*rng.standard_normal(F)).astype(np.float32)
        t[p+"mlp.c_proj.weight"] = (rng.standard_normal((F, H)) * 2 / F**0.5).astype(np.float32)
        t[p+"mlp.c_proj.bias"] = (0.5*rng.standard_normal(H)).astype(np.float32)
    t["transformer.ln_f.weight"] = (1 + 0.3*rng.standard_normal(H)).astype(np.float32)
    t["transformer.ln_f.bias"] = (0.3*rng.standard_normal(H)).astype(np.float32)
    hdr, off, blobs = {}, 0, []
    for k, v in t.items():
        b = v.tobytes(); hdr[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off+len(b)]}; off += len(b); blobs.append(b)
    h = json.dumps(hdr).encode(); h += b" " * ((8 - len(h) % 8) % 8)
    open(d + "/model.safetensors","wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    json.dump({"architectures":["GPT2LMHeadModel"],"vocab_size":V,"n_embd":H,"n_layer":L,"n_head":NH,"n_positions":P,
               "n_inner":None,"activation_function":"gelu_new","layer_norm_epsilon":1e-5,"bos_token_id":256,"eos_token_id":256}, open(d + "/config.json","w"))
    # tokenizer: byte-level-ish WordLevel over V ids
    vocab = {f"<0x{i:02X}>": i for i in range(256)}; vocab.update({f"<t{i}>": i for i in range(256, V)})
    json.dump({"version":"1.0","added_tokens":[],"normalizer":None,"pre_tokenizer":None,"post_processor":None,"decoder":{"type":"ByteFallback"},
               "model":{"type":"BPE","vocab":vocab,"merges":[],"byte_fallback":True,"unk_token":None,"dropout":None,"fuse_unk":False}}, open(d + "/tokenizer.json","w"))
    def ln(x, w, b): m = x.mean(-1, keepdims=True); v = ((x-m)**2).mean(-1, keepdims=True); return (x-m)/np.sqrt(v+1e-5)*w+b
    def gelu(x): return 0.5*x*(1+np.tanh(np.sqrt(2/np.pi)*(x+0.044715*x**3)))
    ids = [5, 77, 200, 13, 99, 150, 42]
    x = t["transformer.wte.weight"][ids].astype(np.float64) + t["transformer.wpe.weight"][:len(ids)]
    n = len(ids); hd = H // NH
    for l in range(L):
        p = f"transformer.h.{l}."
        a = ln(x, t[p+"ln_1.weight"], t[p+"ln_1.bias"]) @ t[p+"attn.c_attn.weight"] + t[p+"attn.c_attn.bias"]
        q, k, v = a[:, :H], a[:, H:2*H], a[:, 2*H:]
        o = np.zeros((n, H))
        for hh in range(NH):
            s = q[:, hh*hd:(hh+1)*hd] @ k[:, hh*hd:(hh+1)*hd].T / np.sqrt(hd)
            s = s + np.triu(np.full((n, n), -np.inf), 1)
            s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
            o[:, hh*hd:(hh+1)*hd] = s @ v[:, hh*hd:(hh+1)*hd]
        x = x + o @ t[p+"attn.c_proj.weight"] + t[p+"attn.c_proj.bias"]
        m = gelu(ln(x, t[p+"ln_2.weight"], t[p+"ln_2.bias"]) @ t[p+"mlp.c_fc.weight"] + t[p+"mlp.c_fc.bias"])
        x = x + m @ t[p+"mlp.c_proj.weight"] + t[p+"mlp.c_proj.bias"]
    logits = ln(x, t["transformer.ln_f.weight"], t["transformer.ln_f.bias"]) @ t["transformer.wte.weight"].T
    lp = logits[-1] - np.log(np.exp(logits[-1] - logits[-1].max()).sum()) - logits[-1].max()
    top = np.argsort(-lp)[:5]
    

    return ids, lp


def test_gpt2_matches_numpy_reference(tmp_path):
    d = str(tmp_path)
    ids, lp = build(d)
    r = run("generate", "--model", d, "--prompt-ids", ",".join(map(str, ids)), "--max-tokens", 1, "--temperature", 0,
            "--top-logprobs", 5, "--ignore-eos", "--json", "--exact")
    assert r.rc == 0, r
    ours = r.json["top_logprobs"][0]
    ref = np.argsort(-lp)[:5]
    assert [i for i, _ in ours] == [int(i) for i in ref], (ours, ref)
    for (i, v) in ours:
        assert abs(v - lp[i]) < 1e-4, (i, v, lp[i])
