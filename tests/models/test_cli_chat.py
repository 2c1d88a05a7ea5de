"""`ballast chat` on a model without a chat template: GPT-2 (DialoGPT convention) joins the turns
with eos and must reply exactly what `generate` gives for those ids; T5 (no template, not GPT-2)
is refused with an `error:` line."""
import subprocess

from tokenizers import Tokenizer

from fixture_lib import ballast_bin, fixture, run


def test_gpt2_chat_is_eos_joined_turns():
    model = fixture("gpt2")
    p = subprocess.run([ballast_bin(), "chat", "--model", str(model), "-n", "5", "--temperature", "0"],
                       input="Hello there\n", capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "joined with the eos token" in p.stderr
    reply = p.stdout.split("> ", 1)[1].split("\n", 1)[0]
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    ids = tok.encode("Hello there", add_special_tokens=False).ids + [2]  # eos of this fixture's tokenizer
    r = run("generate", "--model", str(model), "--prompt-ids", ",".join(map(str, ids)), "-n", "5",
            "--temperature", "0", "--json")
    assert r.rc == 0, repr(r)
    assert reply == r.json["text"]


def test_t5_chat_is_refused():
    p = subprocess.run([ballast_bin(), "chat", "--model", str(fixture("t5"))], input="hi\n", capture_output=True,
                       text=True, timeout=120)
    assert p.returncode != 0
    assert [l for l in p.stderr.splitlines() if l.startswith("error:")] and "no chat template" in p.stderr
