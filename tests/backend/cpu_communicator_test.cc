// The CPU communicator (issue 33): threads of one group running all-reduce, broadcast and
// all-gather; the all-reduce is the sum in rank order, bit for bit, on every rank and every run; a
// rank's abort wakes the others out of a collective with an error naming it (no hang).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_communicator.h"
#include "core/error.h"

namespace inferd {
namespace {

// Runs fn(rank, comm) on one thread a rank; returns each rank's error message ("" when none).
std::vector<std::string> run_group(int n, const std::function<void(int, Communicator&)>& fn) {
  auto comms = make_cpu_communicators(n);
  std::vector<std::string> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(r, *comms[size_t(r)]);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  return errors;
}

// Values of rank r: of very different magnitudes, so that the order of a float sum matters.
std::vector<float> values(int r, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[size_t(i)] = float((i * 7919 + r * 104729) % 1000 - 500) * (r % 2 ? 1e-3f : 1e3f);
  return v;
}

TEST(CpuCommunicator, AllReduceIsTheSumInRankOrderOnEveryRank) {
  for (int n : {1, 2, 3, 4, 7}) {
    for (int64_t len : {int64_t(1), int64_t(5), int64_t(1000), int64_t(4099)}) {
      std::vector<std::vector<float>> bufs(static_cast<size_t>(n));
      for (int r = 0; r < n; ++r) bufs[size_t(r)] = values(r, len);
      std::vector<float> want(static_cast<size_t>(len));
      for (int64_t i = 0; i < len; ++i) {
        float s = bufs[0][size_t(i)];
        for (int r = 1; r < n; ++r) s += bufs[size_t(r)][size_t(i)];
        want[size_t(i)] = s;
      }
      const auto errors = run_group(n, [&](int r, Communicator& c) {
        EXPECT_EQ(c.rank(), r);
        EXPECT_EQ(c.size(), n);
        for (int rep = 0; rep < 3; ++rep) {  // the same buffers reused: each call sums anew
          std::vector<float> b = bufs[size_t(r)];
          c.all_reduce_sum(Tensor(b.data(), DType::kF32, {len}));
          EXPECT_EQ(std::memcmp(b.data(), want.data(), size_t(len) * sizeof(float)), 0)
              << "rank " << r << " of " << n << ", " << len << " elements";
        }
      });
      for (const auto& e : errors) EXPECT_EQ(e, "");
    }
  }
}

TEST(CpuCommunicator, BroadcastCopiesTheRootsTensor) {
  const int n = 4;
  const auto errors = run_group(n, [&](int r, Communicator& c) {
    for (int root = 0; root < n; ++root) {
      std::vector<float> b = values(r, 33);
      c.broadcast(Tensor(b.data(), DType::kF32, {3, 11}), root);
      EXPECT_EQ(b, values(root, 33)) << "rank " << r << " root " << root;
    }
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

TEST(CpuCommunicator, AllGatherAlongRowsAndColumnsAlsoInPlace) {
  const int n = 3;
  const int64_t rows = 4, cols = 5;
  const auto errors = run_group(n, [&](int r, Communicator& c) {
    std::vector<float> in = values(r, rows * cols);
    // Rows: out [n * rows, cols], block r = rank r's input.
    std::vector<float> out(size_t(n * rows * cols), -1.f);
    c.all_gather(Tensor(in.data(), DType::kF32, {rows, cols}),
                 Tensor(out.data(), DType::kF32, {n * rows, cols}), 0);
    for (int k = 0; k < n; ++k) {
      const std::vector<float> want = values(k, rows * cols);
      EXPECT_TRUE(std::equal(want.begin(), want.end(), out.begin() + k * rows * cols)) << k;
    }
    // Columns, in place: this rank's block already written into out [rows, n * cols].
    std::vector<float> wide(size_t(rows * n * cols), -1.f);
    const Tensor all(wide.data(), DType::kF32, {rows, n * cols});
    const Tensor mine = all.slice_cols(r * cols, (r + 1) * cols);
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(wide.data() + i * n * cols + r * cols, in.data() + i * cols,
                  size_t(cols) * sizeof(float));
    c.all_gather(mine, all, 1);
    for (int k = 0; k < n; ++k) {
      const std::vector<float> want = values(k, rows * cols);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j)
          EXPECT_EQ(wide[size_t(i * n * cols + k * cols + j)], want[size_t(i * cols + j)])
              << "rank " << r << " block " << k;
    }
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

TEST(CpuCommunicator, AnAbortWakesTheOthersWithTheFailedRanksReason) {
  const int n = 4;
  const auto t0 = std::chrono::steady_clock::now();
  const auto errors = run_group(n, [&](int r, Communicator& c) {
    std::vector<float> b(16, 1.f);
    c.all_reduce_sum(Tensor(b.data(), DType::kF32, {16}));  // one that completes
    if (r == 2) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the others are waiting
      c.abort("out of memory on rank two");
      throw Error("rank two failed");
    }
    c.all_reduce_sum(Tensor(b.data(), DType::kF32, {16}));
  });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  for (int r = 0; r < n; ++r) {
    if (r == 2) {
      EXPECT_EQ(errors[size_t(r)], "rank two failed");
    } else {
      EXPECT_EQ(errors[size_t(r)], "tensor-parallel rank 2 of 4 failed: out of memory on rank two");
    }
  }
}

TEST(CpuCommunicator, MismatchedCollectivesFailOnEveryRank) {
  const auto errors = run_group(2, [&](int r, Communicator& c) {
    std::vector<float> b(size_t(8 + r), 1.f);
    c.all_reduce_sum(Tensor(b.data(), DType::kF32, {8 + r}));
  });
  for (const auto& e : errors) EXPECT_NE(e.find("a collective of"), std::string::npos) << e;
}

}  // namespace
}  // namespace inferd
