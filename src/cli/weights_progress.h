// Start-up progress of commands that load a model: the weight files are read once, front to back
// (up to four shards at a time, each sequentially), before the model maps them (so the model then
// finds them in the page cache), with a progress bar on a terminal (bytes and rate, on stderr) and
// plain log lines otherwise.
#pragma once

#include <string>

namespace inferd::cli {

// Reads the weight files of `model` (a directory's *.safetensors, or a single file) showing
// progress. Does nothing for --load-format dummy, when there are no weight files, or when they
// would not fit in the page cache (more than 80% of MemAvailable). Throws Error naming the file
// when one cannot be read.
void read_weights_with_progress(const std::string& model, const std::string& load_format);

// "1.21 GiB", "850.0 MiB", "12.0 KiB", "17 B".
std::string format_bytes(double bytes);

}  // namespace inferd::cli
