#include "experiments/run/sweep_scheduler.h"

#include <exception>
#include <string>

namespace mixlab {
namespace {
constexpr int kRequestTag = 7001, kAssignTag = 7002;
}

SweepScheduler::SweepScheduler(const Communicator& comm, int items) : comm_(comm), items_(items) {
  if (comm_.root() && comm_.distributed()) server_ = std::thread([this] { Serve(); });
}

SweepScheduler::~SweepScheduler() {
  if (!server_.joinable()) return;
  // Leaving on an error: main ends every rank (MPI_Abort) right after, so the sweep must not wait for the other ranks.
  if (std::uncaught_exceptions() > 0) server_.detach();
  else server_.join();
}

int SweepScheduler::Take() {
  const int item = next_.fetch_add(1);
  return item < items_ ? item : -1;
}

void SweepScheduler::Keep(int finished, const std::string& report) {
  if (finished < 0) return;
  const std::lock_guard<std::mutex> lock(mutex_);
  reports_[finished] = report;
}

int SweepScheduler::Next(int finished, const std::string& report) {
  if (comm_.root()) {
    Keep(finished, report);
    return Take();
  }
  comm_.Send(0, kRequestTag, std::to_string(finished) + "\n" + report);
  int from = 0;
  return std::stoi(comm_.Receive(kAssignTag, &from));
}

void SweepScheduler::Serve() {
  for (int idle_ranks = 0; idle_ranks < comm_.size() - 1;) {
    int from = 0;
    const std::string request = comm_.Receive(kRequestTag, &from);
    const auto newline = request.find('\n');
    Keep(std::stoi(request.substr(0, newline)), request.substr(newline + 1));
    const int item = Take();
    comm_.Send(from, kAssignTag, std::to_string(item));
    idle_ranks += item < 0;
  }
}

std::map<int, std::string> SweepScheduler::Finish() {
  if (server_.joinable()) server_.join();
  const std::lock_guard<std::mutex> lock(mutex_);
  return reports_;
}

}  // namespace mixlab
