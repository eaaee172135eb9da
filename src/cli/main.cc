// The `inferd` binary.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"inferd: an LLM inference server (OpenAI-compatible API) for GPUs and CPUs"};
  app.require_subcommand(1);
  std::string log_level = "info";
  inferd::init_logging(log_level);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str()
      ->each([](const std::string& s) { inferd::init_logging(s); });
  app.set_version_flag("--version", "inferd 0.1.0");
  inferd::cli::register_serve(app);
  inferd::cli::register_router(app);
  inferd::cli::register_run(app);
  inferd::cli::register_chat(app);
  inferd::cli::register_tokenizer_commands(app);
  inferd::cli::register_template_command(app);
  inferd::cli::register_bench(app);
  inferd::cli::register_hub_commands(app);
  std::vector<std::string> args(argv, argv + argc);
  inferd::cli::expand_vllm_short_flags(args);
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  try {
    app.parse(int(arg_ptrs.size()), arg_ptrs.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const inferd::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const inferd::DeviceFault& e) {
    // The GPU failed (a sticky CUDA error): exit status 3, for a supervisor to restart us.
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
