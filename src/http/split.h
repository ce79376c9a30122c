/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * split.h: which slot of a service a request goes to - the active one, or
 * the canary with the live weight's probability - and the stickiness that
 * keeps a client on its slot. It reads only the request head, the client's
 * address and the worker's random state, so tests and benchmarks call it
 * without a connection. Nothing here allocates or blocks.
 */
#ifndef SY_HTTP_SPLIT_H
#define SY_HTTP_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"
#include "parser.h"

/* What the split decided for one request. */
struct sy_split {
    enum sy_slot slot;
    bool set_cookie;            /* sticky "cookie": the response sets the slot cookie */
    uint8_t bucket;             /* 0..99, the client's place; with set_cookie */
};

/*
 * The slot for a request to svc: force_header first, then the live canary
 * weight (sy_live_canary_weight) with the service's stickiness, else a
 * draw from *rng (xorshift64 state, never 0; one per worker). head's spans
 * point into data; client_ip is the client's address as text.
 */
struct sy_split sy_split_pick(const struct sy_service *svc, const struct sy_http_head *head,
                              const char *data, const char *client_ip, uint64_t *rng);

/*
 * The bucket (0..99) that the request's slot cookie for svc carries, and
 * in *slot the slot it names; -1 when the cookie is absent or malformed.
 * The first cookie of that name decides, over all Cookie header lines.
 */
int sy_split_cookie(const struct sy_service *svc, const struct sy_http_head *head,
                    const char *data, enum sy_slot *slot);

/* The most bytes sy_split_set_cookie writes for a service whose name has name_len bytes. */
#define SY_SPLIT_SET_COOKIE_MAX(name_len) (80 + (name_len))

/*
 * Writes the response header line that pins the client to s->slot and
 * s->bucket ("Set-Cookie: sy_slot_NAME=green.37; Path=/; HttpOnly;
 * SameSite=Lax", "; Secure" over TLS, CRLF) into dst, which has room for
 * SY_SPLIT_SET_COOKIE_MAX(strlen(svc->name)) bytes. Returns its length.
 */
size_t sy_split_set_cookie(char *dst, const struct sy_service *svc, const struct sy_split *s,
                           bool secure);

#endif
