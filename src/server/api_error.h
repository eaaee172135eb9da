// An error answered to an HTTP client in OpenAI's shape:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace inferd::server {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::optional<std::string> param = std::nullopt,
           std::optional<std::string> code = std::nullopt)
      : std::runtime_error(message),
        status_(status),
        type_(std::move(type)),
        param_(std::move(param)),
        code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::optional<std::string>& param() const { return param_; }
  const std::optional<std::string>& code() const { return code_; }
  // Seconds for a Retry-After header (429, 503); 0: none.
  int retry_after_s() const { return retry_after_s_; }
  ApiError& with_retry_after(int s) {
    retry_after_s_ = s;
    return *this;
  }

  // The JSON body.
  std::string body() const;

 private:
  int status_;
  std::string type_;
  std::optional<std::string> param_;
  std::optional<std::string> code_;
  int retry_after_s_ = 0;
};

// 400 invalid_request_error naming the parameter.
inline ApiError bad_param(const std::string& param, std::string message) {
  return ApiError(400, std::move(message), "invalid_request_error", param);
}

}  // namespace inferd::server
