// The chat page `inferd serve` answers at / (src/server/ui/chat.html, compiled in at build time by
// src/server/ui/embed.cmake): one self-contained HTML file that talks to the OpenAI routes.
#pragma once

#include <string_view>

namespace inferd::server {

std::string_view chat_page();

}  // namespace inferd::server
