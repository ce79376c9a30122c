/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * metrics.c: the metrics registry (see metrics.h): series interned on the
 * main thread, per-worker storage recorded without lock or atomic
 * read-modify-write, the main thread's merged totals and window rings.
 * The one thing to know: a worker publishes each finished sample by a
 * release store of its series' request counter, so the main thread may
 * skip re-merging a series whose counters, summed over workers, have not
 * moved since it last looked; idle series cost a scrape almost nothing.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "metrics.h"
#include "process.h"

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release

/* ---- the window buckets: SY_HIST_SLOT_GROUP histogram buckets each ---- */

#define NCOARSE SY_HIST_SLOT_BUCKETS
_Static_assert((SY_HIST_BUCKETS - 102) % SY_HIST_SLOT_GROUP == 0,
               "window buckets tile the histogram between 100 us and the top bucket");

/* The largest value a window bucket holds (UINT64_MAX for the top one). */
static uint64_t coarse_edge(size_t c)
{
    if (c <= 100)
        return c;
    if (c == NCOARSE - 1)
        return UINT64_MAX;
    return sy_hist_bucket_max(101 + (c - 101) * SY_HIST_SLOT_GROUP + SY_HIST_SLOT_GROUP - 1);
}

/* The histogram bucket that stands for a window bucket: its middle one. */
static size_t coarse_middle(size_t c)
{
    if (c <= 100)
        return c;
    if (c == NCOARSE - 1)
        return SY_HIST_BUCKETS - 1;
    return 101 + (c - 101) * SY_HIST_SLOT_GROUP + SY_HIST_SLOT_GROUP / 2;
}

const uint64_t sy_metrics_bounds_us[SY_METRICS_NBOUNDS] = {
    5000, 10000, 25000, 50000, 100000, 200000, 300000, 500000,
    1000000, 2000000, 2500000, 5000000, 10000000,
};

/* ---- worker storage ---- */

#define PAGE_IDS    256
#define NPAGES      (SY_METRICS_MAX_SERIES / PAGE_IDS)
#define ROUTE_CODES 8

/* A histogram series on one worker. requests is stored last, with release. */
struct hist_entry {
    _Atomic uint64_t requests;      /* finished requests (responses for an upstream) */
    _Atomic uint64_t errors;
    struct sy_hist hist;
};

/*
 * A route's counters by status: the worker appends a status, then
 * publishes it by a release store of n; a route that sees more than
 * ROUTE_CODES statuses chains another block.
 */
struct route_entry {
    _Atomic uint32_t n;
    uint16_t status[ROUTE_CODES];
    _Atomic uint64_t count[ROUTE_CODES];
    _Atomic(struct route_entry *) more;
};

struct page {
    _Atomic(void *) entry[PAGE_IDS];
};

struct dir {
    _Atomic(struct page *) page[NPAGES];
};

struct sy_worker_metrics {
    struct dir dir[SY_METRICS_NKINDS];
    unsigned slot;                  /* in workers[] */
};

static _Atomic(struct sy_worker_metrics *) workers[SY_METRICS_MAX_WORKERS];
static atomic_uint workers_end;    /* every storage sits below this index */

static inline void bump(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, RELAXED) + n, RELAXED);
}

struct sy_worker_metrics *sy_metrics_worker_new(void)
{
    struct sy_worker_metrics *wm = calloc(1, sizeof(*wm));

    for (unsigned i = 0; wm && i < SY_METRICS_MAX_WORKERS; i++) {
        struct sy_worker_metrics *none = NULL;
        if (!atomic_compare_exchange_strong(&workers[i], &none, wm))
            continue;
        wm->slot = i;
        unsigned end = atomic_load(&workers_end);
        while (end < i + 1 && !atomic_compare_exchange_weak(&workers_end, &end, i + 1))
            ;
        return wm;
    }
    free(wm);
    return NULL;
}

static void free_route_chain(struct route_entry *r)
{
    while (r) {
        struct route_entry *next = atomic_load_explicit(&r->more, RELAXED);
        free(r);
        r = next;
    }
}

void sy_metrics_worker_free(struct sy_worker_metrics *wm)
{
    if (!wm)
        return;
    atomic_store(&workers[wm->slot], NULL);
    for (int k = 0; k < SY_METRICS_NKINDS; k++) {
        for (size_t p = 0; p < NPAGES; p++) {
            struct page *page = atomic_load_explicit(&wm->dir[k].page[p], RELAXED);
            for (size_t i = 0; page && i < PAGE_IDS; i++) {
                void *e = atomic_load_explicit(&page->entry[i], RELAXED);
                if (k == SY_METRICS_ROUTE)
                    free_route_chain(e);
                else
                    free(e);
            }
            free(page);
        }
    }
    free(wm);
}

/* The first sample of a series on this worker: the only allocation. */
static __attribute__((noinline)) void *entry_new(struct dir *d, uint32_t id, size_t size)
{
    struct page *p = atomic_load_explicit(&d->page[id / PAGE_IDS], RELAXED);

    if (!p) {
        if (!(p = calloc(1, sizeof(*p))))
            return NULL;
        atomic_store_explicit(&d->page[id / PAGE_IDS], p, RELEASE);
    }
    void *e = calloc(1, size);         /* zero: an empty histogram, no status yet */
    if (e)
        atomic_store_explicit(&p->entry[id % PAGE_IDS], e, RELEASE);
    return e;
}

/* Worker thread: its own stores, so relaxed loads see them. */
static inline void *entry_get(struct dir *d, uint32_t id, size_t size)
{
    if (id >= SY_METRICS_MAX_SERIES)
        return NULL;
    struct page *p = atomic_load_explicit(&d->page[id / PAGE_IDS], RELAXED);
    void *e = p ? atomic_load_explicit(&p->entry[id % PAGE_IDS], RELAXED) : NULL;
    return e ? e : entry_new(d, id, size);
}

/* Main thread: what a worker has published for id, or NULL. */
static const void *entry_peek(const struct sy_worker_metrics *wm, enum sy_metrics_kind kind,
                              uint32_t id)
{
    const struct page *p = atomic_load_explicit(&wm->dir[kind].page[id / PAGE_IDS], ACQUIRE);

    return p ? atomic_load_explicit(&p->entry[id % PAGE_IDS], ACQUIRE) : NULL;
}

static void route_count(struct route_entry *r, int status)
{
    uint16_t code = status >= 0 && status <= SY_METRICS_MAX_STATUS ? (uint16_t)status : 0;

    for (;;) {
        uint32_t n = atomic_load_explicit(&r->n, RELAXED);
        for (uint32_t i = 0; i < n; i++) {
            if (r->status[i] == code) {
                bump(&r->count[i], 1);
                return;
            }
        }
        if (n < ROUTE_CODES) {
            r->status[n] = code;
            atomic_store_explicit(&r->count[n], 1, RELAXED);
            atomic_store_explicit(&r->n, n + 1, RELEASE);
            return;
        }
        struct route_entry *next = atomic_load_explicit(&r->more, RELAXED);
        if (!next) {
            if (!(next = calloc(1, sizeof(*next))))
                return;
            atomic_store_explicit(&r->more, next, RELEASE);
        }
        r = next;
    }
}

static inline void hist_entry_record(struct hist_entry *h, uint64_t value_us, bool timed,
                                     bool error)
{
    if (timed)
        sy_hist_record(&h->hist, value_us);
    if (error)
        bump(&h->errors, 1);
    atomic_store_explicit(&h->requests, atomic_load_explicit(&h->requests, RELAXED) + 1,
                          RELEASE);
}

void sy_metrics_record_request(struct sy_worker_metrics *wm, uint32_t service_slot,
                               uint32_t route, int status, uint64_t duration_us, bool error)
{
    if (!wm)
        return;
    struct hist_entry *h = entry_get(&wm->dir[SY_METRICS_SERVICE_SLOT], service_slot,
                                     sizeof(*h));
    if (h)
        hist_entry_record(h, duration_us, status != 101, error);
    struct route_entry *r = entry_get(&wm->dir[SY_METRICS_ROUTE], route, sizeof(*r));
    if (r)
        route_count(r, status);
}

void sy_metrics_count_event(struct sy_worker_metrics *wm, uint32_t counter, uint64_t n)
{
    _Atomic uint64_t *c = wm ? entry_get(&wm->dir[SY_METRICS_COUNTER], counter, sizeof(*c))
                             : NULL;

    if (c)
        bump(c, n);
}

void sy_metrics_record_upstream(struct sy_worker_metrics *wm, uint32_t upstream,
                                uint64_t response_us, bool error)
{
    if (!wm)
        return;
    struct hist_entry *h = entry_get(&wm->dir[SY_METRICS_UPSTREAM], upstream, sizeof(*h));
    if (h)
        hist_entry_record(h, response_us, true, error);
}

/* ---- the registry (main thread) ---- */

/* Merged over the workers, cumulative since start. */
struct totals {
    uint64_t requests, errors, sum_us;
    uint64_t buckets[NCOARSE];
};

/* A totals at one time, for windows. Buckets are kept modulo 2^32: a
 * difference is right while a bucket gains less than 2^32 in 5 minutes. */
struct snap {
    int64_t from_ms, t_ms;      /* the value held from from_ms to t_ms at least */
    uint64_t requests, errors, sum_us;
    uint32_t buckets[NCOARSE];
};

/* Snapshots at three spacings: 1 s for the last 15 s, 5 s to 65 s, 20 s to 300 s. */
#define WINDOW_MAX_MS   300000
#define RING_KEEP_MS    (WINDOW_MAX_MS + 20000)     /* idle this long: the ring goes */

#define NTIERS      3
#define RING_SNAPS  (16 + 14 + 16)      /* the tiers' n together */
static const struct { unsigned n; int64_t gap_ms; } tier_spec[NTIERS] = {
    {16, 1000}, {14, 5000}, {16, 20000},
};

struct tier {
    unsigned first, n;          /* ring of tier_spec[].n snapshots in snaps[] */
    unsigned head, count;
    int64_t last_ms;
};

struct ring {
    struct tier tier[NTIERS];
    struct snap snaps[RING_SNAPS];
};

struct series {
    const char *const *labels;  /* one allocation: pointers, then the strings */
    struct totals *tot;         /* NULL until it has samples */
    struct ring *ring;          /* NULL when idle for RING_KEEP_MS */
    uint64_t seen;              /* sum of the workers' request counters merged */
    int64_t changed_ms;         /* the totals hold this value since then */
    int64_t checked_ms;         /* ... until then at least */
};

struct kind_reg {
    struct series *v;
    uint32_t n, cap;
    uint32_t *table;            /* open addressing: id + 1, 0 empty */
    size_t table_cap;
    unsigned nlabels;
};

static struct {
    bool ready;
    int64_t start_ms;
    sy_metrics_clock_fn clock;
    struct kind_reg kind[SY_METRICS_NKINDS];
    size_t bound_coarse[SY_METRICS_NBOUNDS];   /* the window bucket ending at each bound */
    struct event *timer;
} reg;

static const struct totals zero_totals;

static int64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(void)
{
    return reg.clock ? reg.clock() : monotonic_ms();
}

void sy_metrics_set_clock(sy_metrics_clock_fn clock)
{
    reg.clock = clock;
}

static uint64_t hash_labels(const char *const *labels, unsigned n)
{
    uint64_t h = 14695981039346656037ull;          /* FNV-1a, each label and its NUL */

    for (unsigned i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)labels[i];
        do {
            h = (h ^ *p) * 1099511628211ull;
        } while (*p++);
    }
    return h;
}

static bool same_labels(const char *const *a, const char *const *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static const char *const *copy_labels(const char *const *labels, unsigned n)
{
    size_t size = (n + 1) * sizeof(char *);

    for (unsigned i = 0; i < n; i++)
        size += strlen(labels[i]) + 1;
    char **copy = malloc(size);
    if (!copy)
        return NULL;
    char *p = (char *)(copy + n + 1);
    for (unsigned i = 0; i < n; i++) {
        size_t len = strlen(labels[i]) + 1;
        copy[i] = memcpy(p, labels[i], len);
        p += len;
    }
    copy[n] = NULL;
    return (const char *const *)copy;
}

static int table_grow(struct kind_reg *k)
{
    size_t cap = k->table_cap ? k->table_cap * 2 : 64;
    uint32_t *table = calloc(cap, sizeof(*table));

    if (!table)
        return -1;
    for (uint32_t id = 0; id < k->n; id++) {
        size_t i = hash_labels(k->v[id].labels, k->nlabels) & (cap - 1);
        while (table[i])
            i = (i + 1) & (cap - 1);
        table[i] = id + 1;
    }
    free(k->table);
    k->table = table;
    k->table_cap = cap;
    return 0;
}

static uint32_t intern(enum sy_metrics_kind kind, const char *const *labels)
{
    struct kind_reg *k = &reg.kind[kind];
    uint64_t h = hash_labels(labels, k->nlabels);

    for (size_t i = h & (k->table_cap - 1); k->table_cap && k->table[i];
         i = (i + 1) & (k->table_cap - 1))
        if (same_labels(k->v[k->table[i] - 1].labels, labels, k->nlabels))
            return k->table[i] - 1;
    if (k->n >= SY_METRICS_MAX_SERIES) {
        sy_log_error(SY_LOG_WARN, "metrics", "more than %u series of one kind: \"%s\" "
                     "is not measured", SY_METRICS_MAX_SERIES, labels[0]);
        return SY_METRICS_NONE;
    }
    if ((size_t)(k->n + 1) * 2 > k->table_cap && table_grow(k) < 0)
        return SY_METRICS_NONE;
    if (k->n == k->cap) {
        uint32_t cap = k->cap ? k->cap * 2 : 64;
        struct series *v = realloc(k->v, cap * sizeof(*v));
        if (!v)
            return SY_METRICS_NONE;
        k->v = v;
        k->cap = cap;
    }
    const char *const *copy = copy_labels(labels, k->nlabels);
    if (!copy)
        return SY_METRICS_NONE;
    /* Zero until now, and since the process started: that is its first value. */
    k->v[k->n] = (struct series){.labels = copy, .changed_ms = reg.start_ms,
                                 .checked_ms = now_ms()};
    size_t i = h & (k->table_cap - 1);
    while (k->table[i])
        i = (i + 1) & (k->table_cap - 1);
    k->table[i] = k->n + 1;
    return k->n++;
}

static void registry_init(void)
{
    static const char *const unrouted[] = {"", "", ""};

    if (reg.ready)
        return;
    reg.ready = true;
    reg.start_ms = now_ms();
    reg.kind[SY_METRICS_SERVICE_SLOT].nlabels = 2;
    reg.kind[SY_METRICS_ROUTE].nlabels = 3;
    reg.kind[SY_METRICS_UPSTREAM].nlabels = 2;
    reg.kind[SY_METRICS_COUNTER].nlabels = 3;
    for (size_t b = 0, c = 0; b < SY_METRICS_NBOUNDS; b++) {
        while (c + 1 < NCOARSE && coarse_edge(c + 1) <= sy_metrics_bounds_us[b])
            c++;
        reg.bound_coarse[b] = c;
    }
    intern(SY_METRICS_ROUTE, unrouted);     /* SY_METRICS_UNROUTED */
}

uint32_t sy_metrics_service_slot(const char *service, const char *slot)
{
    const char *const labels[] = {service, slot};

    registry_init();
    return intern(SY_METRICS_SERVICE_SLOT, labels);
}

uint32_t sy_metrics_route(const char *service, const char *slot, const char *route)
{
    const char *const labels[] = {service, slot, route};

    registry_init();
    return intern(SY_METRICS_ROUTE, labels);
}

uint32_t sy_metrics_upstream(const char *pool, const char *instance)
{
    const char *const labels[] = {pool, instance};

    registry_init();
    return intern(SY_METRICS_UPSTREAM, labels);
}

uint32_t sy_metrics_counter(const char *family, const char *a, const char *b)
{
    const char *const labels[] = {family, a ? a : "", b ? b : ""};

    registry_init();
    return intern(SY_METRICS_COUNTER, labels);
}

uint64_t sy_metrics_counter_value(uint32_t counter)
{
    unsigned end = atomic_load(&workers_end);
    uint64_t sum = 0;

    registry_init();
    for (unsigned w = 0; counter < reg.kind[SY_METRICS_COUNTER].n && w < end; w++) {
        const struct sy_worker_metrics *wm = atomic_load_explicit(&workers[w], ACQUIRE);
        const _Atomic uint64_t *c = wm ? entry_peek(wm, SY_METRICS_COUNTER, counter) : NULL;
        if (c)
            sum += atomic_load_explicit(c, RELAXED);
    }
    return sum;
}

uint32_t sy_metrics_count(enum sy_metrics_kind kind)
{
    registry_init();
    return reg.kind[kind].n;
}

const char *const *sy_metrics_labels(enum sy_metrics_kind kind, uint32_t id)
{
    registry_init();
    return id < reg.kind[kind].n ? reg.kind[kind].v[id].labels : NULL;
}

/* ---- merging (main thread) ---- */

static void merge_hist(struct totals *t, const struct hist_entry *e)
{
    const _Atomic uint64_t *b = e->hist.buckets;
    size_t i = 0, c = 101;

    for (; i <= 100; i++)
        t->buckets[i] += atomic_load_explicit(&b[i], RELAXED);
    for (; i + 1 < SY_HIST_BUCKETS; c++) {
        uint64_t n = 0;
        for (size_t end = i + SY_HIST_SLOT_GROUP; i < end; i++)
            n += atomic_load_explicit(&b[i], RELAXED);
        t->buckets[c] += n;
    }
    t->buckets[c] += atomic_load_explicit(&b[i], RELAXED);
    t->sum_us += sy_hist_sum_us(&e->hist);
    t->errors += atomic_load_explicit(&e->errors, RELAXED);
}

static void ring_start(struct series *s);

/*
 * The series' totals now. The workers' request counters are read first
 * (acquire: each one's samples are visible with it); when their sum has
 * not moved, nothing was recorded since the last merge.
 */
static const struct totals *refresh(struct series *s, enum sy_metrics_kind kind, uint32_t id,
                                    int64_t now)
{
    unsigned end = atomic_load(&workers_end);
    uint64_t seen = 0;

    for (unsigned w = 0; w < end; w++) {
        const struct sy_worker_metrics *wm = atomic_load_explicit(&workers[w], ACQUIRE);
        const struct hist_entry *e = wm ? entry_peek(wm, kind, id) : NULL;
        if (e)
            seen += atomic_load_explicit(&e->requests, ACQUIRE);
    }
    if (seen == s->seen) {
        s->checked_ms = now;
        return s->tot ? s->tot : &zero_totals;
    }
    if (!s->tot && !(s->tot = calloc(1, sizeof(*s->tot))))
        return &zero_totals;
    if (!s->ring)
        ring_start(s);          /* keeps the value that held until now */
    memset(s->tot, 0, sizeof(*s->tot));
    for (unsigned w = 0; w < end; w++) {
        const struct sy_worker_metrics *wm = atomic_load_explicit(&workers[w], ACQUIRE);
        const struct hist_entry *e = wm ? entry_peek(wm, kind, id) : NULL;
        if (!e)
            continue;
        s->tot->requests += atomic_load_explicit(&e->requests, ACQUIRE);
        merge_hist(s->tot, e);
    }
    s->seen = seen;
    s->changed_ms = s->checked_ms = now;
    return s->tot;
}

static struct series *hist_series(enum sy_metrics_kind kind, uint32_t id)
{
    registry_init();
    if (kind == SY_METRICS_ROUTE || id >= reg.kind[kind].n)
        return NULL;
    return &reg.kind[kind].v[id];
}

void sy_metrics_histogram(enum sy_metrics_kind kind, uint32_t id, struct sy_metrics_buckets *out)
{
    struct series *s = hist_series(kind, id);
    const struct totals *t = s ? refresh(s, kind, id, now_ms()) : &zero_totals;
    uint64_t n = 0;

    for (size_t c = 0, b = 0; c < NCOARSE; c++) {
        n += t->buckets[c];
        for (; b < SY_METRICS_NBOUNDS && reg.bound_coarse[b] == c; b++)
            out->le[b] = n;
    }
    out->le[SY_METRICS_NBOUNDS] = n;
    out->sum_us = t->sum_us;
}

size_t sy_metrics_statuses(uint32_t route, struct sy_metrics_status out[SY_METRICS_MAX_STATUS + 1])
{
    static uint64_t counts[SY_METRICS_MAX_STATUS + 1];
    unsigned end = atomic_load(&workers_end);
    size_t n = 0;

    registry_init();
    if (route >= reg.kind[SY_METRICS_ROUTE].n)
        return 0;
    for (unsigned w = 0; w < end; w++) {
        const struct sy_worker_metrics *wm = atomic_load_explicit(&workers[w], ACQUIRE);
        const struct route_entry *r = wm ? entry_peek(wm, SY_METRICS_ROUTE, route) : NULL;
        for (; r; r = atomic_load_explicit(&r->more, ACQUIRE)) {
            uint32_t codes = atomic_load_explicit(&r->n, ACQUIRE);
            for (uint32_t i = 0; i < codes; i++) {
                uint16_t code = r->status[i];
                if (counts[code] == 0) {
                    /* insertion sort: a route sees a handful of statuses */
                    size_t j = n++;
                    for (; j > 0 && out[j - 1].status > code; j--)
                        out[j] = out[j - 1];
                    out[j].status = code;
                }
                /* a count is at least 1 once published, so 0 means unseen */
                counts[code] += atomic_load_explicit(&r->count[i], RELAXED);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        out[i].count = counts[out[i].status];
        counts[out[i].status] = 0;
    }
    return n;
}

/* ---- windows (main thread) ---- */

static void snap_take(struct snap *sn, const struct totals *t, int64_t from_ms, int64_t t_ms)
{
    sn->from_ms = from_ms;
    sn->t_ms = t_ms;
    sn->requests = t->requests;
    sn->errors = t->errors;
    sn->sum_us = t->sum_us;
    for (size_t c = 0; c < NCOARSE; c++)
        sn->buckets[c] = (uint32_t)t->buckets[c];
}

/* Into every tier whose spacing has passed since its last snapshot. */
static void ring_push(struct ring *r, const struct totals *t, int64_t from_ms, int64_t t_ms)
{
    for (int i = 0; i < NTIERS; i++) {
        struct tier *tr = &r->tier[i];
        if (tr->count > 0 && t_ms - tr->last_ms < tier_spec[i].gap_ms)
            continue;
        snap_take(&r->snaps[tr->first + tr->head], t, from_ms, t_ms);
        tr->head = (tr->head + 1) % tr->n;
        if (tr->count < tr->n)
            tr->count++;
        tr->last_ms = t_ms;
    }
}

/* A series wakes up: its ring starts with the value it held while idle. */
static void ring_start(struct series *s)
{
    if (!(s->ring = calloc(1, sizeof(*s->ring))))
        return;
    for (unsigned i = 0, first = 0; i < NTIERS; first += tier_spec[i++].n) {
        s->ring->tier[i].first = first;
        s->ring->tier[i].n = tier_spec[i].n;
    }
    ring_push(s->ring, s->tot ? s->tot : &zero_totals, s->changed_ms, s->checked_ms);
}

static void tick_kind(enum sy_metrics_kind kind, int64_t now)
{
    struct kind_reg *k = &reg.kind[kind];

    for (uint32_t id = 0; id < k->n; id++) {
        struct series *s = &k->v[id];
        const struct totals *t = refresh(s, kind, id, now);
        if (!s->ring)
            continue;
        if (now - s->changed_ms > RING_KEEP_MS) {
            free(s->ring);
            s->ring = NULL;
            continue;
        }
        ring_push(s->ring, t, s->changed_ms, now);
    }
}

void sy_metrics_tick(void)
{
    int64_t now = now_ms();

    registry_init();
    tick_kind(SY_METRICS_SERVICE_SLOT, now);
    tick_kind(SY_METRICS_UPSTREAM, now);
}

/*
 * The snapshot to start a window at target: the one whose value is known
 * at the latest time not after target (exact when target falls inside
 * [from_ms, t_ms]); when none reaches back so far, the oldest.
 */
static const struct snap *ring_find(const struct ring *r, int64_t target)
{
    const struct snap *best = NULL, *oldest = NULL;
    int64_t best_at = INT64_MIN;

    for (int i = 0; i < NTIERS; i++) {
        const struct tier *tr = &r->tier[i];
        for (unsigned j = 0; j < tr->count; j++) {
            const struct snap *sn = &r->snaps[tr->first + j];
            if (!oldest || sn->from_ms < oldest->from_ms)
                oldest = sn;
            int64_t at = sn->t_ms < target ? sn->t_ms : target;
            if (sn->from_ms <= target && at > best_at) {
                best = sn;
                best_at = at;
            }
        }
    }
    return best ? best : oldest;
}

static void window_fill(struct sy_metrics_window *out, const struct totals *t,
                        const struct snap *base)
{
    uint64_t n = 0;
    size_t top = 0;

    out->requests = t->requests - base->requests;
    out->errors = t->errors - base->errors;
    for (size_t c = 0; c < NCOARSE; c++) {
        uint32_t d = (uint32_t)t->buckets[c] - base->buckets[c];
        if (d == 0)
            continue;
        atomic_store_explicit(&out->hist.buckets[coarse_middle(c)], d, RELAXED);
        n += d;
        top = c;
    }
    atomic_store_explicit(&out->hist.count, n, RELAXED);
    atomic_store_explicit(&out->hist.sum_us, t->sum_us - base->sum_us, RELAXED);
    atomic_store_explicit(&out->hist.max_us, n ? coarse_edge(top) : 0, RELAXED);
}

static int64_t window(enum sy_metrics_kind kind, uint32_t id, int64_t span_ms,
                      struct sy_metrics_window *out)
{
    struct series *s = hist_series(kind, id);
    int64_t now = now_ms();

    memset(out, 0, sizeof(*out));       /* zero-filled: an empty histogram */
    span_ms = span_ms < 0 ? 0 : span_ms > WINDOW_MAX_MS ? WINDOW_MAX_MS : span_ms;
    int64_t target = now - span_ms;
    if (!s)
        return target >= reg.start_ms ? span_ms : now - reg.start_ms;
    const struct totals *t = refresh(s, kind, id, now);
    if (!s->ring) {
        /* unchanged since changed_ms, which is before target unless young */
        return target >= s->changed_ms ? span_ms : now - s->changed_ms;
    }
    const struct snap *base = ring_find(s->ring, target);
    window_fill(out, t, base);
    if (base->from_ms > target)
        return now - base->from_ms;
    return now - (base->t_ms < target ? base->t_ms : target);
}

int64_t sy_metrics_service_window(uint32_t service_slot, int64_t span_ms,
                                  struct sy_metrics_window *out)
{
    return window(SY_METRICS_SERVICE_SLOT, service_slot, span_ms, out);
}

int64_t sy_metrics_upstream_window(uint32_t upstream, int64_t span_ms,
                                   struct sy_metrics_window *out)
{
    return window(SY_METRICS_UPSTREAM, upstream, span_ms, out);
}

/* ---- the main-thread service ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    sy_metrics_tick();
}

static int metrics_start(struct event_base *base, struct sy_conf *conf, char *err,
                         size_t errlen)
{
    static const struct timeval second = {1, 0};
    (void)conf;

    registry_init();
    reg.timer = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    if (!reg.timer || event_add(reg.timer, &second) < 0) {
        snprintf(err, errlen, "metrics: cannot start the snapshot timer");
        return -1;
    }
    return 0;
}

static void metrics_reconfigure(struct sy_conf *conf)
{
    (void)conf;                 /* series are interned when a snapshot is prepared */
}

static void metrics_stop(void)
{
    if (reg.timer)
        event_free(reg.timer);
    reg.timer = NULL;
}

const struct sy_main_service sy_metrics_service = {
    .start = metrics_start,
    .reconfigure = metrics_reconfigure,
    .stop = metrics_stop,
};
