/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cidr.c: IPv4/IPv6 prefixes and matching. Every address is compared in
 * its 16-byte IPv6 form, an IPv4 one as ::ffff:a.b.c.d, so a client seen
 * by a dual-stack listener matches the IPv4 prefixes written for it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

#define TEXT_MAX 64

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Clears every bit after the first prefix bits of addr (len bytes). */
static void
zero_host_bits(uint8_t *addr, size_t len, unsigned prefix)
{
    for (size_t i = 0; i < len; i++) {
        if (prefix >= 8) {
            prefix -= 8;
            continue;
        }
        addr[i] &= (uint8_t)(0xff00 >> prefix);
        prefix = 0;
    }
}

static int
parse_prefix(const char *text, unsigned max, unsigned *out, char *err, size_t errlen)
{
    unsigned long value = 0;

    if (*text == '\0' || strlen(text) > 3) {
        snprintf(err, errlen, "invalid prefix length \"%s\"", text);
        return -1;
    }
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            snprintf(err, errlen, "invalid prefix length \"%s\"", text);
            return -1;
        }
        value = value * 10 + (unsigned long)(*p - '0');
    }
    if (value > max) {
        snprintf(err, errlen, "invalid prefix length %lu", value);
        return -1;
    }
    *out = (unsigned)value;
    return 0;
}

int
sy_cidr_parse(const char *text, struct sy_cidr *out, char *err, size_t errlen)
{
    char ip[TEXT_MAX];
    const char *slash = strchr(text, '/');
    size_t iplen = slash != NULL ? (size_t)(slash - text) : strlen(text);
    unsigned max;

    memset(out, 0, sizeof(*out));
    if (iplen >= sizeof(ip)) {
        snprintf(err, errlen, "invalid address \"%s\"", text);
        return -1;
    }
    memcpy(ip, text, iplen);
    ip[iplen] = '\0';
    if (inet_pton(AF_INET, ip, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, ip, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        snprintf(err, errlen, "invalid address \"%s\"", ip);
        return -1;
    }
    out->prefix = max;
    if (slash != NULL && parse_prefix(slash + 1, max, &out->prefix, err, errlen) < 0)
        return -1;
    zero_host_bits(out->addr, max / 8, out->prefix);
    return 0;
}

/* The 16-byte form of sa's address; false for a family that has none. */
static bool
v6_form(const struct sockaddr *sa, uint8_t v6[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(v6, v4_mapped_prefix, sizeof(v4_mapped_prefix));
        memcpy(v6 + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(v6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

static bool
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    size_t whole = prefix / 8;
    unsigned rest = prefix % 8;

    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((a[whole] ^ b[whole]) & (uint8_t)(0xff00 >> rest)) == 0;
}

static bool
match_v6(const struct sy_cidr *cidr, const uint8_t v6[16])
{
    if (cidr->family == AF_INET6)
        return prefix_equal(cidr->addr, v6, cidr->prefix);
    if (memcmp(v6, v4_mapped_prefix, sizeof(v4_mapped_prefix)) != 0)
        return false;
    return prefix_equal(cidr->addr, v6 + 12, cidr->prefix);
}

bool
sy_cidr_match(const struct sy_cidr *cidr, const struct sockaddr *sa)
{
    uint8_t v6[16];

    return v6_form(sa, v6) && match_v6(cidr, v6);
}

long
sy_cidr_list_match(const struct sy_cidr *list, size_t n, const struct sockaddr *sa)
{
    uint8_t v6[16];
    long best = -1;
    unsigned best_bits = 0;

    if (!v6_form(sa, v6))
        return -1;
    for (size_t i = 0; i < n; i++) {
        /* an IPv4 prefix is 96 bits longer in the IPv6 form it is compared in */
        unsigned bits = list[i].prefix + (list[i].family == AF_INET ? 96 : 0);

        if ((best < 0 || bits > best_bits) && match_v6(&list[i], v6)) {
            best = (long)i;
            best_bits = bits;
        }
    }
    return best;
}

int
sy_cidr_ip_from_text(const char *text, size_t len, struct sockaddr_storage *sa)
{
    char ip[TEXT_MAX];
    struct sockaddr_in *sin = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;

    memset(sa, 0, sizeof(*sa));
    if (len >= sizeof(ip))
        return -1;
    memcpy(ip, text, len);
    ip[len] = '\0';
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        return 0;
    }
    return -1;
}
