/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * balance.h: picks an instance of a pool. Each worker has its own
 * balancing state per pool (no locks, no atomics on the request path);
 * it lives in the configuration snapshot and dies with it.
 */
#ifndef SY_HTTP_BALANCE_H
#define SY_HTTP_BALANCE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/conf.h"

/* Allocates pool->balance_state for nworkers on every pool of conf. */
int sy_balance_prepare(struct sy_conf *conf, unsigned nworkers);

/* Whether an instance may take new requests now (health, drain, ejection). */
bool sy_instance_usable(const struct sy_instance *inst, int64_t now_ms);

/*
 * Picks an instance for a new request on worker `worker`. `tried` holds
 * instances already tried by this request (bit i = instance i, first 64),
 * which are skipped. client_hash feeds ip_hash. Returns NULL when every
 * usable instance was tried. When no instance of the pool is usable at
 * all, picks among the untried ones that are not drained (panic mode) and
 * sets *panic (when panic is not NULL) rather than fail.
 * The pick counts as one in-flight request until sy_balance_done().
 */
struct sy_instance *sy_balance_pick(struct sy_pool *pool, unsigned worker, uint64_t tried,
                                    uint32_t client_hash, int64_t now_ms, bool *panic);

/* Requests in flight to inst on every worker (for the admin API; approximate). */
unsigned sy_balance_in_flight(const struct sy_pool *pool, const struct sy_instance *inst);
void sy_balance_done(struct sy_pool *pool, unsigned worker, const struct sy_instance *inst);

#endif
