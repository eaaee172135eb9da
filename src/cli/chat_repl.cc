// The terminal side of `inferd chat`: input (multi-line), the /commands, streaming the answer,
// Ctrl-C, tokens/s.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/chat.h"
#include "core/error.h"
#include "media/image_source.h"

namespace inferd::cli {

namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) {
  g_interrupted.store(true);
}

// SIGINT sets g_interrupted instead of ending the process; without SA_RESTART, so a blocking
// read() returns EINTR.
class SigintGuard {
 public:
  SigintGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintGuard() { sigaction(SIGINT, &old_, nullptr); }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  struct sigaction old_ {};
};

// Reads lines from fd 0 with read(2), so that Ctrl-C (EINTR) can discard the line being typed.
class LineReader {
 public:
  enum class Status { kLine, kEof, kInterrupted };

  Status read_line(std::string& line) {
    line.clear();
    for (;;) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return Status::kLine;
      }
      char tmp[4096];
      const ssize_t n = ::read(STDIN_FILENO, tmp, sizeof(tmp));
      if (n < 0 && errno == EINTR) {
        if (g_interrupted.exchange(false)) {
          buf_.clear();
          return Status::kInterrupted;
        }
        continue;
      }
      if (n <= 0) {
        if (buf_.empty()) return Status::kEof;
        line = std::move(buf_);  // a last line without a newline
        buf_.clear();
        return Status::kLine;
      }
      buf_.append(tmp, size_t(n));
    }
  }

  // True when another complete line is already waiting: the rest of a paste.
  bool more_waiting() const {
    if (buf_.find('\n') != std::string::npos) return true;
    pollfd p{STDIN_FILENO, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
  }

 private:
  std::string buf_;
};

bool starts_with_word(const std::string& s, std::string_view cmd, std::string* rest) {
  if (!s.starts_with(cmd)) return false;
  if (s.size() > cmd.size() && s[cmd.size()] != ' ' && s[cmd.size()] != '\t') return false;
  if (rest) {
    size_t i = cmd.size();
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    *rest = s.substr(i);
  }
  return true;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
  return s.substr(i);
}

// A conversation file: {"messages": [...], "params": {...}} (as /save writes it) or a bare array
// of messages. Throws Error naming the file and what is wrong.
void load_conversation(const std::string& path, ojson& messages, ChatParams& params) {
  std::ifstream in(path);
  if (!in) fail("/load: cannot open '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  ojson j = ojson::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) fail("/load: '{}' is not JSON", path);
  ojson msgs =
      j.is_array() ? j : (j.is_object() && j.contains("messages") ? j["messages"] : ojson());
  if (!msgs.is_array())
    fail("/load: '{}': expected {{\"messages\": [...]}} or an array of messages", path);
  for (size_t i = 0; i < msgs.size(); ++i) {
    const ojson& m = msgs[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      fail("/load: '{}': messages[{}] is not {{\"role\": string, \"content\": string}}", path, i);
    const std::string role = m["role"];
    if (role != "system" && role != "user" && role != "assistant")
      fail("/load: '{}': messages[{}] has role '{}': expected system, user or assistant", path, i,
           role);
  }
  ChatParams p;
  if (j.is_object() && j.contains("params")) {
    if (!j["params"].is_object()) fail("/load: '{}': \"params\" must be an object", path);
    for (const auto& [k, v] : j["params"].items())
      p.set(k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
    params = std::move(p);
  }
  messages = std::move(msgs);
}

class Repl {
 public:
  Repl(ChatBackend& backend, ojson messages, ChatParams params, std::vector<std::string> images)
      : backend_(backend),
        messages_(std::move(messages)),
        params_(std::move(params)),
        images_(std::move(images)),
        tty_in_(isatty(STDIN_FILENO) != 0),
        tty_out_(isatty(STDOUT_FILENO) != 0) {}

  int run() {
    SigintGuard guard;
    out(fmt::format("inferd chat: {}\n", backend_.describe()));
    out("Type a message and press Enter. End a line with \\ or open a \"\"\" block for several "
        "lines; /help lists the commands; Ctrl-C stops an answer, Ctrl-D or /exit quits.\n");
    for (;;) {
      std::string input;
      const auto st = read_input(input);
      if (st == LineReader::Status::kEof) {
        out("\n");
        return 0;
      }
      if (st == LineReader::Status::kInterrupted) {
        out("^C (Ctrl-D or /exit quits)\n");
        continue;
      }
      const std::string t = trim(input);
      if (t.empty()) continue;
      if (t[0] == '/' && t.find('\n') == std::string::npos) {
        if (!command(t)) return 0;
        continue;
      }
      chat(t);
    }
  }

 private:
  void out(std::string_view s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  }
  std::string dim(const std::string& s) const { return tty_out_ ? "\033[2m" + s + "\033[0m" : s; }

  // One message: a line, lines joined by a trailing '\', a """ block, or a paste of several
  // lines (lines that arrive together on a terminal).
  LineReader::Status read_input(std::string& text) {
    out(">>> ");
    std::string line;
    auto st = reader_.read_line(line);
    if (st != LineReader::Status::kLine) return st;
    if (trim(line).starts_with("\"\"\"")) {
      std::string first = trim(line).substr(3);
      if (first.size() >= 3 && first.ends_with("\"\"\"")) {
        text = first.substr(0, first.size() - 3);
        return st;
      }
      text = first;
      for (bool any = !first.empty();;) {
        out("... ");
        st = reader_.read_line(line);
        if (st != LineReader::Status::kLine)
          return st == LineReader::Status::kEof && any ? LineReader::Status::kLine : st;
        const std::string tl = trim(line);
        if (tl.ends_with("\"\"\"")) {
          const std::string last = line.substr(0, line.rfind("\"\"\""));
          if (any) text += '\n';
          text += last;
          return LineReader::Status::kLine;
        }
        if (any) text += '\n';
        text += line;
        any = true;
      }
    }
    text = line;
    for (;;) {
      const bool continued = !text.empty() && text.back() == '\\';
      if (continued) {
        text.pop_back();
      } else if (!(tty_in_ && reader_.more_waiting())) {
        return st;
      }
      if (continued) out("... ");
      st = reader_.read_line(line);
      if (st == LineReader::Status::kEof) return LineReader::Status::kLine;
      if (st != LineReader::Status::kLine) return st;
      text += '\n';
      text += line;
    }
  }

  // Returns false to end the session.
  bool command(const std::string& t) {
    std::string rest;
    try {
      if (starts_with_word(t, "/exit", nullptr) || starts_with_word(t, "/quit", nullptr) ||
          starts_with_word(t, "/bye", nullptr))
        return false;
      if (starts_with_word(t, "/help", nullptr) || starts_with_word(t, "/?", nullptr)) {
        out("/clear               forget the conversation (the system prompt stays)\n"
            "/system TEXT         set the system prompt (/system alone shows it)\n"
            "/save FILE           write the conversation and settings as JSON\n"
            "/load FILE           read a conversation written by /save\n"
            "/image FILE          attach an image (JPEG, PNG, WebP) to the next message\n"
            "/params [k=v ...]    show or set sampling settings: " +
            ChatParams::known() +
            "\n"
            "/exit                quit (or Ctrl-D)\n"
            "Several lines: end a line with \\, or put the text between two \"\"\" lines.\n");
        return true;
      }
      if (starts_with_word(t, "/clear", nullptr)) {
        ojson kept = ojson::array();
        for (auto& m : messages_)
          if (m["role"] == "system") kept.push_back(m);
        messages_ = std::move(kept);
        out(dim("conversation cleared") + "\n");
        return true;
      }
      if (starts_with_word(t, "/system", &rest)) {
        if (rest.empty()) {
          std::string cur = "(none)";
          for (auto& m : messages_)
            if (m["role"] == "system") cur = m["content"].get<std::string>();
          out("system prompt: " + cur + "\n");
          return true;
        }
        if (!messages_.empty() && messages_[0]["role"] == "system") {
          messages_[0]["content"] = rest;
        } else {
          messages_.insert(messages_.begin(), ojson{{"role", "system"}, {"content", rest}});
        }
        out(dim("system prompt set") + "\n");
        return true;
      }
      if (starts_with_word(t, "/save", &rest)) {
        if (rest.empty()) fail("/save needs a file name: /save FILE");
        ojson j;
        j["messages"] = messages_;
        j["params"] = params_.fields;
        std::ofstream f(rest);
        if (!f) fail("/save: cannot write '{}'", rest);
        f << j.dump(2, ' ', false, ojson::error_handler_t::replace) << '\n';
        if (!f.flush()) fail("/save: writing '{}' failed", rest);
        out(dim(fmt::format("saved {} messages to {}", messages_.size(), rest)) + "\n");
        return true;
      }
      if (starts_with_word(t, "/load", &rest)) {
        if (rest.empty()) fail("/load needs a file name: /load FILE");
        load_conversation(rest, messages_, params_);
        out(dim(fmt::format("loaded {} messages from {}", messages_.size(), rest)) + "\n");
        return true;
      }
      if (starts_with_word(t, "/image", &rest)) {
        if (rest.empty()) fail("/image needs a file name: /image FILE");
        if (!backend_.takes_images())
          fail("/image: this model takes no images (a vision-language model on the CPU does)");
        images_.push_back(media::file_data_url(rest));
        out(dim(fmt::format("{} will be sent with the next message", rest)) + "\n");
        return true;
      }
      if (starts_with_word(t, "/params", &rest)) {
        ChatParams next = params_;
        std::istringstream words(rest);
        std::string w;
        while (words >> w) next.set(w);
        params_ = std::move(next);
        out("params: " + params_.describe() + "\n");
        return true;
      }
      const std::string name = t.substr(0, t.find(' '));
      out(fmt::format("unknown command '{}': /help lists the commands\n", name));
    } catch (const std::exception& e) {
      out(fmt::format("error: {}\n", e.what()));
    }
    return true;
  }

  void chat(const std::string& text) {
    if (images_.empty()) {
      messages_.push_back({{"role", "user"}, {"content", text}});
    } else {  // OpenAI's content parts: the text, then one image_url part an image
      ojson parts = ojson::array({{{"type", "text"}, {"text", text}}});
      for (const std::string& url : images_)
        parts.push_back({{"type", "image_url"}, {"image_url", {{"url", url}}}});
      images_.clear();
      messages_.push_back({{"role", "user"}, {"content", std::move(parts)}});
    }
    g_interrupted.store(false);
    bool wrote = false;
    bool ends_in_newline = false;
    ChatAnswer a;
    try {
      a = backend_.answer(
          messages_, params_,
          [&](std::string_view piece) {
            if (piece.empty()) return;
            out(piece);
            wrote = true;
            ends_in_newline = piece.back() == '\n';
          },
          g_interrupted);
    } catch (const std::exception& e) {
      messages_.erase(messages_.end() - 1);
      if (wrote && !ends_in_newline) out("\n");
      out(fmt::format("error: {}\n", e.what()));
      g_interrupted.store(false);
      return;
    }
    g_interrupted.store(false);
    if (wrote && !ends_in_newline) out("\n");
    // Kept even when empty or cut short: it is what the model said, and templates expect turns
    // to alternate.
    messages_.push_back({{"role", "assistant"}, {"content", a.text}});
    const double decode_s = a.total_s - a.first_token_s;
    const double rate = a.completion_tokens > 1 && decode_s > 0
                            ? double(a.completion_tokens - 1) / decode_s
                            : (a.total_s > 0 ? double(a.completion_tokens) / a.total_s : 0.0);
    std::string stats = fmt::format("[{}{} token{}, {:.1f} tok/s, first token after {:.2f} s{}]",
                                    a.stopped ? "stopped: " : "", a.completion_tokens,
                                    a.completion_tokens == 1 ? "" : "s", rate, a.first_token_s,
                                    a.finish_reason == "length" ? ", stopped at max_tokens" : "");
    out(dim(stats) + "\n");
  }

  ChatBackend& backend_;
  ojson messages_;
  ChatParams params_;
  std::vector<std::string> images_;  // data: URLs for the next message (--image, /image)
  LineReader reader_;
  bool tty_in_;
  bool tty_out_;
};

}  // namespace

int run_chat_repl(ChatBackend& backend, ojson initial_messages, ChatParams params,
                  std::vector<std::string> images) {
  if (!initial_messages.is_array()) initial_messages = ojson::array();
  Repl repl(backend, std::move(initial_messages), std::move(params), std::move(images));
  return repl.run();
}

}  // namespace inferd::cli
