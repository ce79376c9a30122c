/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * route.h: picks the route for a request: the most specific host first
 * (exact, then the longest "*.suffix" wildcard, then "*"), then the
 * longest path prefix within that host.
 */
#ifndef SY_HTTP_ROUTE_H
#define SY_HTTP_ROUTE_H

#include <stddef.h>

#include "core/conf.h"

/*
 * host: the Host header value as received (any case, optional ":port",
 * "[v6]:port"); path: the origin-form path without the query.
 * Returns NULL when no route matches.
 */
const struct sy_route *sy_route_match(const struct sy_conf *conf, const char *host,
                                      size_t host_len, const char *path, size_t path_len);

#endif
