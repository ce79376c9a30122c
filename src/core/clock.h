/* SPDX-License-Identifier: BSD-2-Clause */
/* clock.h: milliseconds of a POSIX clock (CLOCK_MONOTONIC for intervals,
 * CLOCK_REALTIME for what logs and the admin API show). */
#ifndef SY_CLOCK_H
#define SY_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t sy_clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
