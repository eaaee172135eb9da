// Logging through spdlog. One process-wide logger writing to stderr.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace inferd {

// level: trace, debug, info, warn, error, off. Throws Error on an unknown level.
void init_logging(std::string_view level);

}  // namespace inferd

#define LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
