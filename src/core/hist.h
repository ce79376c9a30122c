/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * hist.h: latency histograms in microseconds with fixed memory, one per
 * worker per series, recorded without lock or atomic read-modify-write and
 * merged by the main thread (metrics.c, which also keeps the sliding
 * windows). No HTTP knowledge.
 *
 * Layout. A bucket holds the values in (lo, hi], upper edge included, as a
 * Prometheus "le" bucket does. 0..100 us: one bucket per value. Above, each
 * decade (10^d, 10^(d+1)] is cut into three linear runs:
 *     (1, 2.5] x 10^d in steps of 0.02 x 10^d    75 buckets
 *     (2.5, 5] x 10^d in steps of 0.05 x 10^d    50 buckets
 *     (5, 10]  x 10^d in steps of 0.1  x 10^d    50 buckets
 * A step is at most 2 % of its lower edge, and every bound of two significant
 * digits (120 us, 1.5 ms, 75 ms, 0.3 s, 2.5 s; all of SPEC's default buckets)
 * is a bucket edge, so count_le is exact there. A binary (HDR) layout cannot
 * put 5 ms or 10 s on an edge with fewer than 2^16 sub-buckets per octave.
 * Values above SY_HIST_MAX_US (10 min) share one top bucket. The index takes
 * clz and one table step (no power of two holds two run starts), then a
 * multiply by a reciprocal: no loop, no division.
 *
 * Precision. sy_hist_quantile returns the middle of the bucket holding the
 * sample of the requested rank: less than 1 % from that sample (exact up to
 * 100 us), never above the largest value recorded; a rank that falls above
 * 10 min reads SY_HIST_MAX_US. Windows keep 5x coarser buckets
 * (SY_HIST_SLOT_GROUP): 5 %, with SPEC's default bounds still on edges.
 *
 * Threads. One thread records into a histogram (its worker). The counters
 * are _Atomic but written by relaxed load + store, which compile to plain
 * moves: other threads may read them at any time (merge, sum, getters)
 * without a data race and see each counter at some recent value. Read from a
 * merged copy (sy_hist_merge) for figures that agree with each other.
 *
 * Memory. struct sy_hist: 10,320 bytes (1,287 buckets of 8 bytes plus
 * count, sum and max).
 */
#ifndef SY_HIST_H
#define SY_HIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Largest value with its own bucket; above it, the top bucket. */
#define SY_HIST_MAX_US      600000000ull
/* 101 single values, 6 full decades of 175, 135 up to 600 s, the top. */
#define SY_HIST_BUCKETS     1287
/* A window's bucket (metrics.c) spans this many buckets of a histogram (1 or
 * 5): 100 single values, then groups within one run, then the top bucket. */
#define SY_HIST_SLOT_GROUP  5
#define SY_HIST_SLOT_BUCKETS \
    (101 + (SY_HIST_BUCKETS - 102) / SY_HIST_SLOT_GROUP + 1)

/* Owned by whoever embeds it; zero-filled memory is an empty histogram. */
struct sy_hist {
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;        /* of the values as recorded, unclamped */
    _Atomic uint64_t max_us;
    _Atomic uint64_t buckets[SY_HIST_BUCKETS];
};

/* Empties h. Only its owner may call this. */
void sy_hist_reset(struct sy_hist *h);
/* Adds one sample (owner thread only): about 40 x86 instructions, none
 * locked, one branch (a new max). tests/bench/bench_hist.c measures it. */
void sy_hist_record(struct sy_hist *h, uint64_t value_us);
/* Adds src into dst. src may be recording in another thread; dst belongs to
 * the caller. dst's count grows by the sum of the buckets it read, so the
 * copy stays self-consistent. */
void sy_hist_merge(struct sy_hist *dst, const struct sy_hist *src);

uint64_t sy_hist_count(const struct sy_hist *h);
uint64_t sy_hist_sum_us(const struct sy_hist *h);
uint64_t sy_hist_max(const struct sy_hist *h);

/*
 * Nearest rank: the bucket value of the sample of rank ceil(q x count)
 * (at least 1) in sorted order, the smallest v with at least q x count
 * samples <= v, within the precision above. q is clamped to [0, 1]; q = 0
 * reads the smallest sample's bucket. 0 when h is empty.
 */
uint64_t sy_hist_quantile(const struct sy_hist *h, double q);
/*
 * Samples <= bound_us. Exact when bound_us is a bucket edge (see Layout) or
 * at least the largest sample. A bound inside a bucket counts only the
 * buckets wholly below it, as if it were rounded down to the edge below
 * (at most 2 % lower): never a sample above the bound.
 */
uint64_t sy_hist_count_le(const struct sy_hist *h, uint64_t bound_us);

/* The layout, for exporters and tests: the bucket of a value, the largest
 * value a bucket holds (UINT64_MAX for the top one), and the value
 * sy_hist_quantile reports for it. */
size_t sy_hist_bucket(uint64_t value_us);
uint64_t sy_hist_bucket_max(size_t bucket);
uint64_t sy_hist_bucket_value(size_t bucket);

#endif
