#include "core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "core/error.h"

namespace inferd {

void init_logging(std::string_view level) {
  static bool once = [] {
    auto logger = spdlog::stderr_color_mt("inferd");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    return true;
  }();
  (void)once;
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    fail("unknown log level '{}': expected trace, debug, info, warn, error or off", level);
  }
  spdlog::set_level(lvl);
}

}  // namespace inferd
