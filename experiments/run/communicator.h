// The processes one training or one sweep runs on: a single process, or the ranks `mpirun` started (Open MPI through
// MPI's C API). A plain `mixlab` (no mpirun in its environment) never initialises MPI and runs exactly as a single
// process.
//
// Every reduction here is deterministic: the sum of the ranks' buffers is formed in rank order (rank 0's + rank 1's +
// ...), the order in which `--grad-accum` adds its micro-batches, so N ranks and N micro-batches give the same bits.
// The all-reduce is a reduce-scatter (MPI_Alltoallv: rank r receives every rank's r-th chunk and sums it in rank order)
// followed by an all-gather: each rank sends and receives 2 (N - 1) / N of the buffer, the cost of a ring all-reduce.
//
// Waiting is polled with short sleeps (MPI_Test), never spun: a rank that waits for another must leave the cores to
// the ranks that still compute.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mixlab {

class Communicator {
 public:
  // MPI_COMM_WORLD when this process was started by mpirun (after InitializeWorld), else the single process.
  static Communicator& World();
  // A communicator of this process alone (the runs a sweep hands to one rank).
  static Communicator& Single();
  // Called once at the start of main: initialises MPI when mpirun (or srun through PMIx) started this process.
  static void InitializeWorld(int* argc, char*** argv);
  // Called once at the end of main (MPI_Finalize) when InitializeWorld initialised MPI.
  static void FinalizeWorld();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }

  // data (n) on every rank becomes the sum over ranks, added in rank order; the same bits on every rank.
  void SumInRankOrder(float* data, int64_t n) const;
  // Each entry is non-zero on at most one rank (its owner): the sum is exact, in any order.
  void SumDisjoint(double* data, int64_t n) const;
  void SumExact(int64_t* data, int64_t n) const;  // integer sums: exact in any order
  // Root's data (n) copied to every rank.
  void Broadcast(float* data, int64_t n) const;
  void Broadcast(double* data, int64_t n) const;
  void Broadcast(int64_t* data, int64_t n) const;
  // The values (n on every rank) of every rank, in rank order: size() x n.
  std::vector<double> Gather(const std::vector<double>& values) const;
  // Returns when every rank has called it (polled).
  void Barrier() const;

  // Point-to-point messages of whole strings (the sweep scheduler).
  void Send(int to, int tag, const std::string& text) const;
  // Waits (polled) for a message with `tag` from any rank; returns the text and sets *from.
  std::string Receive(int tag, int* from) const;

  // Prints `message` (one line) and ends every rank with `code`. Where every rank fails alike (bad input), only rank
  // 0's line is printed: the other ranks wait a moment for rank 0's abort to end them before printing their own.
  [[noreturn]] void FailAll(const std::string& message, int code) const;

 private:
  Communicator(int rank, int size) : rank_(rank), size_(size) {}
  int rank_ = 0, size_ = 1;  // size 1: no MPI call is made
};

}  // namespace mixlab
