// Fuzz target: JSON Schemas (response_format json_schema, structured outputs' `json`, tool
// parameters) through the converter to GBNF (src/grammar/json_schema*.cc) and the tool-call
// grammar built from tool schemas (src/server/tool_calls.cc). The first byte picks the use: bit 0
// strict mode, bits 1-3 the tool-call format (0: the plain schema, 1..5: tool_call_grammar of
// hermes, llama3_json, mistral, json_array, arguments with the schema as parameters), bit 4 a
// single call. The rest is the schema as JSON text. An unsupported or broken schema must be a
// GrammarError; what the converter writes must then parse, compile and walk (a GrammarError from
// GBNF the converter wrote is a finding).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_vocab.h"
#include "grammar/grammar.h"
#include "grammar/grammar_ir.h"
#include "grammar/json_schema.h"
#include "server/tool_calls.h"

namespace {

using namespace inferd;

std::string to_gbnf(uint8_t mode, std::string_view text) {
  grammar::JsonSchemaOptions opt;
  opt.strict = mode & 1;
  const int tool = (mode >> 1) & 7;
  if (tool == 0 || tool > 5) return grammar::json_schema_text_to_gbnf(text, opt);
  const auto schema = nlohmann::ordered_json::parse(text, nullptr, false);
  if (schema.is_discarded() || !schema.is_object()) return "";
  std::vector<server::ToolSpec> tools = {{"get_weather", schema, bool(mode & 1)}};
  if (tool != 5) tools.push_back({"f2", nlohmann::ordered_json::object(), false});
  return server::tool_call_grammar(server::ToolCallFormat(tool - 1), tools, (mode & 16) != 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string gbnf;
  try {
    gbnf = to_gbnf(data[0], text);
  } catch (const grammar::GrammarError&) {
    return 0;
  }
  if (gbnf.empty()) return 0;
  try {
    // Grammars of large schemas are only parsed (compiling them is the slow part, not the
    // converter under test).
    if (gbnf.size() > 20000) {
      grammar::check_grammar(grammar::parse_gbnf(gbnf));
      return 0;
    }
    fuzz::walk_grammar(grammar::compile_gbnf(gbnf, fuzz::small_vocab()), text);
  } catch (const grammar::GrammarError& e) {
    // The matcher's bound on live parses (kMaxStacks) refuses a legal but hopelessly ambiguous
    // pattern (`a|aa|aaa|...` searched): a 400 naming the limit, as meant, not a converter bug.
    if (std::string_view(e.what()).find("too ambiguous") != std::string_view::npos) return 0;
    std::fprintf(stderr, "the converter wrote GBNF that does not compile: %s\n%s\n", e.what(),
                 gbnf.c_str());
    std::abort();
  }
  return 0;
}
