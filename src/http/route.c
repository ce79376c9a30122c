/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * route.c: picks the route of a request from the snapshot's routes.
 * Host specificity decides first (exact, longest "*.suffix", "*"), then
 * the longest path prefix on segment boundaries. A linear scan without
 * allocation: configurations hold tens of routes, not thousands.
 */
#include "http/route.h"

#include <stdint.h>
#include <string.h>

/*
 * How specific a route's host is for a request; higher wins. Wildcards
 * rank by suffix length so the longest matching suffix wins.
 */
#define RANK_NONE   0
#define RANK_ANY    1
#define RANK_SUFFIX 2       /* + suffix length */
#define RANK_EXACT  SIZE_MAX

static unsigned char
ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* Whether s[0..len) equals the lower-case pattern lc[0..len), ignoring the case of s. */
static bool
equal_nocase(const char *s, const char *lc, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (ascii_lower((unsigned char)s[i]) != (unsigned char)lc[i])
            return false;
    }
    return true;
}

/*
 * Drops ":port" ("[v6]:port" keeps the brackets) and one trailing dot,
 * since "example.com." names the same host as "example.com".
 */
static void
host_trim(const char *host, size_t *len)
{
    size_t n = *len;
    const char *end;

    if (n > 0 && host[0] == '[') {
        end = memchr(host, ']', n);
        if (end != NULL)
            n = (size_t)(end - host) + 1;
    } else {
        end = memchr(host, ':', n);
        if (end != NULL)
            n = (size_t)(end - host);
    }
    if (n > 0 && host[n - 1] == '.')
        n--;
    *len = n;
}

static size_t
host_rank(const char *pattern, const char *host, size_t host_len)
{
    size_t slen;

    if (pattern[0] == '*') {
        if (pattern[1] == '\0')
            return RANK_ANY;
        if (pattern[1] != '.')
            return RANK_NONE;
        /* "*.suffix": at least one label before ".suffix", never "suffix" itself */
        slen = strlen(pattern + 2);
        if (host_len < slen + 2 || host[host_len - slen - 1] != '.')
            return RANK_NONE;
        if (!equal_nocase(host + host_len - slen, pattern + 2, slen))
            return RANK_NONE;
        return RANK_SUFFIX + slen;
    }
    for (size_t i = 0; i < host_len; i++) {
        /* a shorter pattern stops here on its NUL, which no host byte equals */
        if (ascii_lower((unsigned char)host[i]) != (unsigned char)pattern[i])
            return RANK_NONE;
    }
    return pattern[host_len] == '\0' ? RANK_EXACT : RANK_NONE;
}

/*
 * "/api" matches "/api", "/api/" and "/api/x" but not "/apix"; a prefix
 * ending in '/' matches whatever starts with it, so "/" matches every
 * path (the asterisk-form "*" of OPTIONS too).
 */
static bool
path_matches(const struct sy_route *r, const char *path, size_t path_len)
{
    size_t n = r->path_len;

    if (n == 1 && r->path[0] == '/')
        return true;
    /* most prefixes differ from the path in length or in their last byte */
    if (n > path_len || r->path[n - 1] != path[n - 1] || memcmp(r->path, path, n) != 0)
        return false;
    return n == path_len || r->path[n - 1] == '/' || path[n] == '/';
}

/*
 * One pass keeps the best (host rank, path length) pair among routes
 * whose host and path both match. Ranking this way is the fallback rule:
 * when the most specific host has no route whose path matches, the next
 * host level (a shorter wildcard, then "*") that has one wins. On equal
 * rank and path length the first route in configuration order stays.
 */
const struct sy_route *
sy_route_match(const struct sy_conf *conf, const char *host, size_t host_len,
               const char *path, size_t path_len)
{
    const struct sy_route *best = NULL;
    size_t best_rank = RANK_NONE;

    if (host == NULL) {
        host = "";
        host_len = 0;
    }
    host_trim(host, &host_len);
    for (size_t i = 0; i < conf->nroutes; i++) {
        const struct sy_route *r = &conf->routes[i];
        size_t rank;

        if (best_rank == RANK_EXACT && r->path_len <= best->path_len)
            continue;
        if (!path_matches(r, path, path_len))
            continue;
        rank = host_rank(r->host, host, host_len);
        if (rank == RANK_NONE || rank < best_rank)
            continue;
        if (rank > best_rank || r->path_len > best->path_len) {
            best = r;
            best_rank = rank;
        }
    }
    return best;
}
