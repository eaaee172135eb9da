// The jinja2 filters (`x | join(", ")`, `x | tojson`, ...) with the semantics of jinja2 3.1's
// filters.py: Interpreter::apply_filter dispatches by name to the helpers here.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "jinja/ast.h"
#include "jinja/builtins.h"

namespace inferd::jinja {

using namespace std::literals;

namespace {

// getitem along a dotted attribute path ("a.b.0"), as jinja2's make_attrgetter.
Value get_path(Interpreter& in, Value item, const Value& attribute, const Value* default_value) {
  ValueList parts;
  if (attribute.is_string()) {
    Value dot(".");
    for (auto& p : py_split(attribute.str_ref(), &dot, -1, false)) {
      const std::string& s = p.str_ref();
      bool digits = !s.empty() &&
                    std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
      parts.push_back(digits ? Value(static_cast<int64_t>(std::stoll(s))) : p);
    }
  } else if (!attribute.is_none()) {
    parts.push_back(attribute);
  }
  for (const auto& p : parts) {
    item = in.getitem(item, p);
    if (default_value && !default_value->is_none() && item.is_undefined()) item = *default_value;
  }
  return item;
}

Value ignore_case(const Value& v) {
  return v.is_string() ? Value(py_lower(v.str_ref())) : v;
}

std::vector<std::string> splitlines_for_indent(const std::string& s) {
  return py_splitlines(s, false);
}

Value filter_tojson(const Value& v, const CallArgs& a) {
  JsonDumpOptions o;
  const Value* ensure_ascii = a.get(0, "ensure_ascii");
  const Value* indent = a.get(1, "indent");
  const Value* separators = a.get(2, "separators");
  const Value* sort_keys = a.get(3, "sort_keys");
  o.ensure_ascii = ensure_ascii && ensure_ascii->truthy();
  if (indent && !indent->is_none()) {
    o.has_indent = true;
    if (indent->is_string()) {
      o.indent = indent->str_ref();
    } else if (indent->is_int() || indent->is_bool()) {
      int64_t n = indent->to_int();
      o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, n)), ' ');
    } else {
      runtime_error("tojson: indent must be an integer or a string");
    }
    o.item_separator = ",";
  }
  if (separators && !separators->is_none()) {
    if (!separators->is_list() || separators->items().size() != 2 ||
        !separators->items()[0].is_string() || !separators->items()[1].is_string())
      runtime_error("tojson: separators must be a pair of strings");
    o.item_separator = separators->items()[0].str_ref();
    o.key_separator = separators->items()[1].str_ref();
  }
  o.sort_keys = sort_keys && sort_keys->truthy();
  try {
    return Value(python_json_dumps(v, o));
  } catch (const TemplateError&) {
    throw;
  } catch (const Error& e) {
    runtime_error(e.what());
  }
}

Value py_round(const Value& v, int64_t precision, const std::string& method) {
  if (v.is_undefined()) undefined_error(v);
  if (!v.is_number()) runtime_error("type " + v.type_name() + " doesn't define __round__ method");
  if (method == "common") {
    if (!v.is_float()) {
      if (precision >= 0) return Value(v.to_int());
      double m = std::pow(10.0, static_cast<double>(-precision));
      return Value(static_cast<int64_t>(std::nearbyint(static_cast<double>(v.to_int()) / m) * m));
    }
    double x = v.as_float();
    if (!std::isfinite(x)) return Value(x);
    if (precision > 300) return Value(x);
    if (precision < 0) {
      double m = std::pow(10.0, static_cast<double>(-precision));
      return Value(std::nearbyint(x / m) * m);
    }
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);
    return Value(std::strtod(buf, nullptr));
  }
  if (method != "ceil" && method != "floor") runtime_error("method must be common, ceil or floor");
  double m = std::pow(10.0, static_cast<double>(precision));
  double x = v.to_double() * m;
  return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / m);
}

Value py_sum(const ValueList& items, Value start) {
  Value acc = std::move(start);
  for (const auto& v : items) {
    if (acc.is_string()) runtime_error("sum() can't sum strings [use ''.join(seq) instead]");
    bool nums = acc.is_number() && v.is_number();
    if (nums && !acc.is_float() && !v.is_float()) {
      int64_t r;
      if (__builtin_add_overflow(acc.to_int(), v.to_int(), &r)) runtime_error("integer overflow");
      acc = Value(r);
    } else if (nums) {
      acc = Value(acc.to_double() + v.to_double());
    } else if (acc.is_list() && v.is_list() && acc.is_tuple() == v.is_tuple()) {
      ValueList out = acc.items();
      out.insert(out.end(), v.items().begin(), v.items().end());
      acc = acc.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    } else {
      if (v.is_undefined()) undefined_error(v);
      runtime_error("unsupported operand type(s) for +: '" + acc.type_name() + "' and '" +
                    v.type_name() + "'");
    }
  }
  return acc;
}

const std::set<std::string>& filter_names() {
  static const std::set<std::string> k = {
      "abs",     "attr",     "batch",  "capitalize", "center",     "count",      "d",
      "default", "dictsort", "e",      "escape",     "first",      "float",      "forceescape",
      "indent",  "int",      "items",  "join",       "last",       "length",     "list",
      "lower",   "map",      "max",    "min",        "reject",     "rejectattr", "replace",
      "reverse", "round",    "safe",   "select",     "selectattr", "sort",       "string",
      "sum",     "title",    "tojson", "trim",       "unique",     "upper",      "wordcount"};
  return k;
}

// join(d, attribute): the items as strings (an attribute path of each), separated by d.
Value filter_join(Interpreter& in, const Value& v, const CallArgs& a) {
  const Value* d = a.get(0, "d");
  const Value* attribute = a.get(1, "attribute");
  std::string sep = d ? d->str() : "";
  std::string out;
  ValueList s = in.iterate(v);
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += sep;
    out +=
        (attribute && !attribute->is_none() ? get_path(in, s[i], *attribute, nullptr) : s[i]).str();
    check_string_size(out.size(), "join");
  }
  return Value(std::move(out));
}

// int(default, base): Python's int() of numbers and strings, `default` when it fails.
Value filter_int(const Value& v, const CallArgs& a) {
  const Value* def = a.get(0, "default");
  int64_t base = arg_int(a.get(1, "base"), 10, "int");
  Value dflt = def ? *def : Value(static_cast<int64_t>(0));
  if (v.is_undefined()) undefined_error(v);
  if (v.is_int() || v.is_bool()) return Value(v.to_int());
  if (v.is_float()) {
    double d = v.as_float();
    if (!std::isfinite(d)) return dflt;
    return Value(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    int64_t i;
    if (parse_py_int(v.str_ref(), base, i)) return Value(i);
    double d;
    if (parse_py_float(v.str_ref(), d) && std::isfinite(d)) return Value(static_cast<int64_t>(d));
  }
  return dflt;
}

// float(default): Python's float() of numbers and strings, `default` when it fails.
Value filter_float(const Value& v, const CallArgs& a) {
  const Value* def = a.get(0, "default");
  Value dflt = def ? *def : Value(0.0);
  if (v.is_undefined()) undefined_error(v);
  if (v.is_number()) return Value(v.to_double());
  double d;
  if (v.is_string() && parse_py_float(v.str_ref(), d)) return Value(d);
  return dflt;
}

// reverse: a string reversed by characters, anything else as a reversed list.
Value filter_reverse(Interpreter& in, const Value& v) {
  if (v.is_string()) {
    std::u32string u = utf8_decode(v.str_ref());
    std::reverse(u.begin(), u.end());
    return Value(utf8_encode(u));
  }
  ValueList s = in.iterate(v);
  std::reverse(s.begin(), s.end());
  return Value::list(std::move(s));
}

// dictsort(case_sensitive, by, reverse): a mapping's (key, value) pairs sorted by key or value.
Value filter_dictsort(const Value& v, const CallArgs& a) {
  bool cs = arg_bool(a.get(0, "case_sensitive"), false);
  const Value* by = a.get(1, "by");
  bool rev = arg_bool(a.get(2, "reverse"), false);
  size_t pos = 0;
  if (by && !(by->is_string() && by->str_ref() == "key")) {
    if (by->is_string() && by->str_ref() == "value")
      pos = 1;
    else
      runtime_error("You can only sort by either \"key\" or \"value\"");
  }
  if (!v.is_dict()) runtime_error("dictsort: expected a mapping, got " + v.type_name());
  ValueList out;
  for (const auto& [k, x] : v.dict_ref().items) out.push_back(Value::tuple({k, x}));
  std::stable_sort(out.begin(), out.end(), [&](const Value& x, const Value& y) {
    Value kx = x.items()[pos], ky = y.items()[pos];
    if (!cs) {
      kx = ignore_case(kx);
      ky = ignore_case(ky);
    }
    return rev ? py_less(ky, kx) : py_less(kx, ky);
  });
  return Value::list(std::move(out));
}

// sort(reverse, case_sensitive, attribute): a stable sort, by an attribute path when given.
Value filter_sort(Interpreter& in, const Value& v, const CallArgs& a) {
  bool rev = arg_bool(a.get(0, "reverse"), false);
  bool cs = arg_bool(a.get(1, "case_sensitive"), false);
  const Value* attribute = a.get(2, "attribute");
  ValueList s = in.iterate(v);
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& x : s) {
    Value k = attribute && !attribute->is_none() ? get_path(in, x, *attribute, nullptr) : x;
    keyed.emplace_back(cs ? k : ignore_case(k), x);
  }
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return rev ? py_less(y.first, x.first) : py_less(x.first, y.first);
  });
  ValueList out;
  for (auto& [k, x] : keyed) out.push_back(x);
  return Value::list(std::move(out));
}

// unique(case_sensitive, attribute): the items without repeats, first one kept.
Value filter_unique(Interpreter& in, const Value& v, const CallArgs& a) {
  bool cs = arg_bool(a.get(0, "case_sensitive"), false);
  const Value* attribute = a.get(1, "attribute");
  ValueList out, seen;
  for (auto& x : in.iterate(v)) {
    Value k = attribute && !attribute->is_none() ? get_path(in, x, *attribute, nullptr) : x;
    if (!cs) k = ignore_case(k);
    bool dup = false;
    for (const auto& s : seen) dup = dup || s.equals(k);
    if (!dup) {
      seen.push_back(k);
      out.push_back(x);
    }
  }
  return Value::list(std::move(out));
}

// min / max(case_sensitive, attribute): the first smallest / largest item.
Value filter_min_max(Interpreter& in, const std::string& name, const Value& v, const CallArgs& a) {
  bool cs = arg_bool(a.get(0, "case_sensitive"), false);
  const Value* attribute = a.get(1, "attribute");
  ValueList s = in.iterate(v);
  if (s.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key;
  for (size_t i = 0; i < s.size(); ++i) {
    Value k = attribute && !attribute->is_none() ? get_path(in, s[i], *attribute, nullptr) : s[i];
    if (!cs) k = ignore_case(k);
    if (i == 0 || (name == "min"sv ? py_less(k, best_key) : py_less(best_key, k))) {
      best = i;
      best_key = k;
    }
  }
  return s[best];
}

// indent(width, first, blank): every line but the first (or all) indented by width spaces or
// a string.
Value filter_indent(const Value& v, const CallArgs& a) {
  const Value* w = a.get(0, "width");
  std::string ind =
      w && w->is_string()
          ? w->str_ref()
          : std::string(static_cast<size_t>(std::clamp<int64_t>(arg_int(w, 4, "indent"), 0,
                                                                int64_t(kMaxStringBytes) + 1)),
                        ' ');
  check_string_size(ind.size(), "indent");
  bool first = arg_bool(a.get(1, "first"), false);
  bool blank = arg_bool(a.get(2, "blank"), false);
  std::string s = v.str() + "\n";
  std::vector<std::string> lines = splitlines_for_indent(s);
  check_string_size(s.size() + uint64_t(ind.size()) * (lines.size() + 1), "indent");
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + ind;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (size_t i = 1; i < lines.size(); ++i) {
        if (i > 1) rv += "\n";
        rv += lines[i].empty() ? lines[i] : ind + lines[i];
      }
    }
  }
  if (first) rv = ind + rv;
  return Value(std::move(rv));
}

// wordcount: the number of runs of word characters.
Value filter_wordcount(const Value& v) {
  std::u32string u = utf8_decode(v.str());
  int64_t n = 0;
  bool inside = false;
  for (char32_t c : u) {
    bool w = is_word_c(c);
    if (w && !inside) ++n;
    inside = w;
  }
  return Value(n);
}

// batch(linecount, fill_with): the items in lists of linecount, the last one filled.
Value filter_batch(Interpreter& in, const Value& v, const CallArgs& a) {
  int64_t n = arg_int(a.get(0, "linecount"), 1, "batch");
  if (n <= 0) runtime_error("batch: linecount must be positive");
  if (uint64_t(n) > kMaxListItems)
    runtime_error("batch: linecount is more than " + std::to_string(kMaxListItems) +
                  " (the template limit)");
  const Value* fill = a.get(1, "fill_with");
  ValueList out, cur;
  for (auto& x : in.iterate(v)) {
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
    cur.push_back(x);
  }
  if (!cur.empty()) {
    if (fill && !fill->is_none())
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*fill);
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}

// attr(name): an attribute only (no item lookup: a dict's keys are not attributes).
Value filter_attr(Interpreter& in, const Value& v, const CallArgs& a) {
  // Attribute only (no item lookup): a dict's keys are not attributes.
  const std::string& n = arg_str(a.get(0, "name"), "attr");
  if (v.is_dict()) {
    Value m = dict_method(v, n);
    if (!m.is_undefined() || !m.undefined_message().empty()) return m;
    return undefined_attr(v, n);
  }
  return in.getattr(v, n);
}

// map(filter, ...) or map(attribute=..., default=...): a filter or attribute path applied to
// every item.
Value filter_map(Interpreter& in, const Value& v, const CallArgs& a) {
  if (!v.truthy()) return Value::list({});
  ValueList out;
  if (a.args.empty()) {
    const Value* attribute = nullptr;
    const Value* def = nullptr;
    for (const auto& [k, x] : a.kwargs) {
      if (k == "attribute")
        attribute = &x;
      else if (k == "default")
        def = &x;
      else
        runtime_error("Unexpected keyword argument '" + k + "'");
    }
    if (!attribute) runtime_error("map requires a filter argument");
    for (auto& x : in.iterate(v)) out.push_back(get_path(in, x, *attribute, def));
  } else {
    std::string fname = arg_str(&a.args[0], "map");
    if (!is_known_filter(fname)) runtime_error("No filter named '" + fname + "'.");
    CallArgs rest;
    rest.args.assign(a.args.begin() + 1, a.args.end());
    rest.kwargs = a.kwargs;
    for (auto& x : in.iterate(v)) out.push_back(in.apply_filter(fname, x, rest));
  }
  return Value::list(std::move(out));
}

// select / reject(test, ...) and selectattr / rejectattr(attribute, test, ...): the items whose
// test (or truth) is true / false.
Value filter_select(Interpreter& in, const std::string& name, const Value& v, const CallArgs& a) {
  bool attr = name == "selectattr"sv || name == "rejectattr"sv;
  bool want = name == "select"sv || name == "selectattr"sv;
  if (!v.truthy()) return Value::list({});
  size_t off = 0;
  Value attribute;
  if (attr) {
    if (a.args.empty()) runtime_error("Missing parameter for attribute name");
    attribute = a.args[0];
    off = 1;
  }
  std::string test;
  CallArgs targs;
  bool has_test = a.args.size() > off;
  if (has_test) {
    test = arg_str(&a.args[off], name.c_str());
    if (!is_known_test(test)) runtime_error("No test named '" + test + "'.");
    targs.args.assign(a.args.begin() + static_cast<std::ptrdiff_t>(off + 1), a.args.end());
    targs.kwargs = a.kwargs;
  }
  ValueList out;
  for (auto& x : in.iterate(v)) {
    Value t = attr ? get_path(in, x, attribute, nullptr) : x;
    bool r = has_test ? in.apply_test(test, t, targs) : t.truthy();
    if (r == want) out.push_back(x);
  }
  return Value::list(std::move(out));
}

}  // namespace

bool is_known_filter(const std::string& name) {
  return filter_names().count(name) > 0;
}

Value Interpreter::apply_filter(const std::string& name, const Value& v, const CallArgs& a) {
  auto seq = [&]() { return iterate(v); };
  auto soft_str = [&]() { return v.str(); };
  if (name == "tojson"sv) return filter_tojson(v, a);
  if (name == "trim"sv) return Value(py_strip(soft_str(), a.get(0, "chars"), true, true));
  if (name == "upper"sv) return Value(py_upper(soft_str()));
  if (name == "lower"sv) return Value(py_lower(soft_str()));
  if (name == "capitalize"sv) return Value(py_capitalize(soft_str()));
  if (name == "title"sv) return Value(jinja_title(soft_str()));
  if (name == "length"sv || name == "count"sv) {
    if (v.is_undefined()) return Value(static_cast<int64_t>(0));
    if (v.is_string()) return Value(static_cast<int64_t>(utf8_length(v.str_ref())));
    if (v.is_list()) return Value(static_cast<int64_t>(v.items().size()));
    if (v.is_dict()) return Value(static_cast<int64_t>(v.dict_ref().items.size()));
    runtime_error("object of type '" + v.type_name() + "' has no len()");
  }
  if (name == "first"sv) {
    ValueList s = seq();
    if (s.empty()) return Value::undefined("No first item, sequence was empty.");
    return s.front();
  }
  if (name == "last"sv) {
    if (!(v.is_list() || v.is_string() || v.is_dict() || v.is_undefined()))
      runtime_error("'" + v.type_name() + "' object is not reversible");
    ValueList s = seq();
    if (s.empty()) return Value::undefined("No last item, sequence was empty.");
    return s.back();
  }
  if (name == "join"sv) return filter_join(*this, v, a);
  if (name == "default"sv || name == "d"sv) {
    const Value* def = a.get(0, "default_value");
    bool boolean = arg_bool(a.get(1, "boolean"), false);
    if (v.is_undefined() || (boolean && !v.truthy())) return def ? *def : Value("");
    return v;
  }
  if (name == "string"sv) return Value(soft_str());
  if (name == "safe"sv) return v.is_string() ? v : Value(soft_str());
  if (name == "e"sv || name == "escape"sv || name == "forceescape"sv)
    return Value(html_escape(soft_str()));
  if (name == "int"sv) return filter_int(v, a);
  if (name == "float"sv) return filter_float(v, a);
  if (name == "abs"sv) {
    if (v.is_undefined()) undefined_error(v);
    if (v.is_float()) return Value(std::fabs(v.as_float()));
    if (v.is_number()) return Value(v.to_int() < 0 ? -v.to_int() : v.to_int());
    runtime_error("bad operand type for abs(): '" + v.type_name() + "'");
  }
  if (name == "list"sv) return Value::list(seq());
  if (name == "reverse"sv) return filter_reverse(*this, v);
  if (name == "replace"sv) {
    const Value* old = a.get(0, "old");
    const Value* nw = a.get(1, "new");
    if (!old || !nw) runtime_error("replace filter needs 'old' and 'new'");
    return Value(
        py_replace(soft_str(), old->str(), nw->str(), arg_int(a.get(2, "count"), -1, "count")));
  }
  if (name == "items"sv) {
    if (v.is_undefined()) return Value::list({});
    if (!v.is_dict()) runtime_error("Can only get item pairs from a mapping.");
    ValueList out;
    for (const auto& [k, x] : v.dict_ref().items) out.push_back(Value::tuple({k, x}));
    return Value::list(std::move(out));
  }
  if (name == "dictsort"sv) return filter_dictsort(v, a);
  if (name == "sort"sv) return filter_sort(*this, v, a);
  if (name == "unique"sv) return filter_unique(*this, v, a);
  if (name == "min"sv || name == "max"sv) return filter_min_max(*this, name, v, a);
  if (name == "sum"sv) {
    const Value* attribute = a.get(0, "attribute");
    const Value* start = a.get(1, "start");
    ValueList s = seq();
    if (attribute && !attribute->is_none())
      for (auto& x : s) x = get_path(*this, x, *attribute, nullptr);
    return py_sum(s, start ? *start : Value(static_cast<int64_t>(0)));
  }
  if (name == "round"sv) {
    const Value* m = a.get(1, "method");
    return py_round(v, arg_int(a.get(0, "precision"), 0, "round"),
                    m ? arg_str(m, "round") : "common");
  }
  if (name == "indent"sv) return filter_indent(v, a);
  if (name == "wordcount"sv) return filter_wordcount(v);
  if (name == "center"sv) {
    int64_t w = arg_int(a.get(0, "width"), 80, "center");
    CallArgs ca;
    ca.args.emplace_back(w);
    return call(string_method(Value(soft_str()), "center"), ca);
  }
  if (name == "batch"sv) return filter_batch(*this, v, a);
  if (name == "attr"sv) return filter_attr(*this, v, a);
  if (name == "map"sv) return filter_map(*this, v, a);
  if (name == "select"sv || name == "reject"sv || name == "selectattr"sv || name == "rejectattr"sv)
    return filter_select(*this, name, v, a);
  runtime_error("No filter named '" + name + "'.");
}

}  // namespace inferd::jinja
