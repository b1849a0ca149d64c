#include "models/file_io.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

std::string Reason() { return std::strerror(errno); }

[[noreturn]] void Fail(const std::string& what, const std::string& path) {
  throw UsageError("cannot " + what + " '" + path + "': " + Reason());
}

bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = ENOSPC;
      return false;
    }
    data += w, n -= size_t(w);
  }
  return true;
}

std::string ParentDirectory(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

void SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some filesystems do not open directories
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string ReadTextFile(const std::string& path, const std::string& what, int64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw UsageError(what + ": cannot read '" + path + "': " + Reason());
  if (!S_ISREG(st.st_mode)) throw UsageError(what + ": '" + path + "' is not a regular file");
  if (st.st_size > max_bytes)
    throw UsageError(what + ": '" + path + "' holds " + std::to_string(st.st_size) + " bytes, more than the " +
                     std::to_string(max_bytes) + " allowed");
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw UsageError(what + ": cannot read '" + path + "': " + Reason());
  std::string text(size_t(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t r = ::read(fd, text.data() + got, text.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += size_t(r);
  }
  ::close(fd);
  if (got != text.size()) throw UsageError(what + ": '" + path + "' could not be read whole (changed while reading?)");
  return text;
}

void WriteFileAtomic(const std::string& path, const std::vector<std::string_view>& parts) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Fail("write", path);
  bool ok = true;
  for (const auto& part : parts) ok = ok && WriteAll(fd, part.data(), part.size());
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    if (saved) errno = saved;
    const std::string reason = Reason();
    ::unlink(tmp.c_str());
    throw UsageError("cannot write '" + path + "': " + reason + " (the previous file, if any, is kept)");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = Reason();
    ::unlink(tmp.c_str());
    throw UsageError("cannot write '" + path + "': " + reason);
  }
  SyncDirectory(ParentDirectory(path));
}

void CreateDirectories(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw UsageError("cannot create directory '" + path + "': " + ec.message());
  if (!std::filesystem::is_directory(path, ec))
    throw UsageError("cannot create directory '" + path + "': a file is in the way");
}

void RemoveQuietly(const std::string& path) { ::unlink(path.c_str()); }

AppendFile::AppendFile(const std::string& path, bool truncate) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
  if (fd_ < 0) Fail("write", path);
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::WriteLine(const std::string& line) {
  const std::string text = line + "\n";
  if (!WriteAll(fd_, text.data(), text.size())) Fail("write", path_);
}

DirectoryLock::DirectoryLock(const std::string& dir) {
  const std::string path = dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) Fail("lock", dir);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {};
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    throw UsageError("'" + dir + "' is in use by another mixlab process" +
                     (n > 0 ? " (pid " + std::string(holder, size_t(n)) + ")" : std::string()) +
                     "; wait for it to finish or choose another --out");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace mixlab
