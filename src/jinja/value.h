// Values of the Jinja2-subset interpreter. They follow Python's semantics (what jinja2 does with
// the Python objects a chat template sees): None/True/False/int/float/str/list/tuple/dict with
// insertion-ordered keys, plus jinja2's Undefined, namespace objects, the loop object and
// callables (macros, globals, bound methods).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace inferd::jinja {

class Value;
class Interpreter;

using ValueList = std::vector<Value>;

// jinja2's default Undefined: prints as "", is falsy, iterates as empty; most operations on it
// raise an UndefinedError carrying `message` ("'x' is undefined", "'dict object' has no attribute
// 'y'").
struct Undefined {
  std::string message;
};

struct List {
  ValueList items;
  bool is_tuple = false;
};

// A dict with insertion order preserved (as Python's dict). Keys are Values (mostly strings).
struct Dict {
  std::vector<std::pair<Value, Value>> items;

  const Value* find(const Value& key) const;
  const Value* find_str(std::string_view key) const;
  void set(Value key, Value value);
};

// Positional and keyword arguments of a call.
struct CallArgs {
  ValueList args;
  std::vector<std::pair<std::string, Value>> kwargs;

  // Returns the argument at `pos` or named `name`; nullptr when absent.
  const Value* get(size_t pos, std::string_view name) const;
};

struct Callable {
  std::string name;
  std::function<Value(Interpreter&, const CallArgs&)> fn;
};

// An object with attributes (namespace(), the loop object, cycler, joiner).
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;
  // nullopt when there is no such attribute.
  virtual std::optional<Value> get_attr(std::string_view name) const = 0;
  // Throws when the object does not allow assignment.
  virtual void set_attr(std::string_view name, Value value);
  virtual std::string repr() const;
};

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kObject,
    kCallable
  };

  Value() : v_(Undefined{}) {}
  static Value undefined(std::string message) { return Value(Undefined{std::move(message)}); }
  static Value none() { return Value(nullptr); }
  Value(bool b) : v_(b) {}                       // NOLINT
  Value(int64_t i) : v_(i) {}                    // NOLINT
  Value(int i) : v_(static_cast<int64_t>(i)) {}  // NOLINT
  Value(double d) : v_(d) {}                     // NOLINT
  // Strings are shared (immutable), so copying a Value never copies text.
  Value(std::string s) : v_(std::make_shared<const std::string>(std::move(s))) {}  // NOLINT
  Value(const char* s) : Value(std::string(s)) {}                                  // NOLINT
  Value(std::shared_ptr<const List> l) : v_(std::move(l)) {}                       // NOLINT
  Value(std::shared_ptr<const Dict> d) : v_(std::move(d)) {}                       // NOLINT
  Value(std::shared_ptr<Object> o) : v_(std::move(o)) {}                           // NOLINT
  Value(std::shared_ptr<const Callable> c) : v_(std::move(c)) {}                   // NOLINT

  static Value list(ValueList items);
  static Value tuple(ValueList items);
  static Value dict(Dict d);
  static Value callable(std::string name, std::function<Value(Interpreter&, const CallArgs&)> fn);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  // int, float or bool (Python's bool is an int).
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }  // list or tuple
  bool is_tuple() const { return is_list() && list_ref().is_tuple; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_object() const { return kind() == Kind::kObject; }
  bool is_callable() const { return kind() == Kind::kCallable; }

  const std::string& undefined_message() const { return std::get<Undefined>(v_).message; }
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  const std::string& str_ref() const { return *std::get<std::shared_ptr<const std::string>>(v_); }
  const List& list_ref() const { return *std::get<std::shared_ptr<const List>>(v_); }
  const ValueList& items() const { return list_ref().items; }
  const Dict& dict_ref() const { return *std::get<std::shared_ptr<const Dict>>(v_); }
  Object& object_ref() const { return *std::get<std::shared_ptr<Object>>(v_); }
  const std::shared_ptr<Object>& object_ptr() const {
    return std::get<std::shared_ptr<Object>>(v_);
  }
  const Callable& callable_ref() const { return *std::get<std::shared_ptr<const Callable>>(v_); }

  // Python truthiness.
  bool truthy() const;
  // Numeric value of int/bool/float.
  double to_double() const;
  // Integer value of int/bool.
  int64_t to_int() const;

  // Python's str() (what {{ }} prints) and repr().
  std::string str() const;
  std::string repr() const;
  // Python type name as in error messages: 'int', 'str', 'list', 'dict', 'NoneType', ...
  std::string type_name() const;

  // Python's ==.
  bool equals(const Value& o) const;

 private:
  explicit Value(Undefined u) : v_(std::move(u)) {}
  explicit Value(std::nullptr_t) : v_(nullptr) {}

  std::variant<Undefined, std::nullptr_t, bool, int64_t, double, std::shared_ptr<const std::string>,
               std::shared_ptr<const List>, std::shared_ptr<const Dict>, std::shared_ptr<Object>,
               std::shared_ptr<const Callable>>
      v_;
};

// Python's repr() of a float ("1.0", "0.1", "1e+16", "inf", "nan").
std::string python_float_repr(double d);
// Python's repr() of a str.
std::string python_str_repr(std::string_view s);

// Python's json.dumps(v, ensure_ascii=..., indent=..., separators=..., sort_keys=...).
// indent < 0 means None; `indent_str` is used instead when indent is given as a string.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // the indent unit when has_indent
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
std::string python_json_dumps(const Value& v, const JsonDumpOptions& opts);

// UTF-8 helpers.
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t c);
size_t utf8_length(std::string_view s);

}  // namespace inferd::jinja
