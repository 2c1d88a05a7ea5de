"""Conformance: our C++ chat-template renderer vs Python jinja2 with transformers' setup.

Every template in shared/chat-templates and every chat_template in shared/tokenizers is
rendered for a set of conversations by both engines; outputs must be byte-identical and
errors (raise_exception, undefined access...) must occur on the same cases.

Our side runs `ballast chat-render` (or the command in BALLAST_CHAT_RENDER), which reads
one JSON request per line and answers one JSON line.
"""

import glob
import json
import os
import shlex
import subprocess
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from conversations import MARKER, all_cases

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("BALLAST_SHARED", ROOT.parent / "shared"))
FIXED_NOW = datetime(2024, 7, 26, 10, 30, 0)
FIXED_NOW_STR = "2024-07-26 10:30:00"


# ---- reference: transformers' jinja environment ------------------------------------------

class GenerationTracker(jinja2.ext.Extension):
    """transformers' AssistantTracker: {% generation %} renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def reference_render(source, messages, tools, agp, bos, eos):
    try:
        tmpl = ENV.from_string(source)
        return {"text": tmpl.render(messages=messages, tools=tools, documents=None,
                                    add_generation_prompt=agp, bos_token=bos, eos_token=eos)}
    except Exception as e:  # noqa: BLE001 - any failure counts as "errors"
        return {"error": f"{type(e).__name__}: {e}"}


# ---- templates under test ----------------------------------------------------------------

def _token_str(tok):
    if isinstance(tok, dict):
        return tok.get("content", "")
    return tok or ""


def _load_tokenizer_config(d):
    plain = d / "tokenizer_config.json"
    if plain.exists():
        return json.loads(plain.read_text(encoding="utf-8"))
    packed = d / "tokenizer_config.json.zst"
    if packed.exists():
        out = subprocess.run(["zstd", "-dc", str(packed)], check=True, capture_output=True).stdout
        return json.loads(out.decode("utf-8"))
    return None


def collect_templates():
    found = []
    for path in sorted(glob.glob(str(SHARED / "chat-templates" / "*.jinja"))):
        found.append((Path(path).stem, Path(path).read_text(encoding="utf-8"), "<s>", "</s>"))
    for d in sorted(p for p in (SHARED / "tokenizers").iterdir() if p.is_dir()):
        cfg = _load_tokenizer_config(d)
        if not cfg or not cfg.get("chat_template"):
            continue
        bos, eos = _token_str(cfg.get("bos_token")), _token_str(cfg.get("eos_token"))
        ct = cfg["chat_template"]
        if isinstance(ct, str):
            found.append((f"tokenizer:{d.name}", ct, bos, eos))
        else:
            for entry in ct:
                found.append((f"tokenizer:{d.name}:{entry['name']}", entry["template"], bos, eos))
    return found


TEMPLATES = collect_templates()


# ---- our side ----------------------------------------------------------------------------

def render_command():
    custom = os.environ.get("BALLAST_CHAT_RENDER")
    if custom:
        return shlex.split(custom)
    binary = os.environ.get("BALLAST_BIN", str(ROOT / "build" / "bin" / "ballast"))
    return [binary, "chat-render"]


@pytest.fixture(scope="module")
def ours():
    cmd = render_command()
    if not Path(cmd[0]).exists():
        pytest.skip(f"renderer not built: {cmd[0]}")

    def run(requests):
        payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
        proc = subprocess.run(cmd, input=payload.encode("utf-8"), capture_output=True, timeout=600)
        # split on "\n" only: str.splitlines() would also split inside strings at U+2028 etc.
        lines = [ln for ln in proc.stdout.decode("utf-8").split("\n") if ln]
        if len(lines) != len(requests):
            if not lines and len(requests) > 0:
                pytest.skip(f"{' '.join(cmd)} produced no output (chat-render not wired?) "
                            f"rc={proc.returncode} stderr={proc.stderr[-300:]!r}")
            raise AssertionError(f"renderer answered {len(lines)} lines for {len(requests)} requests; "
                                 f"rc={proc.returncode} stderr={proc.stderr[-2000:]!r}")
        return [json.loads(line) for line in lines]

    return run


def test_templates_found():
    names = [t[0] for t in TEMPLATES]
    assert len(glob.glob(str(SHARED / "chat-templates" / "*.jinja"))) >= 10
    assert any(n.startswith("tokenizer:") for n in names)


def _check_spans(text, spans, case):
    prev_end = -1
    for b, e in spans:
        assert 0 <= b < e <= len(text.encode("utf-8")), f"{case}: span {b},{e} out of range"
        assert b > prev_end, f"{case}: spans not sorted/disjoint"
        prev_end = e
    raw = text.encode("utf-8")
    marker = MARKER.encode()
    start = raw.find(marker)
    while start != -1:
        end = start + len(marker)
        assert any(b <= start and end <= e for b, e in spans), \
            f"{case}: content marker at byte {start} is not inside a content span"
        start = raw.find(marker, end)


@pytest.mark.parametrize("name,source,bos,eos", TEMPLATES, ids=[t[0] for t in TEMPLATES])
def test_template_matches_jinja2(ours, name, source, bos, eos):
    cases = list(all_cases())
    requests, expected = [], []
    for case, messages, tools, agp in cases:
        requests.append({"template": source, "messages": messages, "tools": tools,
                         "add_generation_prompt": agp, "bos_token": bos, "eos_token": eos,
                         "now": FIXED_NOW_STR})
        expected.append(reference_render(source, messages, tools, agp, bos, eos))
    got = ours(requests)
    failures = []
    rendered = 0
    for (case, *_), exp, res in zip(cases, expected, got):
        if "error" in exp:
            if "error" not in res:
                failures.append(f"{case}: jinja2 raised {exp['error']!r} but we rendered {res['text'][:200]!r}")
            continue
        if "error" in res:
            failures.append(f"{case}: we raised {res['error']!r}; jinja2 rendered {exp['text'][:200]!r}")
            continue
        if res["text"] != exp["text"]:
            a, b = res["text"], exp["text"]
            i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            failures.append(f"{case}: first difference at char {i}: ours={a[max(0, i-40):i+60]!r} "
                            f"jinja2={b[max(0, i-40):i+60]!r}")
            continue
        _check_spans(res["text"], res["content_spans"], case)
        rendered += 1
    assert not failures, f"{len(failures)} of {len(cases)} cases differ:\n" + "\n".join(failures[:15])
    assert rendered > 0 or all("error" in e for e in expected)
