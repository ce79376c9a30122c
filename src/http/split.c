/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * split.c: the canary split of one request (split.h). Every sticky mode
 * maps a client to a bucket in 0..99 and sends buckets below the weight to
 * the canary: a client keeps its slot while the weight stays, and a higher
 * weight moves clients only toward the canary. The live split is read once
 * per request with relaxed atomics, so a switch reaches every worker at once.
 */
#include <string.h>
#include <strings.h>

#include "core/live.h"
#include "split.h"

static const char *const slot_names[] = {"blue", "green"};

/*
 * The cookie is "sy_slot_" + the service name. Service names are letters,
 * digits, '_', '.' and '-' (conf_is_name), all RFC 6265 token characters,
 * so the name needs no mapping; matching is case-sensitive, as for any
 * cookie name.
 */
#define COOKIE_PREFIX "sy_slot_"
#define COOKIE_PREFIX_LEN (sizeof(COOKIE_PREFIX) - 1)

/* xorshift64: a fair split needs no cryptographic randomness. */
static int draw_bucket(uint64_t *rng)
{
    uint64_t x = *rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    return (int)(x % 100);
}

/* The value of the first request header called name (any case), or NULL. */
static const char *header_value(const struct sy_http_head *head, const char *data,
                                const char *name, uint32_t *len)
{
    size_t n = strlen(name);

    for (uint32_t i = 0; i < head->nheaders; i++) {
        const struct sy_header *hd = &head->headers[i];
        if (hd->name.len == n && strncasecmp(data + hd->name.off, name, n) == 0) {
            *len = hd->value.len;
            return data + hd->value.off;
        }
    }
    return NULL;
}

/* A stable bucket from a key: FNV-1a, then a final mix so that close keys spread. */
static int hash_bucket(const char *key, uint32_t len)
{
    uint64_t h = 1469598103934665603ULL;

    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (int)(h % 100);
}

/* client_ip or header:NAME: the key's bucket; -1 without a key (drawn per request then). */
static int sticky_bucket(const struct sy_service *svc, const struct sy_http_head *head,
                         const char *data, const char *client_ip)
{
    const struct sy_canary *c = &svc->canary;
    const char *key = NULL;
    uint32_t len = 0;

    if (c->sticky == SY_STICKY_CLIENT_IP) {
        key = client_ip;
        len = (uint32_t)strlen(key);
    } else if (c->sticky == SY_STICKY_HEADER) {
        key = header_value(head, data, c->sticky_header, &len);
    }
    return key ? hash_bucket(key, len) : -1;
}

/* canary.force_header: "always" sends the request to the canary slot, "never" keeps it off. */
static int forced_slot(const struct sy_service *svc, const struct sy_http_head *head,
                       const char *data)
{
    uint32_t len;
    const char *v = header_value(head, data, svc->canary.force_header, &len);

    if (v && len == 6 && strncasecmp(v, "always", 6) == 0)
        return 1;
    if (v && len == 5 && strncasecmp(v, "never", 5) == 0)
        return 0;
    return -1;
}

/* ---- the slot cookie ---------------------------------------------------- */

static bool ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* "blue.N" or "green.N", N in 0..99 written as we write it (no sign, no leading zero). */
static int parse_value(const char *v, size_t len, enum sy_slot *slot)
{
    size_t n;

    if (len > 5 && memcmp(v, "blue.", 5) == 0) {
        *slot = SY_SLOT_BLUE;
        n = 5;
    } else if (len > 6 && memcmp(v, "green.", 6) == 0) {
        *slot = SY_SLOT_GREEN;
        n = 6;
    } else {
        return -1;
    }
    v += n;
    len -= n;
    if (len == 1 && v[0] >= '0' && v[0] <= '9')
        return v[0] - '0';
    if (len == 2 && v[0] >= '1' && v[0] <= '9' && v[1] >= '0' && v[1] <= '9')
        return (v[0] - '0') * 10 + (v[1] - '0');
    return -1;
}

/*
 * One Cookie line: "a=1; b=2" (RFC 6265 5.4), read leniently about
 * whitespace around pairs and '=', strictly about our own value. Sets
 * *found when it holds the cookie called COOKIE_PREFIX + name; returns its
 * bucket or -1. Each pair costs one compare at its start and one memchr
 * to the next ';' (cookie values cannot hold ';').
 */
static int cookie_in_line(const char *v, size_t len, const char *name, size_t name_len,
                          enum sy_slot *slot, bool *found)
{
    const char *p = v, *end = v + len;

    for (;;) {
        while (p < end && ows(*p))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *b = semi ? semi : end;
        if ((size_t)(b - p) > COOKIE_PREFIX_LEN + name_len &&
            memcmp(p, COOKIE_PREFIX, COOKIE_PREFIX_LEN) == 0 &&
            memcmp(p + COOKIE_PREFIX_LEN, name, name_len) == 0) {
            const char *a = p + COOKIE_PREFIX_LEN + name_len;
            while (a < b && ows(*a))
                a++;
            if (a < b && *a == '=') {
                a++;
                while (a < b && ows(*a))
                    a++;
                while (b > a && ows(b[-1]))
                    b--;
                *found = true;
                return parse_value(a, (size_t)(b - a), slot);
            }
        }
        if (!semi)
            return -1;
        p = semi + 1;
    }
}

int sy_split_cookie(const struct sy_service *svc, const struct sy_http_head *head,
                    const char *data, enum sy_slot *slot)
{
    size_t name_len = strlen(svc->name);
    bool found = false;

    /* A client may split its cookies over several lines (HTTP/2 does): read them in order. */
    for (uint32_t i = 0; i < head->nheaders; i++) {
        const struct sy_header *hd = &head->headers[i];
        if (hd->id != SY_HDR_COOKIE)
            continue;
        int bucket = cookie_in_line(data + hd->value.off, hd->value.len, svc->name, name_len,
                                    slot, &found);
        if (found)
            return bucket;
    }
    return -1;
}

size_t sy_split_set_cookie(char *dst, const struct sy_service *svc, const struct sy_split *s,
                           bool secure)
{
    static const char attrs[] = "; Path=/; HttpOnly; SameSite=Lax";
    char *p = dst;
    size_t n = strlen(svc->name), sn = strlen(slot_names[s->slot]);

    memcpy(p, "Set-Cookie: " COOKIE_PREFIX, 12 + COOKIE_PREFIX_LEN);
    p += 12 + COOKIE_PREFIX_LEN;
    memcpy(p, svc->name, n);
    p += n;
    *p++ = '=';
    memcpy(p, slot_names[s->slot], sn);
    p += sn;
    *p++ = '.';
    if (s->bucket >= 10)
        *p++ = (char)('0' + s->bucket / 10);
    *p++ = (char)('0' + s->bucket % 10);
    memcpy(p, attrs, sizeof(attrs) - 1);
    p += sizeof(attrs) - 1;
    if (secure) {
        memcpy(p, "; Secure", 8);
        p += 8;
    }
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - dst);
}

/* ---- the decision ------------------------------------------------------- */

struct sy_split sy_split_pick(const struct sy_service *svc, const struct sy_http_head *head,
                              const char *data, const char *client_ip, uint64_t *rng)
{
    enum sy_slot active;
    int weight;

    sy_live_split(svc, &active, &weight);
    enum sy_slot canary = active == SY_SLOT_BLUE ? SY_SLOT_GREEN : SY_SLOT_BLUE;
    struct sy_split s = {.slot = active};

    if (svc->canary.force_header) {
        int forced = forced_slot(svc, head, data);
        if (forced >= 0) {
            s.slot = forced ? canary : active;
            return s;       /* a tester's request leaves the cookie as it is */
        }
    }
    if (weight <= 0)
        return s;
    int bucket = -1;
    enum sy_slot named = active;
    switch (svc->canary.sticky) {
    case SY_STICKY_COOKIE:
        bucket = sy_split_cookie(svc, head, data, &named);
        /*
         * A client without a valid cookie gets a bucket drawn, and the
         * response (re)sets the cookie whenever it does not already name
         * the slot chosen.
         */
        s.set_cookie = bucket < 0;
        break;
    case SY_STICKY_CLIENT_IP:
    case SY_STICKY_HEADER:
        bucket = sticky_bucket(svc, head, data, client_ip);
        break;
    case SY_STICKY_NONE:
        break;
    }
    if (bucket < 0)
        bucket = draw_bucket(rng);
    s.slot = bucket < weight ? canary : active;
    if (svc->canary.sticky == SY_STICKY_COOKIE) {
        s.bucket = (uint8_t)bucket;
        s.set_cookie = s.set_cookie || named != s.slot;
    }
    return s;
}
