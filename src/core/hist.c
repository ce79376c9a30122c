/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * hist.c: the decimal log-linear histogram (see hist.h for the layout and
 * the threading rules). The bucket index works on u = value - 1, so that a
 * bucket's linear run is [lo, lo + width) in u and (lo, lo + width] in
 * values: upper edges included, as Prometheus wants.
 */
#include "hist.h"

#define RELAXED memory_order_relaxed

/*
 * A linear run of buckets: u in [lo, lo + n x width) goes to bucket
 * base + (u - lo) / width, with the division done as a multiply by
 * recip = ceil(2^shift / width), shift = 32 + ceil(log2(width)). That is
 * exact for every u - lo < 2^32 (Granlund and Montgomery, 1994, thm 4.2),
 * and (u - lo) x recip < 2^30 x 2^33 fits in 64 bits.
 */
struct run {
    uint32_t lo;
    uint32_t width;
    uint32_t base;      /* bucket index of its first bucket, less one (see bucket_of) */
    uint32_t shift;
    uint64_t recip;
};

#define CEIL_LOG2(w)    ((w) == 1 ? 0 : 64 - __builtin_clzll((uint64_t)(w) - 1))
#define RUN(lo, w, base) \
    { (lo), (w), (base), 32 + CEIL_LOG2(w), ((1ull << (32 + CEIL_LOG2(w))) + (w) - 1) / (w) }
/* The decade (100p, 1000p]: steps of 2p, 5p, 10p. */
#define DECADE(p, base) \
    RUN(100 * (p), 2 * (p), (base)), RUN(250 * (p), 5 * (p), (base) + 75), \
    RUN(500 * (p), 10 * (p), (base) + 125)

static const struct run runs[] = {
    RUN(0, 1, 0),
    DECADE(1, 100), DECADE(10, 275), DECADE(100, 450), DECADE(1000, 625),
    DECADE(10000, 800), DECADE(100000, 975), DECADE(1000000, 1150),
    { .lo = UINT32_MAX },       /* sentinel: no u reaches it */
};
#define NRUNS   (sizeof(runs) / sizeof(runs[0]) - 1)

/* The run holding u = x: how many runs after the first start at or below x. */
#define STARTS_LE(x, p) (((x) >= 100 * (p)) + ((x) >= 250 * (p)) + ((x) >= 500 * (p)))
#define RUN_OF(x) \
    (STARTS_LE(x, 1ull) + STARTS_LE(x, 10ull) + STARTS_LE(x, 100ull) + \
     STARTS_LE(x, 1000ull) + STARTS_LE(x, 10000ull) + STARTS_LE(x, 100000ull) + \
     STARTS_LE(x, 1000000ull))
#define OCT(o)  RUN_OF(1ull << (o))

/*
 * The run holding 2^o, for every octave of u <= SY_HIST_MAX_US < 2^30.
 * Consecutive run starts are at least a factor 2 apart, so an octave holds at
 * most one start and one comparison finds the run of any u in it.
 */
static const uint8_t octave_run[30] = {
    OCT(0), OCT(1), OCT(2), OCT(3), OCT(4), OCT(5), OCT(6), OCT(7), OCT(8), OCT(9),
    OCT(10), OCT(11), OCT(12), OCT(13), OCT(14), OCT(15), OCT(16), OCT(17), OCT(18),
    OCT(19), OCT(20), OCT(21), OCT(22), OCT(23), OCT(24), OCT(25), OCT(26), OCT(27),
    OCT(28), OCT(29),
};

_Static_assert(SY_HIST_MAX_US < (1ull << 30), "octave_run covers u < 2^30");
_Static_assert(SY_HIST_BUCKETS == 1 + 1150 + 125 + (SY_HIST_MAX_US - 500000000) / 10000000 + 1,
               "SY_HIST_BUCKETS matches runs[]");
/* Window buckets must not straddle runs: every run but the first spans a
 * multiple of 5 buckets (75, 50, 50; 10 up to 600 s). */
_Static_assert(SY_HIST_SLOT_GROUP == 1 || SY_HIST_SLOT_GROUP == 5, "slot group divides 5");

/*
 * 0 has bucket 0; v >= 1 has bucket 1 + (layout index of u = v - 1), where
 * the top bucket is the one u = SY_HIST_MAX_US lands in.
 */
static inline size_t
bucket_of(uint64_t value_us)
{
    uint64_t nonzero = value_us != 0;
    uint64_t u = value_us - nonzero;

    if (u > SY_HIST_MAX_US)
        u = SY_HIST_MAX_US;
    unsigned r = octave_run[63 - __builtin_clzll(u | 1)];
    r += u >= runs[r + 1].lo;
    const struct run *run = &runs[r];
    return nonzero + run->base + (((u - run->lo) * run->recip) >> run->shift);
}

static inline void
bump(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, RELAXED) + n, RELAXED);
}

static inline void
raise_max(_Atomic uint64_t *max, uint64_t value)
{
    if (value > atomic_load_explicit(max, RELAXED))
        atomic_store_explicit(max, value, RELAXED);
}

size_t
sy_hist_bucket(uint64_t value_us)
{
    return bucket_of(value_us);
}

uint64_t
sy_hist_bucket_max(size_t bucket)
{
    if (bucket == 0)
        return 0;
    if (bucket >= SY_HIST_BUCKETS - 1)
        return UINT64_MAX;
    size_t j = bucket - 1, r = NRUNS - 1;
    while (runs[r].base > j)
        r--;
    return runs[r].lo + (uint64_t)(j - runs[r].base + 1) * runs[r].width;
}

uint64_t
sy_hist_bucket_value(size_t bucket)
{
    if (bucket <= 100)
        return bucket;
    if (bucket >= SY_HIST_BUCKETS - 1)
        return SY_HIST_MAX_US;
    uint64_t min = sy_hist_bucket_max(bucket - 1) + 1, max = sy_hist_bucket_max(bucket);
    /* the middle value: within width / 2 <= 1 % of the lower edge of any member */
    return min + (max - min) / 2;
}

void
sy_hist_reset(struct sy_hist *h)
{
    atomic_store_explicit(&h->count, 0, RELAXED);
    atomic_store_explicit(&h->sum_us, 0, RELAXED);
    atomic_store_explicit(&h->max_us, 0, RELAXED);
    for (size_t i = 0; i < SY_HIST_BUCKETS; i++)
        atomic_store_explicit(&h->buckets[i], 0, RELAXED);
}

void
sy_hist_record(struct sy_hist *h, uint64_t value_us)
{
    bump(&h->buckets[bucket_of(value_us)], 1);
    bump(&h->count, 1);
    bump(&h->sum_us, value_us);
    raise_max(&h->max_us, value_us);
}

void
sy_hist_merge(struct sy_hist *dst, const struct sy_hist *src)
{
    uint64_t n = 0;

    for (size_t i = 0; i < SY_HIST_BUCKETS; i++) {
        uint64_t c = atomic_load_explicit(&src->buckets[i], RELAXED);
        if (c != 0) {
            bump(&dst->buckets[i], c);
            n += c;
        }
    }
    bump(&dst->count, n);
    bump(&dst->sum_us, atomic_load_explicit(&src->sum_us, RELAXED));
    raise_max(&dst->max_us, atomic_load_explicit(&src->max_us, RELAXED));
}

uint64_t
sy_hist_count(const struct sy_hist *h)
{
    return atomic_load_explicit(&h->count, RELAXED);
}

uint64_t
sy_hist_sum_us(const struct sy_hist *h)
{
    return atomic_load_explicit(&h->sum_us, RELAXED);
}

uint64_t
sy_hist_max(const struct sy_hist *h)
{
    return atomic_load_explicit(&h->max_us, RELAXED);
}

/* Sum of buckets [0, end): what count would be, read in one pass with them. */
static uint64_t
buckets_sum(const struct sy_hist *h, size_t end)
{
    uint64_t n = 0;

    for (size_t i = 0; i < end; i++)
        n += atomic_load_explicit(&h->buckets[i], RELAXED);
    return n;
}

uint64_t
sy_hist_quantile(const struct sy_hist *h, double q)
{
    uint64_t n = buckets_sum(h, SY_HIST_BUCKETS), rank, seen = 0;

    if (n == 0)
        return 0;
    if (!(q > 0))                       /* also NaN */
        rank = 1;
    else if (q >= 1)
        rank = n;
    else {
        double r = q * (double)n;
        rank = (uint64_t)r;
        rank += (double)rank < r;       /* ceil */
        if (rank == 0)
            rank = 1;
    }
    /* The buckets may have grown since they were summed: stop at the last. */
    size_t i = 0;
    for (; i < SY_HIST_BUCKETS - 1; i++) {
        seen += atomic_load_explicit(&h->buckets[i], RELAXED);
        if (seen >= rank)
            break;
    }
    uint64_t value = sy_hist_bucket_value(i), max = sy_hist_max(h);
    return value < max ? value : max;
}

uint64_t
sy_hist_count_le(const struct sy_hist *h, uint64_t bound_us)
{
    if (bound_us >= sy_hist_max(h))
        return buckets_sum(h, SY_HIST_BUCKETS);
    size_t b = bucket_of(bound_us);
    if (sy_hist_bucket_max(b) != bound_us)
        b--;                            /* inside bucket b (so b > 0): round down */
    return buckets_sum(h, b + 1);
}
