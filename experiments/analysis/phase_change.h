// Is there a phase change in a training curve, or only a gradual rise? Olsson et al. (2022) report induction heads
// forming in a short window of training, visible as a bump in the loss and a jump in the induction score. A
// detector that always marks the largest single rise marks one in every curve; this one tests the rise against
// two nulls and can answer "no phase change":
//   - gradual: the window of `window` consecutive intervals with the largest rise must carry at least
//     `min_share` of the curve's whole rise (max - min); a steady ramp spreads it evenly;
//   - initial fit: a phase change follows a plateau, so the window must have at least two intervals before it and
//     the curve before it must vary by less than half the rise; every learning curve rises fastest at its start;
//   - noise: that rise, less the typical (median) rise of as many intervals elsewhere, must exceed `min_z` times
//     the spread of single-interval changes outside the window (1.4826 x their median absolute deviation, scaled
//     by sqrt(window)); a flat noisy curve's largest rise is a few spreads at most.
#pragma once
#include <string>
#include <vector>

namespace mixlab {

struct PhaseChangeOptions {
  int window = 0;          // intervals in the rising window; 0 = a tenth of the intervals, at least 1
  double min_share = 0.5;  // share of the curve's range the window must carry
  double min_z = 4.0;      // rise above the other intervals' median, in units of their spread
};

struct PhaseChange {
  bool detected = false;
  int from_index = 0, to_index = 0;  // the window: points [from_index, to_index]
  double rise = 0;                   // value[to_index] - value[from_index]
  double share = 0;                  // rise / (max - min) of the whole curve
  double z = 0;                      // (rise - window * median change elsewhere) / (spread * sqrt(window))
  double spread = 0;                 // 1.4826 x MAD of single-interval changes outside the window
  std::string reason;                // why it is, or is not, a phase change
};

// `values` are the curve's points in training order (at least 3). Throws std::invalid_argument on fewer.
PhaseChange DetectPhaseChange(const std::vector<double>& values, const PhaseChangeOptions& options = {});

// Whether two detected windows (point index ranges) overlap: the score's change coincides with another curve's.
bool WindowsOverlap(const PhaseChange& a, const PhaseChange& b);

}  // namespace mixlab
