/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ratelimit.c: GCRA over the shared slot table (see ratelimit.h for the
 * semantics, the layout and the threading rules). All arithmetic on times is
 * modulo 2^40 with signed differences; "debt" below is how far a key's tat
 * lies ahead of now (0 when it lies in the past), the budget it has used.
 *
 * Why relaxed atomics suffice: a slot's whole state is its one word, and no
 * other memory is published through it, so the CAS's atomicity is the only
 * ordering the algorithm needs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "keyhash.h"
#include "ratelimit.h"

#define RELAXED         memory_order_relaxed
#define SLOTS           8                       /* per bucket: one cache line */
#define TAT_BITS        40
#define TAT_MASK        ((1ull << TAT_BITS) - 1)
/*
 * A tat further ahead than this cannot come from a rule (tau + T <= 2^38,
 * plus room for a clock stepping back): it is an entry over 2^39 us old whose
 * difference wrapped. Such entries are treated as expired, a safety net under
 * the sweeper.
 */
#define STALE_AHEAD_US  ((int64_t)(SY_RL_MAX_SPAN_US + (SY_RL_MAX_SPAN_US >> 1)))
/* Bounds the table (512 GiB) so that the bucket index stays below the tag. */
#define MAX_KEYS        (1ull << 36)

struct sy_rl_table {
    _Atomic uint64_t *slots;            /* nbuckets x SLOTS, 64-byte aligned */
    size_t mask;                        /* nbuckets - 1 */
    struct sy_sipkey key;
    /* Written only when a decision fails open: its own line, so that the
     * fields every worker reads stay shared and clean. */
    _Alignas(64) _Atomic uint64_t fail_open;
};

static inline uint64_t
tag_of(uint64_t word)
{
    return word >> TAT_BITS;
}

static inline uint64_t
make_word(uint64_t tag, uint64_t tat)
{
    return tag << TAT_BITS | (tat & TAT_MASK);
}

/* tat - now as a signed 40-bit difference (arithmetic shift: gcc, clang). */
static inline int64_t
ahead(uint64_t word, uint64_t now)
{
    return (int64_t)((word - now) << (64 - TAT_BITS)) >> (64 - TAT_BITS);
}

/* The budget a slot's key has used at now: 0 when its tat is past. */
static inline uint64_t
debt_of(uint64_t word, uint64_t now)
{
    int64_t d = ahead(word, now);

    return d > 0 && d <= STALE_AHEAD_US ? (uint64_t)d : 0;
}

static inline uint64_t
ceil_ms(uint64_t us)
{
    return (us + 999) / 1000;
}

/* The result of allowing a request that leaves the key owing debt. */
static void
result_allowed(const struct sy_rl_rule *r, uint64_t debt, struct sy_rl_result *out)
{
    out->allowed = true;
    out->limit = r->limit;
    /* requests now allowed: the j >= 0 with debt + j T <= tau */
    out->remaining = debt <= r->tolerance_us
        ? (uint32_t)((r->tolerance_us - debt) / r->interval_us + 1) : 0;
    out->reset_ms = ceil_ms(debt);
    out->retry_after_ms = 0;
}

/* The result of denying a request: debt > tau, nothing written. */
static void
result_denied(const struct sy_rl_rule *r, uint64_t debt, struct sy_rl_result *out)
{
    out->allowed = false;
    out->limit = r->limit;
    out->remaining = 0;
    out->retry_after_ms = ceil_ms(debt - r->tolerance_us);
    out->reset_ms = out->retry_after_ms;
}

/*
 * The slot a new key takes: the first empty or expired one, else the one
 * owing the least. w holds the bucket as read.
 */
static int
pick_victim(const uint64_t *w, uint64_t now)
{
    uint64_t least = UINT64_MAX;
    int victim = 0;

    for (int i = 0; i < SLOTS; i++) {
        uint64_t debt = w[i] == 0 ? 0 : debt_of(w[i], now);
        if (debt == 0)
            return i;
        if (debt < least) {
            least = debt;
            victim = i;
        }
    }
    return victim;
}

enum attempt { DECIDED, RETRY };

/* Whether a slot of b other than mine holds tag. */
static bool
other_copy(_Atomic uint64_t *b, int mine, uint64_t tag)
{
    for (int i = 0; i < SLOTS; i++)
        if (i != mine && tag_of(atomic_load_explicit(&b[i], RELAXED)) == tag)
            return true;
    return false;
}

/*
 * A key not in bucket b (w: the bucket as read): it owes nothing, so it is
 * allowed and takes a slot. Two threads inserting one key at once may pick
 * different slots when they saw the bucket in different states (a third
 * insert between their reads; cached clocks that differ on what expired).
 * So each looks again after its CAS: one that finds another copy withdraws
 * its own and decides on that copy instead. Of two such inserts at least the
 * later one sees the earlier (or both see each other and retry), so the key
 * is counted once. A withdrawal fails only when a third thread has counted
 * a request on the new copy within those few nanoseconds; the second copy
 * then stays, unused by lookups (they take the first), until evicted or
 * swept, and what it counted is forgotten: at most a request or two.
 */
static enum attempt
insert(_Atomic uint64_t *b, uint64_t *w, uint64_t tag, uint64_t now,
       const struct sy_rl_rule *r, struct sy_rl_result *out)
{
    int v = pick_victim(w, now);
    uint64_t mine = make_word(tag, now + r->interval_us);

    if (!atomic_compare_exchange_strong_explicit(&b[v], &w[v], mine, RELAXED, RELAXED))
        return RETRY;
    if (other_copy(b, v, tag) &&
        atomic_compare_exchange_strong_explicit(&b[v], &mine, 0, RELAXED, RELAXED))
        return RETRY;
    result_allowed(r, r->interval_us, out);
    return DECIDED;
}

/*
 * One attempt at a decision on bucket b: read the 8 slots, then update the
 * key's slot (the first, should a failed withdrawal have left two) or insert
 * it. A CAS that fails on the key's slot is retried at once on the word it
 * returned: the failed CAS has just brought the cache line here, so the
 * retry usually wins even against a thread hammering the same key. RETRY
 * when the slot changed hands or an insert lost; *tries counts every CAS.
 */
static enum attempt
attempt(_Atomic uint64_t *b, uint64_t tag, uint64_t now, const struct sy_rl_rule *r,
        struct sy_rl_result *out, int *tries)
{
    uint64_t w[SLOTS], debt;
    int hit = -1;

    for (int i = 0; i < SLOTS; i++)
        w[i] = atomic_load_explicit(&b[i], RELAXED);
    for (int i = 0; i < SLOTS; i++)
        if (tag_of(w[i]) == tag) {
            hit = i;
            break;
        }
    if (hit < 0) {
        ++*tries;
        return insert(b, w, tag, now, r, out);
    }
    do {
        debt = debt_of(w[hit], now);
        if (debt > r->tolerance_us) {
            result_denied(r, debt, out);
            return DECIDED;
        }
        /* tat' = max(tat, now) + T */
        if (atomic_compare_exchange_strong_explicit(&b[hit], &w[hit],
                                                    make_word(tag, now + debt + r->interval_us),
                                                    RELAXED, RELAXED)) {
            result_allowed(r, debt + r->interval_us, out);
            return DECIDED;
        }
    } while (++*tries < SY_RL_MAX_TRIES && tag_of(w[hit]) == tag);
    return RETRY;
}

void
sy_rl_check(struct sy_rl_table *t, const struct sy_rl_rule *r, uint32_t limit_id,
            const void *key, size_t keylen, uint64_t now_us, struct sy_rl_result *out)
{
    uint64_t h = sy_siphash13_u32(&t->key, limit_id, key, keylen);
    _Atomic uint64_t *b = t->slots + (h & t->mask) * SLOTS;
    uint64_t tag = tag_of(h);
    uint64_t now = now_us & TAT_MASK;
    int tries = 0;

    if (tag == 0)               /* a slot with tag 0 could read as empty */
        tag = 1;
    while (tries < SY_RL_MAX_TRIES)
        if (attempt(b, tag, now, r, out, &tries) == DECIDED)
            return;
    atomic_fetch_add_explicit(&t->fail_open, 1, RELAXED);
    result_allowed(r, r->interval_us, out);
}

size_t
sy_rl_sweep(struct sy_rl_table *t, uint64_t now_us, uint64_t max_tolerance_us)
{
    const size_t n = (t->mask + 1) * SLOTS;
    const uint64_t now = now_us & TAT_MASK;
    const int64_t keep = (int64_t)(max_tolerance_us < SY_RL_MAX_SPAN_US
                                   ? max_tolerance_us : SY_RL_MAX_SPAN_US);
    size_t live = 0;

    for (size_t i = 0; i < n; i++) {
        uint64_t w = atomic_load_explicit(&t->slots[i], RELAXED);
        int64_t d;

        if (w == 0)
            continue;
        d = ahead(w, now);
        /* A failed CAS means a worker just used the slot: it stays. */
        if ((d >= -keep && d <= STALE_AHEAD_US) ||
            !atomic_compare_exchange_strong_explicit(&t->slots[i], &w, 0, RELAXED, RELAXED))
            live++;
    }
    return live;
}

int
sy_rl_rule_init(struct sy_rl_rule *r, int64_t rate, int64_t per_ms, int64_t burst,
                char *err, size_t errlen)
{
    uint64_t per_us, interval;

    if (rate < 1) {
        snprintf(err, errlen, "rate must be at least 1 (got %" PRId64 ")", rate);
        return -1;
    }
    if (per_ms < 1) {
        snprintf(err, errlen, "per_ms must be at least 1 (got %" PRId64 ")", per_ms);
        return -1;
    }
    if (burst < 0 || burst > (int64_t)UINT32_MAX - 1) {
        snprintf(err, errlen, "burst must be between 0 and %" PRIu32 " (got %" PRId64 ")",
                 UINT32_MAX - 1, burst);
        return -1;
    }
    if ((uint64_t)per_ms > SY_RL_MAX_SPAN_US / 1000) {
        snprintf(err, errlen, "per_ms %" PRId64 " is too long (at most %llu, 3.2 days)",
                 per_ms, SY_RL_MAX_SPAN_US / 1000);
        return -1;
    }
    per_us = (uint64_t)per_ms * 1000;
    interval = per_us / (uint64_t)rate;
    if (interval == 0) {
        snprintf(err, errlen, "rate %" PRId64 " per %" PRId64 " ms is more than one request"
                 " per microsecond, finer than the limiter's clock", rate, per_ms);
        return -1;
    }
    /* per_us / interval is the rate enforced: at most 1 % above the one asked */
    if ((per_us - interval * (uint64_t)rate) * 100 > interval * (uint64_t)rate) {
        snprintf(err, errlen, "rate %" PRId64 " per %" PRId64 " ms would be enforced as one"
                 " request every %" PRIu64 " us, over 1 %% more than asked: give rate and"
                 " per_ms a whole number of microseconds between requests", rate, per_ms,
                 interval);
        return -1;
    }
    if ((uint64_t)burst + 1 > SY_RL_MAX_SPAN_US / interval) {
        snprintf(err, errlen, "burst %" PRId64 " at rate %" PRId64 " per %" PRId64 " ms takes"
                 " longer than 2^38 us (3.2 days) to refill: lower burst or per_ms", burst,
                 rate, per_ms);
        return -1;
    }
    r->interval_us = interval;
    r->tolerance_us = (uint64_t)burst * interval;
    r->limit = (uint32_t)burst + 1;
    return 0;
}

struct sy_rl_table *
sy_rl_table_new(size_t max_keys)
{
    struct sy_rl_table *t;
    size_t nbuckets = 1;
    void *slots;
    int err;

    if ((uint64_t)max_keys > MAX_KEYS) {
        errno = ENOMEM;
        return NULL;
    }
    while (nbuckets * SLOTS < max_keys)
        nbuckets <<= 1;
    t = aligned_alloc(64, sizeof(*t));
    if (t == NULL)
        return NULL;
    err = posix_memalign(&slots, 64, nbuckets * SLOTS * sizeof(t->slots[0]));
    if (err != 0) {
        free(t);
        errno = err;
        return NULL;
    }
    t->slots = slots;
    t->mask = nbuckets - 1;
    atomic_init(&t->fail_open, 0);
    for (size_t i = 0; i < nbuckets * SLOTS; i++)
        atomic_init(&t->slots[i], 0);
    if (sy_sipkey_random(&t->key) != 0) {
        err = errno;
        sy_rl_table_free(t);
        errno = err;
        return NULL;
    }
    return t;
}

void
sy_rl_table_free(struct sy_rl_table *t)
{
    if (t == NULL)
        return;
    free((void *)t->slots);
    free(t);
}

size_t
sy_rl_table_bytes(const struct sy_rl_table *t)
{
    return sy_rl_table_slots(t) * sizeof(t->slots[0]) + sizeof(*t);
}

size_t
sy_rl_table_slots(const struct sy_rl_table *t)
{
    return (t->mask + 1) * SLOTS;
}

uint64_t
sy_rl_fail_open(const struct sy_rl_table *t)
{
    return atomic_load_explicit(&((struct sy_rl_table *)t)->fail_open, RELAXED);
}

uint64_t
sy_rl_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}
