/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * forwarded.h: who the client is behind trusted proxies. The client is
 * the rightmost X-Forwarded-For address that is not a trusted proxy, and
 * the header is read only when the peer itself is trusted (the caller
 * checks that), so a client cannot choose its own address by sending the
 * header. Several X-Forwarded-For lines read as one list, last line last.
 */
#ifndef SY_FORWARDED_H
#define SY_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/cidr.h"

struct sy_client_id {
    char ip[48];                    /* as text, as the header wrote it */
    struct sockaddr_storage addr;
};

/*
 * Walks one X-Forwarded-For value from its right end: each address
 * replaces *id, and the walk stops after the first one that is not in
 * trusted, or before a field that is not an address (trust ends at the
 * hop that wrote it). Returns true when every field was a trusted
 * address: the line before this one goes on the walk.
 */
bool sy_forwarded_walk(const char *value, size_t len, const struct sy_cidr *trusted,
                       size_t ntrusted, struct sy_client_id *id);

#endif
