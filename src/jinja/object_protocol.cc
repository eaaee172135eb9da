// The Interpreter's Python object protocol (interpreter.h): calling, attribute and item lookup
// (with jinja2's Undefined for what is missing), iteration and `in`.
#include <string>

#include "jinja/builtins.h"

namespace inferd::jinja {

using namespace std::literals;

namespace {

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_object()) {
    if (v.object_ref().type_name() == "Namespace") return "jinja2.utils.Namespace object";
    if (v.object_ref().type_name() == "LoopContext") return "jinja2.runtime.LoopContext object";
    return v.object_ref().type_name() + " object";
  }
  if (v.is_callable()) return "function object";
  return v.type_name() + " object";
}

}  // namespace

Value undefined_attr(const Value& obj, const std::string& name) {
  std::string msg = "'";  // (built with +=: GCC 12 warns falsely on "'" + std::string here)
  msg += object_type_repr(obj);
  msg += "' has no attribute '";
  msg += name;
  msg += "'";
  return Value::undefined(msg);
}

Value undefined_elem(const Value& obj, const Value& key) {
  if (key.is_string()) return undefined_attr(obj, key.str_ref());
  return Value::undefined(object_type_repr(obj) + " has no element " + key.repr());
}

Value Interpreter::call(const Value& callee, const CallArgs& args) {
  if (callee.is_undefined()) undefined_error(callee);
  if (!callee.is_callable()) runtime_error("'" + callee.type_name() + "' object is not callable");
  return callee.callable_ref().fn(*this, args);
}

Value Interpreter::getattr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      undefined_error(obj);
    case Value::Kind::kDict: {
      Value m = dict_method(obj, name);
      if (!m.is_undefined() || !m.undefined_message().empty()) return m;
      const Value* v = obj.dict_ref().find_str(name);
      if (v) return *v;
      return undefined_attr(obj, name);
    }
    case Value::Kind::kString: {
      Value m = string_method(obj, name);
      if (!m.is_undefined()) return m;
      return undefined_attr(obj, name);
    }
    case Value::Kind::kList: {
      Value m = list_method(obj, name);
      if (!m.is_undefined() || !m.undefined_message().empty()) return m;
      return undefined_attr(obj, name);
    }
    case Value::Kind::kObject: {
      auto v = obj.object_ref().get_attr(name);
      if (v) return *v;
      return undefined_attr(obj, name);
    }
    default:
      return undefined_attr(obj, name);
  }
}

Value Interpreter::getitem(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      undefined_error(obj);
    case Value::Kind::kDict: {
      const Value* v = obj.dict_ref().find(key);
      if (v) return *v;
      break;
    }
    case Value::Kind::kList:
    case Value::Kind::kString: {
      if (key.is_int() || key.is_bool()) {
        int64_t i = key.to_int();
        if (obj.is_list()) {
          int64_t n = static_cast<int64_t>(obj.items().size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
        } else {
          std::u32string u = utf8_decode(obj.str_ref());
          int64_t n = static_cast<int64_t>(u.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n)
            return Value(utf8_encode(std::u32string_view(u).substr(static_cast<size_t>(i), 1)));
        }
        return undefined_elem(obj, key);
      }
      break;
    }
    default:
      break;
  }
  if (key.is_string()) {
    if (obj.is_dict()) {
      Value m = dict_method(obj, key.str_ref());
      if (!m.is_undefined() || !m.undefined_message().empty()) return m;
    } else {
      Value a = getattr(obj, key.str_ref());
      return a;
    }
  }
  return undefined_elem(obj, key);
}

ValueList Interpreter::iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.items();
    case Value::Kind::kDict: {
      ValueList out;
      for (const auto& [k, x] : v.dict_ref().items) out.push_back(k);
      return out;
    }
    case Value::Kind::kString: {
      ValueList out;
      for (char32_t c : utf8_decode(v.str_ref()))
        out.emplace_back(utf8_encode(std::u32string(1, c)));
      return out;
    }
    default:
      runtime_error("'" + v.type_name() + "' object is not iterable");
  }
}

bool Interpreter::contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (item.is_undefined()) undefined_error(item);
    if (!item.is_string())
      runtime_error("'in <string>' requires string as left operand, not " + item.type_name());
    return container.str_ref().find(item.str_ref()) != std::string::npos;
  }
  if (container.is_dict()) return container.dict_ref().find(item) != nullptr;
  if (container.is_list()) {
    for (const auto& v : container.items())
      if (v.equals(item)) return true;
    return false;
  }
  if (container.is_undefined()) return false;
  runtime_error("argument of type '" + container.type_name() + "' is not iterable");
}

}  // namespace inferd::jinja
