/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ratelimit_redis.c: the GCRA script and its one call (ratelimit_redis.h).
 * The script's arithmetic is ratelimit.c's, line for line: debt is how far
 * the key's tat lies ahead of now (0 when past); a request is denied when
 * debt > tau and then changes nothing; allowed, tat = now + debt + T.
 * Lua numbers are doubles: exact for integers below 2^53 (now in us is
 * about 2^51), and every division below lands on or at least 1/T away
 * from an integer, so ceil and floor are exact. Values go to Redis through
 * string.format("%d"), never Lua's default "%.14g", which would round.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "ratelimit_redis.h"
#include "sy_auto.h"

#if SY_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

static const char gcra_source[] =
    "-- switchyard GCRA (src/core/ratelimit_redis.c)\n"
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local T = tonumber(ARGV[1])\n"
    "local tau = tonumber(ARGV[2])\n"
    "local now\n"
    "if ARGV[3] then\n"
    "  now = tonumber(ARGV[3])\n"
    "else\n"
    "  local t = redis.call('TIME')\n"
    "  now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "end\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "local debt = tat - now\n"
    "if debt < 0 then debt = 0 end\n"
    "if debt > tau then\n"
    "  local retry = math.ceil((debt - tau) / 1000)\n"
    "  return {0, 0, retry, retry}\n"
    "end\n"
    "local used = debt + T\n"
    "redis.call('SET', KEYS[1], string.format('%d', now + used),\n"
    "           'PX', string.format('%d', math.ceil(used / 1000)))\n"
    "local remaining = 0\n"
    "if used <= tau then remaining = math.floor((tau - used) / T) + 1 end\n"
    "return {1, remaining, math.ceil(used / 1000), 0}\n";

const struct sy_redis_script sy_rl_redis_script = {
    .name = "rate-limit GCRA",
    .source = gcra_source,
};

/* "sha1:" and 40 hex digits: a long key (a client's header) kept short in Redis. */
static size_t short_key(const void *key, size_t keylen, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    memcpy(out, "sha1:", 5);
    if (EVP_Digest(key, keylen, md, &n, EVP_sha1(), NULL) != 1)
        n = 0;
    for (unsigned int i = 0; i < n && i < 20; i++) {
        out[5 + 2 * i] = hex[md[i] >> 4];
        out[6 + 2 * i] = hex[md[i] & 15];
    }
    return 5 + 2 * (size_t)(n < 20 ? n : 20);
}

struct sy_redis_call *sy_rl_redis_check(struct sy_redis *r, const struct sy_rl_rule *rule,
                                        const char *prefix, const void *key, size_t keylen,
                                        sy_redis_reply_fn fn, void *arg)
{
    char full[1024 + SY_RL_REDIS_KEY_MAX], t[24], tau[24];
    size_t plen = strlen(prefix);

    if (!sy_redis_ready(r) || plen > 1024)
        return NULL;
    memcpy(full, prefix, plen);
    if (keylen > SY_RL_REDIS_KEY_MAX) {
        plen += short_key(key, keylen, full + plen);
    } else {
        if (keylen)
            memcpy(full + plen, key, keylen);
        plen += keylen;
    }
    snprintf(t, sizeof(t), "%llu", (unsigned long long)rule->interval_us);
    snprintf(tau, sizeof(tau), "%llu", (unsigned long long)rule->tolerance_us);
    const char *argv[] = {full, t, tau};
    const size_t lens[] = {plen, strlen(t), strlen(tau)};
    return sy_redis_eval(r, &sy_rl_redis_script, 1, 3, argv, lens, fn, arg);
}

#if SY_HAVE_HIREDIS
int sy_rl_redis_result(const struct redisReply *reply, const struct sy_rl_rule *rule,
                       struct sy_rl_result *out)
{
    long long v[4];

    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)
        return -1;
    for (size_t i = 0; i < 4; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER || reply->element[i]->integer < 0)
            return -1;
        v[i] = reply->element[i]->integer;
    }
    out->allowed = v[0] == 1;
    out->limit = rule->limit;
    out->remaining = v[1] > (long long)rule->limit ? rule->limit : (uint32_t)v[1];
    out->reset_ms = (uint64_t)v[2];
    out->retry_after_ms = (uint64_t)v[3];
    return 0;
}
#else
int sy_rl_redis_result(const struct redisReply *reply, const struct sy_rl_rule *rule,
                       struct sy_rl_result *out)
{
    (void)reply, (void)rule, (void)out;
    return -1;
}
#endif
