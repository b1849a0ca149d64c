// ListOps (Nangia and Bowman 2018; Long Range Arena, Tay et al. 2021): nested prefix expressions over digits 0-9
// with MAX, MIN, MED (median, rounded down) and SM (sum modulo 10), e.g. [MAX 2 9 [MIN 4 7 ] 0 ] = 9. Tokens:
// digits 0-9, the four "[OP" openers 10-13, "]" 14, pad 15, "=" 16. An expression (at depth d < max-depth an
// argument opens a sub-expression with probability `branch`; each operator takes 2..max-args arguments) is
// drawn until it fits the sequence, left-padded, followed by "="; the answer digit is the target at "=".
#include <algorithm>

#include "experiments/task.h"
#include "mixers/tensor.h"

namespace mixlab {
namespace {

struct ListOpsOptions : Options {
  int max_depth = 10;
  int max_args = 10;
  float branch = 0.25f;
  void Visit(OptionVisitor& v) override {
    v.Int("max-depth", max_depth, "deepest nesting of operators (LRA: 10)", 1, 64);
    v.Int("max-args", max_args, "most arguments of one operator (LRA: 10)", 2, 64);
    v.Float("branch", branch, "probability that an argument is a sub-expression", 0.0f, 0.9f);
  }
};

constexpr int kClose = 14, kPad = 15, kEquals = 16;

class ListOpsTask : public Task {
 public:
  explicit ListOpsTask(const ListOpsOptions& o) : o_(o) {}
  std::string Name() const override { return "listops"; }
  int Vocab() const override { return 17; }
  void CheckLength(int T) const override {
    if (T < 6) throw UsageError("task 'listops' needs sequence length >= 6 (one operator, two digits, ']' and '='), got " + std::to_string(T));
  }
  Batch Sample(int B, int T, Rng& rng, Split) const override {
    CheckLength(T);
    Batch batch(B, T);
    for (int b = 0; b < B; ++b) {
      std::vector<int32_t> expr;
      int value = 0;
      do {  // rejection: redraw until the expression fits in front of "="
        expr.clear();
        value = Expression(0, expr, rng);
      } while (int(expr.size()) > T - 1);
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
      case 0: return args.back();
      case 1: return args.front();
      case 2: return (args[(n - 1) / 2] + args[n / 2]) / 2;
      default: return sum % 10;
    }
  }
  ListOpsOptions o_;
};

}  // namespace

TaskInfo ListOpsTaskInfo() {
  return TaskEntry<ListOpsTask, ListOpsOptions>("listops", "ListOps (LRA): evaluate a nested MAX/MIN/MED/SUM_MOD expression");
}

}  // namespace mixlab
