/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ratelimit_redis.h: the GCRA of ratelimit.h kept in Redis, so that every
 * gateway on one Redis shares one budget per key (store "redis"). One Lua
 * script does a decision atomically in one EVALSHA: same rule (T, tau,
 * burst + 1 at once), same answers (remaining, reset, retry-after) as the
 * local table, with Redis's clock (TIME), so the gateways' clocks do not
 * matter. A key is the tat in microseconds of Redis's clock, under
 * PREFIX "rl:" LIMIT ":" KEY, and expires by itself (PX) when its tat has
 * passed, which is when it holds nothing a fresh key would not.
 */
#ifndef SY_RATELIMIT_REDIS_H
#define SY_RATELIMIT_REDIS_H

#include <stddef.h>

#include "ratelimit.h"
#include "redis.h"

/* A key longer than this is stored under "sha1:" and its SHA-1 in hex. */
#define SY_RL_REDIS_KEY_MAX 256

/*
 * The script. KEYS[1]: the key; ARGV[1]: T in us; ARGV[2]: tau in us;
 * ARGV[3], for tests only: now in us instead of Redis's TIME. Returns
 * {allowed 0/1, remaining, reset_ms, retry_after_ms} as sy_rl_check fills
 * struct sy_rl_result.
 */
extern const struct sy_redis_script sy_rl_redis_script;

/*
 * Sends the decision of one request: key (keylen bytes) under rule, in
 * Redis as prefix (the limit's "PREFIXrl:NAME:") then the key. fn hears
 * the reply; sy_rl_redis_result reads it. NULL when r is not ready.
 */
struct sy_redis_call *sy_rl_redis_check(struct sy_redis *r, const struct sy_rl_rule *rule,
                                        const char *prefix, const void *key, size_t keylen,
                                        sy_redis_reply_fn fn, void *arg);

/* The script's reply into out (limit from rule); -1 when it is not one. */
int sy_rl_redis_result(const struct redisReply *reply, const struct sy_rl_rule *rule,
                       struct sy_rl_result *out);

#endif
