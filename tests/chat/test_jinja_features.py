"""Feature-level conformance: many small templates rendered by ours and by jinja2.

Each case is (template, context). Output must be identical, or both must fail.
"""

import json

import pytest

from test_templates import ENV, FIXED_NOW_STR, ours  # noqa: F401  (fixture re-export)

CTX = {
    "messages": [
        {"role": "system", "content": "  Sys prompt\n"},
        {"role": "user", "content": "Hi <b>'x'</b> & \"y\""},
        {"role": "assistant", "content": "Hello", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1.5, None, True]}}}]},
    ],
    "n": 7, "f": 2.5, "s": "Hello World", "l": [3, 1, 2], "d": {"b": 1, "a": 2, "items": 5},
    "u": "héllo wörld ß", "e": "", "none": None, "nested": {"x": {"y": [10, 20, {"z": "deep"}]}},
    "people": [{"name": "Bob", "age": 30}, {"name": "alice", "age": 25}, {"name": "Carl"}],
}

CASES = [
    # whitespace control
    "a  {% if true %}\n  b\n  {% endif %}\nc",
    "a\n  {%- if true -%}\n  b  \n{%- endif %}  \nc",
    "  {{ n }}  {% if true %}x{% endif %}\n",
    "{% for i in l %}\n  {{ i }}\n{% endfor %}\n",
    "{%+ if true %}x{% endif %}\n  {%+ if true %}y{% endif %}",
    "a {# comment #}\n b\n  {# c2 #}\nc",
    "{% raw %}{{ not parsed }}{% endraw %}\n{%- raw -%}  x  {%- endraw -%}  y",
    "line1\r\nline2\rline3\n\n",
    "{{ 'a' }}\n{{- 'b' -}}\n\n{{ 'c' }}",
    "x{%- set a = 1 -%}\n\n  y",
    "{% if true %}  \t\n{% endif %}",
    "\u3000{%- if true %}a{% endif %}",
    # literals and printing
    "{{ 1 }} {{ 1.0 }} {{ -0.0 }} {{ 1e3 }} {{ 1.5e-7 }} {{ 12345678901234567890.0 }} {{ 0.1 + 0.2 }} {{ 1_000 }} {{ 0x1F }}",
    "{{ none }} {{ None }} {{ true }} {{ False }} {{ [] }} {{ {} }} {{ () }} {{ (1,) }} {{ (1, 'a') }}",
    "{{ 'it\\'s' }} {{ \"a\\tb\\n\" }} {{ '\\u00e9\\x41\\101' }} {{ 'a' 'b' \"c\" }}",
    "{{ ['a\\'b', \"c\\\"d\", 'é', '\\x00', '\\u200b', 'x\\ny'] }}",
    "{{ {'a': none, 1: [true, 2.50], 'k': {'n': 'v'}} }}",
    "{{ d }} {{ l }} {{ nested }}",
    # arithmetic / operators
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ -7.5 // 2 }} {{ 7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7 / 2 }} {{ 6 / 3 }}",
    "{{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ 1 + 1.5 }} {{ true + 1 }}",
    "{{ 'ab' * 3 }} {{ [1, 2] * 2 }} {{ [1] + [2] }} {{ 'a' ~ 1 ~ none ~ 2.0 ~ [1] }}",
    "{{ 1 / 0 }}",
    "{{ 'a' + 1 }}",
    "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ none == none }}",
    "{{ 'ell' in s }} {{ 3 in l }} {{ 'a' in d }} {{ 'zz' not in s }} {{ not 1 in l }}",
    "{{ 1 and 2 }} {{ 0 and 2 }} {{ 0 or 'x' }} {{ '' or [] }} {{ not none }} {{ none or none }}",
    "{{ 'yes' if n > 5 else 'no' }} {{ 'yes' if n < 5 }}|{{ ('a' if false) is defined }}",
    "{{ 1 < 'a' }}",
    "{{ '%s and %d' % ('x', 3) }} {{ '%s' % 'y' }} {{ '%%' % () }}",
    # attribute / item access
    "{{ nested.x.y[2].z }} {{ nested['x']['y'][-1]['z'] }} {{ nested.x.y.0 }} {{ l[5] }}|{{ d.items is callable }}|{{ d['items'] }}",
    "{{ missing }}|{{ missing is defined }}|{{ d.nope is defined }}|{{ d.nope }}|{{ missing | default('dflt') }}",
    "{{ missing.attr }}",
    "{{ missing['k'] }}",
    "{{ d.nope.deeper }}",
    "{{ s[1:4] }} {{ s[::-1] }} {{ s[-3:] }} {{ l[::2] }} {{ l[1:] }} {{ u[1:3] }} {{ s[:100] }} {{ s[5:1] }}",
    "{{ messages[0].content }}|{{ messages[-1]['role'] }}|{{ messages[1:] | length }}",
    # string methods
    "{{ s.upper() }} {{ s.lower() }} {{ u.upper() }} {{ s.title() }} {{ 'hELLO wORLD'.capitalize() }} {{ 'a-b c_d'.title() }}",
    "[{{ '  x y  '.strip() }}] [{{ 'xxhixx'.strip('x') }}] [{{ '  a'.lstrip() }}] [{{ 'a\\n\\n'.rstrip('\\n') }}] [{{ '\\u3000a\\xa0'.strip() }}]",
    "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ ''.split() }} {{ ''.split(',') }}",
    "{{ s.startswith('Hell') }} {{ s.endswith(('x', 'ld')) }} {{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 1) }} {{ s.find('o') }} {{ s.rfind('o') }} {{ s.count('l') }}",
    "{{ '{} is {}'.format('x', 1) }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='n') }}",
    "{{ ', '.join(['a', 'b']) }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ '42'.isdigit() }} {{ 'ab'.isalpha() }} {{ 'Ab'.islower() }}",
    "{{ s.nope() }}",
    "{{ u | length }} {{ u[2] }} {{ u | upper }} {{ u | reverse }}",
    # dict / list methods
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {{ d.keys() | list }} {{ d.values() | list }} {{ d.get('a') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }}",
    "{{ l.index(1) }} {{ l.count(3) }}",
    "{% set x = [1] %}{{ x.append(2) }}{{ x }}",
    "{% set x = {} %}{{ x.update({'a': 1}) }}{{ x }}",
    # filters
    "{{ s | length }} {{ l | count }} {{ d | length }} {{ l | first }} {{ l | last }} {{ s | first }} {{ [] | first }}|",
    "{{ l | sort }} {{ l | sort(reverse=true) }} {{ ['b', 'A', 'c'] | sort }} {{ ['b', 'A', 'c'] | sort(case_sensitive=true) }} {{ people | sort(attribute='name') | map(attribute='name') | list }}",
    "{{ l | join(', ') }} {{ people | join('|', attribute='name') }} {{ [1, none, 'a'] | join }}",
    "{{ ['a', 'B', 'a', 'b'] | unique | list }} {{ l | min }} {{ l | max }} {{ l | sum }} {{ people | sum(attribute='age') }} {{ people | max(attribute='age') }}",
    "{{ people | map(attribute='age', default=0) | list }} {{ ['a', 'b'] | map('upper') | list }} {{ people | selectattr('age') | list | length }}",
    "{{ people | selectattr('age', 'gt', 26) | map(attribute='name') | join }} {{ people | rejectattr('age', 'defined') | map(attribute='name') | join }}",
    "{{ l | select('odd') | list }} {{ l | reject('equalto', 3) | list }} {{ [0, 1, '', 'a'] | select | list }}",
    "{{ l | map('string') | join('-') }} {{ ['1', '2x', '3.7'] | map('int') | list }} {{ ['1.5', 'x'] | map('float') | list }}",
    "{{ d | dictsort }} {{ d | dictsort(reverse=true) }} {{ d | dictsort(by='value') }} {{ d | items | list }}",
    "{{ '  x  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ s | replace('o', '0') }}|{{ s | lower }}|{{ s | upper }}|{{ 'hello world-wide (ok)' | title }}|{{ 'hELLO' | capitalize }}",
    "{{ n | string }}{{ none | string }}{{ f | int }}{{ '12' | int + 1 }}{{ 'x' | int(5) }}{{ '0x1A' | int(0, 16) }}{{ '3.9' | float }}{{ n | float }}",
    "{{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 7 | round }} {{ 2.1 | round(method='ceil') }} {{ 2.9 | round(0, 'floor') }}",
    "{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}|{{ 'x' | indent('>>', first=true) }}",
    "{{ 'one two  three' | wordcount }} {{ 'ab' | center(6) }}| {{ missing | default('x', true) }} {{ '' | default('empty', true) }} {{ '' | d('e') }}",
    "{{ l | reverse | list }} {{ s | reverse }} {{ l | list }} {{ 'ab' | list }} {{ d | list }} {{ l | batch(2) | list }} {{ l | batch(2, 0) | list }}",
    "{{ '<a href=\"x\">&</a>' | escape }} {{ '<b>' | e }} {{ ('<b>' | safe) + '<i>' }} {{ '<b>' + ('<i>' | safe) }} {{ ('x' | safe) ~ '<y>' }}",
    "{{ 'hello world foo' | truncate(9) }}|{{ 'hello world foo bar baz qux' | truncate(12, true) }}|{{ 'short' | truncate(10) }}",
    "{{ l | map('nope') | list }}",
    "{{ x | nofilter }}",
    "{{ l | length(3) }}",
    # tojson
    "{{ d | tojson }} {{ messages[2].tool_calls | tojson }} {{ 'é<>&\\'\"' | tojson }} {{ none | tojson }} {{ f | tojson }} {{ [1.0, 1e100, -0.0] | tojson }}",
    "{{ d | tojson(indent=2) }}\n{{ [] | tojson(indent=2) }}{{ {} | tojson(indent=4) }}\n{{ [[1], {'a': []}] | tojson(indent=1) }}",
    "{{ d | tojson(sort_keys=true) }} {{ d | tojson(separators=(',', ':')) }} {{ 'é' | tojson(ensure_ascii=true) }} {{ '😀' | tojson(ensure_ascii=true) }}",
    "{{ {1: 'a', none: 'b', true: 'c', 2.5: 'd'} | tojson }}",
    "{{ missing | tojson }}",
    "{{ (l | map('string')) | tojson }}",
    "{{ '\\x01\\x1f\\x7f' | tojson }}",
    # tests
    "{{ n is odd }} {{ n is even }} {{ n is divisibleby 7 }} {{ n is divisibleby(2) }} {{ n is number }} {{ f is float }} {{ n is integer }} {{ true is number }} {{ true is integer }}",
    "{{ s is string }} {{ l is sequence }} {{ d is mapping }} {{ s is iterable }} {{ n is iterable }} {{ none is none }} {{ missing is undefined }} {{ l is not string }}",
    "{{ true is true }} {{ 1 is true }} {{ false is false }} {{ true is boolean }} {{ n is eq 7 }} {{ n is ne 7 }} {{ n is gt 5 }} {{ n is lessthan 3 }} {{ n is in l }} {{ 3 is in l }}",
    "{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ range is callable }} {{ d.get is callable }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ none is sameas none }} {{ missing is iterable }}",
    "{{ n is nosuchtest }}",
    # control structures
    "{% for x in l %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}/{{ loop.previtem }}/{{ loop.nextitem }}/{{ loop.cycle('a', 'b') }};{% endfor %}",
    "{% for x in [] %}x{% else %}empty{% endfor %}{% for x in l if x > 1 %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}",
    "{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}{% for k, v in d | dictsort %}{{ k }}{{ v }}{% endfor %}{% for (a, b) in [[5, 6]] %}{{ a }}{{ b }}{% endfor %}",
    "{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{% for i in range(3) %}{% for j in range(i) %}{{ i }}{{ j }}{{ loop.depth }} {% endfor %}{{ loop.index }}|{% endfor %}",
    "{% for c in 'ab' %}{{ c }}{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for x in missing %}x{% endfor %}",
    "{% for x in none %}x{% endfor %}",
    "{% for x in n %}x{% endfor %}",
    "{% for a, b in [1] %}{% endfor %}",
    "{% if n > 10 %}a{% elif n > 5 %}b{% elif n > 0 %}c{% else %}d{% endif %}",
    "{{ range(5) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }} {{ range(0) | list }}",
    "{{ range(1000000) | length }}",
    # scoping
    "{% set x = 1 %}{% for i in l %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}",
    "{% set ns = namespace(total=0, items=[]) %}{% for i in l %}{% set ns.total = ns.total + i %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.total }}{{ ns.items }}",
    "{% if true %}{% set y = 5 %}{% endif %}{{ y }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = (3, 4) %}{{ c }}",
    "{% set x %}block {{ n }}{% endset %}[{{ x }}]{% set y | upper | trim %}  up {{ s }} {% endset %}[{{ y }}]",
    "{% set s2 = 1 %}{% set s2.attr = 2 %}",
    "{% with a = 1, b = n %}{{ a + b }}{% endwith %}{{ a }}",
    "{% set ns = namespace(d) %}{{ ns.a }}{{ ns.b }} {% set ns2 = namespace(x=1) %}{{ ns2 }}",
    # macros
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet(name='X') }}",
    "{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}",
    "{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}",
    "{% macro outer() %}[{{ caller() }}]{% endmacro %}{% call outer() %}inside {{ n }}{% endcall %}",
    "{% macro list_it(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) list_it(l) %}<{{ x }}>{% endcall %}",
    "{% set g = 'global' %}{% macro show() %}{{ g }}{% endmacro %}{% set g = 'changed' %}{{ show() }}",
    "{% macro m(a, b=a * 2) %}{{ a }}{{ b }}{% endmacro %}{{ m(3) }}",
    "{{ m() }}{% macro m() %}x{% endmacro %}",
    "{% filter upper %}hello {{ s }}{% endfilter %}{% filter trim | replace('a', 'b') %}  aaa  {% endfilter %}",
    "{% generation %}gen {{ n }}{% endgeneration %}",
    # globals
    "{{ raise_exception('boom') }}",
    "{{ strftime_now('%Y-%m-%d %d %B %b %A %H:%M') }}",
    "{{ dict(a=1, b='x') }} {{ dict(d) }} {{ namespace(a=1).a }}",
    "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}{% set j = joiner('-') %}{% for i in l %}{{ j() }}{{ i }}{% endfor %}",
    # syntax errors must fail on both sides
    "{% if true %}unclosed",
    "{{ 1 + }}",
    "{% endif %}",
    "{% for %}{% endfor %}",
    "{{ 'unterminated }}",
    "{# unterminated comment",
    "{% unknowntag %}",
    "{{ a b }}",
    "{% break %}",
    "{{ (1, 2 }}",
    "{% macro m(a=1, b) %}{% endmacro %}",
    "{% set 1 = 2 %}",
    "}} {% if true %}ok{% endif %} %} #}",
]


@pytest.mark.parametrize("source", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_feature_matches_jinja2(ours, source):  # noqa: F811
    try:
        expected = {"text": ENV.from_string(source).render(**CTX)}
    except Exception as e:  # noqa: BLE001
        expected = {"error": f"{type(e).__name__}: {e}"}
    ctx = {k: v for k, v in CTX.items() if k != "messages"}
    got = ours([{"template": source, "messages": CTX["messages"], "extra_context": ctx, "now": FIXED_NOW_STR}])[0]
    if "error" in expected:
        assert "error" in got, f"jinja2 raised {expected['error']!r}; we rendered {got.get('text')!r}"
    else:
        assert "error" not in got, f"we raised {got['error']!r}; jinja2 rendered {expected['text']!r}"
        assert got["text"] == expected["text"]
