/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ratelimit.h: the local rate-limit engine. GCRA (the generic cell rate
 * algorithm: one "theoretical arrival time" per key) over one bounded table
 * shared by every worker without lock or allocation, so a client's budget is
 * the configured one whatever worker serves it. No HTTP knowledge: the
 * module (modules/ratelimit.c) builds the key and writes the headers.
 *
 * Semantics (the convention of nginx's limit_req and of redis-cell): a rule
 * allows `rate` requests per `per_ms` on average, and `burst` requests
 * *beyond* that at once. A fresh key may send burst + 1 requests at the same
 * instant; afterwards one more every interval T = per_ms / rate. In GCRA
 * terms: T = per_ms x 1000 / rate us (truncated), tolerance tau = burst x T;
 * a request at `now` is allowed iff tat - now <= tau, and then
 * tat = max(tat, now) + T. A denied request changes nothing, so a client
 * that keeps hammering while denied does not push its own recovery away.
 * Over any span of s us from a fresh key, the allowed count is at most
 * burst + 1 + s / T.
 *
 * Table. 2^k buckets of 8 slots, one 64-byte cache line per bucket; a slot
 * is one atomic 64-bit word [tag: 24 bits | tat: 40 bits], 0 = empty. A key
 * is SipHash-1-3 (keyhash.h, random key per table) of (limit id, key bytes):
 * the low bits pick the bucket, the top 24 bits are the tag (0 read as 1).
 * One CAS changes key and state together, so there is no torn state and no
 * ABA on the identity. A new key takes an empty slot, else one whose tat is
 * past (it carries no information), else the one with the smallest tat: the
 * key that owes the least, which is the least recently used one among keys
 * of one rule and in any case the eviction that forgets the least. Two keys
 * of one bucket with the same tag share a budget: with a full table that
 * happens to a given absent key with probability 8 / 2^24 (5 x 10^-7), and
 * a client cannot aim for it, the hash key being secret.
 *
 * Time. now_us is any monotonic microsecond clock that every caller of one
 * table shares (sy_rl_now_us: CLOCK_MONOTONIC). Only now_us mod 2^40 is
 * used and every comparison is a signed 40-bit difference, which is right
 * while the two instants are less than 2^39 us (6.4 days) apart: rules are
 * limited to tau + T <= 2^38 us (sy_rl_rule_init), and sy_rl_sweep must run
 * at least every 3 days (the main thread calls it every few seconds) to
 * clear old entries before their age could read as the future. An instant
 * earlier than one already seen (a clock step back, or workers whose cached
 * loop times differ) never grants budget: tat only grows.
 *
 * Threads. sy_rl_check and sy_rl_sweep may run on any threads at once;
 * lock-free (a failed CAS means another thread's succeeded), bounded: after
 * SY_RL_MAX_TRIES failed attempts the request is allowed and counted
 * (sy_rl_fail_open), which needs that many other writers on one bucket
 * within one decision. Every allowed request is counted once: updates are
 * one CAS each, and two workers that insert the same new key at once (into
 * different slots: their views of the bucket differed) notice it and one
 * withdraws (ratelimit.c, insert). sy_rl_table_free only once no thread
 * uses the table.
 */
#ifndef SY_RATELIMIT_H
#define SY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* tau + T of a rule may not exceed this (2^38 us, about 3.2 days). */
#define SY_RL_MAX_SPAN_US   (1ull << 38)
/* CAS attempts (inserts and updates together) before a decision fails open. */
#define SY_RL_MAX_TRIES     64

/* Shared by all workers; created and freed by the main thread. */
struct sy_rl_table;

/*
 * A table for max_keys keys (0 reads as 8): rounded up to a power of two of
 * 8-slot buckets, 8 bytes a key, allocated and zeroed now, never grown. The
 * hash key comes from getrandom(). NULL with errno set (ENOMEM, or
 * getrandom's error).
 */
struct sy_rl_table *sy_rl_table_new(size_t max_keys);
void sy_rl_table_free(struct sy_rl_table *t);
/* Bytes the table holds: the slots (8 per key) and its header. */
size_t sy_rl_table_bytes(const struct sy_rl_table *t);
/* Keys it can hold: max_keys rounded up. */
size_t sy_rl_table_slots(const struct sy_rl_table *t);
/* Decisions that gave up after SY_RL_MAX_TRIES attempts and allowed. */
uint64_t sy_rl_fail_open(const struct sy_rl_table *t);

/* One limit's parameters, derived once per configuration. */
struct sy_rl_rule {
    uint64_t interval_us;       /* T: one request's cost */
    uint64_t tolerance_us;      /* tau = burst x T */
    uint32_t limit;             /* burst + 1: what RateLimit-Limit carries */
};

/*
 * Validates (rate, per_ms, burst) and fills r. 0, or -1 with a message in
 * err (no JSON path: the caller prefixes it) when rate < 1, per_ms < 1,
 * burst < 0, burst + 1 does not fit 32 bits, T rounds to 0 us (more than
 * one request per microsecond), truncating T to whole microseconds moves
 * the rate by more than 1 % (T < 100 us and inexact), or tau + T exceeds
 * SY_RL_MAX_SPAN_US.
 */
int sy_rl_rule_init(struct sy_rl_rule *r, int64_t rate, int64_t per_ms, int64_t burst,
                    char *err, size_t errlen);

/*
 * A decision, with what the response headers need. Times are rounded up to
 * whole milliseconds, so a client that waits them out is allowed.
 *   limit           burst + 1: the most requests a full budget allows at once.
 *   remaining       requests that would be allowed right now, after this one.
 *   reset_ms        allowed: time until the budget is full again (remaining
 *                   back to limit); denied: time until the next request is
 *                   allowed (as Retry-After).
 *   retry_after_ms  denied only (0 when allowed): time until the next
 *                   request is allowed.
 */
struct sy_rl_result {
    bool allowed;
    uint32_t limit, remaining;
    uint64_t reset_ms, retry_after_ms;
};

/*
 * Decides one request of key (keylen bytes; NULL when 0) under rule r and
 * limit id limit_id (keys of different ids never share a budget), counting
 * it when allowed. now_us: the caller's monotonic microseconds (see Time);
 * a worker passes its cached loop time. Lock-free, no allocation.
 */
void sy_rl_check(struct sy_rl_table *t, const struct sy_rl_rule *r, uint32_t limit_id,
                 const void *key, size_t keylen, uint64_t now_us, struct sy_rl_result *out);

/*
 * Clears every entry whose tat is more than max_tolerance_us in the past
 * (pass the largest tolerance_us of the rules in use; values above
 * SY_RL_MAX_SPAN_US read as it), and every entry that could only be one
 * from over 6 days ago. Returns the entries left: keys seen recently, for a
 * gauge. Reads the whole table (about 1 ms per million keys): call it from
 * the main thread every few seconds, at least every 3 days.
 */
size_t sy_rl_sweep(struct sy_rl_table *t, uint64_t now_us, uint64_t max_tolerance_us);

/* CLOCK_MONOTONIC in microseconds: a clock fit for now_us. */
uint64_t sy_rl_now_us(void);

#endif
