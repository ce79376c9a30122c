/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * modules.c: the table of modules (sy_module.h), the phases that run
 * them, and the request API they call (request.h). The table's order is
 * the order of each phase: the client's country is known before access
 * control reads it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "core/log.h"
#include "core/process.h"
#include "http.h"
#include "modules.h"
#include "request.h"

extern const struct sy_module sy_geoip_module;
extern const struct sy_module sy_access_module;
extern const struct sy_module sy_maintenance_module;
extern const struct sy_module sy_cors_module;
extern const struct sy_module sy_ratelimit_module;

static const struct sy_module *const modules[] = {
    &sy_geoip_module,
    &sy_access_module,
    &sy_maintenance_module,
    &sy_cors_module,
    &sy_ratelimit_module,
};
#define NMODULES (sizeof(modules) / sizeof(modules[0]))
_Static_assert(NMODULES <= SY_MODULES_MAX, "SY_MODULES_MAX holds every module");

/* Where each module's scratch begins in the request's module_scratch. */
static size_t scratch_at[NMODULES];

/* Once, before any worker runs (the first prepare is at start or -t). */
static int layout_scratch(char *err, size_t errlen)
{
    static bool done;
    size_t at = 0;

    if (done)
        return 0;
    for (size_t i = 0; i < NMODULES; i++) {
        scratch_at[i] = at;
        at += (modules[i]->request_bytes + 7) & ~(size_t)7;
    }
    if (at > SY_MODULE_SCRATCH_MAX) {
        snprintf(err, errlen, "modules need %zu bytes of request scratch, more than "
                 "SY_MODULE_SCRATCH_MAX (%d)", at, SY_MODULE_SCRATCH_MAX);
        return -1;
    }
    done = true;
    return 0;
}

/* ---- snapshots ---- */

int sy_modules_prepare(struct sy_conf *conf, char *err, size_t errlen)
{
    char why[512];

    if (layout_scratch(err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < NMODULES; i++) {
        if (!modules[i]->conf_prepare)
            continue;
        if (modules[i]->conf_prepare(conf, &conf->module_state[i], why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s: %s", conf->file ? conf->file : "configuration", why);
            return -1;
        }
    }
    return 0;
}

void sy_modules_release(struct sy_conf *conf)
{
    for (size_t i = 0; i < NMODULES; i++) {
        if (modules[i]->conf_release && conf->module_state[i])
            modules[i]->conf_release(conf->module_state[i]);
        conf->module_state[i] = NULL;
    }
}

/* ---- request phases ---- */

/* The phase's hooks from module `from` on; a module that waits is remembered. */
static enum sy_phase_result run(struct sy_request *req, size_t hook, size_t from)
{
    for (size_t i = from; i < NMODULES; i++) {
        enum sy_phase_result (*fn)(struct sy_request *, void *, void *) =
            hook == 0 ? modules[i]->on_client : modules[i]->on_route;
        enum sy_phase_result r = fn ? fn(req, req->conf->module_state[i],
                                          req->module_scratch + scratch_at[i])
                                    : SY_PHASE_CONTINUE;
        if (r == SY_PHASE_WAIT && hook == 1) {
            req->waiting_module = (uint8_t)i;
            req->state = SY_REQ_WAITING_MODULE;
        }
        if (r != SY_PHASE_CONTINUE)
            return r;
    }
    return SY_PHASE_CONTINUE;
}

enum sy_phase_result sy_modules_client(struct sy_request *req)
{
    return run(req, 0, 0);  /* the scratch was zeroed with the request */
}

enum sy_phase_result sy_modules_route(struct sy_request *req)
{
    return run(req, 1, 0);
}

/*
 * A waiting module lets the request go on: the rest of on_route, then the
 * proxy, in the state sy_proxy_start runs the phases in.
 */
void sy_req_resume(struct sy_request *req)
{
    if (req->state != SY_REQ_WAITING_MODULE)
        return;
    req->state = SY_REQ_READING_HEAD;
    if (run(req, 1, (size_t)req->waiting_module + 1) == SY_PHASE_CONTINUE)
        sy_proxy_continue(req);
}

void sy_modules_abandon(struct sy_request *req)
{
    const struct sy_module *m;

    if (req->state != SY_REQ_WAITING_MODULE)
        return;
    m = modules[req->waiting_module];
    if (m->on_abandon)
        m->on_abandon(req, req->conf->module_state[req->waiting_module],
                      req->module_scratch + scratch_at[req->waiting_module]);
}

void sy_modules_response(struct sy_request *req, struct sy_header_out *out)
{
    for (size_t i = 0; i < NMODULES; i++)
        if (modules[i]->on_response)
            modules[i]->on_response(req, req->conf->module_state[i],
                                    req->module_scratch + scratch_at[i], out);
}

/* ---- the main thread's tick ---- */

static struct {
    struct event *timer;
    const struct sy_conf *conf;
} ticker;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    for (size_t i = 0; i < NMODULES; i++)
        if (modules[i]->tick)
            modules[i]->tick(ticker.conf, ticker.conf->module_state[i]);
}

static int modules_start(struct event_base *base, struct sy_conf *conf, char *err,
                         size_t errlen)
{
    static const struct timeval second = {1, 0};

    ticker.conf = conf;
    ticker.timer = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    if (!ticker.timer || event_add(ticker.timer, &second) < 0) {
        snprintf(err, errlen, "cannot start the modules' timer");
        return -1;
    }
    return 0;
}

static void modules_reconfigure(struct sy_conf *conf)
{
    ticker.conf = conf;
}

static void modules_stop(void)
{
    if (ticker.timer) {
        event_free(ticker.timer);
        ticker.timer = NULL;
    }
}

const struct sy_main_service sy_modules_service = {
    .start = modules_start,
    .reconfigure = modules_reconfigure,
    .stop = modules_stop,
};

/* ---- the request API (request.h) ---- */

const char *sy_req_client_ip(const struct sy_request *req)
{
    return req->client_ip;
}

const struct sockaddr *sy_req_client_addr(const struct sy_request *req)
{
    return (const struct sockaddr *)&req->client_addr;
}

const char *sy_req_country(const struct sy_request *req)
{
    return req->country;
}

void sy_req_set_country(struct sy_request *req, const char *iso_code)
{
    snprintf(req->country, sizeof(req->country), "%s", iso_code ? iso_code : "");
}

const char *sy_req_header(const struct sy_request *req, const char *name, size_t *len)
{
    const char *data = req->in->data;
    size_t n = strlen(name);

    for (uint32_t i = 0; i < req->head.nheaders; i++) {
        const struct sy_header *hd = &req->head.headers[i];
        if (hd->name.len == n && strncasecmp(data + hd->name.off, name, n) == 0) {
            *len = hd->value.len;
            return data + hd->value.off;
        }
    }
    return NULL;
}

const char *sy_req_method(const struct sy_request *req, size_t *len)
{
    *len = req->head.method_text.len;
    return req->in->data + req->head.method_text.off;
}

const char *sy_req_host(const struct sy_request *req, size_t *len)
{
    *len = req->head.host.len;
    return req->in->data + req->head.host.off;
}

const char *sy_req_path(const struct sy_request *req, size_t *len)
{
    *len = req->head.path.len;
    return req->in->data + req->head.path.off;
}

const char *sy_req_id(const struct sy_request *req)
{
    return req->request_id;
}

const struct sy_route *sy_req_route(const struct sy_request *req)
{
    return req->route;
}

struct sy_worker_metrics *sy_req_metrics(const struct sy_request *req)
{
    return req->hw->metrics;
}

struct sy_redis *sy_req_redis(const struct sy_request *req)
{
    return req->hw->w->redis;
}

void sy_req_respond(struct sy_request *req, int status, const char *reason,
                    const char *headers)
{
    sy_respond_local_with(req, status, reason, headers);
}

void sy_req_respond_body(struct sy_request *req, int status, const char *content_type,
                         const void *body, size_t len, const char *headers)
{
    sy_respond_local_body(req, status, content_type, body, len, headers);
}
