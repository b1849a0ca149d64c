// ListOps (Nangia and Bowman 2018; Long Range Arena, Tay et al. 2021): nested prefix expressions over digits 0-9
// with MAX, MIN, MED (median, rounded down) and SM (sum modulo 10), e.g. [MAX 2 9 [MIN 4 7 ] 0 ] = 9. Tokens:
// digits 0-9, the four "[OP" openers 10-13, "]" 14, pad 15, "=" 16. An expression (at depth d < max-depth an
// argument opens a sub-expression with probability `branch`; each operator takes 2..max-args arguments) is
// drawn until its length in tokens lies in [min-len, max-len] and fits in front of "=", then left-padded.
// LRA keeps only expressions of 500 < length < 2000 (its lengths count the same tokens); without the band most
// expressions are a few tokens long and a short local window sees all of them.
#include <algorithm>

#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

struct ListOpsOptions : Options {
  int max_depth = 10;
  int max_args = 10;
  float branch = 0.25f;
  int min_len = 0;
  int max_len = 0;
  void Visit(OptionVisitor& v) override {
    v.Int("max-depth", max_depth, "deepest nesting of operators (LRA: 10)", 1, 64);
    v.Int("max-args", max_args, "most arguments of one operator (LRA: 10)", 2, 64);
    v.Float("branch", branch, "probability that an argument is a sub-expression", 0.0f, 0.9f);
    v.Int("min-len", min_len, "shortest expression kept, in tokens (LRA: 501)", 0, 1 << 20);
    v.Int("max-len", max_len, "longest expression kept, in tokens; 0 = the sequence length - 1 (LRA: 1999)", 0,
          1 << 20);
  }
};

constexpr int kClose = 14, kPad = 15, kEquals = 16;

class ListOpsTask : public Task {
 public:
  explicit ListOpsTask(const ListOpsOptions& o) : o_(o) {
    if (o.max_len > 0 && o.max_len < std::max(o.min_len, 4))
      throw UsageError("--listops.max-len " + std::to_string(o.max_len) + " must be at least --listops.min-len " +
                       std::to_string(o.min_len) + " and 4 (the shortest expression)");
    // The band must hold expressions the generator draws often enough for rejection sampling.
    if (o.min_len > 0) {
      Rng probe(0x11570b5);
      int hits = 0;
      for (int i = 0; i < 20000 && hits == 0; ++i) {
        std::vector<int32_t> expr;
        Expression(0, expr, probe);
        hits += Accepts(int(expr.size()), o.max_len > 0 ? o.max_len : 1 << 20);
      }
      if (hits == 0)
        throw UsageError("--listops.min-len " + std::to_string(o.min_len) +
                         ": no expression of 20000 drawn with --listops.max-depth " + std::to_string(o.max_depth) +
                         ", max-args " + std::to_string(o.max_args) + ", branch " + std::to_string(o.branch) +
                         " is that long; lower it or raise those");
    }
  }
  std::string Name() const override { return "listops"; }
  int Vocab() const override { return 17; }
  void CheckLength(int T) const override {
    const int shortest = std::max(o_.min_len, 4) + 1;  // an expression, then "="
    if (T < std::max(shortest, 6))
      throw UsageError("task 'listops' needs sequence length >= " + std::to_string(std::max(shortest, 6)) +
                       " (the shortest expression kept, --listops.min-len " + std::to_string(o_.min_len) +
                       ", and '='), got " + std::to_string(T));
  }
  Batch Sample(int B, int T, Rng& rng, Split) const override {
    CheckLength(T);
    Batch batch(B, T);
    for (int b = 0; b < B; ++b) {
      std::vector<int32_t> expr;
      int value = 0;
      const int longest = o_.max_len > 0 ? std::min(o_.max_len, T - 1) : T - 1;
      do {  // rejection: redraw until the expression's length is in the band and fits in front of "="
        expr.clear();
        value = Expression(0, expr, rng);
      } while (!Accepts(int(expr.size()), longest));
      int32_t* tok = batch.tokens.data() + int64_t(b) * T;
      std::fill(tok, tok + T, kPad);
      std::copy(expr.begin(), expr.end(), tok + (T - 1 - expr.size()));
      tok[T - 1] = kEquals;
      batch.targets[int64_t(b) * T + T - 1] = value;
      batch.mask[int64_t(b) * T + T - 1] = 1.0f;
    }
    return batch;
  }

 private:
  bool Accepts(int length, int longest) const { return length >= o_.min_len && length <= longest; }
  // Appends one operator expression at `depth` and returns its value.
  int Expression(int depth, std::vector<int32_t>& out, Rng& rng) const {
    const int op = int(rng.Int(0, 4));
    out.push_back(10 + op);
    const int n = int(rng.Int(2, o_.max_args + 1));
    std::vector<int> args;
    for (int i = 0; i < n; ++i) {
      if (depth + 1 < o_.max_depth && rng.Uniform() < o_.branch) {
        args.push_back(Expression(depth + 1, out, rng));
      } else {
        args.push_back(int(rng.Int(0, 10)));
        out.push_back(args.back());
      }
    }
    out.push_back(kClose);
    std::sort(args.begin(), args.end());
    int sum = 0;
    for (int a : args) sum += a;
    switch (op) {
      case 0:
        return args.back();
      case 1:
        return args.front();
      case 2:
        return (args[(n - 1) / 2] + args[n / 2]) / 2;
      default:
        return sum % 10;
    }
  }
  ListOpsOptions o_;
};

}  // namespace

TaskInfo ListOpsTaskInfo() {
  return TaskEntry<ListOpsTask, ListOpsOptions>("listops",
                                                "ListOps (LRA): evaluate a nested MAX/MIN/MED/SUM_MOD expression");
}

}  // namespace mixlab
