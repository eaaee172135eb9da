#include "router/prompt_key.h"

namespace inferd::router {

namespace {

void append_content(std::string& out, const nlohmann::json& content) {
  if (content.is_string()) {
    out += content.get_ref<const std::string&>();
  } else if (content.is_array()) {
    for (const auto& part : content) {
      if (part.is_object() && part.contains("text") && part["text"].is_string())
        out += part["text"].get_ref<const std::string&>();
    }
  } else if (!content.is_null()) {
    out += content.dump();
  }
}

}  // namespace

std::string prompt_key(const nlohmann::json& body, bool chat, size_t max_chars) {
  std::string out;
  if (!body.is_object()) return out;
  if (chat) {
    auto it = body.find("messages");
    if (it == body.end() || !it->is_array()) return out;
    for (const auto& m : *it) {
      if (out.size() >= max_chars) break;
      if (!m.is_object()) continue;
      if (auto r = m.find("role"); r != m.end() && r->is_string())
        out += r->get_ref<const std::string&>();
      out += '\x1f';
      if (auto c = m.find("content"); c != m.end()) append_content(out, *c);
      out += '\x1e';
    }
  } else {
    auto it = body.find("prompt");
    if (it == body.end()) return out;
    const nlohmann::json* p = &*it;
    // A batch of prompts (strings or token lists): route by the first.
    if (p->is_array() && !p->empty() && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
    if (p->is_string()) {
      out = p->get<std::string>();
    } else if (p->is_array()) {
      for (const auto& t : *p) {
        if (out.size() >= max_chars) break;
        out += t.dump();
        out += ',';
      }
    }
  }
  if (out.size() > max_chars) out.resize(max_chars);
  return out;
}

}  // namespace inferd::router
