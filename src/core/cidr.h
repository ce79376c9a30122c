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

#endif
