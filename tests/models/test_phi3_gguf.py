"""Phi-3 from GGUF: the phi3 fixture written as llama.cpp's converter lays a Phi-3 GGUF out
(fused blk.N.attn_qkv and blk.N.ffn_up = gate|up, LongRoPE as rope_factors_long/short tensors with
rope.scaling.attn_factor and rope.scaling.original_context_length, partial rotary as
rope.dimension_count, attention.sliding_window) must give the HF fixture's output: the same
weights (bf16 widened to f32), so the same logprobs, on the case that switches to the long factors
and on the 582-token one."""
import json
import math
import struct

import numpy as np
import pytest

from fixture_lib import compare_case, expected, fixture, generate, run

gguf = pytest.importorskip("gguf")


def read_safetensors(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = np.frombuffer(data[8 + n + a:8 + n + b], dtype=np.uint16)
        assert t["dtype"] == "BF16", t["dtype"]
        out[name] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(t["shape"])
    return out


def write_phi3_gguf(src, dst):
    cfg = json.loads((src / "config.json").read_text())
    tok = json.loads((src / "tokenizer.json").read_text())
    w8 = read_safetensors(src / "model.safetensors")
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    rot = int(hd * cfg["partial_rotary_factor"])
    orig, ctx = cfg["original_max_position_embeddings"], cfg["max_position_embeddings"]
    w = gguf.GGUFWriter(str(dst), "phi3")
    w.add_context_length(ctx)
    w.add_rope_scaling_orig_ctx_len(orig)
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(rot)
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_sliding_window(cfg["sliding_window"])
    w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(ctx / orig) / math.log(orig)))
    w.add_file_type(0)
    # The vocabulary: ids 0..32010 (llama2 pieces + Phi-3's added tokens), no scores needed here
    # (prompts are given as ids); rows 32011..32063 stay without a token, as in the HF fixture.
    n = 1 + max(max(tok["model"]["vocab"].values()), max(t["id"] for t in tok["added_tokens"]))
    pieces, types = [""] * n, [1] * n
    for p, i in tok["model"]["vocab"].items():
        pieces[i] = p
        types[i] = 6 if p.startswith("<0x") and len(p) == 6 else 1
    for t in tok["added_tokens"]:
        pieces[t["id"]] = t["content"]
        types[t["id"]] = 3 if t["special"] else 4
    types[0] = 2
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores([-float(i) for i in range(n)])
    w.add_token_types(types)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_unk_token_id(0)
    rs = cfg["rope_scaling"]
    w.add_tensor("rope_factors_long.weight", np.array(rs["long_factor"], np.float32))
    w.add_tensor("rope_factors_short.weight", np.array(rs["short_factor"], np.float32))
    w.add_tensor("token_embd.weight", w8["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", w8["model.norm.weight"])
    w.add_tensor("output.weight", w8["lm_head.weight"])
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        for g, h in [("attn_norm", "input_layernorm"), ("attn_qkv", "self_attn.qkv_proj"),
                     ("attn_output", "self_attn.o_proj"), ("ffn_norm", "post_attention_layernorm"),
                     ("ffn_up", "mlp.gate_up_proj"), ("ffn_down", "mlp.down_proj")]:
            w.add_tensor(f"blk.{l}.{g}.weight", w8[p + h + ".weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def phi3_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("phi3_gguf") / "phi3.gguf"
    write_phi3_gguf(fixture("phi3"), path)
    return path


@pytest.mark.parametrize("which", ["switch", "long_prompt"])
def test_phi3_gguf_matches_hf(phi3_gguf, which):
    cases = expected("phi3")["cases"]
    case = next(c for c in cases if c.get("longrope_switch")) if which == "switch" else \
        next(c for c in cases if len(c["prompt_ids"]) > 500)
    outs = []
    for model in (fixture("phi3"), phi3_gguf):
        r = generate(model, case["prompt_ids"], len(case["ids"]))
        assert r.rc == 0, repr(r)
        outs.append(r.json)
    assert outs[1]["ids"] == outs[0]["ids"]
    diff = 0.0
    for a, b in zip(outs[0]["top_logprobs"], outs[1]["top_logprobs"]):
        assert [i for i, _ in a] == [i for i, _ in b]
        diff = max(diff, max(abs(x - y) for (_, x), (_, y) in zip(a, b)))
    # The same values through the f32 instead of the bf16 matmul kernels: rounding only (this
    # fixture's fp32 noise floor is ~1e-4, see reference_self_consistency_max_abs).
    assert diff < 5e-4, diff
    stats = compare_case(case, outs[1])
    print(f"\nphi3 GGUF {which}: vs HF run {diff:.2e}, vs transformers {json.dumps(stats)}")


def test_phi3_gguf_inspect(phi3_gguf):
    r = run("inspect", "--model", phi3_gguf, "--json")
    assert r.rc == 0, repr(r)
    j = r.json
    assert j["model"]["architecture"] == "phi3" and j["model"]["layers"] == 2 and j["model"]["head_dim"] == 16
    assert j["vocab"]["embedding_rows"] == 32064 and j["vocab"]["valid_ids"] == 32011
    pads = [f for f in j["vocab"]["findings"] if f["id"] == "vocab.padding_rows"]
    assert pads and "53 head rows [32011, 32064)" in pads[0]["message"], j["vocab"]["findings"]
