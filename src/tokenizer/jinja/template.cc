#include "tokenizer/jinja/template.h"

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/interpreter.h"

namespace inferd::jinja {

Template::Template(std::string_view source)
    : body_(std::make_shared<const StmtList>(parse_template(source))) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Value& context, const RenderOptions& options) const {
  Interpreter in(options);
  return in.render(*body_, context);
}

std::string Template::render(const nlohmann::ordered_json& context,
                             const RenderOptions& options) const {
  return render(Value::from_json(context), options);
}

}  // namespace inferd::jinja
