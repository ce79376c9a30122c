/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * balance.c: per-worker balancing state of each pool and the three pick
 * algorithms (smooth weighted round robin, least_conn, weighted
 * rendezvous ip_hash). Each pool owns one block holding every worker's
 * state, cache-line aligned so that workers never write a shared line.
 */
#include "http/balance.h"
#include "core/live.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64
#define NO_PICK    SIZE_MAX

struct balance_slot {
    int64_t current_weight;     /* smooth weighted round robin */
    /* this worker's requests on the instance; atomic only so the admin API may read it */
    _Atomic uint32_t in_flight;
    uint32_t id_hash;           /* ip_hash identity, from the address text */
};

struct sy_pool_balance {
    _Alignas(CACHE_LINE) size_t ninstances;     /* checks that the pool did not change */
    unsigned nworkers;
    bool equal_weights;         /* ip_hash can rank by raw hash */
    size_t next;                /* least_conn: where the next scan starts */
    struct balance_slot slots[];
};

/* Bytes of one worker's state, a whole number of cache lines. */
static size_t
worker_stride(size_t ninstances)
{
    size_t n = offsetof(struct sy_pool_balance, slots)
               + ninstances * sizeof(struct balance_slot);

    return (n + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
}

static struct sy_pool_balance *
worker_state(const struct sy_pool *pool, unsigned worker)
{
    char *base = (char *)pool->balance_state;

    /* prepared for this pool as it is, and for this many workers */
    assert(base != NULL && worker < pool->balance_state->nworkers);
    assert(pool->balance_state->ninstances == pool->ninstances);
    return (struct sy_pool_balance *)(base + worker * worker_stride(pool->ninstances));
}

static uint64_t
mix64(uint64_t x)
{
    /* splitmix64's finaliser: every input bit flips about half the output bits */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/*
 * The identity ip_hash ranks an instance by: its address text, so a client
 * keeps its instance across reloads that add or remove others; the count
 * of earlier instances with the same text separates repeated addresses.
 */
static uint32_t
instance_id_hash(const struct sy_pool *pool, size_t i)
{
    const char *text = pool->instances[i].addr.text;
    uint64_t h = 0xcbf29ce484222325ULL;     /* FNV-1a */
    uint64_t repeats = 0;

    for (const char *p = text; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    for (size_t j = 0; j < i; j++) {
        if (strcmp(pool->instances[j].addr.text, text) == 0)
            repeats++;
    }
    return (uint32_t)(mix64(h + repeats) >> 32);
}

static int
pool_prepare(struct sy_pool *pool, unsigned nworkers)
{
    struct sy_pool_balance *first;
    bool equal = true;
    size_t stride;

    if (pool->ninstances > (SIZE_MAX / 2) / sizeof(struct balance_slot))
        return -1;
    stride = worker_stride(pool->ninstances);
    if (stride > SIZE_MAX / nworkers)
        return -1;
    first = aligned_alloc(CACHE_LINE, stride * nworkers);
    if (first == NULL)
        return -1;
    memset(first, 0, stride * nworkers);
    for (size_t i = 1; i < pool->ninstances; i++)
        equal = equal && pool->instances[i].weight == pool->instances[0].weight;
    for (size_t i = 0; i < pool->ninstances; i++)
        first->slots[i].id_hash = instance_id_hash(pool, i);
    first->ninstances = pool->ninstances;
    first->nworkers = nworkers;
    first->equal_weights = equal;
    for (unsigned w = 1; w < nworkers; w++)
        memcpy((char *)first + w * stride, first, stride);
    free(pool->balance_state);
    pool->balance_state = first;
    return 0;
}

int
sy_balance_prepare(struct sy_conf *conf, unsigned nworkers)
{
    if (nworkers == 0)
        return -1;
    for (size_t i = 0; i < conf->npools; i++) {
        if (pool_prepare(&conf->pools[i], nworkers) == -1)
            return -1;
    }
    return 0;
}

bool
sy_instance_usable(const struct sy_instance *inst, int64_t now_ms)
{
    return sy_live_usable(inst->live, now_ms);
}

/*
 * What one pick may choose from; panic drops health and ejection (never
 * drain: that is an operator's order). The
 * pick functions copy what they read into locals: the relaxed atomic
 * loads would otherwise make the compiler reload them on every turn.
 */
struct pick_ctx {
    const struct sy_instance *inst;
    struct sy_pool_balance *state;
    size_t n;
    uint64_t tried;
    int64_t now_ms;
    bool panic;
};

static bool
candidate(const struct pick_ctx *ctx, size_t i)
{
    if (i < 64 && (ctx->tried >> i & 1) != 0)
        return false;
    if (ctx->panic)
        return !atomic_load_explicit(&ctx->inst[i].live->drained, memory_order_relaxed);
    return sy_instance_usable(&ctx->inst[i], ctx->now_ms);
}

/*
 * nginx's smooth weighted round robin: every candidate gains its weight,
 * the highest is picked and loses the total, which interleaves picks
 * (5,1,1 gives a a b a c a a) instead of sending bursts to one instance.
 */
static size_t
pick_round_robin(const struct pick_ctx *ctx)
{
    const struct pick_ctx c = *ctx;
    struct balance_slot *slots = c.state->slots;
    int64_t total = 0, best_weight = 0;
    size_t best = NO_PICK;

    for (size_t i = 0; i < c.n; i++) {
        int64_t current;

        if (!candidate(&c, i))
            continue;
        current = slots[i].current_weight + c.inst[i].weight;
        slots[i].current_weight = current;
        total += c.inst[i].weight;
        if (best == NO_PICK || current > best_weight) {
            best = i;
            best_weight = current;
        }
    }
    if (best != NO_PICK)
        slots[best].current_weight -= total;
    return best;
}

/*
 * Lowest in_flight / weight, compared cross-multiplied. The scan starts
 * after the last pick, so instances with equal load take turns.
 */
static size_t
pick_least_conn(const struct pick_ctx *ctx)
{
    const struct pick_ctx c = *ctx;
    const struct balance_slot *slots = c.state->slots;
    size_t i = c.state->next < c.n ? c.state->next : 0;
    uint64_t best_load = 0, best_weight = 1;
    size_t best = NO_PICK;

    for (size_t k = 0; k < c.n; k++, i = i + 1 < c.n ? i + 1 : 0) {
        uint64_t load = atomic_load_explicit(&slots[i].in_flight, memory_order_relaxed);
        uint64_t weight = (uint64_t)c.inst[i].weight;

        if (!candidate(&c, i))
            continue;
        if (best == NO_PICK || load * best_weight < best_load * weight) {
            best = i;
            best_load = load;
            best_weight = weight;
        }
    }
    if (best != NO_PICK)
        c.state->next = best + 1;
    return best;
}

/*
 * Rendezvous (highest random weight) hashing: every instance draws a
 * number from the (instance, client) pair and the highest wins, so an
 * instance that leaves takes only its own clients with it. Weighted, the
 * score is -weight / ln(u) with u uniform in (0, 1); with equal weights
 * that orders like u, so the raw hash serves without a logarithm.
 */
static size_t
pick_ip_hash(const struct pick_ctx *ctx, uint32_t client_hash)
{
    const struct pick_ctx c = *ctx;
    const struct balance_slot *slots = c.state->slots;
    bool equal = c.state->equal_weights;
    double score, best_score = 0.0;
    size_t best = NO_PICK;

    for (size_t i = 0; i < c.n; i++) {
        uint64_t h;

        if (!candidate(&c, i))
            continue;
        h = mix64((uint64_t)slots[i].id_hash << 32 | client_hash);
        /* the top 53 bits, offset by half a step so that u is never 0 or 1 */
        score = equal ? (double)(h >> 11)
                      : -c.inst[i].weight / log(((double)(h >> 11) + 0.5) * 0x1p-53);
        if (best == NO_PICK || score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}

static size_t
pick_with(enum sy_balance balance, const struct pick_ctx *ctx, uint32_t client_hash)
{
    switch (balance) {
    case SY_BALANCE_LEAST_CONN:
        return pick_least_conn(ctx);
    case SY_BALANCE_IP_HASH:
        return pick_ip_hash(ctx, client_hash);
    case SY_BALANCE_ROUND_ROBIN:
    default:
        return pick_round_robin(ctx);
    }
}

/* One writer (the worker): a plain load and store, no locked instruction. */
static void
add_in_flight(struct balance_slot *slot, int delta)
{
    uint32_t v = atomic_load_explicit(&slot->in_flight, memory_order_relaxed);
    atomic_store_explicit(&slot->in_flight, v + (uint32_t)delta, memory_order_relaxed);
}

struct sy_instance *
sy_balance_pick(struct sy_pool *pool, unsigned worker, uint64_t tried,
                uint32_t client_hash, int64_t now_ms, bool *panic)
{
    struct pick_ctx ctx = {
        .inst = pool->instances,
        .state = worker_state(pool, worker),
        .n = pool->ninstances,
        .tried = tried,
        .now_ms = now_ms,
        .panic = false,
    };
    size_t i = pick_with(pool->balance, &ctx, client_hash);

    if (i == NO_PICK) {
        /*
         * Panic mode (as Envoy's): with no usable instance in the whole
         * pool, health is likely what is wrong, so serve from all of them.
         * When usable ones exist but this request tried them, give up.
         */
        for (size_t k = 0; k < pool->ninstances; k++)
            if (sy_instance_usable(&pool->instances[k], now_ms))
                return NULL;
        ctx.panic = true;
        i = pick_with(pool->balance, &ctx, client_hash);
        if (i == NO_PICK)
            return NULL;
        if (panic)
            *panic = true;
    }
    add_in_flight(&ctx.state->slots[i], 1);
    return &pool->instances[i];
}

void
sy_balance_done(struct sy_pool *pool, unsigned worker, const struct sy_instance *inst)
{
    struct sy_pool_balance *state = worker_state(pool, worker);

    assert(inst->index < pool->ninstances && &pool->instances[inst->index] == inst);
    struct balance_slot *slot = &state->slots[inst->index];
    assert(atomic_load_explicit(&slot->in_flight, memory_order_relaxed) > 0);
    /* an unmatched done must not wrap the count and starve the instance */
    if (atomic_load_explicit(&slot->in_flight, memory_order_relaxed) > 0)
        add_in_flight(slot, -1);
}

unsigned
sy_balance_in_flight(const struct sy_pool *pool, const struct sy_instance *inst)
{
    const struct sy_pool_balance *first = pool->balance_state;
    unsigned n = 0;

    if (!first || inst->index >= first->ninstances)
        return 0;
    for (unsigned w = 0; w < first->nworkers; w++)
        n += atomic_load_explicit(&worker_state(pool, w)->slots[inst->index].in_flight,
                                  memory_order_relaxed);
    return n;
}
