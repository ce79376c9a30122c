/* SPDX-License-Identifier: BSD-2-Clause */
/* bench_util.h: what every microbenchmark needs: a monotonic clock in ns. */
#ifndef SY_BENCH_UTIL_H
#define SY_BENCH_UTIL_H

#include <time.h>

static inline double
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

#endif
