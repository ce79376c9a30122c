/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cidr.h: IPv4 and IPv6 prefixes ("10.0.0.0/8", "2001:db8::/32", or a
 * bare address for a full-length prefix). IPv4-mapped IPv6 addresses
 * match IPv4 prefixes.
 */
#ifndef SY_CIDR_H
#define SY_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct sy_cidr {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned prefix;            /* bits */
    uint8_t addr[16];           /* network order, host bits zero */
};

int sy_cidr_parse(const char *text, struct sy_cidr *out, char *err, size_t errlen);
bool sy_cidr_match(const struct sy_cidr *cidr, const struct sockaddr *sa);
/* Index of the longest prefix in list that contains sa, or -1. */
long sy_cidr_list_match(const struct sy_cidr *list, size_t n, const struct sockaddr *sa);
/* Parses a textual IP address (v4 or v6) into sa; returns -1 if it is not one. */
int sy_cidr_ip_from_text(const char *text, size_t len, struct sockaddr_storage *sa);

/*
 * A compiled prefix list for longest-prefix match: the same answers as
 * sy_cidr_list_match, in O(log n) (a B+-tree at most 11 levels deep) instead
 * of O(n). Immutable once built, so every worker reads it without a lock;
 * whoever built it frees it (with the snapshot that holds it). cidr.c says how.
 */
struct sy_cidr_table;

/* Builds from n prefixes, each with a caller value >= 0 (0 = allow, 1 = deny, an index...);
 * values NULL gives each prefix its index, which makes a lookup's answer that of
 * sy_cidr_list_match. Duplicate prefixes: the first one's value wins, an IPv4 prefix and
 * its IPv4-mapped IPv6 form (10.0.0.0/8, ::ffff:10.0.0.0/104) being the same prefix. Host
 * bits are ignored. NULL and errno ENOMEM when out of memory, EINVAL for a negative value,
 * a family other than AF_INET/AF_INET6 or a prefix length past 32/128. */
struct sy_cidr_table *sy_cidr_table_build(const struct sy_cidr *prefixes, const int *values,
                                          size_t n);
void sy_cidr_table_free(struct sy_cidr_table *t);
/* The value of the longest prefix containing sa and, when prefix_len is not NULL, that
 * prefix's length as written (8 for 10.0.0.0/8, 96 for ::ffff:0:0/96); -1 (and length 0)
 * when none does or sa is neither AF_INET nor AF_INET6. IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) match IPv4 prefixes, as in sy_cidr_match. No allocation, no lock. */
int sy_cidr_table_lookup(const struct sy_cidr_table *t, const struct sockaddr *sa,
                         unsigned *prefix_len);
/* Bytes the table holds: at least 768, at most 3 KiB + 52 bytes per prefix; about 24 bytes
 * per IPv4 prefix and 52 per IPv6 prefix in a long list. */
size_t sy_cidr_table_bytes(const struct sy_cidr_table *t);

#endif
