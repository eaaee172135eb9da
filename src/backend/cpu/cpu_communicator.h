// The CPU communicator: the ranks of a tensor-parallel group are threads of one process and share
// memory, so a collective is two barriers around plain loads and stores. All-reduce: every rank
// publishes its buffer; rank r then sums its 1/size of the elements over every rank's buffer in
// rank order (0, 1, ..., so the sum is the same bits on every run and every rank) and writes the
// sum back into every buffer. Broadcast and all-gather copy from the published buffers.
// Barriers block on a condition variable; abort() wakes every waiter (communicator.h).
#pragma once

#include <memory>
#include <vector>

#include "backend/communicator.h"

namespace inferd {

// One communicator a rank, all of one group (rank i is element i): each is used by one thread.
std::vector<std::unique_ptr<Communicator>> make_cpu_communicators(int size);

}  // namespace inferd
