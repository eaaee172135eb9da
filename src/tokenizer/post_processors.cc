// Post-processors of tokenizer.json (ByteLevel, TemplateProcessing for single sequences,
// RobertaProcessing, BertProcessing, Sequence) and make_post_processor.
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tokenizer/components.h"
#include "tokenizer/json_fields.h"

namespace inferd::tok {

using nlohmann::json;

namespace {

class AddIdsProcessor : public PostProcessor {
 public:
  AddIdsProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }
  std::pair<std::vector<int32_t>, std::vector<int32_t>> added_ids() const override {
    return {before_, after_};
  }

 private:
  std::vector<int32_t> before_, after_;
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> p)
      : items_(std::move(p)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& p : items_) p->process(ids);
  }
  std::pair<std::vector<int32_t>, std::vector<int32_t>> added_ids() const override {
    std::vector<int32_t> before, after;
    for (const auto& p : items_) {
      auto [b, a] = p->added_ids();
      before.insert(before.begin(), b.begin(), b.end());
      after.insert(after.end(), a.begin(), a.end());
    }
    return {before, after};
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

std::unique_ptr<PostProcessor> template_processor(const json& j) {
  if (!j.contains("single") || !j.at("single").is_array()) {
    fail("tokenizer.json: TemplateProcessing needs a \"single\" template");
  }
  const json& specials = j.contains("special_tokens") ? j.at("special_tokens") : json::object();
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (const json& piece : j.at("single")) {
    if (piece.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!piece.contains("SpecialToken")) {
      fail("tokenizer.json: TemplateProcessing piece must be Sequence or SpecialToken, got {}",
           piece.dump());
    }
    const std::string id = piece.at("SpecialToken").at("id").get<std::string>();
    if (!specials.contains(id)) {
      fail("tokenizer.json: TemplateProcessing uses special token '{}' missing from special_tokens",
           id);
    }
    for (const json& x : specials.at(id).at("ids")) {
      (seen_sequence ? after : before).push_back(token_id(x, "TemplateProcessing"));
    }
  }
  return std::make_unique<AddIdsProcessor>(std::move(before), std::move(after));
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string t = type_of(j, "post_processor");
  if (t == "ByteLevel")
    return std::make_unique<AddIdsProcessor>(std::vector<int32_t>{}, std::vector<int32_t>{});
  if (t == "TemplateProcessing") return template_processor(j);
  if (t == "RobertaProcessing" || t == "BertProcessing") {
    const int32_t cls = token_id(j.at("cls").at(1), t.c_str());
    const int32_t sep = token_id(j.at("sep").at(1), t.c_str());
    return std::make_unique<AddIdsProcessor>(std::vector<int32_t>{cls}, std::vector<int32_t>{sep});
  }
  if (t == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> items;
    for (const json& p : j.at("processors")) {
      if (auto q = make_post_processor(p)) items.push_back(std::move(q));
    }
    return std::make_unique<SequenceProcessor>(std::move(items));
  }
  fail("tokenizer.json: unsupported post_processor type '{}'", t);
}

}  // namespace inferd::tok
