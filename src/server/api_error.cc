// ApiError's body: OpenAI's error JSON (see api_error.h).
#include "server/api_error.h"

#include <nlohmann/json.hpp>

namespace inferd::server {

std::string ApiError::body() const {
  using ojson = nlohmann::ordered_json;
  ojson e = ojson::object();
  e["message"] = what();
  e["type"] = type_;
  e["param"] = param_ ? ojson(*param_) : ojson(nullptr);
  e["code"] = code_ ? ojson(*code_) : ojson(nullptr);
  ojson j;
  j["error"] = std::move(e);
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace inferd::server
