// The Hugging Face cache layout, written the way huggingface_hub writes it (file_download.py):
// refs/REV holds the commit hash (no newline), snapshots/COMMIT/FILE is a relative symlink to
// ../../blobs/ETAG (one "../" more per folder level of FILE), a blob being downloaded is
// blobs/ETAG.incomplete. Internal to src/hub.
#pragma once

#include <optional>
#include <string>

namespace inferd::hub {

// <cache>/models--org--name
std::string repo_dir(const std::string& cache_dir, const std::string& repo);

// True for a 40-digit lowercase hex string (a git commit hash).
bool is_commit_hash(const std::string& s);

// The commit refs/<revision> names, or nullopt when the file is missing or malformed.
std::optional<std::string> read_ref(const std::string& repo_dir, const std::string& revision);
// Writes refs/<revision> (atomically: a temporary file renamed).
void write_ref(const std::string& repo_dir, const std::string& revision, const std::string& commit);

// Makes snapshots/<commit>/<rfilename> a relative symlink to blobs/<blob> (replacing what was
// there). rfilename may hold '/'.
void link_snapshot_file(const std::string& repo_dir, const std::string& commit,
                        const std::string& rfilename, const std::string& blob);

// True when snapshots/<commit>/<rfilename> exists and resolves to a regular file.
bool snapshot_has(const std::string& repo_dir, const std::string& commit,
                  const std::string& rfilename);

}  // namespace inferd::hub
