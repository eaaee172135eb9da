// The globals every template sees (range, dict, namespace, raise_exception, strftime_now) and the
// Namespace object namespace() makes.
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "jinja/builtins.h"

namespace inferd::jinja {

using namespace std::literals;

namespace {

class Namespace : public Object {
 public:
  std::string type_name() const override { return "Namespace"; }
  std::optional<Value> get_attr(std::string_view name) const override {
    for (const auto& [k, v] : attrs_)
      if (k == name) return v;
    return std::nullopt;
  }
  void set_attr(std::string_view name, Value value) override {
    for (auto& [k, v] : attrs_) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    attrs_.emplace_back(std::string(name), std::move(value));
  }
  std::string repr() const override {
    std::string out = "<Namespace {";
    for (size_t i = 0; i < attrs_.size(); ++i) {
      if (i) out += ", ";
      out += python_str_repr(attrs_[i].first) + ": " + attrs_[i].second.repr();
    }
    return out + "}>";
  }

 private:
  std::vector<std::pair<std::string, Value>> attrs_;
};

}  // namespace

void install_globals(Frame& frame) {
  frame.set("range", Value::callable("range", [](Interpreter&, const CallArgs& a) {
              if (a.args.empty() || a.args.size() > 3)
                runtime_error("range expected 1 to 3 arguments");
              int64_t start = 0, stop, step = 1;
              if (a.args.size() == 1) {
                stop = arg_int(&a.args[0], 0, "range");
              } else {
                start = arg_int(&a.args[0], 0, "range");
                stop = arg_int(&a.args[1], 0, "range");
                if (a.args.size() == 3) step = arg_int(&a.args[2], 1, "range");
              }
              if (step == 0) runtime_error("range() arg 3 must not be zero");
              ValueList out;
              for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                if (out.size() >= 100000)
                  runtime_error(
                      "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
                out.emplace_back(i);
              }
              return Value::list(std::move(out));
            }));
  frame.set("dict", Value::callable("dict", [](Interpreter& in, const CallArgs& a) {
              Dict d;
              if (!a.args.empty()) {
                if (a.args[0].is_dict()) {
                  d = a.args[0].dict_ref();
                } else {
                  for (auto& pair : in.iterate(a.args[0])) {
                    ValueList kv = in.iterate(pair);
                    if (kv.size() != 2)
                      runtime_error("dictionary update sequence element has wrong length");
                    d.set(kv[0], kv[1]);
                  }
                }
              }
              for (const auto& [k, v] : a.kwargs) d.set(Value(k), v);
              return Value::dict(std::move(d));
            }));
  frame.set("namespace", Value::callable("namespace", [](Interpreter&, const CallArgs& a) {
              auto ns = std::make_shared<Namespace>();
              for (const auto& init : a.args) {
                if (!init.is_dict())
                  runtime_error("namespace() positional argument must be a mapping");
                for (const auto& [k, v] : init.dict_ref().items) ns->set_attr(k.str(), v);
              }
              for (const auto& [k, v] : a.kwargs) ns->set_attr(k, v);
              return Value(std::shared_ptr<Object>(ns));
            }));
  frame.set("raise_exception",
            Value::callable("raise_exception", [](Interpreter&, const CallArgs& a) -> Value {
              const Value* m = a.get(0, "message");
              throw TemplateError(TemplateError::Kind::kRaised, m ? m->str() : "", 0);
            }));
  frame.set("strftime_now", Value::callable("strftime_now", [](Interpreter& in, const CallArgs& a) {
              const Value* f = a.get(0, "format");
              if (!f || !f->is_string()) runtime_error("strftime_now() expects a format string");
              std::tm tm{};
              if (in.options().now) {
                tm = in.options().now();
              } else {
                std::time_t t = std::time(nullptr);
                localtime_r(&t, &tm);
              }
              char buf[512];
              size_t n = std::strftime(buf, sizeof buf, f->str_ref().c_str(), &tm);
              return Value(std::string(buf, n));
            }));
}

}  // namespace inferd::jinja
