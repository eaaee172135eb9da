// ResponsesRenderer: the response object and the Responses streaming events (see
// responses_renderer.h).
#include "server/responses_renderer.h"

#include <fmt/format.h>

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

}  // namespace

ResponsesRenderer::ResponsesRenderer(std::string id, const ResponsesRequest& req,
                                     const Generator& gen, ResponsesStore& store)
    : id_(std::move(id)),
      echo_(req.echo),
      model_(req.chat.model),
      store_(req.store),
      input_items_(req.input_items),
      gen_(gen),
      store_ref_(store),
      parser_(req.chat.output),
      created_at_(unix_now()) {}

ojson ResponsesRenderer::object(const char* status, const ojson& usage) const {
  ojson j;
  j["id"] = id_;
  j["object"] = "response";
  j["created_at"] = created_at_;
  j["status"] = status;
  j["background"] = false;
  j["error"] = nullptr;
  j["incomplete_details"] = nullptr;
  j["model"] = model_;
  j["output"] = ojson::array();
  for (auto& [k, v] : echo_.items()) j[k] = v;
  j["usage"] = usage;
  return j;
}

ojson ResponsesRenderer::usage_json(const ResponsesUsage& u) const {
  // Reasoning tokens: the reasoning text encoded again (the parser splits text, not tokens).
  int64_t reasoning = 0;
  for (const auto& it : output_)
    if (it["type"] == "reasoning")
      for (const auto& c : it["content"])
        reasoning += int64_t(gen_.encode(c["text"].get<std::string>(), false).size());
  return {{"input_tokens", u.input_tokens},
          {"input_tokens_details", {{"cached_tokens", u.cached_tokens}}},
          {"output_tokens", u.output_tokens},
          {"output_tokens_details", {{"reasoning_tokens", std::min(reasoning, u.output_tokens)}}},
          {"total_tokens", u.input_tokens + u.output_tokens}};
}

void ResponsesRenderer::event(const char* type, ojson fields) {
  if (!streaming_) return;
  ojson j;
  j["type"] = type;
  j["sequence_number"] = seq_++;
  for (auto& [k, v] : fields.items()) j[k] = std::move(v);
  out_ += fmt::format("event: {}\ndata: {}\n\n", type, dump_json(j));
}

std::string ResponsesRenderer::take() {
  std::string s;
  s.swap(out_);
  return s;
}

// A new output item: added (in progress), with its content part for text.
void ResponsesRenderer::open(Kind kind, const ToolCallDelta* call) {
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
  const ojson part = kind == Kind::kMessage ? output_text_part("")
                                            : ojson{{"type", "reasoning_text"}, {"text", ""}};
  event("response.content_part.added",
        {{"item_id", iid}, {"output_index", index}, {"content_index", 0}, {"part", part}});
}

// The open item is finished: its text (or arguments) done, its content part done, the item done.
void ResponsesRenderer::close(const char* status) {
  if (open_ == Kind::kNone) return;
  const size_t index = output_.size() - 1;
  ojson& item = output_.back();
  const std::string iid = item["id"];
  const ojson where = {{"item_id", iid}, {"output_index", index}};
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
    const ojson part =
        msg ? output_text_part(text_) : ojson{{"type", "reasoning_text"}, {"text", text_}};
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

// The parsed pieces of one delta, into items: reasoning, then text, then each tool call.
void ResponsesRenderer::feed(const ChatDelta& d) {
  auto append = [&](Kind kind, const std::string& s, const char* type) {
    if (s.empty()) return;
    if (open_ != kind) {
      close("completed");
      open(kind);
    }
    text_ += s;
    event(type, {{"item_id", output_.back()["id"]},
                 {"output_index", output_.size() - 1},
                 {"content_index", 0},
                 {"delta", s}});
  };
  append(Kind::kReasoning, d.reasoning, "response.reasoning_text.delta");
  if (!d.content.empty()) {
    if (open_ == Kind::kMessage || output_.empty()) {
      append(Kind::kMessage, d.content, "response.output_text.delta");
    } else {
      // After reasoning or a call, the line breaks before the text open no message of their own
      // (a message's text starts with its first character, as OpenAI's does).
      const size_t start = d.content.find_first_not_of("\r\n");
      if (start != std::string::npos)
        append(Kind::kMessage, d.content.substr(start), "response.output_text.delta");
    }
  }
  for (const auto& c : d.calls) {
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

std::string ResponsesRenderer::begin() {
  streaming_ = true;
  const ojson resp = object("in_progress", nullptr);
  event("response.created", {{"response", resp}});
  event("response.in_progress", {{"response", resp}});
  return take();
}

std::string ResponsesRenderer::text(std::string_view delta) {
  feed(parser_.feed(delta));
  return take();
}

std::string ResponsesRenderer::done(FinishReason finish, const ResponsesUsage& usage) {
  feed(parser_.finish());
  const bool incomplete = finish == FinishReason::kLength;
  close(incomplete ? "incomplete" : "completed");
  ojson resp = object(incomplete ? "incomplete" : "completed", nullptr);
  resp["output"] = output_;
  resp["usage"] = usage_json(usage);
  if (incomplete) resp["incomplete_details"] = {{"reason", "max_output_tokens"}};
  resp["completed_at"] = unix_now();
  if (store_) {
    StoredResponse s;
    s.response = resp;
    s.input_items = input_items_;
    store_ref_.put(id_, std::move(s));
  }
  event(incomplete ? "response.incomplete" : "response.completed", {{"response", resp}});
  return dump_json(resp);
}

std::string ResponsesRenderer::finish(FinishReason finish, const ResponsesUsage& usage) {
  done(finish, usage);
  return take();
}

std::string ResponsesRenderer::fail(const ApiError& e, const ResponsesUsage& usage) {
  close("incomplete");
  const ojson code = e.code() ? ojson(*e.code()) : ojson(e.type());
  event("error", {{"code", code},
                  {"message", e.what()},
                  {"param", e.param() ? ojson(*e.param()) : ojson(nullptr)}});
  ojson resp = object("failed", nullptr);
  resp["output"] = output_;
  resp["usage"] = usage_json(usage);
  resp["error"] = {{"code", code}, {"message", e.what()}};
  event("response.failed", {{"response", resp}});
  return take();
}

std::string ResponsesRenderer::full(const std::string& text, FinishReason finish,
                                    const ResponsesUsage& usage) {
  feed(parser_.feed(text));
  return done(finish, usage);
}

}  // namespace inferd::server
