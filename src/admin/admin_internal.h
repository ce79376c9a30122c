/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * admin_internal.h: what the admin listener (admin.c) shares with its
 * endpoint groups (admin_api.c): the route table entry, the request being
 * answered and the reply helpers. Everything here runs on the main thread.
 */
#ifndef SY_ADMIN_INTERNAL_H
#define SY_ADMIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/http.h>
#include <jansson.h>

#include "core/conf.h"

#define ADMIN_MAX_ARGS 2

/* One request while its handler runs; nothing in it outlives the handler. */
struct sy_admin_req {
    struct evhttp_request *req;
    /*
     * The snapshot the request started on. A reload from the handler
     * releases it: reread sy_admin_conf() after sy_process_reload().
     */
    struct sy_conf *conf;
    const char *args[ADMIN_MAX_ARGS];   /* percent-decoded "{}" segments */
    json_t *body;               /* the request body (an object), or NULL */
    int token;                  /* index of the token used; -1: no token file */
    const char *client_ip;
    int64_t now_ms;             /* wall clock */
};

typedef void (*sy_admin_handler_fn)(struct sy_admin_req *r);

/* Methods a route answers (HEAD goes with GET). */
enum {
    ADMIN_GET = 1 << 0,
    ADMIN_POST = 1 << 1,
};

/*
 * One endpoint: pattern segments are literal, or "{}" for an argument
 * (decoded into args[] in order). Every path under /api/ needs a token,
 * whether or not a route matches, so unknown paths reveal nothing.
 */
struct sy_admin_route {
    const char *pattern;
    unsigned methods;
    sy_admin_handler_fn handle;
    bool raw_body;              /* POST body not parsed as JSON: the handler reads it */
};

extern const struct sy_admin_route sy_admin_api_routes[];
extern const size_t sy_admin_api_nroutes;

/* The snapshot the API reads now. */
struct sy_conf *sy_admin_conf(void);

/* Seconds since the admin listener started. */
int64_t sy_admin_uptime_s(void);

/* Replies with obj (its reference is taken over) as JSON. */
void sy_admin_reply_json(struct sy_admin_req *r, int status, json_t *obj);
/* Replies {"error": message}. */
void sy_admin_reply_error(struct sy_admin_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replies with a body already built (buf is drained). */
void sy_admin_reply_buffer(struct sy_admin_req *r, int status, const char *content_type,
                           struct evbuffer *buf);

/*
 * The dashboard's sign-in (dashboard.c) keeps the token in this cookie; it
 * is accepted wherever the Authorization header is.
 */
#define SY_ADMIN_COOKIE "sy_admin"

/*
 * Checks the request's credentials without answering: the Authorization
 * header, else the SY_ADMIN_COOKIE cookie. 0 with r->token set when they
 * pass or no token_file is configured; else -1 with *reason set, NULL
 * when the request carried no credentials at all.
 */
int sy_admin_authenticate(struct sy_admin_req *r, const char **reason);
/* Index of the configured token equal to token[0, len), or -1 (constant time). */
int sy_admin_token_index(const char *token, size_t len);
/* Writes an auth_failed security event for the request's peer. */
void sy_admin_log_auth_failed(const struct sy_admin_req *r, const char *path,
                              const char *reason);

/* Writes an admin_action security event for the request's token and peer. */
void sy_admin_log_action(const struct sy_admin_req *r, const char *action, const char *reason,
                         const char *const *names, const char *const *values, size_t n);

/* A service's rollout (GET .../rollout) and scaling signal, for the API and the dashboard. */
json_t *sy_admin_rollout_json(const struct sy_service *svc, int64_t now_mono_ms);
json_t *sy_admin_scaling_json(const struct sy_service *svc);
/* This gateway in its fleet: {"gateway", "gateways"}; NULL without "redis". */
json_t *sy_admin_fleet_json(void);

#endif