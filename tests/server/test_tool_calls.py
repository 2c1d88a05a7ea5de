"""Tool calling end to end with the official openai client: tool_choice required / named are
forced by the grammar engine in the model's own call syntax (Hermes for the Qwen3 fixture's
template; Llama 3.1 and Mistral Nemo templates put on the same weights), so even the tiny
random fixture always answers a parseable call; arguments are validated with jsonschema.
Tool turns (assistant tool_calls with content null, role tool) render through the template;
a template that ignores tools (SmolLM2) is a 400."""
import json
import pathlib
import re
import shutil
import sys

import httpx
import jsonschema
import openai
import pytest

from conftest import API_KEY, ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
TEMPLATES = ROOT.parent / "shared" / "chat-templates"
sys.path.insert(0, str(ROOT / "tools"))
from make_fixtures import materialize  # noqa: E402

WEATHER = {"type": "object",
           "properties": {"city": {"type": "string", "maxLength": 8}, "unit": {"enum": ["c", "f"]},
                          "days": {"type": "integer", "minimum": 1, "maximum": 7}},
           "required": ["city", "unit", "days"], "additionalProperties": False}
ADD = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9},
                                        "b": {"type": "integer", "minimum": 0, "maximum": 9}},
       "required": ["a", "b"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "add", "description": "Add two digits", "parameters": ADD}}]
SCHEMAS = {"get_weather": WEATHER, "add": ADD}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
# template file (None: the fixture's own Qwen3 template) -> id pattern of the format
FORMATS = {"qwen3": (None, r"call_[A-Za-z0-9]{24}"),
           "llama3.1": ("meta-llama-Llama-3.1-8B-Instruct.jinja", r"call_[A-Za-z0-9]{24}"),
           "mistral": ("mistralai-Mistral-Nemo-Instruct-2407.jinja", r"[A-Za-z0-9]{9}")}


def model_dir(tmp_path_factory, name):
    src = materialize(FIX / "qwen3")
    template = FORMATS[name][0]
    if template is None:
        return src
    d = tmp_path_factory.mktemp(name)
    for f in src.iterdir():
        if f.is_file():
            shutil.copy(f, d / f.name)
    cfg = json.loads((src / "tokenizer_config.json").read_text())
    cfg["chat_template"] = (TEMPLATES / template).read_text()
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture(scope="module", params=sorted(FORMATS))
def fmt_server(request, tmp_path_factory):
    s = ServerProcess(model_dir(tmp_path_factory, request.param), ["--served-model-name", "m", "--ctx-size", "1024"])
    yield request.param, s
    assert s.stop() == 0, s.logs()


def client(s):
    return openai.OpenAI(base_url=s.url + "/v1", api_key=API_KEY, max_retries=0, timeout=300)


def check_calls(calls, id_pattern, names):
    assert calls, "no tool calls"
    for c in calls:
        assert re.fullmatch(id_pattern, c["id"]), c["id"]
        assert c["type"] == "function"
        assert c["function"]["name"] in names
        jsonschema.validate(json.loads(c["function"]["arguments"]), SCHEMAS[c["function"]["name"]])


def streamed(c, **kw):
    """Joins a stream's content and tool_calls deltas (by index) the way clients do."""
    content, calls, finish, chunks = "", {}, None, 0
    for ch in c.chat.completions.create(stream=True, **kw):
        for choice in ch.choices:
            chunks += 1
            d = choice.delta
            content += d.content or ""
            for tc in d.tool_calls or []:
                cur = calls.setdefault(tc.index, {"id": "", "type": "", "function": {"name": "", "arguments": ""}})
                cur["id"] += tc.id or ""
                cur["type"] += tc.type or ""
                if tc.function:
                    cur["function"]["name"] += tc.function.name or ""
                    cur["function"]["arguments"] += tc.function.arguments or ""
            finish = choice.finish_reason or finish
    return content, [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize("choice", ["required", "named"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_forced_call_parses_and_validates(fmt_server, choice, stream):
    name, s = fmt_server
    tool_choice = "required" if choice == "required" else {"type": "function", "function": {"name": "add"}}
    names = {"get_weather", "add"} if choice == "required" else {"add"}
    kw = dict(model="m", messages=ASK, tools=TOOLS, tool_choice=tool_choice, max_tokens=200, temperature=0)
    if stream:
        content, calls, finish = streamed(client(s), **kw)
        assert content == ""
    else:
        r = client(s).chat.completions.create(**kw)
        msg = r.choices[0].message
        assert msg.content is None
        calls = [tc.model_dump() for tc in msg.tool_calls or []]
        finish = r.choices[0].finish_reason
    assert finish == "tool_calls", (calls, s.logs()[-2000:])
    check_calls(calls, FORMATS[name][1], names)
    assert len(calls) == 1


def test_sampled_forced_calls_validate(fmt_server):
    name, s = fmt_server
    for seed in range(3):
        r = client(s).chat.completions.create(model="m", messages=ASK, tools=TOOLS, tool_choice="required",
                                              max_tokens=200, temperature=1.0, seed=seed)
        assert r.choices[0].finish_reason == "tool_calls"
        check_calls([tc.model_dump() for tc in r.choices[0].message.tool_calls], FORMATS[name][1], set(SCHEMAS))


def test_auto_plain_text_streams_as_before(fmt_server):
    """tool_choice auto: the random model writes no call; streamed content equals the
    non-streamed content and no tool_calls appear."""
    _, s = fmt_server
    kw = dict(model="m", messages=ASK, tools=TOOLS, max_tokens=12, temperature=0)
    r = client(s).chat.completions.create(**kw)
    content, calls, finish = streamed(client(s), **kw)
    assert r.choices[0].message.tool_calls is None and calls == []
    assert content == r.choices[0].message.content
    assert finish == r.choices[0].finish_reason in ("stop", "length")


ROUND_TRIP = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "abcDEF123", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c", "days": 1}'}}]},
    {"role": "tool", "tool_call_id": "abcDEF123", "content": '{"temp": 21}'},
]
# What each template writes for the call and the result (arguments as a parsed object).
RENDERED = {
    "qwen3": ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c", "days": 1}}\n'
              '</tool_call>', '<tool_response>\n{"temp": 21}\n</tool_response>'],
    "llama3.1": ['{"name": "get_weather", "parameters": {"city": "Paris", "unit": "c", "days": 1}}',
                 'ipython<|end_header_id|>\n\n"{\\"temp\\": 21}"'],  # the template tojson's string results
    "mistral": ['[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c", "days": 1}, '
                '"id": "abcDEF123"}]', '[TOOL_RESULTS]{"content": {"temp": 21}, "call_id": "abcDEF123"}[/TOOL_RESULTS]'],
}


def test_tool_result_round_trip_renders(fmt_server):
    name, s = fmt_server
    h = {"Authorization": f"Bearer {API_KEY}"}
    r = httpx.post(s.url + "/tokenize", json={"messages": ROUND_TRIP, "tools": TOOLS}, headers=h, timeout=60)
    assert r.status_code == 200, r.text
    text = httpx.post(s.url + "/detokenize", json={"tokens": r.json()["tokens"]}, headers=h, timeout=60).json()["prompt"]
    for piece in RENDERED[name]:
        assert piece in text, text
    # The same conversation answered through chat completions (content null used to be a 400).
    c = client(s).chat.completions.create(model="m", messages=ROUND_TRIP, tools=TOOLS, max_tokens=4, temperature=0)
    assert c.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert c.usage.prompt_tokens == r.json()["count"]


def test_unknown_named_choice_is_400(fmt_server):
    _, s = fmt_server
    with pytest.raises(openai.BadRequestError) as e:
        client(s).chat.completions.create(model="m", messages=ASK, tools=TOOLS,
                                          tool_choice={"type": "function", "function": {"name": "nope"}})
    assert e.value.body["param"] == "tool_choice"
    assert "'nope'" in e.value.body["message"]


def test_smollm2_template_ignores_tools_is_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="smol", messages=ASK, tools=TOOLS, max_tokens=2)
    assert e.value.body["param"] == "tools"
    assert "ignores 'tools'" in e.value.body["message"]
    # tool_choice none: the tools are not offered, so nothing is dropped silently.
    r = client.chat.completions.create(model="smol", messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=2)
    assert r.choices[0].message.tool_calls is None
