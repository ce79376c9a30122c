/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * redis_url.c: redis.url (SPEC.md) into its parts (redis.h). The
 * configuration parser calls it, so `switchyard -t` checks the syntax;
 * nothing is resolved or connected here. Messages never repeat the URL:
 * it may carry a password.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "redis.h"

#define SYNTAX \
    "invalid redis url (expected redis://[:password@]host:port[/db] or unix:/path[?db=N])"

static bool digits(const char *s, size_t n)
{
    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out (NUL-terminated); false if malformed or too long. */
static bool decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hexval((unsigned char)s[i + 1]);
            int lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = hi << 4 | lo;
            i += 2;
        }
        if (c == '\0' || o + 1 >= outlen)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

/* "host:port", "[v6]:port" into u->host and u->port. */
static bool host_port(const char *s, size_t n, struct sy_redis_url *u)
{
    const char *colon = memrchr(s, ':', n);
    struct in6_addr a6;

    if (!colon || !digits(colon + 1, n - (size_t)(colon - s) - 1))
        return false;
    u->port = atoi(colon + 1);
    if (u->port < 1 || u->port > 65535)
        return false;
    size_t hlen = (size_t)(colon - s);
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        if (hlen - 2 >= sizeof(u->host))
            return false;
        memcpy(u->host, s + 1, hlen - 2);
        u->host[hlen - 2] = '\0';
        return inet_pton(AF_INET6, u->host, &a6) == 1;
    }
    if (hlen == 0 || hlen >= sizeof(u->host))
        return false;
    memcpy(u->host, s, hlen);
    u->host[hlen] = '\0';
    return sy_addr_is_hostname(u->host);
}

static int parse_unix(const char *rest, struct sy_redis_url *u, char *err, size_t errlen)
{
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);

    u->transport = SY_REDIS_UNIX;
    if (plen < 2 || rest[0] != '/' || (q && (strncmp(q, "?db=", 4) != 0 ||
                                             !digits(q + 4, strlen(q + 4))))) {
        snprintf(err, errlen, SYNTAX);
        return -1;
    }
    if (plen >= sizeof(u->path)) {
        snprintf(err, errlen, "unix socket path longer than %zu bytes", sizeof(u->path) - 1);
        return -1;
    }
    memcpy(u->path, rest, plen);
    u->path[plen] = '\0';
    u->db = q ? atoi(q + 4) : 0;
    return 0;
}

/* [[user]:password@]host:port[/db] after "redis://". */
static int parse_tcp(const char *rest, struct sy_redis_url *u, char *err, size_t errlen)
{
    const char *slash = strchr(rest, '/');
    size_t alen = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *at = memrchr(rest, '@', alen);

    u->transport = SY_REDIS_TCP;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon || !decode(rest, (size_t)(colon - rest), u->user, sizeof(u->user)) ||
            !decode(colon + 1, (size_t)(at - colon - 1), u->password, sizeof(u->password)))
            goto syntax;
        alen -= (size_t)(at + 1 - rest);
        rest = at + 1;
    }
    if (slash && !digits(slash + 1, strlen(slash + 1)))
        goto syntax;
    if (!host_port(rest, alen, u))
        goto syntax;
    u->db = slash ? atoi(slash + 1) : 0;
    return 0;
syntax:
    snprintf(err, errlen, SYNTAX);
    return -1;
}

int sy_redis_url_parse(const char *url, struct sy_redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(url, "unix:", 5) == 0)
        return parse_unix(url + 5, out, err, errlen);
    if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, errlen, "rediss:// (TLS to Redis) is not supported: use redis:// on a "
                 "private network, or a local TLS tunnel (stunnel, spiped) to a managed Redis");
        return -1;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, SYNTAX);
        return -1;
    }
    return parse_tcp(url + 8, out, err, errlen);
}

void sy_redis_url_display(const struct sy_redis_url *u, char *out, size_t len)
{
    if (u->transport == SY_REDIS_UNIX)
        snprintf(out, len, "unix:%s", u->path);
    else if (strchr(u->host, ':'))
        snprintf(out, len, "[%s]:%d", u->host, u->port);
    else
        snprintf(out, len, "%s:%d", u->host, u->port);
}
