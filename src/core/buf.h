/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * buf.h: fixed-size I/O buffers from a per-worker freelist. A connection
 * holds a buffer only while it has bytes in flight, so an idle keep-alive
 * connection costs no buffer. Not thread-safe: one freelist per worker.
 */
#ifndef SY_BUF_H
#define SY_BUF_H

#include <stddef.h>
#include <stdint.h>

/* Room a buffer keeps for body bytes beyond the largest allowed head. */
#define SY_BUF_BODY_ROOM 4096

struct sy_buf {
    struct sy_buf *next;        /* freelist link */
    uint32_t cap;
    uint32_t start;             /* first unconsumed byte */
    uint32_t end;               /* one past the last byte read */
    char data[];
};

struct sy_buf_pool {
    struct sy_buf *free;
    size_t nfree;
    size_t max_free;            /* buffers kept beyond this are freed */
    uint32_t cap;               /* capacity of buffers handed out now */
    size_t outstanding;         /* handed out and not yet returned */
};

void sy_buf_pool_init(struct sy_buf_pool *pool, uint32_t cap, size_t max_free);
/* Changes the capacity of future buffers; cached ones of another size are freed. */
void sy_buf_pool_set_cap(struct sy_buf_pool *pool, uint32_t cap);
void sy_buf_pool_fini(struct sy_buf_pool *pool);

/* Returns an empty buffer, or NULL when memory is exhausted. */
struct sy_buf *sy_buf_get(struct sy_buf_pool *pool);
void sy_buf_put(struct sy_buf_pool *pool, struct sy_buf *buf);

static inline size_t sy_buf_len(const struct sy_buf *b) { return b->end - b->start; }
static inline size_t sy_buf_room(const struct sy_buf *b) { return b->cap - b->end; }

#endif
