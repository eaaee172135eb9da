#!/usr/bin/env python3
"""Makes the chat-template fixtures under tests/data/chat_template_fixtures/.

Python's jinja2 renders, in the environment transformers uses for chat templates
(transformers.utils.chat_template_utils._compile_jinja_template:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[AssistantTracker, jinja2.ext.loopcontrols]), a `tojson` filter that does not
escape HTML, and the globals `raise_exception` and `strftime_now`):

  features.json   small hand-written templates covering the Jinja features the C++
                  interpreter supports, each with a context and the expected output (or error),
                  and 300 random templates mixing whitespace and tags with every
                  whitespace-control modifier.
  styles.json     templates in the style of other model families (Llama 3.1 tools, Mistral
                  tools, JSON-schema macros, Phi, DeepSeek-R1) for the same conversations.
  <model>.json    the chat template of each tokenizer in tests/data/tokenizers/<model>/
                  (fetched by scripts/fetch-test-data.sh) rendered for a set of conversations,
                  with add_generation_prompt on and off, the way transformers'
                  apply_chat_template(tokenize=False) calls it.

strftime_now is pinned to NOW so that the outputs are reproducible; the C++ tests pin the
same time. Run from the repository root: python3 tools/make_chat_template_fixtures.py
(--only gpt_oss: only gpt_oss.json, from the committed template file).
"""

import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "chat_template_fixtures")
TOKENIZERS = os.path.join(ROOT, "tests", "data", "tokenizers")
NOW = datetime.datetime(2025, 3, 7, 14, 5, 9)


class TemplateError(Exception):
    pass


class AssistantTracker(jinja2.ext.Extension):
    # transformers' {% generation %} ... {% endgeneration %} block; without assistant-mask
    # tracking it renders its body through a call block.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render_assistant", []), [], [], body).set_lineno(lineno)

    def _render_assistant(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(template, context):
    """Returns {"expected": text} or {"error": ..., "error_type": ..., "lineno": ...}."""
    try:
        t = ENV.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"error": e.message, "error_type": "syntax", "lineno": e.lineno}
    except jinja2.exceptions.TemplateAssertionError as e:  # unknown filter / test
        return {"error": e.message, "error_type": "syntax", "lineno": e.lineno}
    try:
        return {"expected": t.render(**context)}
    except jinja2.exceptions.UndefinedError as e:
        return {"error": str(e), "error_type": "runtime"}
    except jinja2.exceptions.SecurityError as e:
        return {"error": str(e), "error_type": "runtime"}
    except jinja2.exceptions.TemplateError as e:  # raise_exception
        return {"error": e.message, "error_type": "raise_exception"}
    except (TypeError, ValueError, ZeroDivisionError, AttributeError, KeyError, IndexError, RecursionError) as e:
        return {"error": str(e), "error_type": "runtime"}


# ---------------------------------------------------------------------------------------------
# Feature cases: (name, template, context)

USERS = [
    {"name": "ann", "age": 31, "admin": True, "tags": ["a", "b"]},
    {"name": "Bob", "age": 25, "admin": False, "tags": []},
    {"name": "cid", "age": 40, "admin": True},
]

FEATURES = [
    # ---- output and literals
    ("text_only", "Hello world", {}),
    ("text_trailing_newline", "Hello\n", {}),
    ("text_two_trailing_newlines", "Hello\n\n", {}),
    ("crlf_newlines", "a\r\nb\rc\n{{ 'x' }}\r\n", {}),
    ("print_var", "Hi {{ name }}!", {"name": "Ann"}),
    ("print_int_float", "{{ 1 }} {{ 1.5 }} {{ 1.0 }} {{ 2.50 }} {{ 1e3 }} {{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }}", {}),
    ("print_float_repr", "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1.5e-7 }} {{ 0.0001 }} {{ 123456789.123 }} {{ -0.0 }} {{ 1/3 }}", {}),
    ("print_bool_none", "{{ true }} {{ false }} {{ True }} {{ none }} {{ None }}", {}),
    ("print_list_repr", "{{ [1, 'a', none, true, 1.5, [2], {'k': 'v'}] }}", {}),
    ("print_tuple_repr", "{{ (1, 2) }} {{ (1,) }} {{ () }} {{ 1, 2 }}", {}),
    ("print_dict_repr", "{{ {'a': 1, 'b': 'x', 'c': [1, 2]} }} {{ {} }}", {}),
    ("print_string_repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\tnl\\n', 'back\\\\slash'] }}", {}),
    ("print_string_repr_unicode", "{{ ['héllo', '中文', '😀', '\\u00a0', '\\u200b', '\\x7f', '\\x01'] }}", {}),
    ("print_context_dict", "{{ msg }}", {"msg": {"role": "user", "content": "hi", "n": None, "ok": True}}),
    ("string_escapes", "{{ 'a\\nb' }}|{{ \"q\\\"q\" }}|{{ 'u\\u00e9' }}|{{ 'x\\x41' }}|{{ 'unknown\\d' }}", {}),
    ("string_adjacent_concat", "{{ 'a' 'b' \"c\" }}", {}),
    ("undefined_prints_empty", "[{{ missing }}]", {}),
    ("comment", "a{# comment #}b{# multi\nline #}c", {}),
    ("raw_block", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}", {}),
    # ---- whitespace control
    ("ws_trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("ws_lstrip_blocks", "  {% if true %}\n  yes\n  {% endif %}\nend", {}),
    ("ws_lstrip_not_for_vars", "  {{ 'v' }}\n  {% if true %}x{% endif %}", {}),
    ("ws_minus_both", "a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}  \n  c", {}),
    ("ws_minus_vars", "a  \n {{- 'b' -}} \n c", {}),
    ("ws_plus_disables_lstrip", "  {%+ if true %}x{% endif %}", {}),
    ("ws_plus_disables_trim", "{% if true +%}\nx{% endif %}", {}),
    ("ws_comment_trim", "a\n  {# c #}\nb\n{#- c -#}\n  c", {}),
    ("ws_comment_plus", "a\n  {# c +#}\nb", {}),
    ("ws_lstrip_midline", "x  {% if true %}y{% endif %}", {}),
    ("ws_tabs", "\t{% if true %}\n\tz\n\t{% endif %}\n", {}),
    ("ws_for_lines", "{% for i in [1, 2, 3] %}\n  - {{ i }}\n{% endfor %}\n", {}),
    ("ws_for_minus", "{%- for i in [1, 2, 3] -%}\n  {{ i }}\n{%- endfor -%}\n", {}),
    ("ws_nested_indent", "{% for m in ['a', 'b'] %}\n    {% if m == 'a' %}\n        A\n    {% else %}\n        other\n    {% endif %}\n{% endfor %}", {}),
    ("ws_unicode_space_strip", "a\u00a0\u3000 {%- if true %}b{% endif %}", {}),
    ("ws_raw_minus", "x  {%- raw -%}  r  {%- endraw -%}  y", {}),
    ("ws_var_then_block_newline", "{{ 'a' }}\n{% set x = 1 %}\n{{ x }}\n", {}),
    ("ws_keep_one_trailing_newline_stripped", "line\n{% if true %}x{% endif %}\n\n", {}),
    # ---- if / elif / else
    ("if_elif_else", "{% for x in [1, 2, 3, 4] %}{% if x == 1 %}one{% elif x == 2 %}two{% elif x == 3 %}three{% else %}many{% endif %},{% endfor %}", {}),
    ("if_truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, {'a': 1}, none, 0.0, 2.5] %}{{ 'T' if v else 'F' }}{% endfor %}", {}),
    ("if_undefined", "{% if missing %}yes{% else %}no{% endif %}", {}),
    ("if_defined_attr", "{% if msg.tool_calls is defined %}tc{% else %}none{% endif %}", {"msg": {"role": "user"}}),
    ("if_not", "{% if not a %}not a{% endif %}{% if not (a or b) %}!{% endif %}", {"a": False, "b": False}),
    ("inline_if_no_else", "[{{ 'x' if false }}]", {}),
    ("inline_if_chain", "{{ 'a' if x == 1 else 'b' if x == 2 else 'c' }}", {"x": 2}),
    # ---- for loops
    ("for_loop_vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", {}),
    ("for_previtem_nextitem", "{% for x in [1, 2, 3] %}({{ loop.previtem }},{{ loop.nextitem }}){% endfor %}", {}),
    ("for_cycle", "{% for x in range(5) %}{{ loop.cycle('odd', 'even') }} {% endfor %}", {}),
    ("for_else", "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}|{% for x in [1] %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("for_filter_if", "{% for x in range(10) if x is odd %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}", {}),
    ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"z": 1, "a": 2, "m": 3}}),
    ("for_unpack_tuple_list", "{% for a, b in [(1, 2), [3, 4]] %}{{ a + b }} {% endfor %}", {}),
    ("for_dict_keys", "{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("for_string", "{% for c in 'héy' %}[{{ c }}]{% endfor %}", {}),
    ("for_nested_loop_vars", "{% for a in [1, 2] %}{% for b in [1, 2, 3] %}{{ loop.index }}{% endfor %}:{{ loop.index }} {% endfor %}", {}),
    ("for_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("for_scope_set_does_not_leak", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 10 %}{{ x }} {% endfor %}{{ x }}", {}),
    ("for_scope_iteration_fresh", "{% for i in range(3) %}{% if i == 0 %}{% set y = 'a' %}{% endif %}[{{ y }}]{% endfor %}", {}),
    ("for_loop_var_gone_after", "{% for i in [1] %}{% endfor %}[{{ i }}]", {}),
    ("for_undefined_iter", "{% for x in missing %}{{ x }}{% else %}none{% endfor %}", {}),
    ("for_over_messages_reverse", "{% for m in messages[::-1] %}{{ m.role }}{{ loop.index0 }} {% endfor %}", {"messages": [{"role": "a"}, {"role": "b"}, {"role": "c"}]}),
    ("for_loop_length_filtered", "{% for u in users if u.admin %}{{ u.name }}{{ '' if loop.last else ', ' }}{% endfor %}", {"users": USERS}),
    # ---- set / namespace / with
    ("set_simple", "{% set a = 'x' %}{% set b, c = 1, 2 %}{{ a }}{{ b }}{{ c }}", {}),
    ("set_block", "{% set body %}Hello {{ name }}!{% endset %}[{{ body }}]", {"name": "Zed"}),
    ("set_block_filter", "{% set body | upper | trim %}  shout {{ name }}  {% endset %}[{{ body }}]", {"name": "it"}),
    ("set_in_if_leaks", "{% if true %}{% set z = 5 %}{% endif %}{{ z }}", {}),
    ("namespace_counter", "{% set ns = namespace(count=0, seen=[]) %}{% for x in range(4) %}{% set ns.count = ns.count + x %}{% endfor %}{{ ns.count }}", {}),
    ("namespace_new_attr", "{% set ns = namespace() %}{% set ns.a = 'A' %}{{ ns.a }}{{ ns.missing is defined }}", {}),
    ("namespace_from_dict", "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}", {}),
    ("namespace_repr", "{{ namespace(a=1, b='x') }}", {}),
    ("scope_blocks_do_not_leak", "{% generation %}{% set a = 1 %}{% endgeneration %}{% filter upper %}{% set b = 2 %}{% endfilter %}{% set c %}{% set d = 3 %}{% endset %}{% macro m() %}{% set e = 4 %}{% endmacro %}{{ m() }}[{{ a }}{{ b }}{{ d }}{{ e }}]", {}),
    ("scope_blocks_see_outer", "{% set o = 'O' %}{% generation %}{{ o }}{% endgeneration %}{% filter lower %}{{ o }}{% endfilter %}{% set c %}{{ o }}{% endset %}{{ c }}", {}),
    ("scope_namespace_through_blocks", "{% set ns = namespace(v=0) %}{% for i in range(3) %}{% generation %}{% set ns.v = ns.v + i %}{% endgeneration %}{% endfor %}{{ ns.v }}", {}),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}),
    ("filter_block", "{% filter upper %}hello {{ name }}{% endfilter %}", {"name": "you"}),
    # ---- macros and call blocks
    ("macro_defaults", "{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', 'Hi') }} {{ greet('C', punct='?') }}", {}),
    ("macro_sees_globals_at_call", "{% macro m() %}{{ x }}{% endmacro %}{% set x = 'late' %}{{ m() }}", {}),
    ("macro_recursive", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}", {}),
    ("macro_render_json_schema", "{% macro render(p, indent) %}{% for k, v in p.items() %}{{ indent }}{{ k }}: {{ v.type }}{% if v.description is defined %} - {{ v.description }}{% endif %}\n{% if v.properties is defined %}{{ render(v.properties, indent ~ '  ') }}{% endif %}{% endfor %}{% endmacro %}{{ render(schema, '') }}", {"schema": {"loc": {"type": "string", "description": "City"}, "opts": {"type": "object", "properties": {"unit": {"type": "string"}}}}}),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }}", {}),
    ("call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ name }}{% endcall %}", {"name": "N"}),
    ("call_block_args", "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) each([1, 2]) %}[{{ x }}]{% endcall %}", {}),
    ("macro_whitespace", "{% macro m(x) %}\n  <{{ x }}>\n{% endmacro %}\n{{ m(1) }}{{ m(2) }}", {}),
    # ---- operators
    ("arith", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 8 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2.5 * 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}", {}),
    ("arith_bool_int", "{{ true + 1 }} {{ true * 3 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ false == 0 }}", {}),
    ("arith_precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }} {{ 100 / 10 / 5 }}", {}),
    ("unary", "{{ -x }} {{ +x }} {{ -(-x) }} {{ - 1.5 }} {{ -x|abs }}", {"x": 3}),
    ("concat_tilde", "{{ 'a' ~ 1 ~ none ~ true ~ missing ~ [1] }}", {}),
    ("printf_format", "{{ '%s-%d' % ('a', 3) }} {{ '%5.2f|%-4s|%04d|%x|%r|%%' % (3.14159, 'ab', 42, 255, 'q') }} {{ 'one %s' % 'arg' }} {{ '%(a)s and %(b)d' % {'a': 'x', 'b': 2} }} {{ '%i %e %g' % (7, 12345.678, 0.0001) }}", {}),
    ("string_plus", "{{ 'ab' + 'cd' }} {{ [1] + [2, 3] }} {{ 'ab' * 3 }} {{ [0] * 3 }} {{ 2 * 'xy' }}", {}),
    ("comparisons", "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 3 > 4 }} {{ 'a' < 'b' }} {{ 'B' < 'a' }} {{ [1, 2] < [1, 3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 != 1.0 }}", {}),
    ("in_not_in", "{{ 'a' in 'cat' }} {{ 'z' not in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'x' in missing }} {{ 'th' in 'α th' }}", {}),
    ("and_or_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ none or [] }} {{ not 0 }}", {}),
    ("is_tests_precedence", "{{ not x is defined }} {{ x is not defined }} {{ 1 + 1 is odd }}", {}),
    ("equality_lists_dicts", "{{ [1, 2] == [1, 2] }} {{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }} {{ (1, 2) == [1, 2] }} {{ none == none }} {{ missing == none }}", {}),
    # ---- subscripts, attributes, slices
    ("subscript_attr", "{{ m.role }} {{ m['role'] }} {{ m.content[0] }} {{ m.content[-1] }} {{ l[1] }} {{ l[-1] }} {{ l.0 }}", {"m": {"role": "user", "content": "hey"}, "l": [10, 20, 30]}),
    ("subscript_missing", "[{{ m.nope }}][{{ m['nope'] }}][{{ l[10] }}][{{ m.nope is defined }}]", {"m": {"a": 1}, "l": [1]}),
    ("slices", "{{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ l[1:-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ l[5:] }} {{ s[-100:2] }}", {"l": [1, 2, 3, 4], "s": "héllo"}),
    ("dict_attr_vs_method", "{{ d.get('a') }} {{ d.get('zz', 'def') }} {{ d.get('zz') }} {{ d['items'] }}", {"d": {"a": 1, "items": "key-wins-for-subscript"}}),
    ("dict_methods", "{{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }}", {"d": {"x": 1, "y": [2]}}),
    # ---- string methods
    ("str_strip", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ '--a--'.strip('-') }}][{{ 'xyaxy'.lstrip('xy') }}][{{ '\\n\\nabc\\n'.strip('\\n') }}]", {"s": "  \t pad \n "}),
    ("str_split", "{{ 'a,b,,c'.split(',') }} {{ '  a  b c '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'x</think>y</think>z'.split('</think>')[-1] }} {{ ''.split(',') }} {{ ''.split() }}", {}),
    ("str_startswith_endswith", "{{ s.startswith('<tool') }} {{ s.endswith('>') }} {{ s.startswith(('a', '<')) }} {{ s.endswith('x') }}", {"s": "<tool_response>ok</tool_response>"}),
    ("str_case", "{{ s.upper() }} {{ s.lower() }} {{ s.title() }} {{ s.capitalize() }} {{ s.swapcase() }} {{ \"they're bill's\".title() }}", {"s": "hELLo wORLD-foo"}),
    ("str_replace_find", "{{ s.replace('a', 'o') }} {{ s.replace('a', 'o', 1) }} {{ s.find('n') }} {{ s.find('z') }} {{ s.rfind('a') }} {{ s.count('a') }} {{ 'ab'.replace('', '-') }}", {"s": "banana"}),
    ("str_join_format", "{{ ', '.join(['a', 'b']) }} {{ '{} and {}'.format('x', 'y') }} {{ 'Hi {name}'.format(name='Z') }}", {}),
    ("str_misc_methods", "{{ 'abc'.isalpha() }} {{ '123'.isdigit() }} {{ ' '.isspace() }} {{ 'ABC'.isupper() }} {{ 'abc'.islower() }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ '7'.zfill(3) }} {{ 'pre_x'.removeprefix('pre_') }}", {}),
    ("str_index_len", "{{ s[0] }}{{ s[-1] }} {{ s|length }}", {"s": "日本語"}),
    # ---- filters
    ("f_trim_case", "[{{ '  x y  '|trim }}][{{ 'xxhixx'|trim('x') }}] {{ 'aBc'|upper }} {{ 'aBc'|lower }} {{ 'hello WORLD'|capitalize }} {{ 'hello wOrld-foo (bar) [baz]'|title }}", {}),
    ("f_length_count", "{{ [1, 2, 3]|length }} {{ 'héllo'|length }} {{ {'a': 1}|count }} {{ missing|length }}", {}),
    ("f_first_last", "{{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ 'abc'|first }} {{ 'abc'|last }} [{{ []|first }}]", {}),
    ("f_join", "{{ [1, 2, 3]|join }} {{ [1, 2, 3]|join(', ') }} {{ users|join(', ', attribute='name') }} {{ 'abc'|join('-') }}", {"users": USERS}),
    ("f_default", "{{ missing|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ none|default('d') }} {{ 0|d('zero', boolean=true) }} [{{ missing|default }}]", {}),
    ("f_tojson_basic", "{{ data|tojson }}", {"data": {"a": [1, 2.5, None, True], "s": "q\"uote <&> 中文 \\ \n\t", "e": {}, "l": []}}),
    ("f_tojson_indent", "{{ data|tojson(indent=2) }}\n{{ data|tojson(indent=4) }}\n{{ [1, [2, {}], []]|tojson(indent=1) }}", {"data": {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}),
    ("f_tojson_options", "{{ data|tojson(sort_keys=true) }} {{ data|tojson(separators=(',', ':')) }} {{ data|tojson(ensure_ascii=true) }} {{ 'x'|tojson }} {{ 5|tojson }} {{ none|tojson }} {{ 1.0|tojson }}", {"data": {"b": 1, "a": "é😀"}}),
    ("f_tojson_string_indent", "{{ {'a': [1]}|tojson(indent='\\t') }}", {}),
    ("f_string_int_float", "{{ 12|string }}{{ none|string }} {{ '42'|int }} {{ ' 7 '|int }} {{ '3.9'|int }} {{ 'x'|int }} {{ 'x'|int(5) }} {{ 4.7|int }} {{ '0x1A'|int(0, 16) }} {{ '2.5'|float }} {{ 'x'|float }} {{ 3|float }} {{ '1e3'|float }}", {}),
    ("f_abs_round", "{{ -3|abs }} {{ (-3.5)|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }} {{ 7|round }} {{ 1234.5678|round(-2) }}", {}),
    ("f_list_reverse", "{{ 'abc'|list }} {{ {'x': 1, 'y': 2}|list }} {{ [1, 2, 3]|reverse|list }} {{ 'abc'|reverse }}", {}),
    ("f_replace", "{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }}", {}),
    ("f_select_reject", "{{ [0, 1, 2, 3, '', 'x']|select|list }} {{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3, 4]|reject('even')|list }} {{ [1, 2, 3]|select('divisibleby', 3)|list }} {{ ['a', 'b']|select('in', ['b'])|list }} {{ [1, 5, 10]|select('>', 4)|list }}", {}),
    ("f_selectattr_rejectattr", "{{ users|selectattr('admin')|map(attribute='name')|list }} {{ users|rejectattr('admin')|map(attribute='name')|join(',') }} {{ users|selectattr('name', 'equalto', 'Bob')|list|length }} {{ users|selectattr('tags', 'defined')|list|length }} {{ msgs|selectattr('role', '==', 'user')|list|length }}", {"users": USERS, "msgs": [{"role": "user"}, {"role": "assistant"}, {"role": "user"}]}),
    ("f_map", "{{ users|map(attribute='age')|list }} {{ users|map(attribute='tags.0', default='-')|list }} {{ ['a', 'B']|map('upper')|list }} {{ [1.5, 2.5]|map('round')|list }} {{ [[1, 2], [3]]|map('length')|list }}", {"users": USERS}),
    ("f_items_dictsort", "{{ d|items|list }} {{ d|dictsort }} {{ d|dictsort(by='value') }} {{ d|dictsort(reverse=true) }} {{ {'b': 1, 'A': 2, 'a': 3}|dictsort }} {{ {'b': 1, 'A': 2, 'a': 3}|dictsort(true) }}", {"d": {"b": 2, "a": 3, "c": 1}}),
    ("f_unique_sort", "{{ [3, 1, 3, 2, 1]|unique|list }} {{ ['a', 'A', 'b']|unique|list }} {{ ['a', 'A', 'b']|unique(true)|list }} {{ [3, 1, 2]|sort }} {{ ['b', 'A', 'c']|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ users|sort(attribute='age')|map(attribute='name')|join(',') }}", {"users": USERS}),
    ("f_indent", "{{ text|indent }}|{{ text|indent(2, true) }}|{{ text|indent('>> ', blank=true) }}|{{ 'one'|indent(first=true) }}", {"text": "line1\nline2\n\nline4\n"}),
    ("f_wordcount_misc", "{{ 'Hello, big world! 中文 x_y'|wordcount }} {{ '<b>'|e }} {{ '<b>&\"\\''|escape }} {{ '<i>'|safe }} {{ 'abc'|center(9) }}|", {}),
    ("f_sum_min_max", "{{ [1, 2, 3]|sum }} {{ [1.5, 2]|sum }} {{ users|sum(attribute='age') }} {{ [1, 2]|sum(start=10) }} {{ [3, 1, 2]|min }} {{ [3, 1, 2]|max }} {{ ['b', 'A', 'c']|min }} {{ users|max(attribute='age')|attr('name') }} [{{ []|max }}]", {"users": USERS}),
    ("f_batch", "{{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 'x')|list }}", {}),
    ("f_chain_precedence", "{{ 'a' ~ 'b'|upper }} {{ -1|abs }} {{ [1, 2]|length + 1 }} {{ messages|length - 1 }}", {"messages": [1, 2, 3]}),
    ("f_content_trim_plus", "{{ '<|h|>' + m['content'] | trim + '<|e|>' }}", {"m": {"content": "  spaced out \n"}}),
    # ---- tests
    ("tests_types", "{% for v in [1, 1.5, 'a', none, true, [1], {'a': 1}] %}{{ v is number }}{{ v is integer }}{{ v is float }}{{ v is string }}{{ v is none }}{{ v is boolean }}{{ v is sequence }}{{ v is mapping }}{{ v is iterable }}|{% endfor %}", {}),
    ("tests_undefined_types", "{{ x is defined }}{{ x is undefined }}{{ x is none }}{{ x is string }}{{ x is iterable }}{{ x is sequence }}{{ x is mapping }}", {}),
    ("tests_values", "{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 0 is false }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ 2 is in [1, 2] }}{{ 'A' is upper }}{{ 'a' is lower }}{{ 'x' is eq 'x' }}{{ 'x' is ne 'y' }}{{ 2 is gt 1 }}{{ 2 is lt 1 }}{{ 2 is ge 2 }}{{ 1 is le 0 }}{{ 1 is equalto 1 }}{{ none is sameas none }}{{ f is callable }}{{ range is callable }}", {"f": 1}),
    ("tests_string_vs_content_list", "{% for m in msgs %}{% if m.content is string %}S{% elif m.content is iterable %}I{% else %}?{% endif %}{% endfor %}", {"msgs": [{"content": "hi"}, {"content": [{"type": "text", "text": "x"}]}, {"content": None}]}),
    ("tests_false_kwarg", "{% if enable_thinking is defined and enable_thinking is false %}no-think{% endif %}", {"enable_thinking": False}),
    # ---- globals
    ("global_range", "{{ range(3)|list }} {{ range(1, 4)|list }} {{ range(10, 0, -3)|list }} {% for i in range(2) %}{{ i }}{% endfor %}", {}),
    ("global_dict", "{{ dict(a=1, b='x') }} {{ dict({'z': 1}, y=2) }}", {}),
    ("strftime_now", "{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M:%S') }} {{ strftime_now('%A %B %-d') }}", {}),
    ("raise_exception", "{% if messages|length == 0 %}{{ raise_exception('No messages given!') }}{% endif %}ok", {"messages": []}),
    ("raise_exception_in_loop", "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}{{ raise_exception('Unknown role: ' + m.role) }}{% endif %}{% endfor %}", {"messages": [{"role": "user"}, {"role": "narrator"}]}),
    ("generation_block", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
    ("bos_eos_tokens", "{{ bos_token }}x{{ eos_token }}", {"bos_token": "<s>", "eos_token": "</s>"}),
    # ---- errors
    ("err_undefined_attr_of_undefined", "{{ missing.attr }}", {}),
    ("err_attr_of_missing_key", "{{ m.nope.deeper }}", {"m": {}}),
    ("err_add_none", "{{ 'a' + none }}", {}),
    ("err_add_str_int", "{{ 'a' + 1 }}", {}),
    ("err_compare_str_int", "{{ 'a' < 1 }}", {}),
    ("err_div_zero", "{{ 1 / 0 }}", {}),
    ("err_iterate_int", "{% for x in 5 %}{% endfor %}", {}),
    ("err_call_undefined", "{{ nothing() }}", {}),
    ("err_list_append_unsafe", "{{ l.append(1) }}", {"l": []}),
    ("err_syntax_unclosed_if", "line1\n{% if x %}\nline3", {}),
    ("err_syntax_unknown_tag", "a\nb\n{% frobnicate %}", {}),
    ("err_syntax_endfor_without_for", "{% if x %}{% endfor %}", {}),
    ("err_syntax_bad_expr", "{{ 1 + }}", {}),
    ("err_syntax_unbalanced", "\n\n{{ (1 }}", {}),
    ("err_syntax_unknown_filter", "\n{{ x|nosuchfilter }}", {}),
    ("err_syntax_unknown_test", "{{ x is nosuchtest }}", {}),
    ("err_syntax_unclosed_comment", "a {# never closed", {}),
    ("err_syntax_unclosed_var", "a {{ x ", {}),
    ("err_syntax_elif_after_else", "{% if a %}{% else %}{% elif b %}{% endif %}", {}),
]


# ---------------------------------------------------------------------------------------------
# Conversations for the real templates.

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone — returns “HH:MM”.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": []},
    },
}

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
CONVERSATIONS = [
    ("single_user", [{"role": "user", "content": "Hello!"}], None, {}),
    ("system_user", [SYSTEM, {"role": "user", "content": "What is 2+2?"}], None, {}),
    ("multi_turn", [
        SYSTEM,
        {"role": "user", "content": "Hi, who are you?"},
        {"role": "assistant", "content": "I am an assistant."},
        {"role": "user", "content": "Tell me a joke."},
    ], None, {}),
    ("multi_turn_no_system", [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second question"},
        {"role": "assistant", "content": "Second answer"},
    ], None, {}),
    ("unicode", [
        {"role": "system", "content": "Réponds en français. 日本語も話せます。"},
        {"role": "user", "content": "emoji 😀👩‍👩‍👧 مرحبا नमस्ते\u00a0nbsp\tTab"},
        {"role": "assistant", "content": "D'accord ! ✅"},
        {"role": "user", "content": "Ещё раз?"},
    ], None, {}),
    ("braces_quotes", [
        {"role": "user", "content": "Render {{ this }} and {% that %} and {# not a comment #} \"quoted\" 'single' \\backslash </s> <|eot_id|>"},
        {"role": "assistant", "content": "{\"json\": [1, 2, {\"k\": \"v\"}]}"},
        {"role": "user", "content": "ok"},
    ], None, {}),
    ("whitespace_content", [
        {"role": "system", "content": "  padded system  \n"},
        {"role": "user", "content": "\n\n  lots of space \n\n"},
        {"role": "assistant", "content": "  answer\n"},
        {"role": "user", "content": "line1\nline2\n"},
    ], None, {}),
    ("empty_content", [{"role": "user", "content": ""}], None, {}),
    ("two_systems", [SYSTEM, {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], None, {}),
    ("not_alternating", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], None, {}),
    ("assistant_first", [{"role": "assistant", "content": "I start"}, {"role": "user", "content": "ok"}], None, {}),
    ("content_parts", [
        {"role": "system", "content": [{"type": "text", "text": "System as parts."}]},
        {"role": "user", "content": [{"type": "text", "text": "Look at this:"}, {"type": "image"}, {"type": "text", "text": " what is it? "}]},
    ], None, {}),
    ("tools_defined_only", [SYSTEM, {"role": "user", "content": "Weather in Paris?"}], [WEATHER_TOOL, TIME_TOOL], {}),
    ("tools_defined_no_system", [{"role": "user", "content": "Weather in Paris?"}], [WEATHER_TOOL], {}),
    ("tool_call_roundtrip_dict_args", [
        SYSTEM,
        {"role": "user", "content": "Weather in Paris and time in Tokyo?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}},
            {"type": "function", "function": {"name": "get_time", "arguments": {"tz": "Asia/Tokyo"}}},
        ]},
        {"role": "tool", "name": "get_weather", "content": "{\"temp\": 18}"},
        {"role": "tool", "name": "get_time", "content": "21:04"},
    ], [WEATHER_TOOL, TIME_TOOL], {}),
    ("tool_call_roundtrip_string_args", [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Lyon\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain, 12C"},
        {"role": "assistant", "content": "Paris is sunny; Lyon has rain."},
        {"role": "user", "content": "Thanks"},
    ], [WEATHER_TOOL], {}),
    ("qwen_thinking_history", [
        {"role": "user", "content": "What is 3*7?"},
        {"role": "assistant", "content": "<think>\n3*7 is 21.\n</think>\n\n21"},
        {"role": "user", "content": "And 4*5?"},
        {"role": "assistant", "content": "<think>\nsimple\n</think>\n\n20"},
    ], None, {}),
    ("reasoning_content_field", [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A", "reasoning_content": "thought about it"},
    ], None, {}),
    ("enable_thinking_false", [SYSTEM, {"role": "user", "content": "Quick answer please"}], None, {"enable_thinking": False}),
    ("enable_thinking_true", [{"role": "user", "content": "Think hard"}], None, {"enable_thinking": True}),
]

# Llama 2 ships no chat template in its tokenizer_config.json; this is the Llama-2-chat format
# (system prompt folded into the first user turn), stored as a file next to the fixtures and
# given to the C++ side through ChatTemplate::from_file, as `--chat-template` would.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)


# Templates written in the style of other popular model families (not shipped in the npm
# packages): they exercise what those families' templates use (strftime_now, tojson with indent,
# macros rendering JSON schemas, namespace bookkeeping, loop.last checks, raise_exception on bad
# tool-call ids, content splitting on </think>). Rendered for the same conversations into
# styles.json.
STYLE_TEMPLATES = {
    "llama31_tools_style": """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = strftime_now("%d %b %Y") %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions.\\n\\n" }}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
""",
    "mistral_tools_style": """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\\n\\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
""",
    "schema_macros_style": """{%- macro json_to_python_type(json_spec) %}
{%- set basic_type_map = {
    "string": "str",
    "number": "float",
    "integer": "int",
    "boolean": "bool"
} %}

{%- if basic_type_map[json_spec.type] is defined %}
    {{- basic_type_map[json_spec.type] }}
{%- elif json_spec.type == "array" %}
    {{- "list[" +  json_to_python_type(json_spec["items"]) + "]"}}
{%- elif json_spec.type == "object" %}
    {%- if json_spec.additionalProperties is defined %}
        {{- "dict[str, " + json_to_python_type(json_spec.additionalProperties) + ']'}}
    {%- else %}
        {{- "dict" }}
    {%- endif %}
{%- elif json_spec.type is iterable and json_spec.type is not string %}
    {{- "Union[" }}
    {%- for t in json_spec.type %}
      {{- json_to_python_type({"type": t}) }}
      {%- if not loop.last %}
        {{- "," }}
    {%- endif %}
    {%- endfor %}
    {{- "]" }}
{%- else %}
    {{- "Any" }}
{%- endif %}
{%- endmacro %}

{{- bos_token }}
{{- '<|im_start|>system\\n' }}
{{- "You are a function calling AI model. You are provided with function signatures within <tools></tools> XML tags. Here are the available tools: <tools> " }}
{%- for tool in (tools if tools is not none else []) %}
    {%- if tool.function is defined %}
        {%- set tool = tool.function %}
    {%- endif %}
    {{- '{"type": "function", "function": ' }}
    {{- '{"name": "' + tool.name + '", ' }}
    {{- '"description": "' + tool.name + '(' }}
    {%- for param_name, param_fields in tool.parameters.properties|items %}
        {{- param_name + ": " + json_to_python_type(param_fields) }}
        {%- if not loop.last %}
            {{- ", " }}
        {%- endif %}
    {%- endfor %}
    {{- ")" }}
    {%- if tool.return is defined %}
        {{- " -> " + json_to_python_type(tool.return) }}
    {%- endif %}
    {{- " - " + tool.description + "\\n\\n" }}
    {%- for param_name, param_fields in tool.parameters.properties|items %}
        {%- if loop.first %}
            {{- "    Args:\\n" }}
        {%- endif %}
        {{- "        " + param_name + "(" + json_to_python_type(param_fields) + "): " + param_fields.description|default("(no description)")|trim }}
    {%- endfor %}
    {%- if tool.return is defined and tool.return.description is defined %}
        {{- "\\n    Returns:\\n        " + tool.return.description }}
    {%- endif %}
    {{- '"' }}
    {{- ', "parameters": ' }}
    {%- if tool.parameters.properties | length == 0 %}
        {{- "{}" }}
    {%- else %}
        {{- tool.parameters|tojson }}
    {%- endif %}
    {{- "}" }}
    {%- if not loop.last %}
        {{- "\\n" }}
    {%- endif %}
{%- endfor %}
{{- " </tools>" }}
{{- '<|im_end|>\\n' }}
{%- for message in messages %}
    {%- if message.role == "user" or message.role == "system" or (message.role == "assistant" and message.tool_calls is not defined) %}
        {{- '<|im_start|>' + message.role + '\\n' + (message.content if message.content is string else message.content|map(attribute='text')|join) + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
    {%- for tool_call in message.tool_calls %}
       {{- '\\n<tool_call>\\n' }}           {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '{' }}
            {{- '"name": "' }}
            {{- tool_call.name }}
            {{- '"' }}
            {{- ', '}}
            {%- if tool_call.arguments is defined %}
                {{- '"arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments|tojson }}
                {%- endif %}
            {%- endif %}
            {{- '}' }}
            {{- '\\n</tool_call>' }}
    {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.previtem and loop.previtem.role != "tool" %}
            {{- '<|im_start|>tool\\n' }}
        {%- endif %}
        {{- '<tool_response>\\n' }}
        {{- message.content }}
        {%- if not loop.last %}
            {{- '\\n</tool_response>\\n' }}
        {%- else %}
            {{- '\\n</tool_response>' }}
        {%- endif %}
        {%- if not loop.last and loop.nextitem.role != "tool" %}
            {{- '<|im_end|>' }}
        {%- elif loop.last %}
            {{- '<|im_end|>' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
""",
    "phi_style": """{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}""",
    "r1_style": """{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}""",
}
STYLE_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}

# Extra conversations for the style templates (tool-call ids of length 9 as Mistral wants).
STYLE_CONVERSATIONS = [
    ("mistral_ids", [
        SYSTEM,
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_calls": [
            {"id": "abc123xyz", "type": "function", "function": {"name": "get_weather", "arguments": {"location": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "abc123xyz", "content": "{\"temp\": 18}"},
        {"role": "assistant", "content": "It is 18 degrees."},
        {"role": "user", "content": "Thanks!"},
    ], [WEATHER_TOOL], {}),
    ("schema_types", [{"role": "user", "content": "types"}], [
        {"type": "function", "function": {"name": "f", "description": "All the types.", "parameters": {"type": "object", "properties": {
            "a": {"type": "array", "items": {"type": "integer"}, "description": "  ints  "},
            "b": {"type": ["string", "null"]},
            "c": {"type": "object", "additionalProperties": {"type": "number"}},
            "d": {"type": "boolean", "description": "flag"},
            "e": {"type": "object"}}}, "return": {"type": "string", "description": "a result"}}},
        {"type": "function", "function": {"name": "g", "description": "No params.", "parameters": {"type": "object", "properties": {}}}},
    ], {}),
    ("custom_date", [SYSTEM, {"role": "user", "content": "What day is it?"}], None, {"date_string": "01 Jan 2030"}),
    ("tools_in_system", [SYSTEM, {"role": "user", "content": "Weather?"}], [WEATHER_TOOL], {"tools_in_user_message": False}),
]


def styles_fixture():
    conversations = {}
    for conv_name, messages, tools, extra in CONVERSATIONS + STYLE_CONVERSATIONS:
        conversations[conv_name] = {"messages": messages, "tools": tools, "kwargs": extra}
    templates = []
    for name, template in STYLE_TEMPLATES.items():
        cases = []
        for conv_name, conv in conversations.items():
            for gen in (True, False):
                context = {"messages": conv["messages"], "tools": conv["tools"], "documents": None,
                           "add_generation_prompt": gen}
                context.update(STYLE_TOKENS)
                context.update(conv["kwargs"])
                case = {"conversation": conv_name, "add_generation_prompt": gen}
                case.update(render(template, context))
                cases.append(case)
        templates.append({"name": name, "template": template, "cases": cases})
    return {"special_tokens": STYLE_TOKENS, "conversations": conversations, "templates": templates}


MODELS = ["llama2", "llama3", "llama3_1", "qwen3", "gemma3", "deepseek_v3"]


def special_tokens(config):
    out = {}
    for name in ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]:
        v = config.get(name)
        if isinstance(v, dict):
            v = v.get("content")
        if v is not None:
            out[name] = v
    return out


def model_fixture(name):
    path = os.path.join(TOKENIZERS, name, "tokenizer_config.json")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: run scripts/fetch-test-data.sh first")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    template = config.get("chat_template")
    fixture = {"model": name, "source": "tokenizer_config.json"}
    if template is None:
        template = LLAMA2_TEMPLATE
        tfile = f"{name}_chat_template.jinja"
        with open(os.path.join(OUT, tfile), "w", encoding="utf-8") as f:
            f.write(template)
        fixture["source"] = tfile
    if isinstance(template, list):
        template = {t["name"]: t["template"] for t in template}["default"]
    tokens = special_tokens(config)
    fixture["special_tokens"] = tokens
    cases = []
    for conv_name, messages, tools, extra in CONVERSATIONS:
        for gen in (True, False):
            # As transformers' render call: messages, tools, documents, add_generation_prompt,
            # then the special tokens map and the extra kwargs.
            context = {"messages": messages, "tools": tools, "documents": None, "add_generation_prompt": gen}
            context.update(tokens)
            context.update(extra)
            result = render(template, context)
            case = {"name": f"{conv_name}{'' if gen else '_nogen'}", "messages": messages, "tools": tools,
                    "add_generation_prompt": gen, "kwargs": extra}
            case.update(result)
            cases.append(case)
    fixture["cases"] = cases
    return fixture



# Random templates mixing text, whitespace and tags with every whitespace-control modifier:
# whitespace handling is where an interpreter most easily differs from jinja2.
def random_whitespace_templates(count, seed):
    import random

    rng = random.Random(seed)
    texts = ["a", "b c", " ", "  ", "\t", "\n", "\n\n", "  \n", "\n  ", " \t\n\t ", "x\n  ", "\u00a0", "\u3000y", "\r\n"]

    def ws():
        return rng.choice(["", " ", "  ", "\n", " \n  "])

    def tag(body, var=False):
        left = rng.choice(["", "", "-", "+"])
        right = rng.choice(["", "", "-"] if var else ["", "", "-", "+"])
        open_, close = ("{{", "}}") if var else ("{%", "%}")
        return open_ + left + ws() + body + ws() + right + close

    def items(depth):
        out = []
        for _ in range(rng.randint(1, 5)):
            k = rng.random()
            if k < 0.35:
                out.append(rng.choice(texts))
            elif k < 0.5:
                out.append(tag(rng.choice(["'v'", "n", "n ~ '|'", "'\\n'"]), var=True))
            elif k < 0.58:
                out.append("{#" + rng.choice(["", "-", "+"]) + " c " + rng.choice(["", "-", "+"]) + "#}")
            elif k < 0.66:
                out.append(tag("set s = " + str(rng.randint(0, 9))))
            elif k < 0.83 and depth < 3:
                out.append(tag("if " + rng.choice(["true", "false", "n > 1"])) + items(depth + 1)
                           + (tag("else") + items(depth + 1) if rng.random() < 0.4 else "") + tag("endif"))
            elif depth < 3:
                out.append(tag("for i in range(" + str(rng.randint(0, 3)) + ")") + items(depth + 1) + tag("endfor"))
            else:
                out.append(rng.choice(texts))
        return "".join(out)

    return [items(0) + rng.choice(["", "\n", "\n\n"]) for _ in range(count)]


# gpt-oss: the chat template openai/gpt-oss-20b and -120b ship (harmony format; a copy as
# llama.cpp keeps it in models/templates/openai-gpt-oss-120b.jinja, committed next to the fixture
# as gpt_oss_chat_template.jinja), with its special tokens; the shared conversations plus ones
# for its own inputs (thinking, reasoning_effort, model_identity, builtin_tools).
GPT_OSS_TOKENS = {"bos_token": "<|startoftext|>", "eos_token": "<|return|>",
                  "pad_token": "<|endoftext|>"}
GPT_OSS_CONVERSATIONS = [
    ("thinking_last_turn", [{"role": "user", "content": "2+2?"},
                            {"role": "assistant", "thinking": "Add them.", "content": "4"}],
     None, {}),
    ("thinking_dropped_in_history", [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "thinking": "Add them.", "content": "4"},
        {"role": "user", "content": "And 3+3?"}], None, {}),
    ("reasoning_effort_high", [SYSTEM, {"role": "user", "content": "Prove it."}], None,
     {"reasoning_effort": "high"}),
    ("identity_and_builtin_tools", [{"role": "user", "content": "Search."}], None,
     {"model_identity": "You are a test model.", "builtin_tools": ["browser", "python"]}),
    ("tool_call_with_thinking", [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "thinking": "I should call the tool.", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": {"location": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18 C"}], [WEATHER_TOOL], {}),
    ("channel_tags_in_content", [{"role": "user", "content": "hi"}, {
        "role": "assistant", "content": "<|channel|>final<|message|>x"}], None, {}),
]


def gpt_oss_fixture():
    tfile = "gpt_oss_chat_template.jinja"
    with open(os.path.join(OUT, tfile), encoding="utf-8") as f:
        template = f.read()
    cases = []
    for conv_name, messages, tools, extra in CONVERSATIONS + GPT_OSS_CONVERSATIONS:
        for gen in (True, False):
            context = {"messages": messages, "tools": tools, "documents": None,
                       "add_generation_prompt": gen}
            context.update(GPT_OSS_TOKENS)
            context.update(extra)
            case = {"name": f"{conv_name}{'' if gen else '_nogen'}", "messages": messages,
                    "tools": tools, "add_generation_prompt": gen, "kwargs": extra}
            case.update(render(template, context))
            cases.append(case)
    return {"model": "gpt_oss", "source": tfile, "special_tokens": GPT_OSS_TOKENS,
            "cases": cases}


def write_gpt_oss(meta):
    fx = gpt_oss_fixture()
    fx["meta"] = meta
    with open(os.path.join(OUT, "gpt_oss.json"), "w", encoding="utf-8") as f:
        json.dump(fx, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum(1 for c in fx["cases"] if "error" in c)
    print(f"gpt_oss: {len(fx['cases'])} cases ({n_err} errors)")


def main():
    os.makedirs(OUT, exist_ok=True)
    if sys.argv[1:] == ["--only", "gpt_oss"]:  # needs no fetched tokenizer files
        write_gpt_oss({"jinja2": jinja2.__version__, "now": NOW.isoformat()})
        return
    features = []
    names = set()
    for name, template, context in FEATURES:
        assert name not in names, name
        names.add(name)
        case = {"name": name, "template": template, "context": context}
        case.update(render(template, context))
        features.append(case)
    for i, template in enumerate(random_whitespace_templates(300, seed=3)):
        case = {"name": f"ws_random_{i:03d}", "template": template, "context": {"n": 2}}
        case.update(render(template, case["context"]))
        features.append(case)
    meta = {"jinja2": jinja2.__version__, "now": NOW.isoformat()}
    with open(os.path.join(OUT, "features.json"), "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "cases": features}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for m in MODELS:
        fx = model_fixture(m)
        fx["meta"] = meta
        with open(os.path.join(OUT, f"{m}.json"), "w", encoding="utf-8") as f:
            json.dump(fx, f, ensure_ascii=False, indent=1)
            f.write("\n")
        n_err = sum(1 for c in fx["cases"] if "error" in c)
        print(f"{m}: {len(fx['cases'])} cases ({n_err} errors)")
    write_gpt_oss(meta)
    st = styles_fixture()
    st["meta"] = meta
    with open(os.path.join(OUT, "styles.json"), "w", encoding="utf-8") as f:
        json.dump(st, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for t in st["templates"]:
        n_err = sum(1 for c in t["cases"] if "error" in c)
        print(f"styles/{t['name']}: {len(t['cases'])} cases ({n_err} errors)")
    n_err = sum(1 for c in features if "error" in c)
    print(f"features: {len(features)} cases ({n_err} errors)")


if __name__ == "__main__":
    main()
