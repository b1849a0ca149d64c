// Hands the items 0 .. n-1 of a sweep (the runs of a compare) to the ranks, one at a time, as each rank becomes idle:
// rank 0 serves the requests from a second thread while its first thread works on items too, so N ranks work on N
// items at once. A rank reports on the item it finished when it asks for the next; rank 0 keeps the reports.
// With one rank, Next simply counts up.
#pragma once
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "experiments/run/communicator.h"

namespace mixlab {

class SweepScheduler {
 public:
  SweepScheduler(const Communicator& comm, int items);
  // Rank 0: waits until every rank has been told that no item is left (unless an exception is unwinding).
  ~SweepScheduler();
  // The next item for this rank, or -1 when none is left. `finished` is the item this rank finished last (-1 at first)
  // and `report` a line about it, kept by rank 0.
  int Next(int finished, const std::string& report);
  // Rank 0, after its last Next and once every rank is done (the destructor, or Finish): the reports by item.
  std::map<int, std::string> Finish();

 private:
  void Serve();  // rank 0's second thread
  int Take();
  void Keep(int finished, const std::string& report);

  const Communicator& comm_;
  const int items_;
  std::atomic<int> next_{0};
  std::mutex mutex_;
  std::map<int, std::string> reports_;
  std::thread server_;
};

}  // namespace mixlab
