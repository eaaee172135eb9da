// Tests of the JSON Schema, regex and choice front ends of the grammar engine (json_schema.h,
// regex_converter.h): each converter's GBNF is compiled against a byte vocabulary and matched
// against valid and invalid texts per keyword and construct; unsupported keywords and regex
// features are GrammarErrors naming them; every schema of tests/data/structured/schemas.json
// compiles and its listed examples match (valid) or not (invalid).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/grammar_vocab.h"
#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/regex_converter.h"
#include "tokenizer/tokenizer.h"

namespace inferd::grammar {
namespace {

using Json = nlohmann::ordered_json;

// Every single byte as a token (id = byte), then a stop id.
std::shared_ptr<const TokenizerInfo> byte_vocab() {
  static auto vocab = [] {
    std::vector<std::string> bytes;
    for (int b = 0; b < 256; ++b) bytes.emplace_back(1, static_cast<char>(b));
    bytes.emplace_back();  // stop
    return std::make_shared<const TokenizerInfo>(std::move(bytes), std::vector<int32_t>{256});
  }();
  return vocab;
}

// A compiled grammar and whether whole texts match it.
class Lang {
 public:
  explicit Lang(const std::string& gbnf, const std::string& root = "root")
      : gbnf_(gbnf), g_(compile_gbnf(gbnf, byte_vocab(), root)) {}
  bool operator()(const std::string& text) const {
    GrammarMatcher m(g_);
    return m.accept_bytes(text) && m.can_terminate();
  }
  const std::string& gbnf() const { return gbnf_; }

 private:
  std::string gbnf_;
  std::shared_ptr<const CompiledGrammar> g_;
};

Lang schema(const std::string& text, JsonSchemaOptions o = {}) {
  return Lang(json_schema_text_to_gbnf(text, o), o.root);
}
Lang regex(const std::string& pattern) {
  return Lang(regex_to_gbnf(pattern));
}

#define EXPECT_ACCEPTS(lang, text) \
  EXPECT_TRUE((lang)(text)) << "should match: " << (text) << "\n" << (lang).gbnf()
#define EXPECT_REJECTS(lang, text) \
  EXPECT_FALSE((lang)(text)) << "should not match: " << (text) << "\n" << (lang).gbnf()

std::string schema_error(const std::string& text) {
  try {
    json_schema_text_to_gbnf(text);
  } catch (const GrammarError& e) {
    return e.what();
  }
  return "(no error)";
}
std::string regex_error(const std::string& pattern) {
  try {
    regex_to_gbnf(pattern);
  } catch (const GrammarError& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- JSON Schema: types ----

TEST(JsonSchema, Primitives) {
  auto s = schema(R"({"type":"string"})");
  EXPECT_ACCEPTS(s, R"("")");
  EXPECT_ACCEPTS(s, R"("héllo \"x\" \\ \/ \n \u00e9 \uD7FF")");
  EXPECT_REJECTS(s, R"("a)");
  EXPECT_REJECTS(s, "\"a\nb\"");     // raw control character
  EXPECT_REJECTS(s, R"("\q")");      // unknown escape
  EXPECT_REJECTS(s, R"("\uD800")");  // surrogate escape (never produced)
  EXPECT_REJECTS(s, R"( "a")");      // no whitespace around the top-level value
  EXPECT_REJECTS(s, "1");

  auto b = schema(R"({"type":"boolean"})");
  EXPECT_ACCEPTS(b, "true");
  EXPECT_ACCEPTS(b, "false");
  EXPECT_REJECTS(b, "null");
  auto n = schema(R"({"type":"null"})");
  EXPECT_ACCEPTS(n, "null");
  EXPECT_REJECTS(n, "0");

  auto i = schema(R"({"type":"integer"})");
  for (const char* ok : {"0", "-7", "123456789012345", "-123456789012345"}) EXPECT_ACCEPTS(i, ok);
  for (const char* bad : {"01", "1.5", "-0x", "1234567890123456", "+1", "-", "1e3"})
    EXPECT_REJECTS(i, bad);

  auto num = schema(R"({"type":"number"})");
  for (const char* ok : {"0", "-0.5", "3.141592653589793", "1e10", "-2.5E-07", "6.02e+23"})
    EXPECT_ACCEPTS(num, ok);
  for (const char* bad : {".5", "1.", "01", "1e", "1e123", "NaN", "1.1234567890123456"})
    EXPECT_REJECTS(num, bad);
}

TEST(JsonSchema, TypeUnionsAndAnyValue) {
  auto s = schema(R"({"type":["string","null","integer"]})");
  EXPECT_ACCEPTS(s, R"("x")");
  EXPECT_ACCEPTS(s, "null");
  EXPECT_ACCEPTS(s, "12");
  EXPECT_REJECTS(s, "1.5");
  EXPECT_REJECTS(s, "true");

  for (const char* any : {"{}", "true"}) {
    auto a = schema(any);
    EXPECT_ACCEPTS(a, R"({"a": [1, 2.5, {"b": null}], "c": "d"})");
    EXPECT_ACCEPTS(a, "[]");
    EXPECT_ACCEPTS(a, "-3");
    EXPECT_REJECTS(a, "[1,]");
    EXPECT_REJECTS(a, "{\"a\" 1}");
  }
}

TEST(JsonSchema, WhitespaceIsBounded) {
  auto s = schema(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"],
                      "additionalProperties":false})");
  EXPECT_ACCEPTS(s, R"({"a":1})");
  EXPECT_ACCEPTS(s, R"({ "a" : 1 })");
  EXPECT_ACCEPTS(s, "{\n  \"a\": 1\n}");
  EXPECT_ACCEPTS(s, "{\n" + std::string(20, ' ') + "\"a\": 1}");
  EXPECT_REJECTS(s, "{\n" + std::string(21, ' ') + "\"a\": 1}");
  EXPECT_REJECTS(s, R"({  "a": 1})");  // two spaces: only one space or a newline run
  EXPECT_REJECTS(s, "{\"a\": 1}\n");
}

// ---- objects ----

TEST(JsonSchema, PropertiesRequiredAndOrder) {
  auto s = schema(R"({"type":"object","properties":{
      "name":{"type":"string"}, "age":{"type":"integer"}, "email":{"type":"string"}},
      "required":["name"], "additionalProperties":false})");
  EXPECT_ACCEPTS(s, R"({"name":"a"})");
  EXPECT_ACCEPTS(s, R"({"name":"a","age":3})");
  EXPECT_ACCEPTS(s, R"({"name":"a","email":"e"})");
  EXPECT_ACCEPTS(s, R"({"name":"a", "age":3, "email":"e"})");
  EXPECT_REJECTS(s, R"({})");  // required missing
  EXPECT_REJECTS(s, R"({"age":3})");
  EXPECT_REJECTS(s, R"({"age":3,"name":"a"})");    // order is the schema's
  EXPECT_REJECTS(s, R"({"name":"a","other":1})");  // additionalProperties false
  EXPECT_REJECTS(s, R"({"name":"a","age":"x"})");
  EXPECT_REJECTS(s, R"({"name":"a",})");

  // Required in the middle: optional ones before it may be skipped.
  auto m = schema(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"},
      "c":{"type":"integer"}},"required":["b"],"additionalProperties":false})");
  EXPECT_ACCEPTS(m, R"({"b":1})");
  EXPECT_ACCEPTS(m, R"({"a":1,"b":2})");
  EXPECT_ACCEPTS(m, R"({"b":1,"c":2})");
  EXPECT_REJECTS(m, R"({"a":1,"c":2})");
  EXPECT_REJECTS(m, R"({"a":1})");

  // No required: the empty object too.
  auto o = schema(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},
      "additionalProperties":false})");
  EXPECT_ACCEPTS(o, "{}");
  EXPECT_ACCEPTS(o, "{ }");
  EXPECT_ACCEPTS(o, R"({"b":2})");
  EXPECT_REJECTS(o, R"({"b":2,"a":1})");
}

TEST(JsonSchema, AdditionalProperties) {
  // Not given (normal mode): extra properties with any value, after the known ones, with names
  // that are not the known names.
  auto d = schema(R"({"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]})");
  EXPECT_ACCEPTS(d, R"({"id":1})");
  EXPECT_ACCEPTS(d, R"({"id":1,"x":[true],"i":"s","idd":null})");
  EXPECT_REJECTS(d, R"({"id":1,"id":"dup"})");
  EXPECT_REJECTS(d, R"({"x":1})");

  // Strict: not given means false.
  JsonSchemaOptions strict;
  strict.strict = true;
  auto st = schema(R"({"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]})",
                   strict);
  EXPECT_ACCEPTS(st, R"({"id":1})");
  EXPECT_REJECTS(st, R"({"id":1,"x":2})");

  // A schema for the extra values.
  auto sch = schema(R"({"type":"object","additionalProperties":{"type":"integer"}})");
  EXPECT_ACCEPTS(sch, "{}");
  EXPECT_ACCEPTS(sch, R"({"a":1,"b":2})");
  EXPECT_REJECTS(sch, R"({"a":"x"})");

  // true with properties.
  auto t = schema(
      R"({"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":true})");
  EXPECT_ACCEPTS(t, R"({"b":1})");
  EXPECT_ACCEPTS(t, R"({"a":"x","b":1})");
  EXPECT_REJECTS(t, R"({"a":1})");
  EXPECT_REJECTS(t, R"({"b":1,"a":1})");  // 'a' is a known name: never an extra one

  // Object with no keywords but type: any object.
  auto any = schema(R"({"type":"object"})");
  EXPECT_ACCEPTS(any, R"({"k":{"n":[1]}})");
  EXPECT_REJECTS(any, "[]");
}

TEST(JsonSchema, NestedObjectsAndArraysOfObjects) {
  auto s = schema(R"({"type":"object","properties":{
      "customer":{"type":"object","properties":{"name":{"type":"string"},
        "address":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],
                   "additionalProperties":false}},
        "required":["name","address"],"additionalProperties":false},
      "lines":{"type":"array","items":{"type":"object","properties":{"sku":{"type":"string"},
        "qty":{"type":"integer","minimum":1}},"required":["sku","qty"],"additionalProperties":false},
        "minItems":1}},
      "required":["customer","lines"],"additionalProperties":false})");
  EXPECT_ACCEPTS(
      s, R"({"customer":{"name":"A","address":{"city":"B"}},"lines":[{"sku":"x","qty":2}]})");
  EXPECT_ACCEPTS(
      s,
      "{\n \"customer\": {\"name\": \"A\", \"address\": {\"city\": \"B\"}},\n \"lines\": [\n  "
      "{\"sku\": \"x\", \"qty\": 1},\n  {\"sku\": \"y\", \"qty\": 9}\n ]\n}");
  EXPECT_REJECTS(s, R"({"customer":{"name":"A","address":{}},"lines":[{"sku":"x","qty":2}]})");
  EXPECT_REJECTS(s, R"({"customer":{"name":"A","address":{"city":"B"}},"lines":[]})");
  EXPECT_REJECTS(
      s, R"({"customer":{"name":"A","address":{"city":"B"}},"lines":[{"sku":"x","qty":0}]})");
}

// ---- enum / const ----

TEST(JsonSchema, EnumAndConst) {
  auto e = schema(R"({"enum":["red", 1, 2.5, null, true, {"a":[1]}, ["x"]]})");
  for (const char* ok : {R"("red")", "1", "2.5", "null", "true", R"({"a":[1]})", R"(["x"])"})
    EXPECT_ACCEPTS(e, ok);
  for (const char* bad : {R"("blue")", "false", "2", R"({"a":[2]})", R"("Red")"})
    EXPECT_REJECTS(e, bad);

  // enum filtered by type.
  auto t = schema(R"({"type":"string","enum":["a", 1, "b"]})");
  EXPECT_ACCEPTS(t, R"("a")");
  EXPECT_REJECTS(t, "1");

  auto c = schema(R"({"const":"fixed \"q\""})");
  EXPECT_ACCEPTS(c, R"("fixed \"q\"")");
  EXPECT_REJECTS(c, R"("fixed")");
  auto cn = schema(R"({"const":42})");
  EXPECT_ACCEPTS(cn, "42");
  EXPECT_REJECTS(cn, "43");
}

// ---- anyOf / oneOf / allOf ----

TEST(JsonSchema, AnyOfOneOf) {
  auto a = schema(
      R"({"anyOf":[{"type":"integer","minimum":0,"maximum":9},{"type":"string","maxLength":2}]})");
  EXPECT_ACCEPTS(a, "5");
  EXPECT_ACCEPTS(a, R"("ab")");
  EXPECT_REJECTS(a, "10");
  EXPECT_REJECTS(a, R"("abc")");

  auto o = schema(R"({"oneOf":[{"type":"null"},{"type":"object","properties":{"k":{"const":1}},
      "required":["k"],"additionalProperties":false}]})");
  EXPECT_ACCEPTS(o, "null");
  EXPECT_ACCEPTS(o, R"({"k":1})");
  EXPECT_REJECTS(o, R"({"k":2})");

  // Parent keywords apply to each alternative.
  auto p = schema(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},
      "additionalProperties":false,"anyOf":[{"required":["a"]},{"required":["b"]}]})");
  EXPECT_ACCEPTS(p, R"({"a":1})");
  EXPECT_ACCEPTS(p, R"({"b":1})");
  EXPECT_ACCEPTS(p, R"({"a":1,"b":2})");
  EXPECT_REJECTS(p, "{}");
}

TEST(JsonSchema, AllOfMerges) {
  auto s = schema(R"({"allOf":[
      {"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},
      {"properties":{"b":{"type":"string"}},"required":["b"]}]})");
  EXPECT_ACCEPTS(s, R"({"a":1,"b":"x"})");
  EXPECT_REJECTS(s, R"({"a":1})");
  auto n = schema(R"({"allOf":[{"type":"integer","minimum":0},{"maximum":5},{"minimum":2}]})");
  EXPECT_ACCEPTS(n, "2");
  EXPECT_ACCEPTS(n, "5");
  EXPECT_REJECTS(n, "1");
  EXPECT_REJECTS(n, "6");
  // Merging through a $ref.
  auto r = schema(R"({"$defs":{"base":{"type":"object","properties":{"id":{"type":"integer"}},
      "required":["id"]}},"allOf":[{"$ref":"#/$defs/base"},{"properties":{"tag":{"type":"string"}}}]})");
  EXPECT_ACCEPTS(r, R"({"id":1,"tag":"t"})");
  EXPECT_REJECTS(r, R"({"tag":"t"})");

  EXPECT_NE(
      schema_error(R"({"allOf":[{"type":"string"},{"type":"integer"}]})").find("no type in common"),
      std::string::npos);
  EXPECT_NE(schema_error(R"({"allOf":[{"pattern":"a"},{"pattern":"b"}]})").find("'pattern'"),
            std::string::npos);
}

// ---- $ref ----

TEST(JsonSchema, RefsAndRecursion) {
  auto tree = schema(R"({"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},
      "children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},
      "required":["value"],"additionalProperties":false}},"$ref":"#/$defs/node"})");
  EXPECT_ACCEPTS(tree, R"({"value":1})");
  EXPECT_ACCEPTS(tree,
                 R"({"value":1,"children":[{"value":2,"children":[{"value":3}]},{"value":4}]})");
  EXPECT_REJECTS(tree, R"({"value":1,"children":[{"value":2},{"value":3},{"value":4}]})");
  EXPECT_REJECTS(tree, R"({"value":1,"children":[{"children":[]}]})");

  auto list = schema(
      R"({"definitions":{"cell":{"type":"object","properties":{"v":{"type":"string","maxLength":3},
      "next":{"anyOf":[{"$ref":"#/definitions/cell"},{"type":"null"}]}},"required":["v","next"],
      "additionalProperties":false}},"$ref":"#/definitions/cell"})");
  EXPECT_ACCEPTS(list, R"({"v":"a","next":{"v":"b","next":null}})");
  EXPECT_REJECTS(list, R"({"v":"a","next":{"v":"b"}})");

  auto root =
      schema(R"({"type":"object","properties":{"sub":{"$ref":"#"}},"additionalProperties":false})");
  EXPECT_ACCEPTS(root, R"({"sub":{"sub":{}}})");
  EXPECT_REJECTS(root, R"({"sub":{"sub":1}})");

  // A $ref with sibling keywords: merged.
  auto sib = schema(R"({"$defs":{"n":{"type":"integer"}},"$ref":"#/$defs/n","maximum":3})");
  EXPECT_ACCEPTS(sib, "3");
  EXPECT_REJECTS(sib, "4");

  EXPECT_NE(schema_error(R"({"$ref":"http://example.com/s.json"})")
                .find("only references into the same schema"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref":"#/$defs/missing"})").find("points at nothing"),
            std::string::npos);
}

// ---- arrays ----

TEST(JsonSchema, Arrays) {
  auto s = schema(R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})");
  EXPECT_REJECTS(s, "[]");
  EXPECT_REJECTS(s, "[1]");
  EXPECT_ACCEPTS(s, "[1,2]");
  EXPECT_ACCEPTS(s, "[1, 2, 3]");
  EXPECT_REJECTS(s, "[1,2,3,4]");
  EXPECT_REJECTS(s, "[1,\"a\"]");

  auto any = schema(R"({"type":"array"})");
  EXPECT_ACCEPTS(any, "[]");
  EXPECT_ACCEPTS(any, R"([1,"a",[null]])");

  auto min0 = schema(R"({"type":"array","items":{"type":"boolean"},"maxItems":1})");
  EXPECT_ACCEPTS(min0, "[]");
  EXPECT_ACCEPTS(min0, "[true]");
  EXPECT_REJECTS(min0, "[true,false]");

  auto tuple = schema(
      R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false})");
  EXPECT_ACCEPTS(tuple, "[]");
  EXPECT_ACCEPTS(tuple, R"(["a"])");
  EXPECT_ACCEPTS(tuple, R"(["a",1])");
  EXPECT_REJECTS(tuple, R"(["a",1,2])");
  EXPECT_REJECTS(tuple, R"([1])");

  auto tuple_rest =
      schema(R"({"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"integer"},
      "minItems":2,"maxItems":4})");
  EXPECT_REJECTS(tuple_rest, R"(["a"])");
  EXPECT_ACCEPTS(tuple_rest, R"(["a",1])");
  EXPECT_ACCEPTS(tuple_rest, R"(["a",1,2,3])");
  EXPECT_REJECTS(tuple_rest, R"(["a",1,2,3,4])");
  EXPECT_REJECTS(tuple_rest, R"(["a","b"])");

  auto draft7 =
      schema(R"({"type":"array","items":[{"type":"null"}],"additionalItems":{"type":"boolean"}})");
  EXPECT_ACCEPTS(draft7, "[null,true,false]");
  EXPECT_REJECTS(draft7, "[true]");
}

// ---- strings ----

TEST(JsonSchema, StringLengthsInCharacters) {
  auto s = schema(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_REJECTS(s, R"("a")");
  EXPECT_ACCEPTS(s, R"("ab")");
  EXPECT_ACCEPTS(s, R"("abc")");
  EXPECT_REJECTS(s, R"("abcd")");
  EXPECT_ACCEPTS(s, "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"");  // 3 code points, 9 bytes
  EXPECT_ACCEPTS(s, R"("\n\u0041")");                             // escapes count as one
  EXPECT_REJECTS(s, R"("\n\u0041xy")");
}

TEST(JsonSchema, Pattern) {
  auto anchored = schema(R"({"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"})");
  EXPECT_ACCEPTS(anchored, R"("AB-123")");
  EXPECT_REJECTS(anchored, R"("xAB-123")");
  EXPECT_REJECTS(anchored, R"("AB-1234")");

  // Unanchored: a search.
  auto search = schema(R"({"type":"string","pattern":"ab+c"})");
  EXPECT_ACCEPTS(search, R"("abbc")");
  EXPECT_ACCEPTS(search, R"("xx abc yy")");
  EXPECT_REJECTS(search, R"("ac")");
  auto start = schema(R"({"type":"string","pattern":"^id_"})");
  EXPECT_ACCEPTS(start, R"("id_anything")");
  EXPECT_REJECTS(start, R"("xid_")");

  // Characters that must be escaped in JSON.
  auto quote = schema(R"({"type":"string","pattern":"^a\"b\\\\c\\n$"})");
  EXPECT_ACCEPTS(quote, R"("a\"b\\c\n")");
  EXPECT_REJECTS(quote, "\"a\"b\\c\n\"");

  auto dot = schema(R"({"type":"string","pattern":"^.{3}$"})");
  EXPECT_ACCEPTS(dot, R"("a\"\\")");
  EXPECT_REJECTS(dot, R"("a\nb")");

  // An empty alternative in a search matches everything; repeated alternatives count once (found
  // by fuzz_regex: "\\|" then 400 empty alternatives passed the matcher's bound on live parses).
  std::string many = "\\\\|";
  for (int i = 0; i < 400; ++i) many += "|";
  auto everything = schema(R"({"type":"string","pattern":")" + many + R"("})");
  EXPECT_ACCEPTS(everything, R"("anything at all")");
  EXPECT_ACCEPTS(everything, R"("")");
  std::string same = "ab", inner = "^x(a";
  for (int i = 0; i < 5000; ++i) same += "|ab", inner += "|a";
  auto repeated = schema(R"({"type":"string","pattern":")" + same + R"("})");
  EXPECT_ACCEPTS(repeated, R"("xx ab yy")");
  EXPECT_REJECTS(repeated, R"("a b")");
  auto grouped = schema(R"({"type":"string","pattern":")" + inner + R"()+$"})");
  EXPECT_ACCEPTS(grouped, R"("xaaaa")");
  EXPECT_REJECTS(grouped, R"("xab")");

  EXPECT_NE(schema_error(R"({"type":"string","pattern":"(a)\\1"})").find("backreference"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"string","pattern":"a","maxLength":3})").find("pattern"),
            std::string::npos);
}

TEST(JsonSchema, HugeItemCountsAreClearErrorsOrClamped) {
  // Found by fuzz_json_schema (UBSan): minItems 1.8e39 was cast to int64 unchecked.
  EXPECT_NE(schema_error(R"({"type":"array","minItems":1777777777777777777777777777777777777777})")
                .find("minItems over"),
            std::string::npos);
  auto many = schema(R"({"type":"array","items":{"type":"integer"},"maxItems":1e300})");
  EXPECT_ACCEPTS(many, "[1, 2, 3]");
}

TEST(JsonSchema, Formats) {
  auto date = schema(R"({"type":"string","format":"date"})");
  for (const char* ok :
       {R"("2024-02-29")", R"("2000-02-29")", R"("2023-12-31")", R"("1999-04-30")"})
    EXPECT_ACCEPTS(date, ok);
  for (const char* bad : {R"("2023-02-29")", R"("1900-02-29")", R"("2023-04-31")",
                          R"("2023-13-01")", R"("2023-00-10")", R"("2023-1-1")", R"("2023-01-00")"})
    EXPECT_REJECTS(date, bad);

  auto time = schema(R"({"type":"string","format":"time"})");
  for (const char* ok : {R"("23:59:59Z")", R"("00:00:00.123+05:30")", R"("12:30:00-08:00")"})
    EXPECT_ACCEPTS(time, ok);
  for (const char* bad : {R"("24:00:00Z")", R"("12:60:00Z")", R"("12:00:00")", R"("12:00Z")"})
    EXPECT_REJECTS(time, bad);

  auto dt = schema(R"({"type":"string","format":"date-time"})");
  EXPECT_ACCEPTS(dt, R"("2024-01-15T10:20:30Z")");
  EXPECT_ACCEPTS(dt, R"("2024-01-15T10:20:30.5+01:00")");
  EXPECT_REJECTS(dt, R"("2024-01-15 10:20:30")");

  auto uuid = schema(R"({"type":"string","format":"uuid"})");
  EXPECT_ACCEPTS(uuid, R"("123e4567-e89b-12d3-a456-426614174000")");
  EXPECT_REJECTS(uuid, R"("123e4567-e89b-12d3-a456-42661417400")");
  EXPECT_REJECTS(uuid, R"("123e4567e89b12d3a456426614174000")");

  auto email = schema(R"({"type":"string","format":"email"})");
  EXPECT_ACCEPTS(email, R"("john.doe+x@example.co.uk")");
  EXPECT_ACCEPTS(email, R"("a@b.c")");
  EXPECT_REJECTS(email, R"("a@b")");
  EXPECT_REJECTS(email, R"("a..b@c.d")");
  EXPECT_REJECTS(email, R"("@c.d")");
  EXPECT_REJECTS(email, R"("a@-b.c")");

  auto ip = schema(R"({"type":"string","format":"ipv4"})");
  EXPECT_ACCEPTS(ip, R"("192.168.0.1")");
  EXPECT_ACCEPTS(ip, R"("255.255.255.255")");
  EXPECT_REJECTS(ip, R"("256.1.1.1")");
  EXPECT_REJECTS(ip, R"("01.1.1.1")");
  EXPECT_REJECTS(ip, R"("1.1.1")");

  EXPECT_NE(schema_error(R"({"type":"string","format":"hostname"})")
                .find("unsupported format 'hostname'"),
            std::string::npos);
}

// ---- numbers ----

TEST(JsonSchema, IntegerRangesAreExact) {
  struct Case {
    const char* schema;
    long long lo, hi;
  };
  for (const Case& c :
       {Case{R"({"type":"integer","minimum":0,"maximum":100})", 0, 100},
        Case{R"({"type":"integer","minimum":-25,"maximum":17})", -25, 17},
        Case{R"({"type":"integer","minimum":7,"maximum":1234})", 7, 1234},
        Case{R"({"type":"integer","exclusiveMinimum":-3,"exclusiveMaximum":3})", -2, 2},
        Case{R"({"type":"integer","minimum":-1000,"maximum":-10})", -1000, -10},
        Case{R"({"type":"integer","minimum":1.5,"maximum":9.5})", 2, 9},
        Case{R"({"type":"integer","minimum":95,"maximum":105})", 95, 105}}) {
    auto s = schema(c.schema);
    for (long long v = c.lo - 30; v <= c.hi + 30; ++v) {
      bool in = v >= c.lo && v <= c.hi;
      EXPECT_EQ(s(std::to_string(v)), in) << c.schema << " value " << v;
    }
    EXPECT_REJECTS(s, "-0");
  }
  auto lo_only = schema(R"({"type":"integer","minimum":10})");
  EXPECT_REJECTS(lo_only, "9");
  EXPECT_ACCEPTS(lo_only, "10");
  EXPECT_ACCEPTS(lo_only, "999999999999999");
  auto hi_only = schema(R"({"type":"integer","maximum":-5})");
  EXPECT_ACCEPTS(hi_only, "-5");
  EXPECT_ACCEPTS(hi_only, "-100000");
  EXPECT_REJECTS(hi_only, "-4");
  EXPECT_REJECTS(hi_only, "0");
  // Draft 4's boolean exclusiveMinimum.
  auto d4 = schema(R"({"type":"integer","minimum":0,"exclusiveMinimum":true,"maximum":2})");
  EXPECT_REJECTS(d4, "0");
  EXPECT_ACCEPTS(d4, "1");
}

TEST(JsonSchema, NumberRanges) {
  auto s = schema(R"({"type":"number","minimum":-1,"maximum":2})");
  for (const char* ok : {"-1", "-0.5", "0", "0.25", "1.999", "2", "-0.999"}) EXPECT_ACCEPTS(s, ok);
  for (const char* bad : {"-1.5", "2.5", "2.1", "3", "-2", "1e1"}) EXPECT_REJECTS(s, bad);
  auto ex = schema(R"({"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1})");
  EXPECT_ACCEPTS(ex, "0.5");
  EXPECT_ACCEPTS(ex, "0.001");
  EXPECT_REJECTS(ex, "0");
  EXPECT_REJECTS(ex, "0.0");
  EXPECT_REJECTS(ex, "1");
  auto neg = schema(R"({"type":"number","minimum":-10,"exclusiveMaximum":-2})");
  EXPECT_ACCEPTS(neg, "-10");
  EXPECT_ACCEPTS(neg, "-2.5");
  EXPECT_ACCEPTS(neg, "-2.01");
  EXPECT_REJECTS(neg, "-2");
  EXPECT_REJECTS(neg, "-10.5");
  EXPECT_REJECTS(neg, "0");
  auto pos = schema(R"({"type":"number","minimum":0})");
  EXPECT_ACCEPTS(pos, "3.5");
  EXPECT_REJECTS(pos, "-3.5");
  EXPECT_NE(schema_error(R"({"type":"number","exclusiveMinimum":0.2,"exclusiveMaximum":0.8})")
                .find("no number"),
            std::string::npos);
}

// ---- options ----

TEST(JsonSchema, RootAndPrefixCombineInOneGrammar) {
  JsonSchemaOptions a, b;
  a.root = "first";
  a.prefix = "a-";
  b.root = "second";
  b.prefix = "b-";
  std::string g =
      json_schema_text_to_gbnf(
          R"({"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]})", a) +
      json_schema_text_to_gbnf(R"({"type":"array","items":{"type":"string"}})", b) +
      "root ::= \"A\" first | \"B\" second\n";
  Lang l(g);
  EXPECT_ACCEPTS(l, R"(A{"x":1})");
  EXPECT_ACCEPTS(l, R"(B["s"])");
  EXPECT_REJECTS(l, R"(A["s"])");

  // The nlohmann::json overload (sorted properties) and json_object_gbnf.
  Lang sorted(json_schema_to_gbnf(
      nlohmann::json::parse(R"({"properties":{"b":{"type":"integer"},"a":{"type":"integer"}},
      "required":["a","b"],"additionalProperties":false})")));
  EXPECT_ACCEPTS(sorted, R"({"a":1,"b":2})");
  EXPECT_REJECTS(sorted, R"({"b":2,"a":1})");
  Lang obj(json_object_gbnf());
  EXPECT_ACCEPTS(obj, R"({"a":[1,{"b":null}]})");
  EXPECT_ACCEPTS(obj, "{}");
  EXPECT_REJECTS(obj, "[]");
  EXPECT_REJECTS(obj, R"("s")");
}

// ---- errors ----

TEST(JsonSchema, UnsupportedKeywordsNameKeywordAndPath) {
  struct Case {
    const char* schema;
    const char* keyword;
    const char* path;
  };
  for (
      const Case& c : {
          Case{
              R"({"type":"object","properties":{"a":{"type":"object","patternProperties":{"x":{}}}}})",
              "patternProperties", "/properties/a"},
          Case{R"({"not":{"type":"string"}})", "not", "(root)"},
          Case{R"({"if":{},"then":{}})", "if", "(root)"},
          Case{R"({"type":"array","items":{"type":"integer","multipleOf":3}})", "multipleOf",
               "/items"},
          Case{R"({"type":"array","uniqueItems":true})", "uniqueItems", "(root)"},
          Case{R"({"type":"object","minProperties":1})", "minProperties", "(root)"},
          Case{R"({"type":"object","propertyNames":{"maxLength":3}})", "propertyNames", "(root)"},
          Case{R"({"type":"array","contains":{"type":"integer"}})", "contains", "(root)"},
          Case{R"({"$defs":{"x":{"dependentRequired":{}}},"$ref":"#/$defs/x"})",
               "dependentRequired", "/$defs/x"},
          Case{R"({"anyOf":[{"type":"string"},{"unevaluatedProperties":false}]})",
               "unevaluatedProperties", "/anyOf/1"},
      }) {
    std::string err = schema_error(c.schema);
    EXPECT_NE(
        err.find(std::string("unsupported JSON Schema keyword '") + c.keyword + "' at " + c.path),
        std::string::npos)
        << c.schema << " -> " << err;
  }
  // Annotations are accepted.
  EXPECT_EQ(schema_error(
                R"({"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"x","title":"t",
      "description":"d","examples":[1],"default":1,"$comment":"c","deprecated":false,"readOnly":true,
      "type":"integer","uniqueItems":false})"),
            "(no error)");
  EXPECT_NE(schema_error(R"({"type":"strin"})").find("unknown type 'strin'"), std::string::npos);
  EXPECT_NE(schema_error("false").find("matches nothing"), std::string::npos);
  EXPECT_NE(schema_error("{\"type\":").find("not valid JSON"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"object","required":["x"],"additionalProperties":false})")
                .find("'x'"),
            std::string::npos);
}

// ---- regex ----

TEST(Regex, Constructs) {
  auto lit = regex("abc");
  EXPECT_ACCEPTS(lit, "abc");
  EXPECT_REJECTS(lit, "ab");
  EXPECT_REJECTS(lit, "abcd");

  auto esc = regex(R"(\d\w\s\.\\\n\t\u00e9\x41)");
  EXPECT_ACCEPTS(esc,
                 "7_ .\\\n\t\xC3\xA9"
                 "A");
  EXPECT_REJECTS(esc,
                 "a_ .\\\n\t\xC3\xA9"
                 "A");

  auto neg = regex(R"(\D\W\S)");
  EXPECT_ACCEPTS(neg, "a-x");
  EXPECT_REJECTS(neg, "1-x");
  EXPECT_REJECTS(neg, "a_x");
  EXPECT_REJECTS(neg, "a- ");

  auto cls = regex(R"([a-c0-2_\-\]]+)");
  EXPECT_ACCEPTS(cls, "abc012_-]");
  EXPECT_REJECTS(cls, "d");
  EXPECT_REJECTS(cls, "");
  auto ncls = regex(R"([^a-z\d]{2})");
  EXPECT_ACCEPTS(ncls, "A!");
  EXPECT_ACCEPTS(ncls, "\xE2\x82\xAC\n");
  EXPECT_REJECTS(ncls, "Ab");
  EXPECT_REJECTS(ncls, "A5");

  auto dot = regex("a.c");
  EXPECT_ACCEPTS(dot, "abc");
  EXPECT_ACCEPTS(dot,
                 "a\xE2\x82\xAC"
                 "c");
  EXPECT_REJECTS(dot, "a\nc");
  EXPECT_REJECTS(dot, "a\rc");

  auto groups = regex("(ab|cd)(?:e|f)(?<name>g)?");
  for (const char* ok : {"abe", "cdf", "abeg"}) EXPECT_ACCEPTS(groups, ok);
  for (const char* bad : {"ab", "abg", "ef"}) EXPECT_REJECTS(groups, bad);

  auto q = regex("a*b+c?d{2}e{1,}f{1,3}");
  EXPECT_ACCEPTS(q, "bddef");
  EXPECT_ACCEPTS(q, "aaabbcddeeefff");
  EXPECT_ACCEPTS(q, "bcddef");
  EXPECT_REJECTS(q, "bccddef");   // c?
  EXPECT_REJECTS(q, "bdef");      // d{2}
  EXPECT_REJECTS(q, "bddeffff");  // f{1,3}
  EXPECT_REJECTS(q, "addef");     // b+

  auto lazy = regex("a+?b*?c??");
  EXPECT_ACCEPTS(lazy, "aabbc");
  EXPECT_ACCEPTS(lazy, "a");

  auto anchors = regex("^(yes|no)$");
  EXPECT_ACCEPTS(anchors, "yes");
  EXPECT_REJECTS(anchors, "yesno");
  auto alt_anchors = regex("^a|b$");
  EXPECT_ACCEPTS(alt_anchors, "a");
  EXPECT_ACCEPTS(alt_anchors, "b");

  auto brace = regex("a{,2}");  // not a quantifier: literal text
  EXPECT_ACCEPTS(brace, "a{,2}");
}

TEST(Regex, Realistic) {
  auto phone = regex(R"(\(\d{3}\) \d{3}-\d{4})");
  EXPECT_ACCEPTS(phone, "(555) 123-4567");
  EXPECT_REJECTS(phone, "555-123-4567");
  auto semver = regex(R"((0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.]+)?)");
  EXPECT_ACCEPTS(semver, "1.20.3");
  EXPECT_ACCEPTS(semver, "0.1.0-rc.1");
  EXPECT_REJECTS(semver, "01.2.3");
}

TEST(Regex, UnsupportedFeaturesNameThemselves) {
  struct Case {
    const char* pattern;
    const char* what;
  };
  for (const Case& c :
       {Case{R"((a)\1)", "backreference"}, Case{R"((?<n>a)\k<n>)", "backreference"},
        Case{"a(?=b)", "lookahead"}, Case{"a(?!b)", "lookahead"}, Case{"(?<=a)b", "lookbehind"},
        Case{"(?<!a)b", "lookbehind"}, Case{R"(\bword\b)", "word boundary"},
        Case{R"(\p{L})", "Unicode property"}, Case{"(?i)abc", "inline flags"},
        Case{"a^b", "anchor '^'"}, Case{"a$b", "anchor '$'"}, Case{"*a", "nothing to repeat"},
        Case{"(ab", "missing ')'"}, Case{"ab)", "unbalanced ')'"}, Case{"[ab", "missing ']'"},
        Case{"a{3,2}", "max below min"}, Case{"a++", "possessive"},
        Case{R"(\q)", "unknown escape"}}) {
    std::string err = regex_error(c.pattern);
    EXPECT_NE(err.find(c.what), std::string::npos) << c.pattern << " -> " << err;
  }
}

TEST(Choice, ExactlyOneOfTheStrings) {
  Lang c(choice_to_gbnf({"yes", "no", "maybe \"so\"", "\xC3\xA9t\xC3\xA9"}));
  for (const char* ok : {"yes", "no", "maybe \"so\"", "\xC3\xA9t\xC3\xA9"}) EXPECT_ACCEPTS(c, ok);
  for (const char* bad : {"ye", "yesno", "", "maybe"}) EXPECT_REJECTS(c, bad);
  EXPECT_THROW(choice_to_gbnf({}), GrammarError);
}

// Found by fuzz_regex (issue 32): a choice that is not UTF-8 became GBNF that did not parse.
TEST(Choice, NotUtf8IsAClearError) {
  try {
    choice_to_gbnf({"yes", "no \xC3"});
    ADD_FAILURE() << "accepted";
  } catch (const GrammarError& e) {
    EXPECT_STREQ(e.what(), "choice: choice 1 is not valid UTF-8 (byte 3)");
  }
}

// ---- the schema corpus of the end-to-end test ----

TEST(JsonSchemaCorpus, EveryCorpusSchemaCompilesAndItsExamplesMatch) {
  const auto path = std::filesystem::path(INFERD_SOURCE_DIR) / "tests/data/structured/schemas.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  Json corpus = Json::parse(in);
  ASSERT_GE(corpus.size(), 110u);
  int examples = 0;
  for (const auto& entry : corpus) {
    const std::string name = entry.at("name").get<std::string>();
    JsonSchemaOptions o;
    o.strict = entry.value("strict", false);
    std::unique_ptr<Lang> lang;
    try {
      lang = std::make_unique<Lang>(json_schema_to_gbnf(entry.at("schema"), o));
    } catch (const GrammarError& e) {
      ADD_FAILURE() << name << ": " << e.what();
      continue;
    }
    for (const auto& doc : entry.value("valid", Json::array())) {
      ++examples;
      std::string text = doc.is_string() && entry.value("valid_as_text", false)
                             ? doc.get<std::string>()
                             : doc.dump();
      EXPECT_TRUE((*lang)(text)) << name << ": should match " << text;
    }
    for (const auto& doc : entry.value("invalid", Json::array())) {
      ++examples;
      EXPECT_FALSE((*lang)(doc.dump())) << name << ": should not match " << doc.dump();
    }
  }
  EXPECT_GE(examples, 100);
}

// A stand-in for the end-to-end test's random weights: on Qwen3's real vocabulary, each corpus
// schema's grammar is walked by drawing uniformly among the allowed tokens (stop ids included
// when allowed). Every walk that stops is well-formed JSON; most stop within 400 tokens.
// All 142 schemas (one run, 215 s): 135 stopped, all JSON; the unbounded ones (unanchored patterns,
// additional properties with any value) are those cut.
TEST(JsonSchemaCorpus, UniformRandomWalksOnQwen3VocabularyEndAsJson) {
  const std::string dir = std::string(INFERD_TEST_DATA_DIR) + "/tokenizers/qwen3";
  if (!std::filesystem::exists(dir + "/tokenizer.json"))
    GTEST_SKIP() << "tests/data/tokenizers/qwen3 absent (scripts/fetch-test-data.sh)";
  const Tokenizer tok = Tokenizer::from_dir(dir);
  auto vocab = tokenizer_info_from(tok, 151936, tok.eos_ids());
  std::ifstream in(std::filesystem::path(INFERD_SOURCE_DIR) / "tests/data/structured/schemas.json");
  Json corpus = Json::parse(in);
  std::mt19937 rng(1234);
  std::vector<uint32_t> words(static_cast<size_t>(bitmask_words(vocab->vocab_size())));
  std::vector<int32_t> allowed;
  int stopped = 0, walks = 0;
  double compile_secs = 0;
  int masks = 0;
  std::string cut;
  const auto t0 = std::chrono::steady_clock::now();
  // Every 6th schema (all of them take minutes; the end-to-end test covers all).
  for (size_t idx = 0; idx < corpus.size(); idx += 6) {
    const auto& entry = corpus[idx];
    const std::string name = entry.at("name").get<std::string>();
    JsonSchemaOptions o;
    o.strict = entry.value("strict", false);
    const auto c0 = std::chrono::steady_clock::now();
    auto g = compile_gbnf(json_schema_to_gbnf(entry.at("schema"), o), vocab);
    compile_secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
    GrammarMatcher m(g);
    std::string text;
    ++walks;
    for (int step = 0; step < 400 && !m.is_terminated(); ++step) {
      m.fill_next_token_bitmask(words);
      ++masks;
      allowed.clear();
      for (size_t w = 0; w < words.size(); ++w)
        for (uint32_t bits = words[w]; bits; bits &= bits - 1)
          allowed.push_back(
              static_cast<int32_t>(w * 32 + static_cast<size_t>(__builtin_ctz(bits))));
      ASSERT_FALSE(allowed.empty()) << name << ": no token allowed after " << text;
      const int32_t id = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
      ASSERT_TRUE(m.accept_token(id)) << name;
      if (!m.is_terminated()) text += vocab->token_bytes(id);
    }
    if (!m.is_terminated()) {
      cut += " " + name;
      continue;
    }
    ++stopped;
    EXPECT_TRUE(Json::accept(text)) << name << ": not JSON: " << text;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "uniform random walks: %d/%d stopped within 400 tokens (%.1f s, %.1f s compiling, %d masks); "
      "cut:%s\n",
      stopped, walks, secs, compile_secs, masks, cut.c_str());
  EXPECT_GE(stopped, walks * 85 / 100);
}

}  // namespace
}  // namespace inferd::grammar
