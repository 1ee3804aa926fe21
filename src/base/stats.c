/* SPDX-License-Identifier: MIT */
#include "base/stats.h"

struct stats g_stats;
