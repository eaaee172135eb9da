// Template (template.h): parse once, render with a fresh interpreter per call.
#include "jinja/template.h"

#include <exception>
#include <new>

#include "jinja/ast.h"
#include "jinja/interpreter.h"

namespace inferd::jinja {

Template::Template(std::string_view source)
    : body_(std::make_shared<const StmtList>(parse_template(source))) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Value& context, const RenderOptions& options) const {
  Interpreter in(options);
  try {
    return in.render(*body_, context);
  } catch (const TemplateError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw TemplateError(TemplateError::Kind::kRuntime, "the template ran out of memory", 0);
  } catch (const std::exception& e) {
    // A library error inside a builtin (std::out_of_range from a number conversion, ...) is still
    // the template's error, not the caller's.
    throw TemplateError(TemplateError::Kind::kRuntime, e.what(), 0);
  }
}

std::string Template::render(const nlohmann::ordered_json& context,
                             const RenderOptions& options) const {
  return render(Value::from_json(context), options);
}

}  // namespace inferd::jinja
