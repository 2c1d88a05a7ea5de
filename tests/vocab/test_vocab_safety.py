"""Vocabulary safety on crafted fixtures (issue 4, Tests): padding rows never sampled, unembeddable
tokenizer ids never produced from text and rejected as raw ids, invalid special ids dropped,
--strict-vocab refusing, NaN weights reported as numerical_error, corrupt files rejected with one
clear error line, and client ids validated (invalid_token_id). docs/fixtures.md lists the fixtures."""
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from fixture_lib import (FIXTURES, assert_clean_error, check_against_reference, compare_case,  # noqa: E402
                         expected, fixture, generate, run)


def inspect(name_or_path, *extra):
    path = fixture(name_or_path) if isinstance(name_or_path, str) else name_or_path
    r = run("inspect", "--model", path, "--json", *extra)
    assert r.rc == 0, repr(r)
    return r.json


def findings(report, fid):
    return [f for f in report["vocab"]["findings"] if f["id"] == fid]


# --- (a) Gemma-3-4B-like: 262208 rows, tokenizer ids 0..262144, padding rows are the raw argmax ---

PAD = "vocab_gemma3_padding_rows"


def test_padding_rows_reported():
    rep = inspect(PAD)
    v = rep["vocab"]
    assert v["embedding_rows"] == 262208
    assert v["valid_ids"] == 262145
    f = findings(rep, "vocab.padding_rows")
    assert f and f[0]["severity"] == "info", v["findings"]
    assert "262145" in f[0]["message"] and "262208" in f[0]["message"], f[0]["message"]
    assert not findings(rep, "vocab.unembeddable_tokens")


def test_padding_rows_are_the_raw_argmax_in_the_fixture():
    # The fixture is only meaningful if transformers' unmasked argmax is a padding row.
    for case in expected(PAD)["cases"]:
        assert all(s["raw_argmax"] >= 262145 for s in case["steps"])


@pytest.mark.parametrize("case", range(len(expected(PAD)["cases"])))
def test_padding_rows_never_sampled_and_match_masked_reference(case):
    stats = check_against_reference(PAD, case)
    assert all(i < 262145 for i in stats["ids"]), stats["ids"]
    print(f"\n{PAD} case {case}: {json.dumps(stats)}")


def test_padding_rows_never_in_top_logprobs():
    ids = expected(PAD)["cases"][0]["prompt_ids"]
    r = generate(fixture(PAD), ids, 4)
    assert r.rc == 0, repr(r)
    assert all(t[0] < 262145 for step in r.json["top_logprobs"] for t in step)


def test_padding_rows_never_sampled_with_temperature():
    ids = expected(PAD)["cases"][1]["prompt_ids"]
    for seed in (1, 2, 3):
        r = run("generate", "--model", fixture(PAD), "--prompt-ids", ",".join(map(str, ids)), "--max-tokens", 16,
                "--temperature", 1.5, "--seed", seed, "--ignore-eos", "--json")
        assert r.rc == 0, repr(r)
        assert all(i < 262145 for i in r.json["ids"]), r.json["ids"]


# --- (b) Gemma-3-1B-like: exactly 262144 rows; <image_soft_token> = 262144 is unembeddable ---

G1B = "gemma3"


def test_image_soft_token_reported_unembeddable():
    rep = inspect(G1B)
    assert rep["vocab"]["embedding_rows"] == 262144
    assert {"id": 262144, "token": "<image_soft_token>"} in rep["vocab"]["unembeddable"]
    f = findings(rep, "vocab.unembeddable_tokens")
    assert f and "<image_soft_token>" in f[0]["message"], rep["vocab"]["findings"]
    assert not findings(rep, "vocab.padding_rows")


def test_image_soft_token_text_generates():
    case = expected(G1B)["image_soft_token_text"]
    r = run("generate", "--model", fixture(G1B), "--prompt", case["prompt"], "--max-tokens", 4,
            "--temperature", 0, "--ignore-eos", "--json")
    assert r.rc == 0, repr(r)
    assert 262144 not in r.json["prompt_ids"]
    assert all(0 <= i < 262144 for i in r.json["prompt_ids"] + r.json["ids"])
    assert len(r.json["ids"]) == 4


def test_image_soft_token_text_is_tokenized_as_plain_text():
    # Reference: HF tokenizers with the <image_soft_token> added token removed.
    case = expected(G1B)["image_soft_token_text"]
    r = run("generate", "--model", fixture(G1B), "--prompt", case["prompt"], "--max-tokens", 1,
            "--temperature", 0, "--ignore-eos", "--json")
    assert r.rc == 0, repr(r)
    assert r.json["prompt_ids"] == case["prompt_ids"]


def test_raw_image_soft_token_id_rejected():
    r = generate(fixture(G1B), [2, 262144], 2)
    assert_clean_error(r, "invalid_token_id", "262144")


def test_strict_vocab_refuses_gemma3_1b():
    r = generate(fixture(G1B), [2, 100], 2, "--strict-vocab")
    assert_clean_error(r, "vocab.unembeddable_tokens")
    r = run("inspect", "--model", fixture(G1B), "--strict-vocab")
    assert_clean_error(r, "vocab.unembeddable_tokens")


# --- (c) tokens added to a llama tokenizer without resizing the model ---

ADDED = "vocab_added_tokens"
ADDED_TOKENS = {32000: "<|tool_call|>", 32001: "<|tool_result|>", 32002: "<|ballast_extra|>"}


def test_added_tokens_reported_unembeddable():
    rep = inspect(ADDED)
    v = rep["vocab"]
    assert v["embedding_rows"] == 32000
    assert v["tokenizer_size"] == 32003
    got = {u["id"]: u["token"] for u in v["unembeddable"]}
    assert got == ADDED_TOKENS
    f = findings(rep, "vocab.unembeddable_tokens")
    assert f and all(t in f[0]["message"] for t in ADDED_TOKENS.values()), f


@pytest.mark.parametrize("bad", sorted(ADDED_TOKENS))
def test_added_token_ids_rejected(bad):
    r = generate(fixture(ADDED), [1, 450, bad], 2)
    assert_clean_error(r, "invalid_token_id", str(bad))


def test_added_token_text_generates():
    r = run("generate", "--model", fixture(ADDED), "--prompt", "Call <|tool_call|> then <|tool_result|> done",
            "--max-tokens", 3, "--temperature", 0, "--ignore-eos", "--json")
    assert r.rc == 0, repr(r)
    assert all(0 <= i < 32000 for i in r.json["prompt_ids"] + r.json["ids"]), r.json


def test_added_tokens_strict_vocab_refuses():
    r = generate(fixture(ADDED), [1, 450], 2, "--strict-vocab")
    assert_clean_error(r, "vocab.unembeddable_tokens")


def test_added_tokens_model_matches_reference():
    stats = check_against_reference(ADDED, 1)
    print(f"\n{ADDED}: {json.dumps(stats)}")


def test_resize_embeddings_matches_reference():
    # Opt-in policy (issue 4 item 2): rows grow to cover every tokenizer id, new rows = mean row;
    # reference = transformers with the same resize done to the fp32 model.
    ref = expected(ADDED)["resize_embeddings"]
    case = ref["cases"][0]
    assert any(i >= 32000 for i in case["prompt_ids"])
    r = generate(fixture(ADDED), case["prompt_ids"], len(case["ids"]), "--resize-embeddings")
    assert r.rc == 0, repr(r)
    assert "resiz" in r.stderr.lower(), f"--resize-embeddings must be announced: {r.stderr!r}"
    stats = compare_case(case, r.json)
    print(f"\n{ADDED} --resize-embeddings: {json.dumps(stats)}")
    rep = inspect(ADDED, "--resize-embeddings")
    assert rep["vocab"]["embedding_rows"] == ref["rows"]
    assert not findings(rep, "vocab.unembeddable_tokens")


# --- (d) eos out of range in generation_config.json ---

EOS = "vocab_eos_out_of_range"


def test_invalid_eos_reported_and_dropped():
    rep = inspect(EOS)
    f = [x for x in findings(rep, "vocab.special_id_invalid") if "40000" in x["message"]]
    assert f, rep["vocab"]["findings"]
    assert f[0]["severity"] == "warning"
    assert "generation_config.json" in f[0]["message"] or "generation_config.json" in f[0]["hint"]
    assert 2 in rep["vocab"]["stop_ids"] and 40000 not in rep["vocab"]["stop_ids"]


def test_invalid_eos_still_generates():
    r = run("generate", "--model", fixture(EOS), "--prompt-ids", "1,450,4996", "--max-tokens", 4,
            "--temperature", 0, "--json")
    assert r.rc == 0, repr(r)
    assert r.json["finish_reason"] in ("stop", "length")


def test_invalid_eos_strict_vocab_refuses():
    r = generate(fixture(EOS), [1, 450], 2, "--strict-vocab")
    assert_clean_error(r, "vocab.special_id_invalid", "40000")


# --- client-supplied ids (issue 4 item 3) ---

@pytest.mark.parametrize("ids,bad,pos", [
    ("1,450,32000", "32000", 2),        # = rows
    ("1,-1,450", "-1", 1),              # negative
    ("1,450,1.5", "1.5", 2),            # not an integer
    ("1,4294967297", "4294967297", 1),  # beyond 32 bits (wraps to 1 if truncated)
    ("1,99999999999999999999", "99999999999999999999", 1),  # beyond 64 bits
    ("1,abc", "abc", 1),                # not a number
])
def test_prompt_ids_validated(ids, bad, pos):
    r = run("generate", "--model", fixture(EOS), "--prompt-ids", ids, "--max-tokens", 2, "--temperature", 0, "--json")
    assert_clean_error(r, "invalid_token_id", bad)
    assert re.search(rf"\b{pos}\b", r.error_lines[0]), f"position {pos} not named: {r.error_lines[0]}"


# --- (e) a NaN weight in layer 1 ---

NAN = "vocab_nan_weight"


def test_nan_weight_gives_numerical_error():
    r = generate(fixture(NAN), [1, 450, 4996, 17354], 4)
    assert_clean_error(r, "numerical_error")


def test_check_numerics_names_layer_1():
    r = generate(fixture(NAN), [1, 450, 4996, 17354], 4, "--check-numerics")
    assert_clean_error(r, "numerical_error")
    assert re.search(r"layer[ s\[:=#]*1\b", r.error_lines[0].lower()), r.error_lines[0]


def test_scan_weights_finds_the_nan():
    rep = inspect(NAN, "--scan-weights")
    bad = {s["tensor"]: s for s in rep["scan"]}
    assert list(bad) == ["model.layers.1.mlp.down_proj.weight"], rep["scan"]
    assert bad["model.layers.1.mlp.down_proj.weight"]["nan"] == 1


def test_check_numerics_passes_on_healthy_model():
    stats = check_against_reference(ADDED, 0, "--check-numerics")
    assert stats["steps_compared"] >= 1


# --- every fixture: the human-readable report ---

@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()
                                        if (p / "expected.json").exists() or p.name == "vocab_nan_weight"))
def test_inspect_human_report(name):
    r = run("inspect", "--model", fixture(name))
    assert r.rc == 0, repr(r)
    assert "findings" in r.stdout and "vocab" in r.stdout.lower()


# --- (f) corrupt files ---

def test_truncated_safetensors_rejected():
    d = FIXTURES / "corrupt_truncated_safetensors"
    fixture("corrupt_truncated_safetensors")
    for cmd in (["inspect", "--model", d], ["generate", "--model", d, "--prompt-ids", "1,2", "--max-tokens", "1"]):
        r = run(*cmd)
        assert_clean_error(r, "model.safetensors")


def test_gguf_offset_past_end_rejected():
    d = FIXTURES / "corrupt_gguf_offset"
    man = json.loads((d / "fixture.json").read_text())
    for cmd in (["inspect", "--model", d / "bad.gguf"],
                ["generate", "--model", d / "bad.gguf", "--prompt-ids", "1,2", "--max-tokens", "1"]):
        r = run(*cmd)
        assert_clean_error(r, "bad.gguf")
        line = r.error_lines[0]
        assert man["patched_tensor"] in line or "offset" in line.lower(), line


def test_gguf_unpatched_control_loads():
    # The same file before the offset patch loads: the error above is about the offset alone.
    d = FIXTURES / "corrupt_gguf_offset"
    r = run("inspect", "--model", d / "good.gguf", "--json")
    assert r.rc == 0, repr(r)
    r = run("generate", "--model", d / "good.gguf", "--prompt-ids", "1,40,41", "--max-tokens", 2,
            "--temperature", 0, "--ignore-eos", "--json")
    assert r.rc == 0, repr(r)
    assert all(0 <= i < 64 for i in r.json["ids"])
