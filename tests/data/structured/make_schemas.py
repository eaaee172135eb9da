#!/usr/bin/env python3
# Writes schemas.json: the JSON Schema corpus of the structured-output tests (tests/engine/
# json_schema_test.cc compiles each and matches its examples; tests/e2e/structured.test.mjs asks
# the server for an output under each and validates it with ajv). Each entry: name, schema,
# optional strict (OpenAI strict mode), valid / invalid example documents. Examples list
# properties in the schema's order and stay within the grammar's bounds (json_schema.h).
# Most schemas bound their strings and arrays, so that a random-weight model ends within 400
# tokens; a few are left unbounded on purpose.
import json
import os

S = []


def add(name, schema, valid=(), invalid=(), strict=False):
    e = {"name": name, "schema": schema}
    if strict:
        e["strict"] = True
    if valid:
        e["valid"] = list(valid)
    if invalid:
        e["invalid"] = list(invalid)
    S.append(e)


def obj(props, required=None, addl=False, **kw):
    s = {"type": "object", "properties": props}
    s["required"] = list(props) if required is None else required
    if addl is not None:
        s["additionalProperties"] = addl
    s.update(kw)
    return s


def st(max_len=12, **kw):
    return {"type": "string", "maxLength": max_len, **kw}


# ---- realistic ----
add("person", obj({
    "name": st(20, minLength=1), "age": {"type": "integer", "minimum": 0, "maximum": 130},
    "email": {"type": "string", "format": "email"}, "phone": {"type": "string", "pattern": "^\\+?[0-9]{7,12}$"}},
    required=["name", "age"]),
    valid=[{"name": "Ann", "age": 31}, {"name": "Bo", "age": 0, "email": "bo@x.io", "phone": "+4412345678"}],
    invalid=[{"name": "", "age": 3}, {"name": "A", "age": 131}, {"age": 3}])
add("invoice", obj({
    "invoice_id": {"type": "string", "pattern": "^INV-[0-9]{4}$"},
    "date": {"type": "string", "format": "date"},
    "currency": {"enum": ["EUR", "USD", "GBP"]},
    "lines": {"type": "array", "minItems": 1, "maxItems": 3, "items": obj({
        "sku": st(8), "qty": {"type": "integer", "minimum": 1, "maximum": 99},
        "unit_price": {"type": "number", "minimum": 0, "maximum": 10000}})},
    "paid": {"type": "boolean"}}),
    valid=[{"invoice_id": "INV-0001", "date": "2024-02-29", "currency": "EUR",
            "lines": [{"sku": "A1", "qty": 2, "unit_price": 9.99}], "paid": False}],
    invalid=[{"invoice_id": "INV-1", "date": "2024-02-29", "currency": "EUR", "lines": [], "paid": False}])
add("tool_call_weather", obj({
    "name": {"const": "get_weather"},
    "arguments": obj({"city": st(16, minLength=1), "unit": {"enum": ["celsius", "fahrenheit"]},
                      "days": {"type": "integer", "minimum": 1, "maximum": 7}}, required=["city", "unit"])}),
    valid=[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}],
    invalid=[{"name": "get_time", "arguments": {"city": "Paris", "unit": "celsius"}}])
add("tool_call_any_of_two", {"anyOf": [
    obj({"tool": {"const": "search"}, "query": st(20)}),
    obj({"tool": {"const": "calculator"}, "expression": {"type": "string", "pattern": "^[0-9+*/() -]{1,20}$"}})]},
    valid=[{"tool": "search", "query": "x"}, {"tool": "calculator", "expression": "1 + 2"}],
    invalid=[{"tool": "search", "expression": "1"}])
add("address", obj({"street": st(20), "city": st(15), "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                    "country": {"enum": ["US", "DE", "FR", "JP"]}}, required=["city", "country"]),
    valid=[{"city": "Berlin", "country": "DE"}, {"street": "Main 1", "city": "X", "zip": "12345", "country": "US"}],
    invalid=[{"city": "Berlin", "country": "IT"}, {"city": "B", "zip": "123", "country": "US"}])
add("event", obj({"title": st(20), "starts_at": {"type": "string", "format": "date-time"},
                  "duration_min": {"type": "integer", "minimum": 5, "maximum": 480},
                  "attendees": {"type": "array", "items": {"type": "string", "format": "email"}, "maxItems": 3}}),
    valid=[{"title": "Standup", "starts_at": "2024-05-01T09:00:00Z", "duration_min": 15, "attendees": ["a@b.co"]}],
    invalid=[{"title": "S", "starts_at": "2024-05-01", "duration_min": 15, "attendees": []}])
add("product", obj({"id": {"type": "string", "format": "uuid"}, "name": st(20), "price": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
                    "tags": {"type": "array", "items": {"enum": ["new", "sale", "eco"]}, "maxItems": 3},
                    "stock": {"type": ["integer", "null"], "minimum": 0, "maximum": 500}}),
    valid=[{"id": "123e4567-e89b-12d3-a456-426614174000", "name": "Pen", "price": 1.5, "tags": [], "stock": None}],
    invalid=[{"id": "123", "name": "Pen", "price": 1.5, "tags": [], "stock": None},
             {"id": "123e4567-e89b-12d3-a456-426614174000", "name": "Pen", "price": 0, "tags": [], "stock": 1}])
add("server_config", obj({"host": {"type": "string", "format": "ipv4"}, "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                          "tls": {"type": "boolean"}, "log_level": {"enum": ["debug", "info", "warn", "error"]}}),
    valid=[{"host": "10.0.0.1", "port": 8080, "tls": True, "log_level": "info"}],
    invalid=[{"host": "10.0.0.256", "port": 8080, "tls": True, "log_level": "info"},
             {"host": "10.0.0.1", "port": 0, "tls": True, "log_level": "info"}])
add("sentiment", obj({"label": {"enum": ["positive", "negative", "neutral"]},
                      "confidence": {"type": "number", "minimum": 0, "maximum": 1}}),
    valid=[{"label": "neutral", "confidence": 0.75}], invalid=[{"label": "neutral", "confidence": 1.5}])
add("classification_multi", obj({"labels": {"type": "array", "items": {"enum": ["spam", "ads", "ok"]}, "minItems": 1, "maxItems": 3}}),
    valid=[{"labels": ["ok"]}], invalid=[{"labels": []}])
add("entity_extraction", obj({"entities": {"type": "array", "maxItems": 3, "items": obj({
    "text": st(15), "type": {"enum": ["PERSON", "ORG", "LOC"]}, "start": {"type": "integer", "minimum": 0, "maximum": 1000}})}}),
    valid=[{"entities": [{"text": "Ann", "type": "PERSON", "start": 0}]}])
add("order_status", obj({"order_id": {"type": "integer", "minimum": 100000, "maximum": 999999},
                         "status": {"enum": ["pending", "shipped", "delivered", "cancelled"]},
                         "shipped_on": {"type": ["string", "null"], "format": "date"}}),
    valid=[{"order_id": 123456, "status": "pending", "shipped_on": None}],
    invalid=[{"order_id": 12345, "status": "pending", "shipped_on": None}])
add("user_profile_strict", obj({"username": {"type": "string", "pattern": "^[a-z][a-z0-9_]{2,11}$"},
                                "display_name": st(20), "verified": {"type": "boolean"},
                                "followers": {"type": "integer", "minimum": 0, "maximum": 1000000}}),
    strict=True, valid=[{"username": "ann_1", "display_name": "Ann", "verified": True, "followers": 5}],
    invalid=[{"username": "1ann", "display_name": "Ann", "verified": True, "followers": 5}])
add("recipe", obj({"title": st(20), "servings": {"type": "integer", "minimum": 1, "maximum": 12},
                   "ingredients": {"type": "array", "minItems": 1, "maxItems": 4, "items": obj({
                       "item": st(12), "amount": {"type": "number", "minimum": 0, "maximum": 1000},
                       "unit": {"enum": ["g", "ml", "pcs", "tbsp"]}})},
                   "vegetarian": {"type": "boolean"}}),
    valid=[{"title": "Soup", "servings": 2, "ingredients": [{"item": "leek", "amount": 200, "unit": "g"}], "vegetarian": True}])
add("calendar_slot", obj({"day": {"type": "string", "format": "date"}, "from": {"type": "string", "format": "time"},
                          "to": {"type": "string", "format": "time"}}),
    valid=[{"day": "2023-12-31", "from": "09:00:00Z", "to": "10:30:00+01:00"}],
    invalid=[{"day": "2023-02-29", "from": "09:00:00Z", "to": "10:30:00Z"}])
add("geo_point", obj({"lat": {"type": "number", "minimum": -90, "maximum": 90},
                      "lon": {"type": "number", "minimum": -180, "maximum": 180}}),
    valid=[{"lat": -33.86, "lon": 151.2}], invalid=[{"lat": 91, "lon": 0}, {"lat": 0, "lon": -180.5}])
add("http_request", obj({"method": {"enum": ["GET", "POST", "PUT", "DELETE"]},
                         "path": {"type": "string", "pattern": "^/[a-z0-9/]{0,20}$"},
                         "headers": {"type": "array", "maxItems": 2, "items": {"type": "array", "prefixItems": [st(10), st(10)], "items": False, "minItems": 2}}}),
    valid=[{"method": "GET", "path": "/v1/models", "headers": [["accept", "json"]]}],
    invalid=[{"method": "GET", "path": "v1", "headers": []}])
add("bank_transfer", obj({"amount": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100000},
                          "currency": {"const": "EUR"}, "iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$"},
                          "reference": st(18)}, required=["amount", "currency", "iban"]),
    valid=[{"amount": 10.5, "currency": "EUR", "iban": "DE89370400440532013000"}],
    invalid=[{"amount": 0, "currency": "EUR", "iban": "DE89370400440532013000"}])
add("review", obj({"rating": {"type": "integer", "minimum": 1, "maximum": 5}, "title": st(20),
                   "pros": {"type": "array", "items": st(10), "maxItems": 2}, "cons": {"type": "array", "items": st(10), "maxItems": 2}}),
    valid=[{"rating": 5, "title": "Good", "pros": ["fast"], "cons": []}], invalid=[{"rating": 6, "title": "x", "pros": [], "cons": []}])
add("translation", obj({"source_lang": {"enum": ["en", "de", "fr"]}, "target_lang": {"enum": ["en", "de", "fr"]}, "text": st(30)}),
    valid=[{"source_lang": "en", "target_lang": "fr", "text": "bonjour"}])
add("task_list", obj({"tasks": {"type": "array", "maxItems": 3, "items": obj({
    "id": {"type": "integer", "minimum": 1, "maximum": 999}, "title": st(15), "done": {"type": "boolean"},
    "priority": {"enum": [1, 2, 3]}}, required=["id", "title"])}}),
    valid=[{"tasks": [{"id": 1, "title": "a"}, {"id": 2, "title": "b", "done": True, "priority": 2}]}])
add("login_event", obj({"user": st(12), "ip": {"type": "string", "format": "ipv4"}, "at": {"type": "string", "format": "date-time"},
                        "success": {"type": "boolean"}}),
    valid=[{"user": "root", "ip": "127.0.0.1", "at": "2024-01-01T00:00:00.5Z", "success": False}])
add("color_rgb", obj({"r": {"type": "integer", "minimum": 0, "maximum": 255}, "g": {"type": "integer", "minimum": 0, "maximum": 255},
                      "b": {"type": "integer", "minimum": 0, "maximum": 255}}),
    valid=[{"r": 0, "g": 128, "b": 255}], invalid=[{"r": 0, "g": 256, "b": 0}])
add("hex_color", {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"}, valid=["#a0B1c2"], invalid=["#abc", "a0b1c2"])
add("semver", {"type": "string", "pattern": "^(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})$"},
    valid=["1.2.3", "0.10.0"], invalid=["01.2.3", "1.2"])
add("measurement_tuple", {"type": "array", "prefixItems": [{"type": "string", "format": "date-time"}, {"type": "number", "minimum": -50, "maximum": 60}, {"enum": ["C", "F"]}], "items": False, "minItems": 3},
    valid=[["2024-01-01T12:00:00Z", 21.5, "C"]], invalid=[["2024-01-01T12:00:00Z", 21.5]])
add("matrix_2x2", {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": -9, "maximum": 9}}},
    valid=[[[1, 0], [0, 1]]], invalid=[[[1, 0, 0], [0, 1]], [[10, 0], [0, 1]]])
add("file_entry", obj({"path": {"type": "string", "pattern": "^(/[a-z]{1,8}){1,3}$"}, "size": {"type": "integer", "minimum": 0, "maximum": 1000000000},
                       "kind": {"enum": ["file", "dir", "link"]}}),
    valid=[{"path": "/usr/bin", "size": 4096, "kind": "dir"}], invalid=[{"path": "usr", "size": 1, "kind": "dir"}])
add("chat_message", obj({"role": {"enum": ["system", "user", "assistant"]}, "content": st(40)}),
    valid=[{"role": "user", "content": "hi"}])
add("api_error", obj({"error": obj({"code": {"type": "integer", "minimum": 400, "maximum": 599}, "message": st(30), "param": {"type": ["string", "null"], "maxLength": 10}})}),
    valid=[{"error": {"code": 404, "message": "not found", "param": None}}], invalid=[{"error": {"code": 200, "message": "ok", "param": None}}])
add("pagination", obj({"page": {"type": "integer", "minimum": 1, "maximum": 1000}, "per_page": {"enum": [10, 25, 50, 100]},
                       "total": {"type": "integer", "minimum": 0, "maximum": 100000}}),
    valid=[{"page": 1, "per_page": 25, "total": 0}], invalid=[{"page": 1, "per_page": 20, "total": 0}])
add("feature_flags", obj({"flags": {"type": "array", "maxItems": 4, "items": obj({"key": {"type": "string", "pattern": "^[a-z_]{1,12}$"}, "on": {"type": "boolean"}})}}),
    valid=[{"flags": [{"key": "dark_mode", "on": True}]}])
add("shipping_label", obj({"to": {"$ref": "#/$defs/addr"}, "from": {"$ref": "#/$defs/addr"}, "weight_kg": {"type": "number", "minimum": 0, "maximum": 70}},
                          **{"$defs": {"addr": obj({"name": st(15), "city": st(12), "postcode": {"type": "string", "pattern": "^[0-9]{4,5}$"}})}}),
    valid=[{"to": {"name": "A", "city": "B", "postcode": "1234"}, "from": {"name": "C", "city": "D", "postcode": "56789"}, "weight_kg": 2.5}])
add("survey_answer", obj({"question_id": {"type": "integer", "minimum": 1, "maximum": 50},
                          "answer": {"anyOf": [{"type": "boolean"}, {"type": "integer", "minimum": 1, "maximum": 10}, st(20)]}}),
    valid=[{"question_id": 3, "answer": True}, {"question_id": 3, "answer": 7}, {"question_id": 3, "answer": "meh"}],
    invalid=[{"question_id": 3, "answer": 11}])
add("stock_quote", obj({"symbol": {"type": "string", "pattern": "^[A-Z]{1,5}$"}, "price": {"type": "number", "minimum": 0, "maximum": 100000},
                        "change_pct": {"type": "number", "minimum": -100, "maximum": 100}, "as_of": {"type": "string", "format": "date-time"}}),
    valid=[{"symbol": "ACME", "price": 12.34, "change_pct": -1.5, "as_of": "2024-03-01T16:00:00-05:00"}])
add("medication", obj({"drug": st(20), "dose_mg": {"type": "integer", "minimum": 1, "maximum": 2000},
                       "frequency": {"enum": ["daily", "twice daily", "as needed"]}, "start": {"type": "string", "format": "date"}}),
    valid=[{"drug": "ibuprofen", "dose_mg": 400, "frequency": "as needed", "start": "2024-06-30"}])
add("book", obj({"isbn": {"type": "string", "pattern": "^97[89][0-9]{10}$"}, "title": st(25),
                 "authors": {"type": "array", "items": st(15), "minItems": 1, "maxItems": 3},
                 "year": {"type": "integer", "minimum": 1450, "maximum": 2030}}),
    valid=[{"isbn": "9780131103627", "title": "C", "authors": ["K", "R"], "year": 1988}], invalid=[{"isbn": "9770131103627", "title": "C", "authors": ["K"], "year": 1988}])

# ---- recursion ----
add("tree_bounded", {"$defs": {"node": obj({"value": {"type": "integer", "minimum": 0, "maximum": 99},
                                             "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}}, required=["value"])},
                     "$ref": "#/$defs/node"},
    valid=[{"value": 1, "children": [{"value": 2}, {"value": 3, "children": []}]}], invalid=[{"value": 1, "children": [{"value": 2}, {"value": 3}, {"value": 4}]}])
add("linked_list", {"definitions": {"cell": obj({"head": {"type": "integer", "minimum": 0, "maximum": 9},
                                                  "tail": {"anyOf": [{"$ref": "#/definitions/cell"}, {"type": "null"}]}})},
                    "$ref": "#/definitions/cell"},
    valid=[{"head": 1, "tail": {"head": 2, "tail": None}}], invalid=[{"head": 1, "tail": {"head": 2}}])
add("expression_tree", {"$defs": {"expr": {"anyOf": [
    {"type": "integer", "minimum": 0, "maximum": 9},
    obj({"op": {"enum": ["+", "-", "*"]}, "args": {"type": "array", "prefixItems": [{"$ref": "#/$defs/expr"}, {"$ref": "#/$defs/expr"}], "items": False, "minItems": 2}})]}},
    "$ref": "#/$defs/expr"},
    valid=[3, {"op": "+", "args": [1, {"op": "*", "args": [2, 3]}]}], invalid=[{"op": "+", "args": [1]}])
add("org_chart", {"$defs": {"employee": obj({"name": st(12), "reports": {"type": "array", "maxItems": 1, "items": {"$ref": "#/$defs/employee"}}}, required=["name"])},
                  "type": "object", "properties": {"ceo": {"$ref": "#/$defs/employee"}}, "required": ["ceo"], "additionalProperties": False},
    valid=[{"ceo": {"name": "A", "reports": [{"name": "B"}]}}])
add("root_recursion", {"type": "object", "properties": {"name": st(8), "sub": {"$ref": "#"}}, "required": ["name"], "additionalProperties": False},
    valid=[{"name": "a", "sub": {"name": "b"}}], invalid=[{"name": "a", "sub": {}}])
add("comment_thread", {"$defs": {"comment": obj({"author": st(10), "text": st(20), "replies": {"type": "array", "maxItems": 1, "items": {"$ref": "#/$defs/comment"}}}, required=["author", "text"])},
                       "$ref": "#/$defs/comment"},
    valid=[{"author": "a", "text": "t", "replies": [{"author": "b", "text": "u"}]}])
add("json_value_bounded", {"$defs": {"v": {"anyOf": [{"type": "null"}, {"type": "boolean"}, {"type": "integer", "minimum": -9, "maximum": 9},
                                                      {"type": "array", "items": {"$ref": "#/$defs/v"}, "maxItems": 2}]}}, "$ref": "#/$defs/v"},
    valid=[[1, [True, None]], None], invalid=[[1, 2, 3]])

# ---- type unions, enum, const ----
add("union_string_null", {"type": ["string", "null"], "maxLength": 10}, valid=["x", None], invalid=[1])
add("union_number_boolean", {"type": ["number", "boolean"]}, valid=[1.5, False], invalid=["x"])
add("union_int_string_array", {"type": ["integer", "string", "array"], "maxLength": 5, "maxItems": 2, "items": {"type": "integer", "minimum": 0, "maximum": 3}},
    valid=[3, "abc", [1, 2]], invalid=[[1, 2, 3], "abcdef"])
add("enum_mixed", {"enum": ["a", 1, 2.5, None, True, [1, 2], {"k": "v"}]}, valid=["a", 2.5, None, [1, 2], {"k": "v"}], invalid=["b", False])
add("enum_strings", {"type": "string", "enum": ["small", "medium", "large"]}, valid=["medium"], invalid=["huge"])
add("enum_integers", {"enum": [1, 2, 3, 5, 8, 13]}, valid=[8], invalid=[4])
add("enum_with_escapes", {"enum": ["say \"hi\"", "back\\slash", "tab\there", "ünïcödé"]}, valid=["say \"hi\"", "ünïcödé"])
add("const_string", {"const": "exactly this"}, valid=["exactly this"], invalid=["exactly"])
add("const_object", {"const": {"a": 1, "b": [True, None]}}, valid=[{"a": 1, "b": [True, None]}])
add("const_in_object", obj({"version": {"const": 2}, "kind": {"const": "config"}, "value": {"type": "integer", "minimum": 0, "maximum": 10}}),
    valid=[{"version": 2, "kind": "config", "value": 3}], invalid=[{"version": 1, "kind": "config", "value": 3}])
add("nullable_fields", obj({"a": {"type": ["integer", "null"], "minimum": 0, "maximum": 5}, "b": {"type": ["string", "null"], "maxLength": 4},
                            "c": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}}),
    valid=[{"a": None, "b": None, "c": None}, {"a": 5, "b": "abcd", "c": True}])

# ---- anyOf / oneOf / allOf ----
add("anyof_primitives", {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 100}, {"type": "string", "maxLength": 5}, {"type": "null"}]},
    valid=[5, "abc", None], invalid=[101, True])
add("oneof_shapes", {"oneOf": [
    obj({"shape": {"const": "circle"}, "r": {"type": "number", "minimum": 0, "maximum": 100}}),
    obj({"shape": {"const": "rect"}, "w": {"type": "number", "minimum": 0, "maximum": 100}, "h": {"type": "number", "minimum": 0, "maximum": 100}})]},
    valid=[{"shape": "circle", "r": 2}, {"shape": "rect", "w": 1, "h": 2}], invalid=[{"shape": "circle", "w": 1}])
add("oneof_disjoint_types", {"oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "boolean"}, "maxItems": 3}]},
    valid=[True, [False]], invalid=[1])
add("anyof_with_parent_object", {"type": "object", "properties": {"email": {"type": "string", "format": "email"}, "phone": {"type": "string", "pattern": "^[0-9]{6,10}$"}},
                                 "additionalProperties": False, "anyOf": [{"required": ["email"]}, {"required": ["phone"]}]},
    valid=[{"email": "a@b.cd"}, {"phone": "1234567"}], invalid=[{}])
add("allof_merge_objects", {"allOf": [obj({"id": {"type": "integer", "minimum": 1, "maximum": 9999}}, addl=None),
                                      {"properties": {"id": True, "name": st(10)}, "required": ["name"], "additionalProperties": False}]},
    valid=[{"id": 3, "name": "x"}], invalid=[{"id": 3}])
add("allof_ref_extend", {"$defs": {"base": {"type": "object", "properties": {"kind": {"enum": ["a", "b"]}}, "required": ["kind"]}},
                         "allOf": [{"$ref": "#/$defs/base"}, {"properties": {"kind": True, "n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["n"],
                                                                   "additionalProperties": False}]},
    valid=[{"kind": "a", "n": 1}], invalid=[{"kind": "c", "n": 1}])
add("allof_numeric", {"allOf": [{"type": "integer"}, {"minimum": 10}, {"maximum": 20}]}, valid=[10, 20], invalid=[9, 21])
add("allof_string", {"allOf": [{"type": "string"}, {"maxLength": 6}, {"minLength": 2}]}, valid=["ab"], invalid=["a", "abcdefg"])
add("nested_anyof_in_array", {"type": "array", "maxItems": 4, "items": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"enum": ["x", "y"]}]}},
    valid=[[1, "x", 2]], invalid=[["z"]])

# ---- arrays ----
add("array_min_max", {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "minItems": 2, "maxItems": 5}, valid=[[1, 2]], invalid=[[1], [1, 2, 3, 4, 5, 6]])
add("array_exact_len", {"type": "array", "items": {"type": "boolean"}, "minItems": 3, "maxItems": 3}, valid=[[True, False, True]], invalid=[[True]])
add("array_of_strings", {"type": "array", "items": st(8), "maxItems": 4}, valid=[["a", "b"]], invalid=[["abcdefghi"]])
add("array_of_objects", {"type": "array", "maxItems": 3, "items": obj({"k": st(5), "v": {"type": "integer", "minimum": 0, "maximum": 99}})},
    valid=[[{"k": "a", "v": 1}]], invalid=[[{"k": "a"}]])
add("array_nested", {"type": "array", "maxItems": 2, "items": {"type": "array", "maxItems": 2, "items": {"type": "array", "maxItems": 2, "items": {"type": "null"}}}},
    valid=[[[[None]], []]])
add("prefix_items_open", {"type": "array", "prefixItems": [{"const": "header"}, {"type": "integer", "minimum": 0, "maximum": 9}], "items": st(4), "maxItems": 4},
    valid=[["header", 3, "ab"], ["header"]], invalid=[[3]])
add("prefix_items_closed", {"type": "array", "prefixItems": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "number", "minimum": 0, "maximum": 1}], "items": False},
    valid=[[0.5, 1], [], [0]], invalid=[[0.5, 1, 1]])
add("prefix_items_min", {"type": "array", "prefixItems": [{"type": "boolean"}, {"type": "null"}, {"type": "integer", "minimum": 0, "maximum": 5}], "minItems": 2, "items": False},
    valid=[[True, None], [True, None, 5]], invalid=[[True]])
add("array_enum_items", {"type": "array", "items": {"enum": ["r", "g", "b"]}, "minItems": 1, "maxItems": 3}, valid=[["r", "b"]], invalid=[["x"]])
add("array_any_items_bounded", {"type": "array", "maxItems": 2, "items": {"type": ["integer", "boolean", "null"], "minimum": 0, "maximum": 3}}, valid=[[1, True]])
add("array_empty_only", {"type": "array", "maxItems": 0}, valid=[[]], invalid=[[1]])
add("array_number_pairs", {"type": "array", "maxItems": 3, "items": {"type": "array", "prefixItems": [{"type": "number", "minimum": -1, "maximum": 1}, {"type": "number", "minimum": -1, "maximum": 1}], "minItems": 2, "items": False}},
    valid=[[[0.5, -0.5]]])

# ---- strings ----
add("string_min_max", {"type": "string", "minLength": 3, "maxLength": 8}, valid=["abc"], invalid=["ab", "abcdefghi"])
add("string_exact_len", {"type": "string", "minLength": 4, "maxLength": 4}, valid=["abcd"], invalid=["abc"])
add("string_max_only", {"type": "string", "maxLength": 16}, valid=[""])
add("string_min_only_bounded_by_enum", obj({"code": {"type": "string", "minLength": 2, "maxLength": 3}}), valid=[{"code": "ab"}])
add("pattern_anchored_digits", {"type": "string", "pattern": "^[0-9]{3}-[0-9]{4}$"}, valid=["555-1234"], invalid=["5551234"])
add("pattern_alternation", {"type": "string", "pattern": "^(cat|dog|bird)s?$"}, valid=["dogs", "cat"], invalid=["cow"])
add("pattern_classes", {"type": "string", "pattern": "^\\w{2,6}\\s\\d{1,3}$"}, valid=["ab 12"], invalid=["ab12"])
add("pattern_escaped_chars", {"type": "string", "pattern": "^\\[[a-z]{1,4}\\]\\.(txt|md)$"}, valid=["[ab].md"], invalid=["ab.md"])
add("pattern_negated_class", {"type": "string", "pattern": "^[^0-9\\s]{1,8}$"}, valid=["abc!"], invalid=["ab1", "a b"])
add("pattern_quantifier_range", {"type": "string", "pattern": "^a{2,3}b{0,2}$"}, valid=["aa", "aaabb"], invalid=["a", "aaaa"])
add("pattern_optional_group", {"type": "string", "pattern": "^v[0-9](\\.[0-9]){0,2}(-beta)?$"}, valid=["v1.2-beta", "v3"], invalid=["v1.2.3.4"])
add("pattern_dot", {"type": "string", "pattern": "^x.{1,5}y$"}, valid=["xaby"], invalid=["xy"])
add("pattern_unanchored", {"type": "string", "pattern": "ok"}, valid=["this is ok", "ok"], invalid=["o k"])
add("pattern_start_only", {"type": "string", "pattern": "^ID-[0-9]"}, valid=["ID-1 and more"], invalid=["xID-1"])
add("pattern_quote_backslash", {"type": "string", "pattern": "^\"[a-z]{1,3}\"\\\\$"}, valid=["\"ab\"\\"], invalid=["ab"])
add("pattern_unicode", {"type": "string", "pattern": "^[äöü]{1,3}ß?$"}, valid=["äö", "üß"], invalid=["a"])
add("pattern_lazy_quant", {"type": "string", "pattern": "^a+?b*?$"}, valid=["aab"], invalid=["b"])
add("format_date", {"type": "string", "format": "date"}, valid=["2024-02-29", "1999-12-31"], invalid=["2023-02-29", "2023-04-31"])
add("format_time", {"type": "string", "format": "time"}, valid=["23:59:59Z", "08:15:00.25+02:00"], invalid=["24:00:00Z", "08:15:00"])
add("format_date_time", {"type": "string", "format": "date-time"}, valid=["2020-02-29T12:00:00Z"], invalid=["2020-02-29"])
add("format_uuid", {"type": "string", "format": "uuid"}, valid=["00000000-0000-0000-0000-000000000000"], invalid=["0000"])
add("format_email", {"type": "string", "format": "email"}, valid=["first.last@sub.example.org"], invalid=["no-at-sign", "a@b"])
add("format_ipv4", {"type": "string", "format": "ipv4"}, valid=["8.8.8.8"], invalid=["8.8.8", "300.1.1.1"])
add("formats_in_array", {"type": "array", "maxItems": 3, "items": {"type": "string", "format": "uuid"}}, valid=[["123e4567-e89b-12d3-a456-426614174000"]])
add("string_unbounded", {"type": "string"}, valid=["anything at all"])

# ---- numbers ----
add("int_0_10", {"type": "integer", "minimum": 0, "maximum": 10}, valid=[0, 10], invalid=[-1, 11])
add("int_negative_range", {"type": "integer", "minimum": -500, "maximum": -100}, valid=[-500, -100, -250], invalid=[-99, -501])
add("int_crossing_zero", {"type": "integer", "minimum": -42, "maximum": 1337}, valid=[-42, 0, 1337], invalid=[-43, 1338])
add("int_exclusive", {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 100}, valid=[1, 99], invalid=[0, 100])
add("int_min_only", {"type": "integer", "minimum": 18}, valid=[18, 99999], invalid=[17])
add("int_max_only", {"type": "integer", "maximum": -1}, valid=[-1, -1000], invalid=[0])
add("int_unbounded", {"type": "integer"}, valid=[0, -123456789])
add("int_big_range", {"type": "integer", "minimum": 1000000, "maximum": 987654321}, valid=[1000000, 987654321], invalid=[999999, 987654322])
add("number_unit_interval", {"type": "number", "minimum": 0, "maximum": 1}, valid=[0, 0.5, 1], invalid=[1.01, -0.01])
add("number_exclusive", {"type": "number", "exclusiveMinimum": -1, "exclusiveMaximum": 1}, valid=[0, -0.5, 0.999], invalid=[1, -1])
add("number_negative", {"type": "number", "minimum": -273, "maximum": -100}, valid=[-273, -150.25], invalid=[-99.5, -274])
add("number_min_only", {"type": "number", "minimum": 0}, valid=[0, 12.5], invalid=[-0.5])
add("number_max_only", {"type": "number", "maximum": 100}, valid=[100, -3.5], invalid=[100.5])
add("number_unbounded", {"type": "number"}, valid=[1.5e10, -0.25])
add("number_fractional_bounds", {"type": "number", "minimum": 0.5, "maximum": 9.5}, valid=[1, 9])
add("integer_in_object_ranges", obj({"year": {"type": "integer", "minimum": 1900, "maximum": 2100}, "month": {"type": "integer", "minimum": 1, "maximum": 12},
                                      "day": {"type": "integer", "minimum": 1, "maximum": 31}}),
    valid=[{"year": 2024, "month": 2, "day": 29}], invalid=[{"year": 2024, "month": 13, "day": 1}])
add("boolean_only", {"type": "boolean"}, valid=[True], invalid=[0])
add("null_only", {"type": "null"}, valid=[None], invalid=[0])

# ---- objects ----
add("object_all_optional", {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9}, "b": st(4), "c": {"type": "boolean"}}, "additionalProperties": False},
    valid=[{}, {"b": "x"}, {"a": 1, "c": True}], invalid=[{"d": 1}])
add("object_required_middle", {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "boolean"}, "c": {"type": "boolean"}}, "required": ["b"], "additionalProperties": False},
    valid=[{"b": True}, {"a": False, "b": True, "c": True}], invalid=[{"a": True}])
add("object_additional_schema", {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 9}},
    valid=[{}, {"x": 1, "y": 2}], invalid=[{"x": "a"}])
add("object_additional_with_props", {"type": "object", "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 99}}, "required": ["id"],
                                     "additionalProperties": {"type": "boolean"}},
    valid=[{"id": 1, "flag": True}], invalid=[{"id": 1, "flag": 1}])
add("object_additional_default", {"type": "object", "properties": {"kind": {"const": "x"}}, "required": ["kind"]},
    valid=[{"kind": "x", "extra": [1, {"y": None}]}], invalid=[{"kind": "y"}])
add("object_empty_closed", {"type": "object", "additionalProperties": False}, valid=[{}], invalid=[{"a": 1}])
add("object_strict_mode", {"type": "object", "properties": {"q": {"enum": ["a", "b"]}, "n": {"type": "integer", "minimum": 0, "maximum": 3}}, "required": ["q", "n"], "additionalProperties": False},
    strict=True, valid=[{"q": "a", "n": 0}])
add("object_deeply_nested", obj({"l1": obj({"l2": obj({"l3": obj({"l4": {"type": "integer", "minimum": 0, "maximum": 9}})})})}),
    valid=[{"l1": {"l2": {"l3": {"l4": 5}}}}])
add("object_unicode_keys", obj({"名前": st(6), "größe": {"type": "integer", "minimum": 0, "maximum": 300}, "key with \"quotes\"": {"type": "boolean"}}),
    valid=[{"名前": "x", "größe": 180, "key with \"quotes\"": True}])
add("object_many_props", obj({f"field_{i}": {"type": "integer", "minimum": 0, "maximum": 9} for i in range(12)}, required=[f"field_{i}" for i in range(0, 12, 3)]),
    valid=[{"field_0": 1, "field_3": 2, "field_6": 3, "field_9": 4}])
add("object_required_not_in_properties", {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["a", "b"], "additionalProperties": {"type": "null"}},
    valid=[{"a": 1, "b": None}], invalid=[{"a": 1}])
add("object_no_type_inferred", {"properties": {"x": {"type": "boolean"}}, "required": ["x"], "additionalProperties": False}, valid=[{"x": True}])
add("object_with_annotations", {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://example.com/s", "title": "T", "description": "D",
                                "$comment": "c", "type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9, "examples": [1], "default": 0, "deprecated": True, "readOnly": True}},
                                "required": ["a"], "additionalProperties": False},
    valid=[{"a": 0}])

# ---- draft-7 / misc ----
add("definitions_draft7", {"definitions": {"pos": {"type": "integer", "minimum": 1, "maximum": 99}}, "type": "object",
                           "properties": {"x": {"$ref": "#/definitions/pos"}, "y": {"$ref": "#/definitions/pos"}}, "required": ["x", "y"], "additionalProperties": False},
    valid=[{"x": 1, "y": 99}], invalid=[{"x": 0, "y": 1}])
add("ref_with_siblings", {"$defs": {"n": {"type": "integer", "minimum": 0}}, "$ref": "#/$defs/n", "maximum": 50}, valid=[50], invalid=[51])
add("ref_chain", {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/c"}, "c": {"enum": ["end"]}}, "$ref": "#/$defs/a"}, valid=["end"])
add("ref_shared_twice", {"$defs": {"pt": obj({"x": {"type": "integer", "minimum": 0, "maximum": 9}, "y": {"type": "integer", "minimum": 0, "maximum": 9}})},
                         "type": "array", "items": {"$ref": "#/$defs/pt"}, "minItems": 2, "maxItems": 3},
    valid=[[{"x": 1, "y": 2}, {"x": 3, "y": 4}]])
add("ref_in_additional", {"$defs": {"flag": {"type": "boolean"}}, "type": "object", "additionalProperties": {"$ref": "#/$defs/flag"}}, valid=[{"a": True}])
add("bool_schema_true_items", {"type": "array", "items": True, "maxItems": 2}, valid=[[1, "x"]])
add("uniqueitems_false_ok", {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 3}, "uniqueItems": False, "maxItems": 3}, valid=[[1, 1]])
add("tool_parameters_openai", obj({"location": {"type": "string", "description": "City and country e.g. Bogotá, Colombia", "maxLength": 30},
                                   "units": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", None], "description": "Units"}}),
    strict=True, valid=[{"location": "Bogotá, Colombia", "units": None}])
add("structured_extraction_strict", obj({"steps": {"type": "array", "maxItems": 3, "items": obj({"explanation": st(30), "output": st(15)})}, "final_answer": st(20)}),
    strict=True, valid=[{"steps": [{"explanation": "e", "output": "o"}], "final_answer": "x = 3"}])
add("ui_component", {"$defs": {"c": obj({"type": {"enum": ["div", "button", "header", "section", "field", "form"]}, "label": st(10),
                                         "children": {"type": "array", "items": {"$ref": "#/$defs/c"}, "maxItems": 2},
                                         "attributes": {"type": "array", "maxItems": 2, "items": obj({"name": st(8), "value": st(8)})}})}, "$ref": "#/$defs/c"},
    strict=True, valid=[{"type": "form", "label": "f", "children": [], "attributes": [{"name": "id", "value": "x"}]}])


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas.json")
    names = [e["name"] for e in S]
    assert len(names) == len(set(names)), "duplicate names"
    with open(out, "w", encoding="utf-8") as f:
        json.dump(S, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(S)} schemas -> {out}")


if __name__ == "__main__":
    main()
