// A Jinja2-subset template engine that renders chat templates exactly as Python's jinja2 does
// in the environment transformers uses (ImmutableSandboxedEnvironment with trim_blocks=True,
// lstrip_blocks=True, the loopcontrols extension, a `tojson` filter that does not escape HTML,
// and the globals `raise_exception` and `strftime_now`).
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "jinja/value.h"

namespace inferd::jinja {

// A template syntax error, a runtime error (undefined attribute, type error) or a
// raise_exception() call. `what()` is one message; line is 0 when unknown.
class TemplateError : public Error {
 public:
  enum class Kind { kSyntax, kRuntime, kRaised };
  TemplateError(Kind kind, const std::string& message, int line);
  Kind kind() const { return kind_; }
  int line() const { return line_; }
  // The message without the location prefix (for raise_exception: the argument verbatim).
  const std::string& message() const { return message_; }

 private:
  Kind kind_;
  std::string message_;
  int line_;
};

struct Stmt;

struct RenderOptions {
  // strftime_now(fmt) formats the time this returns; when empty, the current local time.
  std::function<std::tm()> now;
};

class Template {
 public:
  // Parses `source`; throws TemplateError (kind kSyntax) with the line of the problem.
  explicit Template(std::string_view source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with the given top-level variables (a dict). Throws TemplateError.
  std::string render(const Value& context, const RenderOptions& options = {}) const;
  std::string render(const nlohmann::ordered_json& context,
                     const RenderOptions& options = {}) const;

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<Stmt>>> body_;
};

}  // namespace inferd::jinja
