// The flat batch type lives with the backend interface (the lowest layer that uses it).
#pragma once

#include "backend/forward_batch.h"
