// Character-level language modelling on real text: any file (or a directory of files, concatenated in name
// order, skipping fortune's .dat/.u8 indexes) read as bytes, vocabulary 256. The text is split by position:
// training [0, 1 - valid - test), validation, then test; each batch is random windows of T + 1 bytes from its
// split, every next byte scored. Loss is in nats per byte; bits per byte = loss / ln 2 (reported as such). The
// default corpus is the plain English of Debian's fortunes package.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"
#include "models/file_io.h"

namespace mixlab {
namespace {

struct CharLmOptions : Options {
  std::string data = "/usr/share/games/fortunes";
  float valid_frac = 0.05f;
  float test_frac = 0.05f;
  void Visit(OptionVisitor& v) override {
    v.String("data", data, "UTF-8 text file, or a directory whose files are concatenated (default: Debian's fortunes)");
    v.Float("valid-frac", valid_frac, "fraction of the text held out for validation", 0.001f, 0.45f);
    v.Float("test-frac", test_frac, "fraction of the text held out for test", 0.001f, 0.45f);
  }
};

constexpr int64_t kMaxCorpusBytes = int64_t(1) << 30;

std::string ReadCorpus(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw UsageError("task 'char-lm': corpus '" + path +
                     "' not found; pass --char-lm.data FILE or install Debian's fortunes package");
  std::vector<fs::path> files;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file() && e.path().extension() != ".dat" && e.path().extension() != ".u8")
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  std::string text;
  for (const auto& f : files) {  // regular files only (/dev/zero never ends), at most kMaxCorpusBytes in all
    text += ReadTextFile(f.string(), "task 'char-lm'", kMaxCorpusBytes - int64_t(text.size()));
  }
  return text;
}

class CharLmTask : public Task {
 public:
  explicit CharLmTask(const CharLmOptions& o) : text_(ReadCorpus(o.data)) {
    const int64_t n = int64_t(text_.size());
    valid_begin_ = std::llround(double(n) * (1.0 - double(o.valid_frac) - double(o.test_frac)));
    test_begin_ = std::llround(double(n) * (1.0 - double(o.test_frac)));
    if (n < 100)
      throw UsageError("task 'char-lm': corpus '" + o.data + "' holds " + std::to_string(n) +
                       " bytes; need at least 100");
  }
  std::string Name() const override { return "char-lm"; }
  int Vocab() const override { return 256; }
  std::string Role(const Batch& batch, int b, int t) const override {  // byte class
    const int c = batch.tokens[size_t(b) * batch.T + t];
    if (c >= 'a' && c <= 'z') return "lower";
    if (c >= 'A' && c <= 'Z') return "upper";
    if (c >= '0' && c <= '9') return "digit";
    if (c == ' ' || c == '\n' || c == '\t') return "space";
    if (c >= 33 && c < 127) return "punctuation";
    return "other";
  }
  void CheckLength(int T) const override {
    const int64_t smallest = std::min({valid_begin_, test_begin_ - valid_begin_, int64_t(text_.size()) - test_begin_});
    if (T < 1 || T + 1 > smallest)
      throw UsageError("task 'char-lm': sequence length " + std::to_string(T) +
                       " needs windows of T + 1 bytes; the smallest split holds " + std::to_string(smallest) +
                       " (raise --char-lm.valid-frac / --char-lm.test-frac or use a larger corpus)");
  }
  Batch Sample(int B, int T, Rng& rng, Split split) const override {
    CheckLength(T);
    Batch batch(B, T);
    const int64_t begin = split == Split::kTrain ? 0 : split == Split::kValidation ? valid_begin_ : test_begin_;
    const int64_t end = split == Split::kTrain        ? valid_begin_
                        : split == Split::kValidation ? test_begin_
                                                      : int64_t(text_.size());
    for (int b = 0; b < B; ++b) {
      const int64_t start = rng.Int(begin, end - T);
      for (int t = 0; t < T; ++t) {
        const size_t i = size_t(b) * T + t;
        batch.tokens[i] = uint8_t(text_[start + t]);
        batch.targets[i] = uint8_t(text_[start + t + 1]);
        batch.mask[i] = 1.0f;
      }
    }
    return batch;
  }

 private:
  std::string text_;
  int64_t valid_begin_ = 0, test_begin_ = 0;
};

}  // namespace

TaskInfo CharLmTaskInfo() {
  return TaskEntry<CharLmTask, CharLmOptions>(
      "char-lm", "character-level language modelling on a text file (bytes; bits per byte)");
}

}  // namespace mixlab
