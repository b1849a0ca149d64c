// Files that survive crashes, full disks and hostile paths. Every write is checked through close, a file is
// replaced atomically (written to a private temporary, fsynced, renamed over the old one, directory fsynced) so a
// reader sees the old content or the new one, never a torn or empty file; a run directory is locked by its writer.
// Failures throw UsageError with one line naming the file and the system's reason (the CLI exits 2).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mixers/ops/usage_error.h"

namespace mixlab {

// Reads a whole regular file of at most max_bytes; refuses directories, devices and pipes (/dev/zero never ends).
std::string ReadTextFile(const std::string& path, const std::string& what, int64_t max_bytes);

// Replaces `path` with the concatenated parts, atomically and durably.
void WriteFileAtomic(const std::string& path, const std::vector<std::string_view>& parts);
inline void WriteFileAtomic(const std::string& path, std::string_view text) {
  WriteFileAtomic(path, std::vector<std::string_view>{text});
}

// create_directories with a one-line error ("cannot create directory 'x': Not a directory").
void CreateDirectories(const std::string& path);

// Removes a file if present; errors are ignored (used for leftovers).
void RemoveQuietly(const std::string& path);

// An append-only text file (metrics.jsonl): every line is written whole and checked.
class AppendFile {
 public:
  AppendFile(const std::string& path, bool truncate);
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;
  void WriteLine(const std::string& line);

 private:
  std::string path_;
  int fd_ = -1;
};

// An advisory lock (flock) on DIR/.lock held for the object's lifetime; the kernel releases it when the process
// exits, however it exits. A second writer is refused with the holder's process id.
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::string& dir);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace mixlab
