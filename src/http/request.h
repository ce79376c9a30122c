/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * request.h: the request API, what a module (sy_module.h) may read of a
 * request and do with it. Modules never see struct sy_request's fields:
 * HTTP/1.1 and (later) HTTP/2 requests answer the same calls.
 */
#ifndef SY_REQUEST_H
#define SY_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/conf.h"
#include "core/metrics.h"

struct sy_request;
struct sy_header_out;
struct sy_redis;

/* The client: the peer, or the address a trusted proxy forwarded for. */
const char *sy_req_client_ip(const struct sy_request *req);
const struct sockaddr *sy_req_client_addr(const struct sy_request *req);
/* Its country ("" unknown); the geoip module sets it before access control reads it. */
const char *sy_req_country(const struct sy_request *req);
void sy_req_set_country(struct sy_request *req, const char *iso_code);

/* The value of the first request header called name (any case), or NULL. */
const char *sy_req_header(const struct sy_request *req, const char *name, size_t *len);
const char *sy_req_method(const struct sy_request *req, size_t *len);
const char *sy_req_host(const struct sy_request *req, size_t *len);
const char *sy_req_path(const struct sy_request *req, size_t *len);
const char *sy_req_id(const struct sy_request *req);
/* The matched route (NULL before routing) and its label, "HOST/PATH" as logs name it. */
const struct sy_route *sy_req_route(const struct sy_request *req);

/* The worker's metrics storage (metrics.h), for sy_metrics_count_event. */
struct sy_worker_metrics *sy_req_metrics(const struct sy_request *req);
/* The worker's Redis connection (core/redis.h); NULL without "redis". */
struct sy_redis *sy_req_redis(const struct sy_request *req);

/*
 * Ends a wait (SY_PHASE_WAIT): the request goes on to the next module of
 * the phase, then to the upstream, as if the module had returned
 * SY_PHASE_CONTINUE. To answer the request instead, call sy_req_respond.
 */
void sy_req_resume(struct sy_request *req);

/*
 * Answers the request from the gateway: status, a JSON body naming the
 * reason and the request id, and headers ("Name: value\r\n" lines, or
 * NULL). The module then returns SY_PHASE_DONE.
 */
void sy_req_respond(struct sy_request *req, int status, const char *reason,
                    const char *headers);
/*
 * The same with a body of the module's own and its Content-Type. The body
 * is not copied: it must stay in place until the request ends (state on
 * the request's snapshot does). A HEAD request gets the head only.
 */
void sy_req_respond_body(struct sy_request *req, int status, const char *content_type,
                         const void *body, size_t len, const char *headers);

/* A header the response to the client gets (on_response). */
void sy_header_out_add(struct sy_header_out *out, const char *name, const char *value);

#endif
