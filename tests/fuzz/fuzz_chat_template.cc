// Fuzz target: chat-template parsing and rendering. The input is a template, a NUL byte, and
// the messages as JSON (a list of messages, or any other JSON, or text, which becomes the
// content of a user message). No NUL: the input is the template and fixed messages render.
// Syntax errors, runtime errors and the sandbox limits (interpreter.h) must end in
// inferd::Error (jinja::TemplateError); nothing may crash, leak or run away.
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "jinja/chat_template.h"

using ojson = nlohmann::ordered_json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string source(in.substr(0, nul));
  ojson messages = ojson::array(
      {{{"role", "system"}, {"content", "Be brief."}},
       {{"role", "user"}, {"content", "Hi {{ x }} <|eot_id|>"}},
       {{"role", "assistant"},
        {"content", ""},
        {"tool_calls", ojson::array({{{"type", "function"},
                                      {"function", {{"name", "f"}, {"arguments", {{"a", 1}}}}}}})}},
       {{"role", "tool"}, {"content", "42"}}});
  ojson tools = nullptr;
  if (nul != std::string_view::npos) {
    const std::string_view rest = in.substr(nul + 1);
    ojson j = ojson::parse(rest, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
      messages = ojson::array({{{"role", "user"}, {"content", std::string(rest)}}});
    else if (j.is_object() && j.contains("messages"))
      messages = j["messages"], tools = j.value("tools", ojson());
    else
      messages = std::move(j);  // maybe not a list: the template sees whatever it is
  }
  try {
    inferd::ChatTemplate t(source, {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
    t.set_now([] {
      std::tm tm{};
      tm.tm_year = 126;
      tm.tm_mday = 1;
      return tm;
    });
    for (bool gen : {true, false}) (void)t.apply(messages, tools, gen, {{"enable_thinking", gen}});
  } catch (const inferd::Error&) {
  }
  return 0;
}
