// The shared rules of the JSON Schema converter (json_schema_converter.h), each written once per
// grammar on first use: whitespace, strings and their characters, integers, numbers, booleans,
// any value, object and array, and the string formats (date, time, date-time, uuid, email, ipv4).
#include <string>

#include "core/error_types.h"
#include "grammar/json_schema_converter.h"
#include "grammar/regex_converter.h"

namespace inferd::grammar::json_schema_detail {

std::string Converter::prim(const std::string& kind) {
  auto it = prims_.find(kind);
  if (it != prims_.end()) return it->second;
  std::string n = new_name(kind);
  prims_[kind] = n;
  size_t idx = reserve(n);
  std::string body;
  if (kind == "ws") {
    body = "( \" \" | \"\\n\" [ \\t]{0,20} )?";
  } else if (kind == "char") {
    body = gbnf_class(json_raw_chars()) + " | \"\\\\\" ( [\\x22\\x5C/bfnrt] | \"u\" " +
           prim("hex-no-surrogate") + " )";
  } else if (kind == "hex-no-surrogate") {
    body = "[0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}";
  } else if (kind == "string") {
    body = "\"\\\"\" " + prim("char") + "* \"\\\"\"";
  } else if (kind == "integer") {
    body = "\"-\"? ( \"0\" | [1-9] [0-9]{0,14} )";
  } else if (kind == "number") {
    body =
        "\"-\"? ( \"0\" | [1-9] [0-9]{0,14} ) ( \".\" [0-9]{1,15} )? ( [eE] [+\\x2D]? [0-9]{1,2} "
        ")?";
  } else if (kind == "boolean") {
    body = "\"true\" | \"false\"";
  } else if (kind == "value") {
    body = prim("object") + " | " + prim("array") + " | " + prim("string") + " | " +
           prim("number") + " | " + prim("boolean") + " | \"null\"";
  } else if (kind == "object") {
    std::string ws = prim("ws");
    std::string kv = prim("string") + " " + ws + " \":\" " + ws + " " + prim("value") + " " + ws;
    body = "\"{\" " + ws + " ( " + kv + " ( \",\" " + ws + " " + kv + " )* )? \"}\"";
  } else if (kind == "array") {
    std::string ws = prim("ws");
    std::string v = prim("value") + " " + ws;
    body = "\"[\" " + ws + " ( " + v + " ( \",\" " + ws + " " + v + " )* )? \"]\"";
  } else if (kind == "date") {
    std::string d31 = "( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )";
    std::string d30 = "( \"0\" [1-9] | [12] [0-9] | \"30\" )";
    std::string d28 = "( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] )";
    body = "[0-9]{4} \"-\" ( ( \"0\" [13578] | \"1\" [02] ) \"-\" " + d31 +
           " | ( \"0\" [469] | \"11\" ) \"-\" " + d30 + " | \"02-\" " + d28 + " ) | " +
           prim("leap-year") + " \"-02-29\"";
  } else if (kind == "leap-year") {
    // Divisible by 4 and not by 100, or by 400.
    std::string by4 = "\"0\" [48] | [2468] [048] | [13579] [26]";
    body = "[0-9]{2} ( " + by4 + " ) | ( " + by4 + " | \"00\" ) \"00\"";
  } else if (kind == "time") {
    body =
        "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,9} )? "
        "( [Zz] | [+\\x2D] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )";
  } else if (kind == "date-time") {
    body = prim("date") + " \"T\" " + prim("time");
  } else if (kind == "uuid") {
    body =
        "[0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" "
        "[0-9a-fA-F]{12}";
  } else if (kind == "email") {
    std::string atom = "[a-zA-Z0-9!#$%&'*+/=?\\x5E_`{|}~\\x2D]{1,32}";
    std::string label = "[a-zA-Z0-9] ( [a-zA-Z0-9\\x2D]{0,30} [a-zA-Z0-9] )?";
    body = atom + " ( \".\" " + atom + " ){0,3} \"@\" ( " + label + " \".\" ){1,3} " + label;
  } else if (kind == "ipv4") {
    std::string octet =
        "( \"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9] [0-9] | [0-9] )";
    body = octet + " ( \".\" " + octet + " ){3}";
  } else {
    throw InternalError("json_schema: no primitive rule '" + kind + "'");
  }
  rules_[idx].second = body;
  return n;
}

}  // namespace inferd::grammar::json_schema_detail
