/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * buf.c: the per-worker buffer freelist. Buffers of a capacity other than
 * the pool's current one (after a reload raised max_header_bytes) are
 * freed on return instead of cached.
 */
#include <stdlib.h>

#include "buf.h"

void sy_buf_pool_init(struct sy_buf_pool *pool, uint32_t cap, size_t max_free)
{
    pool->free = NULL;
    pool->nfree = 0;
    pool->max_free = max_free;
    pool->cap = cap;
    pool->outstanding = 0;
}

static void drain(struct sy_buf_pool *pool)
{
    while (pool->free) {
        struct sy_buf *b = pool->free;
        pool->free = b->next;
        free(b);
    }
    pool->nfree = 0;
}

void sy_buf_pool_set_cap(struct sy_buf_pool *pool, uint32_t cap)
{
    if (cap == pool->cap)
        return;
    drain(pool);
    pool->cap = cap;
}

void sy_buf_pool_fini(struct sy_buf_pool *pool)
{
    drain(pool);
}

struct sy_buf *sy_buf_get(struct sy_buf_pool *pool)
{
    struct sy_buf *b = pool->free;

    if (b) {
        pool->free = b->next;
        pool->nfree--;
    } else {
        b = malloc(sizeof(*b) + pool->cap);
        if (!b)
            return NULL;
        b->cap = pool->cap;
    }
    b->next = NULL;
    b->start = 0;
    b->end = 0;
    pool->outstanding++;
    return b;
}

void sy_buf_put(struct sy_buf_pool *pool, struct sy_buf *buf)
{
    if (!buf)
        return;
    pool->outstanding--;
    if (buf->cap != pool->cap || pool->nfree >= pool->max_free) {
        free(buf);
        return;
    }
    buf->next = pool->free;
    pool->free = buf;
    pool->nfree++;
}
