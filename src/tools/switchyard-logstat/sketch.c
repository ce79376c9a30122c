/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sketch.c: the top-K table (Space-Saving) behind every "top N" and "by
 * client" figure: entries that never move, a hash index over them, and a
 * min-heap of their ids on weight so that the key to evict is at the root.
 * Keys come from the logs, that is from clients: the index hashes them with
 * SipHash under a random key, so a crafted log cannot pile its keys into
 * one chain.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "logstat.h"

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fputs(LS_NAME ": out of memory\n", stderr);
        exit(1);
    }
    return p;
}

void ls_table_init(struct ls_table *t, size_t cap, const struct sy_sipkey *hashkey)
{
    memset(t, 0, sizeof(*t));
    t->cap = cap ? cap : 1;
    t->hashkey = hashkey;
}

void ls_table_free(struct ls_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->entries[i].key);
        free(t->entries[i].distinct);
    }
    free(t->entries);
    free(t->heap);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

uint64_t ls_table_hash(const struct ls_table *t, const char *key, size_t len)
{
    return sy_siphash13(t->hashkey, key, len < LS_KEY_MAX ? len : LS_KEY_MAX);
}

/* ---- the heap ---- */

#define WEIGHT(t, i) ((t)->entries[(t)->heap[i]].weight)

static void heap_put(struct ls_table *t, size_t i, uint32_t id)
{
    t->heap[i] = id;
    t->entries[id].heap_pos = (uint32_t)i;
}

static void sift_down(struct ls_table *t, size_t i)
{
    uint32_t id = t->heap[i];
    uint64_t w = t->entries[id].weight;

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= t->n)
            break;
        if (child + 1 < t->n && WEIGHT(t, child + 1) < WEIGHT(t, child))
            child++;
        if (WEIGHT(t, child) >= w)
            break;
        heap_put(t, i, t->heap[child]);
        i = child;
    }
    heap_put(t, i, id);
}

/* The heap is only needed once the table is full (to find the key to
 * evict): a table that never fills, most of them, never pays for it. */
static void heapify(struct ls_table *t)
{
    for (size_t i = t->n / 2; i-- > 0;)
        sift_down(t, i);
}

/* ---- the index ---- */

/* A slot: the entry id + 1 in the low half (0: empty), the hash's high half
 * above it, so that a probe past other keys rarely touches their entries. */
#define SLOT(id, hash) (((uint64_t)(id) + 1) | ((hash) & 0xffffffff00000000ull))
#define SLOT_ID(s) ((uint32_t)(s) - 1)

/* The slot holding key, or the empty slot where it would go. */
static size_t slot_of(const struct ls_table *t, const char *key, size_t len, uint64_t hash)
{
    size_t mask = t->nslots - 1;
    uint64_t tag = hash & 0xffffffff00000000ull;

    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        uint64_t s = t->slots[i];
        if (s == 0)
            return i;
        if ((s & 0xffffffff00000000ull) != tag)
            continue;
        const struct ls_entry *e = &t->entries[SLOT_ID(s)];
        if (e->hash == hash && e->keylen == len && memcmp(e->key, key, len) == 0)
            return i;
    }
}

static void index_grow(struct ls_table *t)
{
    size_t old = t->nslots;
    uint64_t *old_slots = t->slots;

    t->nslots = old ? old * 2 : 64;
    t->slots = calloc(t->nslots, sizeof(*t->slots));
    if (!t->slots) {
        fputs(LS_NAME ": out of memory\n", stderr);
        exit(1);
    }
    for (size_t i = 0; i < old; i++) {
        if (!old_slots[i])
            continue;
        const struct ls_entry *e = &t->entries[SLOT_ID(old_slots[i])];
        size_t mask = t->nslots - 1, j = e->hash & mask;
        while (t->slots[j])
            j = (j + 1) & mask;
        t->slots[j] = old_slots[i];
    }
    free(old_slots);
}

/* Linear probing's deletion: later entries of the run move back into the
 * hole when their home slot allows, so no tombstones pile up. */
static void index_remove(struct ls_table *t, size_t hole)
{
    size_t mask = t->nslots - 1;

    for (size_t j = (hole + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
        size_t home = t->entries[SLOT_ID(t->slots[j])].hash & mask;
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole] = 0;
}

static void set_key(struct ls_entry *e, const char *key, size_t len, uint64_t hash)
{
    e->key = xrealloc(e->key, len + 1);
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    e->keylen = (uint32_t)len;
    e->hash = hash;
}

struct ls_entry *ls_table_find(const struct ls_table *t, const char *key, size_t len,
                               uint64_t hash)
{
    if (len > LS_KEY_MAX)
        len = LS_KEY_MAX;
    if (!t->nslots)
        return NULL;
    uint64_t s = t->slots[slot_of(t, key, len, hash)];
    return s ? &t->entries[SLOT_ID(s)] : NULL;
}

struct ls_entry *ls_table_add(struct ls_table *t, const char *key, size_t len, uint64_t hash,
                              uint64_t weight)
{
    if (len > LS_KEY_MAX)
        len = LS_KEY_MAX;
    if (t->n * 2 >= t->nslots)
        index_grow(t);
    t->total += weight;

    size_t slot = slot_of(t, key, len, hash);
    struct ls_entry *e;
    if (t->slots[slot]) {
        e = &t->entries[SLOT_ID(t->slots[slot])];
        e->weight += weight;
        if (t->n == t->cap)
            sift_down(t, e->heap_pos);
        return e;
    }
    if (t->n < t->cap) {
        uint32_t id = (uint32_t)t->n++;
        if (id == t->alloc) {   /* doubling: a table that stays small stays small */
            t->alloc = t->alloc ? t->alloc * 2 : 16;
            if (t->alloc > t->cap)
                t->alloc = t->cap;
            t->entries = xrealloc(t->entries, t->alloc * sizeof(*t->entries));
            t->heap = xrealloc(t->heap, t->alloc * sizeof(*t->heap));
        }
        e = &t->entries[id];
        memset(e, 0, sizeof(*e));
        set_key(e, key, len, hash);
        e->weight = weight;
        t->slots[slot] = SLOT(id, hash);
        t->heap[id] = id;
        e->heap_pos = id;
        if (t->n == t->cap)
            heapify(t);     /* from now on a key may be evicted */
        return e;
    }
    /* Full: the least weighty key gives its place and its weight. */
    uint32_t id = t->heap[0];
    e = &t->entries[id];
    index_remove(t, slot_of(t, e->key, e->keylen, e->hash));
    uint64_t inherited = e->weight;
    char *keep = e->key;
    uint64_t *distinct = e->distinct;
    memset(e, 0, sizeof(*e));
    e->key = keep;
    e->distinct = distinct;
    if (distinct)
        memset(distinct, 0, LS_DISTINCT_BITS / 8);
    set_key(e, key, len, hash);
    e->weight = inherited + weight;
    e->overcount = inherited;
    t->slots[slot_of(t, key, len, hash)] = SLOT(id, hash);
    heap_put(t, 0, id);
    sift_down(t, 0);
    t->evictions++;
    return e;
}

struct ls_entry **ls_table_sorted(const struct ls_table *t,
                                  int (*cmp)(const void *, const void *))
{
    struct ls_entry **v = xrealloc(NULL, (t->n ? t->n : 1) * sizeof(*v));

    for (size_t i = 0; i < t->n; i++)
        v[i] = &t->entries[i];
    qsort(v, t->n, sizeof(*v), cmp);
    return v;
}

void ls_entry_mark_distinct(struct ls_entry *e, uint64_t hash)
{
    if (!e->distinct) {
        e->distinct = calloc(LS_DISTINCT_BITS / 64, sizeof(uint64_t));
        if (!e->distinct)
            return;
    }
    unsigned bit = (unsigned)((hash >> 32) % LS_DISTINCT_BITS);
    e->distinct[bit / 64] |= 1ull << (bit % 64);
}

/* Linear counting (Whang et al., 1990): n = -m ln(empty / m); within a few
 * per cent up to about m distinct values, then it saturates at m ln m. */
uint64_t ls_entry_distinct(const struct ls_entry *e)
{
    unsigned set = 0;

    if (!e->distinct)
        return 0;
    for (unsigned i = 0; i < LS_DISTINCT_BITS / 64; i++)
        set += (unsigned)__builtin_popcountll(e->distinct[i]);
    unsigned empty = LS_DISTINCT_BITS - set;
    if (empty == 0)
        empty = 1;
    return (uint64_t)llround(-(double)LS_DISTINCT_BITS * log((double)empty / LS_DISTINCT_BITS));
}
