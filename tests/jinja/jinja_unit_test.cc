// Unit tests of the pieces the fixtures do not pin down: Python float repr over many values,
// ChatTemplate loading rules and argument checks, error locations.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "jinja/chat_template.h"
#include "jinja/template.h"
#include "jinja/value.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

std::string render(const std::string& src, const ordered_json& ctx = ordered_json::object()) {
  return jinja::Template(src).render(ctx);
}

TEST(JinjaValue, FloatRepr) {
  EXPECT_EQ(jinja::python_float_repr(1.0), "1.0");
  EXPECT_EQ(jinja::python_float_repr(0.1), "0.1");
  EXPECT_EQ(jinja::python_float_repr(-2.5), "-2.5");
  EXPECT_EQ(jinja::python_float_repr(1e16), "1e+16");
  EXPECT_EQ(jinja::python_float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(jinja::python_float_repr(9999999999999998.0), "9999999999999998.0");
  EXPECT_EQ(jinja::python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(jinja::python_float_repr(0.00001), "1e-05");
  EXPECT_EQ(jinja::python_float_repr(1.5e-300), "1.5e-300");
  EXPECT_EQ(jinja::python_float_repr(5e-324), "5e-324");
  EXPECT_EQ(jinja::python_float_repr(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(jinja::python_float_repr(123456.789), "123456.789");
  EXPECT_EQ(jinja::python_float_repr(-0.0), "-0.0");
}

TEST(JinjaValue, JsonRoundTripKeepsKeyOrder) {
  auto j = ordered_json::parse(R"({"z": 1, "a": {"y": [1, 2.0, "s"], "b": null}})");
  EXPECT_EQ(render("{{ x|tojson }}", {{"x", j}}),
            R"({"z": 1, "a": {"y": [1, 2.0, "s"], "b": null}})");
  EXPECT_EQ(render("{% for k, v in x.items() %}{{ k }}{% endfor %}", {{"x", j}}), "za");
}

TEST(JinjaErrors, SyntaxErrorNamesLine) {
  try {
    jinja::Template t("a\nb\n{% if x %}\n{{ 1 + }}\n{% endif %}");
    FAIL() << "no error";
  } catch (const jinja::TemplateError& e) {
    EXPECT_EQ(e.kind(), jinja::TemplateError::Kind::kSyntax);
    EXPECT_EQ(e.line(), 4);
    EXPECT_NE(std::string(e.what()).find("line 4"), std::string::npos) << e.what();
  }
}

TEST(JinjaErrors, RuntimeErrorNamesLine) {
  try {
    render("ok\n\n{{ messages[0].content.upper }}{{ 1 + none }}",
           {{"messages", ordered_json::array()}});
    FAIL() << "no error";
  } catch (const jinja::TemplateError& e) {
    EXPECT_EQ(e.kind(), jinja::TemplateError::Kind::kRuntime);
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.message(), "list object has no element 0");
  }
}

TEST(JinjaErrors, RaiseExceptionMessageIsVerbatim) {
  try {
    render("{{ raise_exception('Bad role: ' ~ r) }}", {{"r", "x"}});
    FAIL() << "no error";
  } catch (const Error& e) {  // a TemplateError is an inferd::Error
    EXPECT_STREQ(e.what(), "Bad role: x");
  }
}

TEST(JinjaErrors, DeepRecursionIsAnErrorNotACrash) {
  EXPECT_THROW(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
               jinja::TemplateError);
}

TEST(JinjaErrors, DeepNestingIsAnErrorNotACrash) {
  const int n = 20000;
  EXPECT_THROW(jinja::Template("{{ " + std::string(n, '(') + "1" + std::string(n, ')') + " }}"),
               jinja::TemplateError);
  EXPECT_THROW(jinja::Template("{{ " + std::string(n, '-') + "1 }}"), jinja::TemplateError);
  std::string ifs;
  for (int i = 0; i < n; ++i) ifs += "{% if true %}";
  EXPECT_THROW(jinja::Template(ifs + "x"), jinja::TemplateError);
  // Reasonable nesting is fine.
  EXPECT_EQ(render("{{ " + std::string(50, '(') + "1" + std::string(50, ')') + " }}"), "1");
}

// Found by fuzz_chat_template: an integer attribute (`x.0`) or a hex/octal/binary literal past
// 64 bits was a bare std::out_of_range from stoll, not a TemplateError.
TEST(JinjaErrors, IntegerLiteralsTooLargeAreSyntaxErrors) {
  for (const char* src : {"{{ messages.88888888888888888888888 }}", "{{ 0x1ffffffffffffffffff }}",
                          "{{ 0b"
                          "11111111111111111111111111111111111111111111111111111111111111111 }}",
                          "{{ 99999999999999999999999 }}"}) {
    SCOPED_TRACE(src);
    try {
      jinja::Template t(src);
      ADD_FAILURE() << "parsed";
    } catch (const jinja::TemplateError& e) {
      EXPECT_EQ(e.kind(), jinja::TemplateError::Kind::kSyntax);
      EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
    }
  }
}

// Found by fuzz_chat_template's 30-minute run: a control byte after 0x / 0b / 0o (0x13 | 0x20 is
// '3') was taken for a digit and std::stoll threw invalid_argument, which ended the process.
TEST(JinjaErrors, ControlBytesAfterARadixPrefixAreNotDigits) {
  for (const std::string& src : {std::string("{{ 0x\x13 }}"), std::string("{{ 0b\x11 }}"),
                                 std::string("{{ 0o\x12 }}"), std::string("{{ 0x1\x19 }}")}) {
    SCOPED_TRACE(src);
    try {
      const std::string out = render(src);
      ADD_FAILURE() << "rendered: " << out;
    } catch (const jinja::TemplateError&) {
    }
  }
  EXPECT_EQ(render("{{ 0xfF }}"), "255");
  EXPECT_EQ(render("{{ 0B101 }}"), "5");
  EXPECT_EQ(render("{{ 0o17 }}"), "15");
}

TEST(JinjaTime, StrftimeNowUsesInjectedClock) {
  jinja::RenderOptions o;
  o.now = [] {
    std::tm tm{};
    tm.tm_year = 124;
    tm.tm_mon = 11;
    tm.tm_mday = 31;
    return tm;
  };
  EXPECT_EQ(jinja::Template("{{ strftime_now('%Y-%m-%d') }}").render(ordered_json::object(), o),
            "2024-12-31");
  // Without an injected clock it formats the current time.
  EXPECT_EQ(render("{{ strftime_now('%Y')|length }}"), "4");
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("inferd_jinja_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream f(path_ / name, std::ios::binary);
    f << text;
    return (path_ / name).string();
  }
  std::string str() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

const ordered_json kMsgs = ordered_json::parse(R"([{"role": "user", "content": "hi"}])");

TEST(ChatTemplateLoad, StringTemplateAndTokenObjects) {
  TempDir d;
  d.write("tokenizer_config.json", R"({
    "bos_token": {"__type": "AddedToken", "content": "<B>"}, "eos_token": "<E>", "pad_token": null,
    "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}[{{ pad_token }}]{{ tools }}{{ add_generation_prompt }}"})");
  auto t = ChatTemplate::from_model_dir(d.str());
  EXPECT_EQ(t.apply(kMsgs, nullptr, true), "<B>hi<E>[]NoneTrue");
  EXPECT_EQ(t.special_tokens().count("pad_token"), 0u);
}

TEST(ChatTemplateLoad, NamedTemplatesPickDefaultOrToolUse) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"chat_template": [
    {"name": "default", "template": "D{{ messages|length }}"},
    {"name": "tool_use", "template": "T{{ tools|length }}"}]})");
  auto t = ChatTemplate::from_model_dir(d.str());
  EXPECT_EQ(t.apply(kMsgs, nullptr, false), "D1");
  EXPECT_EQ(t.apply(kMsgs, ordered_json::parse(R"([{"type": "function"}])"), false), "T1");
  EXPECT_EQ(t.names(), (std::vector<std::string>{"default", "tool_use"}));
}

TEST(ChatTemplateLoad, ResolveFileNameOrText) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"bos_token": "<s>", "chat_template": [
    {"name": "default", "template": "D"}, {"name": "rag", "template": "R{{ bos_token }}"}]})");
  std::string f = d.write("t.jinja", "F{{ bos_token }}");
  EXPECT_EQ(ChatTemplate::resolve(f, d.str()).apply(kMsgs, nullptr, true), "F<s>");
  EXPECT_EQ(ChatTemplate::resolve("rag", d.str()).apply(kMsgs, nullptr, true), "R<s>");
  EXPECT_EQ(ChatTemplate::resolve("T{{ messages|length }}", d.str()).apply(kMsgs, nullptr, true),
            "T1");
  EXPECT_THROW(ChatTemplate::resolve("nosuch", d.str()), Error);
  EXPECT_THROW(ChatTemplate::from_model_dir(d.str()).named("nosuch"), Error);
}

TEST(ChatTemplateLoad, JinjaFileWinsOverConfig) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"eos_token": "</s>", "chat_template": "from config"})");
  d.write("chat_template.jinja", "from file {{ eos_token }}\n");
  EXPECT_EQ(ChatTemplate::from_model_dir(d.str()).apply(kMsgs, nullptr, true), "from file </s>");
}

TEST(ChatTemplateLoad, FromFileWithModelTokens) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  std::string f = d.write("my.jinja", "{{ bos_token }}{{ messages[0].content }}{{ extra }}");
  auto t = ChatTemplate::from_file(f, d.str());
  EXPECT_EQ(t.apply(kMsgs, nullptr, true, {{"extra", 7}}), "<s>hi7");
}

TEST(ChatTemplateLoad, MissingTemplateIsAClearError) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  try {
    ChatTemplate::from_model_dir(d.str());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no chat template"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--chat-template"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ChatTemplate::from_model_dir(d.str() + "/nope"), Error);
}

TEST(ChatTemplateApply, BadArgumentsAreErrors) {
  ChatTemplate t("{{ messages }}", {});
  EXPECT_THROW(t.apply(ordered_json::object(), nullptr, true), Error);
  EXPECT_THROW(t.apply(kMsgs, ordered_json::object(), true), Error);
  EXPECT_THROW(t.apply(kMsgs, nullptr, true, {{"messages", 1}}), Error);
  EXPECT_THROW(ChatTemplate("{% if %}", {}), jinja::TemplateError);
}

}  // namespace
}  // namespace inferd
