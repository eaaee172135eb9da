// What the builtins of the jinja library share (internal): Python's str semantics on UTF-8
// (py_strings.cc), argument readers, the bound methods of str / dict / list values (methods.cc),
// and the errors of attribute lookups. The builtins themselves: filters.cc, builtin_tests.cc,
// globals.cc, and the Interpreter's Python object protocol in object_protocol.cc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "jinja/interpreter.h"
#include "jinja/value.h"

namespace inferd::jinja {

// ---- Unicode character classes and case mapping (utf8proc) ----
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);
char32_t to_title(char32_t c);
bool is_cased(char32_t c);      // general category Lu, Ll or Lt
bool is_upper_c(char32_t c);    // Lu
bool is_lower_c(char32_t c);    // Ll
bool is_alpha_c(char32_t c);    // L*
bool is_numeric_c(char32_t c);  // Nd, Nl or No
bool is_decimal_c(char32_t c);  // Nd
bool is_word_c(char32_t c);     // '_', letters and numbers

// ---- Python str methods on UTF-8 text ----
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
// str.title()
std::string py_title(std::string_view s);
// The jinja2 `title` filter: split on runs of [-\s({\[<], upper-case the first character of every
// piece and lower-case the rest.
std::string jinja_title(std::string_view s);
// str.strip / lstrip / rstrip; `chars` null or None: whitespace.
std::string py_strip(std::string_view s, const Value* chars, bool left, bool right);
// str.split / rsplit; `sep_v` null or None: runs of whitespace.
ValueList py_split(const std::string& s, const Value* sep_v, int64_t maxsplit, bool from_right);
// str.replace (count -1: all).
std::string py_replace(const std::string& s, const std::string& old, const std::string& nw,
                       int64_t count);
std::vector<std::string> py_splitlines(const std::string& s, bool keepends);
// markupsafe's escape of & < > " '.
std::string html_escape(const std::string& s);
// Python's int(str, base) (whitespace, sign, underscores between digits, base prefixes).
bool parse_py_int(const std::string& s, int64_t base, int64_t& out);
// Python's float(str).
bool parse_py_float(const std::string& s, double& out);

// ---- arguments ----
// An integer argument (bools count), `def` when absent or None; a runtime error naming `what`
// otherwise.
int64_t arg_int(const Value* v, int64_t def, const char* what);
bool arg_bool(const Value* v, bool def);
const std::string& arg_str(const Value* v, const char* what);

// ---- attribute lookups ----
// The Undefined of a missing attribute or element, with jinja2's message.
Value undefined_attr(const Value& obj, const std::string& name);
Value undefined_elem(const Value& obj, const Value& key);
// Bound methods of str / dict / list values: a callable, or Undefined when there is no such
// method (for dict and list, one with a message when the method mutates: unsafe in the sandbox).
Value string_method(const Value& self, const std::string& name);
Value dict_method(const Value& self, const std::string& name);
Value list_method(const Value& self, const std::string& name);

}  // namespace inferd::jinja
