// Python's operators for the jinja interpreter (internal to the jinja library): arithmetic,
// `%` formatting, `*` repetition, comparisons and slicing, with Python's results and errors.
#pragma once

#include "jinja/ast.h"
#include "jinja/interpreter.h"
#include "jinja/value.h"

namespace inferd::jinja {

// a <op> b for a BinaryOp of ast.h (+ - * / // % ** and `~`-free arithmetic on numbers, strings
// and lists).
Value binary_op(int op, const Value& a, const Value& b);
// a <op> b for a comparison of ast.h (== != < > <= >= in, not in).
bool compare(int op, const Value& a, const Value& b, Interpreter& in);
// Python's obj[start:stop:step] of a string or a list (None / Undefined bounds: defaults).
Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step);

}  // namespace inferd::jinja
