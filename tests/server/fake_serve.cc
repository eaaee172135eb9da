// Development tool: the server over the fake generator, on 127.0.0.1:PORT, until stdin closes.
// `inferd_fake_serve PORT embed` serves the fake's embeddings (--task embed) instead.
#include <cstdio>
#include <iostream>
#include <string>

#include "server/fake_generator.h"
#include "server/server.h"

int main(int argc, char** argv) {
  using namespace inferd::server;
  ServerConfig cfg;
  cfg.http.host = "127.0.0.1";
  cfg.http.port = uint16_t(argc > 1 ? std::stoi(argv[1]) : 0);
  cfg.served_model_names = {"tiny"};
  testing::FakeConfig fc;
  if (argc > 2 && std::string(argv[2]) == "embed") fc.task = inferd::ModelTask::kEmbed;
  Server s(cfg, std::make_shared<testing::FakeGenerator>(fc));
  s.start();
  s.set_ready(true);
  std::printf("port %d\n", s.port());
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  s.drain_and_stop();
}
