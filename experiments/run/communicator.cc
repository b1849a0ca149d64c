#include "experiments/run/communicator.h"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace mixlab {
namespace {

Communicator* world_instance = nullptr;
bool mpi_initialized = false;

// Whether a process launcher that speaks MPI started this process (Open MPI's mpirun, or PMIx / PMI launchers).
bool LaunchedByMpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(name)) return true;
  return false;
}

// Completes a request by polling: the first tests are immediate (a balanced collective is usually done), then the rank
// sleeps between tests so a waiting rank leaves its core to the ranks still computing.
void Wait(MPI_Request& request) {
  for (int polls = 0;; ++polls) {
    int done = 0;
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (polls > 100) std::this_thread::sleep_for(std::chrono::microseconds(polls > 10000 ? 2000 : 50));
  }
}

int CheckedCount(int64_t n) {
  if (n < 0 || n > int64_t(1) << 30) throw std::length_error("a message of " + std::to_string(n) + " elements");
  return int(n);
}

}  // namespace

Communicator& Communicator::Single() {
  static Communicator single(0, 1);
  return single;
}

Communicator& Communicator::World() { return world_instance ? *world_instance : Single(); }

void Communicator::InitializeWorld(int* argc, char*** argv) {
  if (mpi_initialized || !LaunchedByMpi()) return;
  int provided = 0;
  // The sweep's scheduler answers on rank 0 from a second thread while the first trains, one MPI call at a time.
  MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  mpi_initialized = true;
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  static Communicator world(rank, size);
  world_instance = &world;
  if (provided < MPI_THREAD_SERIALIZED)
    world.FailAll("mixlab: this MPI library offers no thread support (MPI_THREAD_SERIALIZED) for the sweep scheduler",
                  2);
}

void Communicator::FinalizeWorld() {
  if (mpi_initialized) MPI_Finalize();
  mpi_initialized = false;
}

void Communicator::SumInRankOrder(float* data, int64_t n) const {
  if (size_ == 1 || n == 0) return;
  const int N = size_;
  std::vector<int> counts(N), offsets(N), from_counts(N), from_offsets(N);
  for (int r = 0; r < N; ++r) {
    offsets[r] = CheckedCount(n * r / N);
    counts[r] = CheckedCount(n * (r + 1) / N) - offsets[r];
  }
  const int mine = counts[rank_];
  for (int r = 0; r < N; ++r) from_counts[r] = mine, from_offsets[r] = r * mine;
  // Reduce-scatter: rank r receives chunk r of every rank and adds them in rank order.
  std::vector<float> chunks(size_t(mine) * N);
  MPI_Request request;
  MPI_Ialltoallv(data, counts.data(), offsets.data(), MPI_FLOAT, chunks.data(), from_counts.data(), from_offsets.data(),
                 MPI_FLOAT, MPI_COMM_WORLD, &request);
  Wait(request);
  float* own = data + offsets[rank_];
  for (int i = 0; i < mine; ++i) own[i] = chunks[i];
  for (int r = 1; r < N; ++r)
    for (int i = 0; i < mine; ++i) own[i] += chunks[size_t(r) * mine + i];
  // All-gather the summed chunks.
  MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, data, counts.data(), offsets.data(), MPI_FLOAT, MPI_COMM_WORLD, &request);
  Wait(request);
}

namespace {
// MPI's own all-reduce (its order is the library's): for sums that are exact in any order.
void SumRaw(void* data, int64_t n, MPI_Datatype type) {
  MPI_Request request;
  MPI_Iallreduce(MPI_IN_PLACE, data, CheckedCount(n), type, MPI_SUM, MPI_COMM_WORLD, &request);
  Wait(request);
}

void BroadcastRaw(void* data, int64_t n, MPI_Datatype type) {
  MPI_Request request;
  MPI_Ibcast(data, CheckedCount(n), type, 0, MPI_COMM_WORLD, &request);
  Wait(request);
}
}  // namespace

void Communicator::SumDisjoint(double* data, int64_t n) const {
  if (size_ > 1 && n > 0) SumRaw(data, n, MPI_DOUBLE);
}

void Communicator::SumExact(int64_t* data, int64_t n) const {
  if (size_ > 1 && n > 0) SumRaw(data, n, MPI_INT64_T);
}

void Communicator::Broadcast(float* data, int64_t n) const {
  if (size_ > 1 && n > 0) BroadcastRaw(data, n, MPI_FLOAT);
}
void Communicator::Broadcast(double* data, int64_t n) const {
  if (size_ > 1 && n > 0) BroadcastRaw(data, n, MPI_DOUBLE);
}
void Communicator::Broadcast(int64_t* data, int64_t n) const {
  if (size_ > 1 && n > 0) BroadcastRaw(data, n, MPI_INT64_T);
}

std::vector<double> Communicator::Gather(const std::vector<double>& values) const {
  if (size_ == 1) return values;
  std::vector<double> all(values.size() * size_);
  const int n = CheckedCount(int64_t(values.size()));
  MPI_Request request;
  MPI_Iallgather(values.data(), n, MPI_DOUBLE, all.data(), n, MPI_DOUBLE, MPI_COMM_WORLD, &request);
  Wait(request);
  return all;
}

void Communicator::Barrier() const {
  if (size_ == 1) return;
  MPI_Request request;
  MPI_Ibarrier(MPI_COMM_WORLD, &request);
  Wait(request);
}

void Communicator::Send(int to, int tag, const std::string& text) const {
  MPI_Request request;
  MPI_Isend(text.data(), CheckedCount(int64_t(text.size())), MPI_CHAR, to, tag, MPI_COMM_WORLD, &request);
  Wait(request);
}

std::string Communicator::Receive(int tag, int* from) const {
  MPI_Status status;
  for (int polls = 0;; ++polls) {
    int ready = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &ready, &status);
    if (ready) break;
    std::this_thread::sleep_for(std::chrono::microseconds(polls > 1000 ? 5000 : 200));
  }
  int length = 0;
  MPI_Get_count(&status, MPI_CHAR, &length);
  std::string text(size_t(length), '\0');
  MPI_Recv(text.data(), length, MPI_CHAR, status.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  *from = status.MPI_SOURCE;
  return text;
}

void Communicator::FailAll(const std::string& message, int code) const {
  if (size_ == 1) {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::exit(code);
  }
  if (rank_ != 0) std::this_thread::sleep_for(std::chrono::seconds(2));  // rank 0 may be failing alike
  std::fprintf(stderr, "%s%s\n", message.c_str(), rank_ ? (" (rank " + std::to_string(rank_) + ")").c_str() : "");
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // not reached
}

}  // namespace mixlab
