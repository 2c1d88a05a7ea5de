"""Correctness of the CPU engine against transformers fp32 (issue 2 item 8): for every tiny
random-weight fixture of tests/fixtures, greedy generation from the recorded prompt ids must give
transformers' top-10 logprobs within 1e-3 and the same ids wherever the reference's top-2 margin
exceeds 1e-3. Prompts are given as ids so these tests do not depend on the tokenizer; the
text->ids check is a separate test at the end. docs/fixtures.md describes the fixtures."""
import json

import pytest

from fixture_lib import (FIXTURES, assert_clean_error, check_against_reference, compare_case, expected, fixture,
                         generate, run)

MODEL_FIXTURES = ["llama", "llama_oldcfg", "mistral", "qwen2", "qwen3", "gemma3", "gpt2", "gpt2_bin", "gpt2_bin_legacy",
                  "phi3", "t5", "t5_relu_tied"]
CASES = [(name, i) for name in MODEL_FIXTURES for i in range(len(expected(name)["cases"]))]


@pytest.mark.parametrize("name,case", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_matches_transformers(name, case):
    stats = check_against_reference(name, case)
    print(f"\n{name} case {case}: {json.dumps(stats)}")


def test_old_and_new_config_forms_agree():
    """llama_oldcfg has llama's weights with rope_theta/rope_scaling instead of rope_parameters."""
    a = json.loads((FIXTURES / "llama" / "config.json").read_text())
    b = json.loads((FIXTURES / "llama_oldcfg" / "config.json").read_text())
    assert "rope_parameters" in a and "rope_scaling" in b and "rope_parameters" not in b
    ids = expected("llama")["cases"][1]["prompt_ids"]
    outs = []
    for name in ("llama", "llama_oldcfg"):
        r = run("generate", "--model", fixture(name), "--prompt-ids", ",".join(map(str, ids)), "--max-tokens", 4,
                "--temperature", 0, "--top-logprobs", 5, "--ignore-eos", "--json", "--exact")
        assert r.rc == 0, repr(r)
        outs.append(r.json)
    assert outs[0]["ids"] == outs[1]["ids"]
    assert outs[0]["top_logprobs"] == outs[1]["top_logprobs"]


@pytest.mark.parametrize("name", MODEL_FIXTURES)
def test_inspect_reports_architecture(name):
    r = run("inspect", "--model", fixture(name), "--json")
    assert r.rc == 0, repr(r)
    j = r.json
    cfg = json.loads((FIXTURES / name / "config.json").read_text())
    assert j["model"]["architecture"] == cfg["architectures"][0]
    # GPT-2 names its fields n_*, T5 d_model / num_layers (the encoder's) / d_kv.
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer", cfg.get("num_layers")))
    hidden = cfg.get("hidden_size", cfg.get("n_embd", cfg.get("d_model")))
    heads = cfg.get("num_attention_heads", cfg.get("n_head", cfg.get("num_heads")))
    assert j["model"]["layers"] == layers
    assert j["model"]["hidden"] == hidden
    assert j["model"]["head_dim"] == (cfg.get("head_dim") or cfg.get("d_kv") or hidden // heads)
    assert j["vocab"]["embedding_rows"] == expected(name)["rows"]
    assert j["vocab"]["valid_ids"] == expected(name)["valid_ids"]
    # Rows past the tokenizer's ids (qwen2/qwen3: 267, phi3: 53) are reported, and only then.
    rows, valid = expected(name)["rows"], expected(name)["valid_ids"]
    pads = [f for f in j["vocab"]["findings"] if f["id"] == "vocab.padding_rows"]
    if rows > valid:
        assert len(pads) == 1 and pads[0]["severity"] == "info", j["vocab"]["findings"]
        assert f"{rows - valid} head rows [{valid}, {rows})" in pads[0]["message"], pads[0]["message"]
    else:
        assert not pads, pads


def test_phi3_fixture_switches_longrope_tables():
    """The fixture is only meaningful if its cases run on both LongRoPE tables, and one switches
    from short to long during decoding, where keeping the short-table cache (instead of
    recomputing it, see docs/fixtures.md) would miss the reference by far more than the tolerance."""
    cfg = json.loads((FIXTURES / "phi3" / "config.json").read_text())
    orig = cfg["original_max_position_embeddings"]
    assert cfg["rope_scaling"]["short_factor"] != cfg["rope_scaling"]["long_factor"]
    lens = [(len(c["prompt_ids"]), len(c["prompt_ids"]) + len(c["ids"]) - 1) for c in expected("phi3")["cases"]]
    assert any(last < orig for _, last in lens) and any(first > orig for first, _ in lens), lens
    switch = [c for c in expected("phi3")["cases"] if c.get("longrope_switch")]
    assert switch and switch[0]["longrope_switch"]["cached_without_recompute_max_abs_logprob_diff"] > 0.1


def test_phi3_chunked_prefill_uses_the_prompt_length():
    """A prompt longer than the original context runs on the long factors in every prefill chunk,
    also the chunks that end before position 64 (the 582-token case in chunks of 32)."""
    case = next(c for c in expected("phi3")["cases"] if len(c["prompt_ids"]) > 500)
    r = generate(fixture("phi3"), case["prompt_ids"], len(case["ids"]), "--token-budget", 32)
    assert r.rc == 0, repr(r)
    stats = compare_case(case, r.json)
    print(f"\nphi3 chunked prefill: {json.dumps(stats)}")


@pytest.mark.parametrize("form", ["su", "rope_parameters"])
def test_phi3_config_forms_agree(tmp_path, form):
    """Phi-3 configs name LongRoPE "su" (older hub files) or carry it in transformers 5's
    rope_parameters (original_max_position_embeddings and partial_rotary_factor inside): same
    output as the fixture's hub form, on the case that switches tables."""
    src = fixture("phi3")
    cfg = json.loads((src / "config.json").read_text())
    rs = cfg.pop("rope_scaling")
    if form == "su":
        rs["type"] = "su"
        cfg["rope_scaling"] = rs
    else:
        cfg["rope_parameters"] = {"rope_type": "longrope", "rope_theta": cfg.pop("rope_theta"),
                                  "short_factor": rs["short_factor"], "long_factor": rs["long_factor"],
                                  "original_max_position_embeddings": cfg["original_max_position_embeddings"],
                                  "partial_rotary_factor": cfg.pop("partial_rotary_factor")}
    for f in src.iterdir():
        if f.name != "config.json":
            (tmp_path / f.name).symlink_to(f)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    case = next(c for c in expected("phi3")["cases"] if c.get("longrope_switch"))
    outs = []
    for model in (src, tmp_path):
        r = run("generate", "--model", model, "--prompt-ids", ",".join(map(str, case["prompt_ids"])),
                "--max-tokens", len(case["ids"]), "--temperature", 0, "--top-logprobs", 5, "--ignore-eos", "--json")
        assert r.rc == 0, repr(r)
        outs.append(r.json)
    assert outs[0]["ids"] == outs[1]["ids"]
    assert outs[0]["top_logprobs"] == outs[1]["top_logprobs"]


def test_longrope_refused_where_unimplemented(tmp_path):
    """Only Phi-3 runs LongRoPE's two tables; a Llama config asking for it fails clearly instead of
    silently rotating with the short factors alone."""
    src = fixture("llama_oldcfg")
    cfg = json.loads((src / "config.json").read_text())
    cfg["rope_scaling"] = {"type": "longrope", "short_factor": [1.0] * 4, "long_factor": [2.0] * 4}
    for f in src.iterdir():
        if f.name != "config.json":
            (tmp_path / f.name).symlink_to(f)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    r = run("generate", "--model", tmp_path, "--prompt-ids", "1,2,3", "--max-tokens", 1, "--temperature", 0)
    assert_clean_error(r, "longrope", "LlamaForCausalLM")


# Last: depends on the tokenizer module, not on the model code.
@pytest.mark.parametrize("name", MODEL_FIXTURES)
def test_prompt_text_gives_reference_ids(name):
    for case in expected(name)["cases"]:
        r = run("generate", "--model", fixture(name), "--prompt", case["prompt"], "--max-tokens", 1,
                "--temperature", 0, "--ignore-eos", "--json")
        assert r.rc == 0, repr(r)
        assert r.json["prompt_ids"] == case["prompt_ids"], f"prompt {case['prompt']!r}"
