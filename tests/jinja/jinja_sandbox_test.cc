// Hostile chat templates: the known Jinja sandbox-escape payloads and resource-exhaustion tricks.
// Each must end in a TemplateError (or harmless text) quickly and within bounded memory; none may
// reach anything outside the data the template is given.
#include <gtest/gtest.h>

#include <time.h>

#include <string>

#include "jinja/template.h"

namespace inferd {
namespace {

using nlohmann::ordered_json;
// This thread's CPU seconds: the render's cost, whatever else the machine runs. The bound is 5 s:
// the step limit stops these templates after 2.1-2.6 s of CPU on the 2-core dev VM (a 2 s
// wall-clock bound failed there); a runaway would take hours.
constexpr double kMaxCpuSeconds = 5.0;

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

ordered_json context() {
  return ordered_json::parse(
      R"({"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true,
          "bos_token": "<s>", "eos_token": "</s>"})");
}

struct Outcome {
  bool error = false;
  std::string text;    // the output, or the error message
  double seconds = 0;  // CPU seconds of the render
};

Outcome run(const std::string& src) {
  Outcome o;
  const double t0 = thread_cpu_seconds();
  try {
    o.text = jinja::Template(src).render(context());
  } catch (const jinja::TemplateError& e) {
    o.error = true;
    o.text = e.what();
  }
  o.seconds = thread_cpu_seconds() - t0;
  return o;
}

// Renders to an error or to text that carries nothing from outside (no Python objects, no
// process output), in under five seconds of CPU.
void expect_contained(const std::string& src) {
  SCOPED_TRACE(src);
  const Outcome o = run(src);
  EXPECT_LT(o.seconds, kMaxCpuSeconds);
  if (o.error) return;
  EXPECT_LT(o.text.size(), 1000u);
  for (const char* leak : {"class", "subclasses", "uid=", "globals", "function", "module", "<"})
    EXPECT_EQ(o.text.find(leak), std::string::npos) << "output: " << o.text;
}

// Must be a clear TemplateError naming `what`, in under five seconds of CPU.
void expect_error(const std::string& src, const std::string& what) {
  SCOPED_TRACE(src.substr(0, 200));
  const Outcome o = run(src);
  EXPECT_TRUE(o.error) << "rendered " << o.text.size() << " bytes";
  EXPECT_NE(o.text.find(what), std::string::npos) << o.text;
  EXPECT_LT(o.seconds, kMaxCpuSeconds);
}

TEST(JinjaSandbox, EscapePayloadsReachNothing) {
  for (const char* p : {
           "{{ ''.__class__.__mro__[1].__subclasses__() }}",
           "{{ ''.__class__.__mro__[2].__subclasses__()[40]('/etc/passwd').read() }}",
           "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
           "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
           "{{ namespace.__init__.__globals__.os.popen('id').read() }}",
           "{{ self.__init__.__globals__ }}",
           "{{ self._TemplateReference__context }}",
           "{{ config.items() }}",
           "{{ request.application.__globals__.__builtins__.__import__('os').popen('id').read() }}",
           "{{ lipsum.__globals__['os'].popen('id').read() }}",
           "{{ url_for.__globals__ }}",
           "{{ get_flashed_messages.__globals__ }}",
           "{{ raise_exception.__globals__ }}",
           "{{ raise_exception.__code__ }}",
           "{{ strftime_now.__globals__ }}",
           "{{ range.__self__ }}",
           "{{ messages.__class__ }}",
           "{{ messages.__class__.__base__.__subclasses__() }}",
           "{{ messages[0].__dict__ }}",
           "{{ messages[0].__class__.__init__ }}",
           "{{ messages|attr('__class__') }}",
           "{{ messages|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
           "{{ messages['__class__'] }}",
           "{{ (messages|map(attribute='__class__')|list) }}",
           "{{ ''|attr('format')('%c' % 60) }}",
           "{% set x = ''.__class__ %}{{ x }}",
           "{{ ().__class__.__bases__[0].__subclasses__() }}",
           "{{ dict.__class__ }}",
           "{{ (1).__class__ }}",
           "{{ True.__class__ }}",
           "{{ none.__class__ }}",
           "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
           "{{ messages.pop() }}{{ messages }}",
           "{{ __builtins__ }}",
           "{{ __import__('os').system('id') }}",
           "{{ eval('1+1') }}",
           "{{ open('/etc/passwd').read() }}",
           "{% import 'os' as os %}",
           "{% include '/etc/passwd' %}",
           "{% extends '/etc/passwd' %}",
           "{% from 'os' import popen %}",
       })
    expect_contained(p);
}

TEST(JinjaSandbox, ImmutableInputs) {
  // The data given cannot be changed in place (ImmutableSandboxedEnvironment).
  expect_error("{% set _ = messages.append(1) %}{{ messages|length }}", "unsafe");
  expect_error("{{ messages.pop() }}", "unsafe");
  expect_error("{% import 'os' as os %}", "unknown tag 'import'");
  expect_error("{% include '/etc/passwd' %}", "unknown tag 'include'");
}

TEST(JinjaSandbox, HugeRangeIsAnError) {
  expect_error("{% for i in range(10**9) %}{% endfor %}", "MAX_RANGE");
  expect_error("{{ range(10**18)|list|length }}", "MAX_RANGE");
}

TEST(JinjaSandbox, NestedLoopsHitTheStepLimit) {
  expect_error("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
               "statements and loop iterations");
  expect_error(
      "{% for a in range(50000) %}{% for b in range(50000) %}{% set x = 1 %}{% endfor %}"
      "{% endfor %}",
      "template limit");
}

TEST(JinjaSandbox, StringBlowUpIsAnError) {
  expect_error("{{ 'a' * 10**10 }}", "template limit");
  expect_error("{{ 'a' * 9223372036854775807 }}", "template limit");
  expect_error("{{ ('a' * 1000000) * 1000 }}", "template limit");
  expect_error("{% set s = 'a' * 30000000 %}{{ s ~ s }}", "template limit");
  expect_error("{% set s = 'a' * 30000000 %}{{ s + s }}", "template limit");
  expect_error("{{ 'x'.center(10**12) }}", "template limit");
  expect_error("{{ 'x'|center(10**12) }}", "template limit");
  expect_error("{{ 'x'.ljust(10**12) }}", "template limit");
  expect_error("{{ 'x'.zfill(10**12) }}", "template limit");
  expect_error("{{ 'a\\nb'|indent(10**12) }}", "template limit");
  expect_error("{{ ('a' * 1000000).replace('a', 'a' * 1000) }}", "template limit");
  expect_error("{{ ('a' * 100000).replace('', 'b' * 1000) }}", "template limit");
  expect_error("{{ (['a' * 1000000] * 100)|join(',') }}", "template limit");
  expect_error("{{ ','.join(['a' * 1000000] * 100) }}", "template limit");
  expect_error("{{ '%999999999999s' % 'x' }}", "too large");
  expect_error("{{ [1] * 10**9 }}", "template limit");
  expect_error("{{ [1, 2]|batch(10**12, 0)|list }}", "template limit");
}

TEST(JinjaSandbox, OutputBlowUpIsAnError) {
  // Each statement is small; the output as a whole crosses the limit.
  expect_error("{% set s = 'a' * 1000000 %}{% for i in range(100) %}{{ s }}{% endfor %}",
               "the template output");
  expect_error(
      "{% set s = 'a' * 1000000 %}{% set ns = namespace(t='') %}"
      "{% for i in range(100) %}{% set ns.t = ns.t ~ s %}{% endfor %}",
      "template limit");
  expect_error(
      "{% set s = 'a' * 1000000 %}{% macro m() %}{% for i in range(100) %}{{ s }}{% endfor %}"
      "{% endmacro %}{{ m() }}",
      "template limit");
}

TEST(JinjaSandbox, DeepRecursionIsAnError) {
  expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion");
  expect_error("{% macro f(n) %}{{ f(n + 1) }}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion");
  // Exponential fan-out under the depth limit: 2^40 calls, stopped by the step limit.
  expect_error(
      "{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
      "{{ f(0) }}",
      "template limit");
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "(";
  expect_error("{{ " + deep + "1" + std::string(100000, ')') + " }}", "too deep");
  std::string nested;
  for (int i = 0; i < 5000; ++i) nested += "{% if true %}";
  expect_error(nested, "too deep");
}

TEST(JinjaSandbox, OrdinaryTemplatesStillRender) {
  // The limits are far above what a real chat template does.
  const Outcome o =
      run("{% for m in messages %}{{ '<|' ~ m.role ~ '|>' ~ m.content }}{% endfor %}"
          "{% for i in range(1000) %}{{ i }}{% endfor %}{{ ('ab' * 1000)|length }}");
  ASSERT_FALSE(o.error) << o.text;
  EXPECT_EQ(o.text.rfind("<|user|>hi0123", 0), 0u);
}

}  // namespace
}  // namespace inferd
