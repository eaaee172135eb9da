// Reference fixtures made by tools/make_tokenizer_fixtures.mjs (Hugging Face `tokenizers`) and
// the real tokenizer files they refer to (fetched by scripts/fetch-test-data.sh).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace inferd::testing {

// Names of the fixture files (without .json), real tokenizers first, then variants.
std::vector<std::string> tokenizer_fixture_names();
// The shared corpus texts.
const std::vector<std::string>& fixture_corpus();
// A fixture file, parsed.
const nlohmann::json& tokenizer_fixture(const std::string& name);
// The tokenizer a fixture was made with (the base file with the fixture's patch applied), loaded
// once per process. Throws with a message naming scripts/fetch-test-data.sh when the tokenizer
// files are missing.
const Tokenizer& fixture_tokenizer(const std::string& name);
// The directory of a real tokenizer (tests/data/tokenizers/<base>), checked to exist.
std::string tokenizer_dir(const std::string& base);
// A JSON file, parsed (throws naming the path when it cannot be opened).
nlohmann::json read_json(const std::string& path);
// The patch rules of tools/make_tokenizer_fixtures.mjs applied to a tokenizer.json.
nlohmann::json apply_tokenizer_patch(const nlohmann::json& base, const nlohmann::json& patch);

}  // namespace inferd::testing
