// Starting a Server for the server tests: on 127.0.0.1, a free port, two io threads, ready.
#pragma once

#include <cstdint>
#include <memory>

#include "server/server.h"

namespace inferd::server::testing {

// Makes `server` from `cfg` (its HTTP settings replaced) over `gen`, starts it, marks it ready
// and returns its port.
inline uint16_t start_test_server(ServerConfig cfg, std::shared_ptr<Generator> gen,
                                  std::unique_ptr<Server>& server) {
  cfg.http.host = "127.0.0.1";
  cfg.http.port = 0;
  cfg.http.io_threads = 2;
  server = std::make_unique<Server>(std::move(cfg), std::move(gen));
  server->start();
  server->set_ready(true);
  return server->port();
}

}  // namespace inferd::server::testing
