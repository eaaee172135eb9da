// Device time per engine step, measured with device events (backend/backend.h).
#pragma once

#include <cstdint>

namespace inferd {

struct StepTiming {
  int64_t steps = 0;
  double busy_ms = 0;  // from a step's first upload to its results being copied back
  double idle_ms = 0;  // between one step's results and the next step's first upload
};

}  // namespace inferd
