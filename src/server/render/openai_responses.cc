// OpenAiResponsesRenderer: the response object and the Responses streaming events (see
// openai_responses.h).
#include "server/render/openai_responses.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>

#include "server/responses.h"

namespace inferd::server {

namespace {

std::string item_id(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string s(prefix);
  for (int i = 0; i < 32; ++i) s += kHex[rng() & 15];
  return s;
}

ojson output_text_part(const std::string& text) {
  return {{"type", "output_text"},
          {"text", text},
          {"annotations", ojson::array()},
          {"logprobs", ojson::array()}};
}

ojson reasoning_text_part(const std::string& text) {
  return {{"type", "reasoning_text"}, {"text", text}};
}

}  // namespace

OpenAiResponsesRenderer::OpenAiResponsesRenderer(const ResponsesRequest& req, ResponsesStore& store)
    : echo_(req.echo), store_(req.store), input_items_(req.input_items), store_ref_(store) {}

ojson OpenAiResponsesRenderer::object(const Generation& g, const char* status) const {
  ojson j;
  j["id"] = g.id;
  j["object"] = "response";
  j["created_at"] = g.created;
  j["status"] = status;
  j["background"] = false;
  j["error"] = nullptr;
  j["incomplete_details"] = nullptr;
  j["model"] = g.request.model;
  j["output"] = ojson::array();
  for (auto& [k, v] : echo_.items()) j[k] = v;
  j["usage"] = nullptr;
  return j;
}

ojson OpenAiResponsesRenderer::usage_json(const Generation& g) const {
  const Usage u = g.usage();
  // Reasoning tokens: the reasoning text encoded again (the parser splits text, not tokens).
  int64_t reasoning = 0;
  for (const auto& it : output_)
    if (it["type"] == "reasoning")
      for (const auto& c : it["content"])
        reasoning += int64_t(g.generator.encode(c["text"].get<std::string>(), false).size());
  return {
      {"input_tokens", u.prompt_tokens},
      {"input_tokens_details", {{"cached_tokens", u.cached_tokens}}},
      {"output_tokens", u.completion_tokens},
      {"output_tokens_details", {{"reasoning_tokens", std::min(reasoning, u.completion_tokens)}}},
      {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

void OpenAiResponsesRenderer::event(const char* type, ojson fields) {
  if (!out_) return;
  ojson j;
  j["type"] = type;
  j["sequence_number"] = seq_++;
  for (auto& [k, v] : fields.items()) j[k] = std::move(v);
  out_->event(dump_json(j), type);
}

// A new output item: added (in progress), with its content part for text.
void OpenAiResponsesRenderer::open(Kind kind, const ToolCallDelta* call) {
  ojson item;
  text_.clear();
  if (kind == Kind::kMessage) {
    item = {{"id", item_id("msg_")},
            {"type", "message"},
            {"status", "in_progress"},
            {"role", "assistant"},
            {"content", ojson::array()}};
  } else if (kind == Kind::kReasoning) {
    item = {{"id", item_id("rs_")},
            {"type", "reasoning"},
            {"summary", ojson::array()},
            {"content", ojson::array()},
            {"status", "in_progress"}};
  } else {
    item = {{"id", item_id("fc_")}, {"type", "function_call"}, {"status", "in_progress"},
            {"arguments", ""},      {"call_id", call->id},     {"name", call->name}};
  }
  const size_t index = output_.size();
  event("response.output_item.added", {{"output_index", index}, {"item", item}});
  const std::string iid = item["id"];
  output_.push_back(std::move(item));
  open_ = kind;
  if (kind == Kind::kCall) return;
  const ojson part = kind == Kind::kMessage ? output_text_part("") : reasoning_text_part("");
  event("response.content_part.added",
        {{"item_id", iid}, {"output_index", index}, {"content_index", 0}, {"part", part}});
}

// The open item is finished: its text (or arguments) done, its content part done, the item done.
void OpenAiResponsesRenderer::close(const char* status) {
  if (open_ == Kind::kNone) return;
  const size_t index = output_.size() - 1;
  ojson& item = output_.back();
  const ojson where = {{"item_id", item["id"]}, {"output_index", index}};
  auto with = [&](ojson extra) {
    ojson f = where;
    for (auto& [k, v] : extra.items()) f[k] = std::move(v);
    return f;
  };
  if (open_ == Kind::kCall) {
    item["arguments"] = text_;
    event("response.function_call_arguments.done",
          with({{"name", item["name"]}, {"arguments", text_}}));
  } else {
    const bool msg = open_ == Kind::kMessage;
    const ojson part = msg ? output_text_part(text_) : reasoning_text_part(text_);
    if (msg)
      event("response.output_text.done",
            with({{"content_index", 0}, {"text", text_}, {"logprobs", ojson::array()}}));
    else
      event("response.reasoning_text.done", with({{"content_index", 0}, {"text", text_}}));
    event("response.content_part.done", with({{"content_index", 0}, {"part", part}}));
    item["content"] = ojson::array({part});
  }
  item["status"] = status;
  event("response.output_item.done", {{"output_index", index}, {"item", item}});
  open_ = Kind::kNone;
  text_.clear();
}

void OpenAiResponsesRenderer::append(Kind kind, std::string_view s, const char* type) {
  if (s.empty()) return;
  if (open_ != kind) {
    close("completed");
    open(kind);
  }
  text_ += s;
  ojson fields = {{"item_id", output_.back()["id"]},
                  {"output_index", output_.size() - 1},
                  {"content_index", 0},
                  {"delta", s}};
  if (kind == Kind::kMessage) fields["logprobs"] = ojson::array();
  event(type, std::move(fields));
}

// The pieces of one delta, into items: reasoning, then text, then each tool call.
void OpenAiResponsesRenderer::feed(const Pieces& p) {
  append(Kind::kReasoning, p.reasoning, "response.reasoning_text.delta");
  if (!p.content.empty()) {
    if (open_ == Kind::kMessage || output_.empty()) {
      append(Kind::kMessage, p.content, "response.output_text.delta");
    } else {
      // After reasoning or a call, the line breaks before the text open no message of their own
      // (a message's text starts with its first character, as OpenAI's does).
      const size_t start = p.content.find_first_not_of("\r\n");
      if (start != std::string_view::npos)
        append(Kind::kMessage, p.content.substr(start), "response.output_text.delta");
    }
  }
  for (const auto& c : p.calls) {
    if (!c.id.empty()) {
      close("completed");
      open(Kind::kCall, &c);
    }
    if (open_ != Kind::kCall || c.arguments.empty()) continue;
    text_ += c.arguments;
    event("response.function_call_arguments.delta", {{"item_id", output_.back()["id"]},
                                                     {"output_index", output_.size() - 1},
                                                     {"delta", c.arguments}});
  }
}

// Every item closed; the final response object, stored when the request asked.
ojson OpenAiResponsesRenderer::finished(const Generation& g) {
  const bool incomplete = g.choices[0].finish == FinishReason::kLength;
  close(incomplete ? "incomplete" : "completed");
  ojson resp = object(g, incomplete ? "incomplete" : "completed");
  resp["output"] = output_;
  resp["usage"] = usage_json(g);
  if (incomplete) resp["incomplete_details"] = {{"reason", "max_output_tokens"}};
  resp["completed_at"] = unix_now();
  if (store_) store_ref_.put(g.id, StoredResponse{resp, input_items_});
  return resp;
}

void OpenAiResponsesRenderer::begin(const Generation& g, RenderSink& out) {
  out_ = &out;
  const ojson resp = object(g, "in_progress");
  event("response.created", {{"response", resp}});
  event("response.in_progress", {{"response", resp}});
}

void OpenAiResponsesRenderer::delta(const Generation&, const ChoiceDelta& d, RenderSink& out) {
  out_ = &out;
  feed({d.reasoning, d.content, d.calls});
}

void OpenAiResponsesRenderer::end(const Generation& g, RenderSink& out) {
  out_ = &out;
  const ojson resp = finished(g);
  event(resp["status"] == "incomplete" ? "response.incomplete" : "response.completed",
        {{"response", resp}});
  out.end_stream();
}

void OpenAiResponsesRenderer::full(const Generation& g, RenderSink& out) {
  out_ = nullptr;
  const ChoiceOutput& c = g.choices[0];
  if (c.parsed) {
    std::vector<ToolCallDelta> calls;
    for (size_t i = 0; i < c.parsed->calls().size(); ++i) {
      const ToolCall& t = c.parsed->calls()[i];
      calls.push_back({i, t.id, t.name, t.arguments});
    }
    feed({c.parsed->reasoning(), c.parsed->content(), calls});
  } else {
    feed({{}, c.text, {}});
  }
  out.send_json(200, dump_json(finished(g)));
}

void OpenAiResponsesRenderer::fail(const Generation& g, const ApiError& e, bool streaming,
                                   RenderSink& out) {
  if (!streaming) return out.send_error(e);
  out_ = &out;
  close("incomplete");
  const ojson code = e.code() ? ojson(*e.code()) : ojson(e.type());
  event("error", {{"code", code},
                  {"message", e.what()},
                  {"param", e.param() ? ojson(*e.param()) : ojson(nullptr)}});
  ojson resp = object(g, "failed");
  resp["output"] = output_;
  resp["usage"] = usage_json(g);
  resp["error"] = {{"code", code}, {"message", e.what()}};
  event("response.failed", {{"response", resp}});
  out.end_stream();
}

}  // namespace inferd::server
