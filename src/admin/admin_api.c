/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * admin_api.c: the endpoints of issue 5 (SPEC.md, Admin API; the contract
 * is docs/admin-api.md): probes, metrics, status, pools, drain and
 * reload, and the traffic changes (switch, canary, rollout, maintenance). Each handler reads the live snapshot on the main thread; health
 * and drain come from the instances' live state (core/live.h).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <netinet/in.h>

#include "sy_auto.h"
#include "admin_internal.h"
#include "core/clock.h"
#include "core/deploy.h"
#include "core/fleet.h"
#include "core/live.h"
#include "core/log.h"
#include "core/process.h"
#include "dashboard.h"
#include "http/balance.h"
#include "metrics.h"

static const char *const slot_names[] = {"blue", "green"};
static const char *const balance_names[] = {"round_robin", "least_conn", "ip_hash"};
/* ---- probes and metrics ---- */

static void get_health(struct sy_admin_req *r)
{
    sy_admin_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static bool service_ready(const struct sy_service *svc, int64_t now_ms)
{
    return sy_pool_healthy(svc->slot_pool[sy_live_active(svc)], now_ms);
}

static void get_ready(struct sy_admin_req *r)
{
    json_t *names = json_array();

    for (size_t i = 0; names && i < r->conf->nservices; i++)
        if (!service_ready(&r->conf->services[i], r->now_ms))
            json_array_append_new(names, json_string(r->conf->services[i].name));
    if (names && json_array_size(names) == 0) {
        json_decref(names);
        sy_admin_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
    } else {
        sy_admin_reply_json(r, 503, json_pack("{s:s,s:o*}", "status", "not_ready",
                                              "services", names));
    }
}

static void get_metrics(struct sy_admin_req *r)
{
    struct evbuffer *buf = evbuffer_new();

    if (!buf || sy_admin_metrics_write(buf, r->conf, r->now_ms) < 0) {
        if (buf)
            evbuffer_free(buf);
        sy_admin_reply_error(r, 500, "out of memory");
        return;
    }
    sy_admin_reply_buffer(r, 200, SY_METRICS_CONTENT_TYPE, buf);
    evbuffer_free(buf);
}

/* ---- status ---- */

/* The scaling signal and the figures behind it (SPEC.md, Scaling signal). */
json_t *sy_admin_scaling_json(const struct sy_service *svc)
{
    const struct sy_scaling_figures *f = &svc->live->scaling;

    return json_pack("{s:i,s:s,s:f,s:i,s:f,s:I,s:{s:I,s:I,s:f}}",
                     "recommendation", f->recommendation, "reason", f->reason,
                     "p95_ms", f->p95_ms, "queue", f->queue, "error_rate", f->error_rate,
                     "requests", (json_int_t)f->requests,
                     "limits", "max_p95_ms", (json_int_t)svc->scaling.max_p95_ms,
                     "max_queue", (json_int_t)svc->scaling.max_queue,
                     "max_error_rate", svc->scaling.max_error_rate);
}

/*
 * In fleet mode (core/fleet.h), the gateway that runs the service's rollout
 * controller (null while unknown) and the version of the shared state the
 * split is at. Without "redis" the fields are left out: nothing changes.
 */
static json_t *with_fleet(json_t *obj, const struct sy_service *svc, bool version)
{
    const char *leader = sy_fleet_leader(svc);

    if (!obj || !sy_fleet_enabled())
        return obj;
    if (json_object_set_new(obj, "leader", leader ? json_string(leader) : json_null()) < 0 ||
        (version && json_object_set_new(obj, "state_version",
                                        json_integer(svc->live->fleet.version)) < 0)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *service_json(const struct sy_service *svc, int64_t now_ms)
{
    return with_fleet(json_pack("{s:s,s:s,s:{s:s,s:s},s:i,s:b,s:b,s:s,s:o*}", "name", svc->name,
                                "active", slot_names[sy_live_active(svc)],
                                "pools", "blue", svc->slot_pool[SY_SLOT_BLUE]->name,
                                "green", svc->slot_pool[SY_SLOT_GREEN]->name,
                                "canary_weight", sy_live_canary_weight(svc),
                                "ready", service_ready(svc, now_ms),
                                "maintenance", sy_live_maintenance(svc),
                                "rollout", sy_rollout_state_name(svc->live->rollout.state),
                                "scaling", sy_admin_scaling_json(svc)), svc, true);
}

/* This gateway in its fleet (core/fleet.h); NULL without "redis" (the key is left out). */
json_t *sy_admin_fleet_json(void)
{
    if (!sy_fleet_enabled())
        return NULL;
    return json_pack("{s:s,s:I}", "gateway", sy_fleet_gateway_id(),
                     "gateways", (json_int_t)sy_fleet_gateways());
}

static json_t *pool_summary_json(const struct sy_pool *pool, int64_t now_ms)
{
    size_t healthy = 0, usable = 0;

    for (size_t i = 0; i < pool->ninstances; i++) {
        healthy += sy_live_healthy(pool->instances[i].live, now_ms);
        usable += sy_live_usable(pool->instances[i].live, now_ms);
    }
    return json_pack("{s:s,s:I,s:I,s:I}", "name", pool->name,
                     "instances", (json_int_t)pool->ninstances,
                     "healthy", (json_int_t)healthy, "usable", (json_int_t)usable);
}

static void get_status(struct sy_admin_req *r)
{
    const struct sy_conf *conf = r->conf;
    struct sy_reload_counts reloads = sy_process_reload_counts();
    json_t *services = json_array(), *pools = json_array();

    for (size_t i = 0; services && i < conf->nservices; i++)
        json_array_append_new(services, service_json(&conf->services[i], r->now_ms));
    for (size_t i = 0; pools && i < conf->npools; i++)
        json_array_append_new(pools, pool_summary_json(&conf->pools[i], r->now_ms));
    sy_admin_reply_json(r, 200, json_pack(
        "{s:s,s:I,s:I,s:i,s:s,s:{s:I,s:I},s:o*,s:o*,s:o*}",
        "version", SY_VERSION, "pid", (json_int_t)getpid(),
        "uptime_s", (json_int_t)sy_admin_uptime_s(), "workers", conf->workers,
        "config_file", conf->file ? conf->file : "",
        "reloads", "success", (json_int_t)reloads.success,
        "failure", (json_int_t)reloads.failure,
        "services", services, "pools", pools, "fleet", sy_admin_fleet_json()));
}

/* ---- pools ---- */

static json_t *timestamp_json(int64_t wall_ms)
{
    char ts[32];

    if (wall_ms <= 0)
        return json_null();
    sy_log_format_ts(ts, wall_ms);
    return json_string(ts);
}

static json_t *instance_json(const struct sy_pool *pool, const struct sy_instance *inst,
                             int64_t now_ms)
{
    const struct sy_instance_live *live = inst->live;
    const struct sy_check_status *check = &live->check;
    int64_t until = atomic_load_explicit(&live->ejected_until_ms, memory_order_relaxed);
    bool checked = check->last_ms > 0;

    return json_pack(
        "{s:s,s:i,s:s,s:s,s:b,s:o,s:I,s:{s:o,s:o,s:o}}",
        "addr", inst->addr.text, "weight", inst->weight,
        "state", sy_live_state(live, now_ms),
        "health", sy_health_name(atomic_load_explicit(&live->health, memory_order_relaxed)),
        "drained", atomic_load_explicit(&live->drained, memory_order_relaxed),
        "ejected_until", timestamp_json(until > now_ms ? until : 0),
        "in_flight", (json_int_t)sy_balance_in_flight(pool, inst),
        "last_check",
        "at", timestamp_json(check->last_ms),
        "status", checked && check->last_status ? json_integer(check->last_status) : json_null(),
        "error", checked && check->last_error[0] ? json_string(check->last_error) : json_null());
}

static json_t *pool_json(const struct sy_pool *pool, int64_t now_ms)
{
    json_t *instances = json_array();

    for (size_t i = 0; instances && i < pool->ninstances; i++)
        json_array_append_new(instances, instance_json(pool, &pool->instances[i], now_ms));
    return json_pack("{s:s,s:s,s:b,s:o*}", "name", pool->name,
                     "balance", balance_names[pool->balance],
                     "health_checks", pool->health.enabled, "instances", instances);
}

static void get_pools(struct sy_admin_req *r)
{
    json_t *pools = json_array();

    for (size_t i = 0; pools && i < r->conf->npools; i++)
        json_array_append_new(pools, pool_json(&r->conf->pools[i], r->now_ms));
    sy_admin_reply_json(r, 200, json_pack("{s:o*}", "pools", pools));
}

/* ---- drain ---- */

/* "ip:port" or "[ip6]:port" of a resolved address, to match what ctl users type. */
static void numeric_addr(const struct sy_addr *addr, char *out, size_t outlen)
{
    char ip[64];
    unsigned port = 0;

    sy_addr_ip_text((const struct sockaddr *)&addr->ss, ip, sizeof(ip));
    if (addr->ss.ss_family == AF_INET6) {
        port = ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
        snprintf(out, outlen, "[%s]:%u", ip, port);
    } else {
        port = ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
        snprintf(out, outlen, "%s:%u", ip, port);
    }
}

/* The instance written addr in the configuration, else the one at that address. */
static const struct sy_instance *find_instance(const struct sy_pool *pool, const char *addr)
{
    char numeric[96];

    for (size_t i = 0; i < pool->ninstances; i++)
        if (strcmp(pool->instances[i].addr.text, addr) == 0)
            return &pool->instances[i];
    for (size_t i = 0; i < pool->ninstances; i++) {
        numeric_addr(&pool->instances[i].addr, numeric, sizeof(numeric));
        if (strcmp(numeric, addr) == 0)
            return &pool->instances[i];
    }
    return NULL;
}

static void set_drained(struct sy_admin_req *r, bool drained)
{
    const char *pool_name = r->args[0], *addr = r->args[1];
    const struct sy_pool *pool = sy_conf_pool(r->conf, pool_name);
    const struct sy_instance *inst;

    if (!pool) {
        sy_admin_reply_error(r, 404, "unknown pool \"%s\"", pool_name);
        return;
    }
    if (!(inst = find_instance(pool, addr))) {
        sy_admin_reply_error(r, 404, "pool \"%s\" has no instance \"%s\"", pool->name, addr);
        return;
    }
    /* Workers read it with relaxed loads: their next pick skips it. */
    atomic_store(&inst->live->drained, drained);
    static const char *const names[] = {"pool", "instance"};
    const char *values[] = {pool->name, inst->addr.text};
    sy_admin_log_action(r, drained ? "drain" : "undrain", NULL, names, values, 2);
    sy_admin_reply_json(r, 200, json_pack("{s:s,s:s,s:b}", "pool", pool->name,
                                          "instance", inst->addr.text, "drained", drained));
}

static void post_drain(struct sy_admin_req *r)
{
    set_drained(r, true);
}

static void post_undrain(struct sy_admin_req *r)
{
    set_drained(r, false);
}

/* ---- traffic: blue-green switch and canary weight ---- */

static const struct sy_service *find_service(struct sy_admin_req *r)
{
    const struct sy_service *svc = sy_conf_service(r->conf, r->args[0]);

    if (!svc)
        sy_admin_reply_error(r, 404, "unknown service \"%s\"", r->args[0]);
    return svc;
}

static json_t *split_json(const struct sy_service *svc)
{
    return json_pack("{s:s,s:s,s:i}", "service", svc->name,
                     "active", slot_names[sy_live_active(svc)],
                     "canary_weight", sy_live_canary_weight(svc));
}

/*
 * {"to": "blue"|"green", "force": false}: the other slot takes all new
 * requests at once (the store is what every worker's next request reads);
 * requests already on the old slot finish there. Refused while the target
 * pool has no healthy instance, unless forced.
 */
static void post_switch(struct sy_admin_req *r)
{
    const struct sy_service *svc = find_service(r);
    const char *to_name = NULL;
    int force = 0;

    if (!svc)
        return;
    if (!r->body || json_unpack(r->body, "{s:s,s?b}", "to", &to_name, "force", &force) < 0) {
        sy_admin_reply_error(r, 400, "the body must be {\"to\": \"blue\" or \"green\", "
                             "\"force\": false}");
        return;
    }
    enum sy_slot to;
    if (strcmp(to_name, "blue") == 0) {
        to = SY_SLOT_BLUE;
    } else if (strcmp(to_name, "green") == 0) {
        to = SY_SLOT_GREEN;
    } else {
        sy_admin_reply_error(r, 400, "\"to\" must be \"blue\" or \"green\", not \"%s\"",
                             to_name);
        return;
    }
    enum sy_slot from = sy_live_active(svc);
    char err[256];
    int rc = sy_deploy_switch(r->conf, svc, to, force, err, sizeof(err));
    if (rc) {
        sy_admin_reply_error(r, rc, "%s", err);
        return;
    }
    static const char *const names[] = {"service", "from", "to", "force"};
    const char *values[] = {svc->name, slot_names[from], to_name, force ? "true" : "false"};
    sy_admin_log_action(r, "switch", NULL, names, values, 4);
    sy_admin_reply_json(r, 200, split_json(svc));
}

/* {"weight": 0..100}: the percentage of new requests sent to the slot that is not active. */
static void post_canary(struct sy_admin_req *r)
{
    const struct sy_service *svc = find_service(r);
    json_t *w = r->body ? json_object_get(r->body, "weight") : NULL;
    char text[8];

    if (!svc)
        return;
    if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 100) {
        sy_admin_reply_error(r, 400, "the body must be {\"weight\": N} with N an integer "
                             "from 0 to 100");
        return;
    }
    int weight = (int)json_integer_value(w);
    char err[256];
    int rc = sy_deploy_set_weight(r->conf, svc, weight, err, sizeof(err));
    if (rc) {
        sy_admin_reply_error(r, rc, "%s", err);
        return;
    }
    snprintf(text, sizeof(text), "%d", weight);
    static const char *const names[] = {"service", "weight"};
    const char *values[] = {svc->name, text};
    sy_admin_log_action(r, "canary", NULL, names, values, 2);
    sy_admin_reply_json(r, 200, split_json(svc));
}

/*
 * {"enabled": true|false}: the maintenance page for every new request to
 * the service, or back to the app. Saved to the state file like a switch.
 */
static void post_maintenance(struct sy_admin_req *r)
{
    const struct sy_service *svc = find_service(r);
    json_t *enabled = r->body ? json_object_get(r->body, "enabled") : NULL;

    if (!svc)
        return;
    if (!json_is_boolean(enabled)) {
        sy_admin_reply_error(r, 400, "the body must be {\"enabled\": true or false}");
        return;
    }
    bool on = json_is_true(enabled);
    sy_deploy_set_maintenance(r->conf, svc, on);
    static const char *const names[] = {"service", "enabled"};
    const char *values[] = {svc->name, on ? "true" : "false"};
    sy_admin_log_action(r, "maintenance", NULL, names, values, 2);
    sy_admin_reply_json(r, 200, json_pack("{s:s,s:b}", "service", svc->name,
                                          "maintenance", sy_live_maintenance(svc)));
}

/* ---- rollout ---- */

static json_t *side_json(const struct sy_rollout_side *side)
{
    return json_pack("{s:I,s:I,s:f,s:f}", "requests", (json_int_t)side->requests,
                     "errors", (json_int_t)side->errors, "error_rate", side->error_rate,
                     "p95_ms", side->p95_ms);
}

static json_t *analysis_json(const struct sy_rollout_analysis *a)
{
    if (!a->at_ms)
        return json_null();
    return json_pack("{s:o,s:i,s:i,s:f,s:s,s:s,s:o,s:o,s:f}", "at", timestamp_json(a->at_ms),
                     "step", a->step, "weight", a->weight,
                     "window_s", (double)a->window_ms / 1000.0, "verdict", a->verdict,
                     "reason", a->reason, "canary", side_json(&a->canary),
                     "baseline", side_json(&a->baseline), "p95_ratio", a->p95_ratio);
}

/* The rollout's state, step, weight and last analysis (GET, and every POST's answer). */
json_t *sy_admin_rollout_json(const struct sy_service *svc, int64_t now_mono_ms)
{
    const struct sy_rollout_live *ro = &svc->live->rollout;
    const struct sy_rollout_conf *rc = &svc->rollout;
    json_t *steps = json_array();
    bool active = sy_rollout_active(ro->state);
    int canary = active ? ro->canary_slot : !sy_live_active(svc);

    for (size_t i = 0; steps && i < rc->nsteps; i++)
        json_array_append_new(steps, json_integer(rc->steps[i]));
    json_t *obj = json_pack("{s:s,s:s,s:i,s:o*,s:i,s:s,s:s,s:f,s:{s:I,s:f,s:I,s:f,s:f},"
                            "s:o,s:o,s:o}",
                            "service", svc->name, "state", sy_rollout_state_name(ro->state),
                            "step", ro->step, "steps", steps, "weight", sy_live_canary_weight(svc),
                            "active", slot_names[sy_live_active(svc)], "canary", slot_names[canary],
                            "step_interval_s", (double)rc->step_interval_ms / 1000.0,
                            "limits", "min_requests", (json_int_t)rc->min_requests,
                            "max_error_rate", rc->max_error_rate,
                            "max_p95_ms", (json_int_t)rc->max_p95_ms,
                            "max_p95_ratio", rc->max_p95_ratio,
                            "p95_ratio_floor_ms", SY_ROLLOUT_RATIO_FLOOR_MS,
                            "step_elapsed_s", active ? json_real((double)(now_mono_ms -
                                                                 ro->step_started_ms) / 1000.0)
                                                     : json_null(),
                            "started", timestamp_json(ro->started_wall_ms),
                            "last_analysis", analysis_json(&ro->last));

    return with_fleet(obj, svc, false);
}

static void get_rollout(struct sy_admin_req *r)
{
    const struct sy_service *svc = find_service(r);

    if (svc)
        sy_admin_reply_json(r, 200, sy_admin_rollout_json(svc, sy_clock_ms(CLOCK_MONOTONIC)));
}

/* {"action": "start"|"pause"|"resume"|"abort"|"promote", "force": false} */
static void post_rollout(struct sy_admin_req *r)
{
    const struct sy_service *svc = find_service(r);
    const char *name = NULL;
    int force = 0, action;
    char err[256];

    if (!svc)
        return;
    if (!r->body || json_unpack(r->body, "{s:s,s?b}", "action", &name, "force", &force) < 0 ||
        (action = sy_rollout_action_parse(name)) < 0) {
        sy_admin_reply_error(r, 400, "the body must be {\"action\": \"start\", \"pause\", "
                             "\"resume\", \"abort\" or \"promote\", \"force\": false}");
        return;
    }
    const char *before = sy_rollout_state_name(svc->live->rollout.state);
    int rc = sy_deploy_rollout(r->conf, svc, (enum sy_rollout_action)action, force, err,
                               sizeof(err));
    static const char *const names[] = {"service", "rollout", "from", "to", "force"};
    const char *values[] = {svc->name, name, before,
                            sy_rollout_state_name(svc->live->rollout.state),
                            force ? "true" : "false"};
    sy_admin_log_action(r, "rollout", rc ? err : NULL, names, values, 5);
    if (rc)
        sy_admin_reply_error(r, rc, "%s", err);
    else
        sy_admin_reply_json(r, 200, sy_admin_rollout_json(svc, sy_clock_ms(CLOCK_MONOTONIC)));
}

/* ---- reload ---- */

static void post_reload(struct sy_admin_req *r)
{
    char err[512];
    static const char *const names[] = {"result"};
    const char *values[1];

    /* Runs our reconfigure: r->conf may be gone once this returns. */
    int rc = sy_process_reload(err, sizeof(err));
    r->conf = sy_admin_conf();
    values[0] = rc == 0 ? "reloaded" : "refused";
    sy_admin_log_action(r, "reload", rc == 0 ? NULL : err, names, values, 1);
    if (rc == 0)
        sy_admin_reply_json(r, 200, json_pack("{s:s,s:s}", "result", "reloaded", "config_file",
                                              r->conf->file ? r->conf->file : ""));
    else
        sy_admin_reply_error(r, 409, "reload refused: %s", err);
}

const struct sy_admin_route sy_admin_api_routes[] = {
    {.pattern = "/health", .methods = ADMIN_GET, .handle = get_health},
    {.pattern = "/ready", .methods = ADMIN_GET, .handle = get_ready},
    {.pattern = "/metrics", .methods = ADMIN_GET, .handle = get_metrics},
    {.pattern = "/api/v1/status", .methods = ADMIN_GET, .handle = get_status},
    {.pattern = "/api/v1/pools", .methods = ADMIN_GET, .handle = get_pools},
    {.pattern = "/api/v1/pools/{}/instances/{}/drain", .methods = ADMIN_POST,
     .handle = post_drain},
    {.pattern = "/api/v1/pools/{}/instances/{}/undrain", .methods = ADMIN_POST,
     .handle = post_undrain},
    {.pattern = "/api/v1/reload", .methods = ADMIN_POST, .handle = post_reload},
    {.pattern = "/api/v1/services/{}/switch", .methods = ADMIN_POST, .handle = post_switch},
    {.pattern = "/api/v1/services/{}/canary", .methods = ADMIN_POST, .handle = post_canary},
    {.pattern = "/api/v1/services/{}/maintenance", .methods = ADMIN_POST,
     .handle = post_maintenance},
    {.pattern = "/api/v1/services/{}/rollout", .methods = ADMIN_GET, .handle = get_rollout},
    {.pattern = "/api/v1/services/{}/rollout", .methods = ADMIN_POST, .handle = post_rollout},
    /* the live dashboard: dashboard.c */
    {.pattern = "/", .methods = ADMIN_GET, .handle = sy_admin_dashboard_page},
    {.pattern = "/dashboard.js", .methods = ADMIN_GET, .handle = sy_admin_dashboard_js},
    {.pattern = "/dashboard.css", .methods = ADMIN_GET, .handle = sy_admin_dashboard_css},
    {.pattern = "/login", .methods = ADMIN_POST, .handle = sy_admin_dashboard_login,
     .raw_body = true},
    {.pattern = "/logout", .methods = ADMIN_POST, .handle = sy_admin_dashboard_logout,
     .raw_body = true},
    {.pattern = "/api/v1/dashboard", .methods = ADMIN_GET, .handle = sy_admin_dashboard_data},
};
const size_t sy_admin_api_nroutes = sizeof(sy_admin_api_routes) / sizeof(sy_admin_api_routes[0]);
