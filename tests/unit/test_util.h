/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_util.h: helpers shared by the unit tests that check statistics
 * against exact answers (test_hist.c, test_metrics.c): a seeded random
 * generator, so a failure replays, and the qsort comparison for the exact
 * sort. Header-only (static inline): the Makefile builds each
 * tests/unit/test_*.c alone into its own binary.
 */
#ifndef SY_TEST_UTIL_H
#define SY_TEST_UTIL_H

#include <stdint.h>

/* splitmix64: a fixed seed per test, so a failure replays. */
static inline uint64_t
rnd(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1): the top 53 bits of rnd() over 2^53. */
static inline double
rnd01(uint64_t *state)
{
    return (double)(rnd(state) >> 11) / 9007199254740992.0;
}

static inline int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

#endif
