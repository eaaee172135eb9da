// Start-up progress of commands that load a model: the weight files are read ahead once, in the
// order the loader reads them (file by file, a few chunks of a file at a time), beside the load
// (so the model finds them in the page cache as it places them, and the copy to the device runs
// while the rest is read), with a progress bar on a terminal (bytes and rate, on stderr) and plain
// log lines otherwise.
#pragma once

#include <functional>
#include <string>

namespace inferd::cli {

// Starts reading the weight files of `model` (a directory's *.safetensors, or a single file) on
// threads of their own, showing progress; returns what waits for the read to end (it throws Error
// naming the file that could not be read), for LLMOptions::before_weights. Destroying it uncalled
// stops the read. Nothing is read (an empty function is returned) for --load-format dummy, when
// there are no weight files, when they are still downloading, or when they would not fit in the
// page cache (more than 80% of MemAvailable). Throws Error naming the file when one cannot be
// opened.
std::function<void()> read_weights_with_progress(const std::string& model,
                                                 const std::string& load_format);

// "1.21 GiB", "850.0 MiB", "12.0 KiB", "17 B".
std::string format_bytes(double bytes);

}  // namespace inferd::cli
