/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * dashboard.c: the live dashboard on the admin listener (SPEC.md, Admin API,
 * GET /): the page, its script and style, the sign-in form that puts the
 * token in a cookie, and GET /api/v1/dashboard, the JSON the page polls.
 * The page's files are linked into the binary as they are in the tree (see
 * EMBED); every figure comes from the main thread's metrics windows.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "sy_auto.h"
#include "admin_internal.h"
#include "dashboard.h"
#include "core/clock.h"
#include "core/live.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/balance.h"

/* The figures of the page cover the last minute (SPEC.md, GET /). */
#define WINDOW_MS           60000
#define JSON_FLAGS          (JSON_COMPACT | JSON_REAL_PRECISION(6))
#define LOGIN_NOTICE_MARK   "<!--notice-->"

/*
 * The page's files, linked in byte for byte: .incbin copies a file into
 * .rodata between two symbols, so the HTML, CSS and JavaScript stay plain
 * files to edit and review (no generated C, no escaping, no build step;
 * C23 #embed would do the same, but gcc 12 lacks it). Paths are
 * relative to the top of the tree, where make runs the compiler; the
 * dependency, which -MMD cannot see, is declared in Makefile.in.
 */
#define EMBED(sym, path)                                                      \
    __asm__(".pushsection .rodata\n"                                          \
            ".globl " #sym "\n.hidden " #sym "\n" #sym ":\n"                  \
            ".incbin \"" path "\"\n"                                          \
            ".globl " #sym "_end\n.hidden " #sym "_end\n" #sym "_end:\n"      \
            ".popsection\n");                                                 \
    extern const char sym[] __attribute__((visibility("hidden")));            \
    extern const char sym##_end[] __attribute__((visibility("hidden")))

EMBED(sy_dashboard_html, "src/admin/dashboard.html");
EMBED(sy_dashboard_css, "src/admin/dashboard.css");
EMBED(sy_dashboard_js, "src/admin/dashboard.js");
EMBED(sy_dashboard_login, "src/admin/dashboard-login.html");

/*
 * Our pages load nothing from elsewhere and run no inline script: a value
 * that slipped into the markup could not run.
 */
static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

static const char *const slot_names[] = {"blue", "green"};
/* ---- the page's files ---- */

static void add_page_headers(struct sy_admin_req *r)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);

    evhttp_add_header(h, "Content-Security-Policy", csp);
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
}

static void reply_static(struct sy_admin_req *r, const char *content_type, const char *start,
                         const char *end)
{
    struct evbuffer *buf = evbuffer_new();

    if (!buf || evbuffer_add_reference(buf, start, (size_t)(end - start), NULL, NULL) < 0) {
        if (buf)
            evbuffer_free(buf);
        sy_admin_reply_error(r, 500, "out of memory");
        return;
    }
    add_page_headers(r);
    sy_admin_reply_buffer(r, 200, content_type, buf);
    evbuffer_free(buf);
}

/* The sign-in form, with a fixed notice (never request data) at its mark. */
static void reply_login(struct sy_admin_req *r, int status, const char *notice)
{
    const char *page = sy_dashboard_login, *end = sy_dashboard_login_end;
    const char *mark = memmem(page, (size_t)(end - page), LOGIN_NOTICE_MARK,
                              sizeof(LOGIN_NOTICE_MARK) - 1);
    struct evbuffer *buf = evbuffer_new();
    int rc;

    if (!buf) {
        sy_admin_reply_error(r, 500, "out of memory");
        return;
    }
    if (!mark || !notice) {
        rc = evbuffer_add(buf, page, (size_t)(end - page));
    } else {
        const char *rest = mark + sizeof(LOGIN_NOTICE_MARK) - 1;
        rc = evbuffer_add(buf, page, (size_t)(mark - page));
        rc |= evbuffer_add_printf(buf, "<p class=\"notice\" role=\"alert\">%s</p>", notice) < 0;
        rc |= evbuffer_add(buf, rest, (size_t)(end - rest));
    }
    if (rc != 0) {
        evbuffer_free(buf);
        sy_admin_reply_error(r, 500, "out of memory");
        return;
    }
    add_page_headers(r);
    if (status == 401)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate",
                          "Bearer");
    sy_admin_reply_buffer(r, status, "text/html; charset=utf-8", buf);
    evbuffer_free(buf);
}

/* GET /: the dashboard for a request with a good token (or with no
 * token_file), else the sign-in form, which shows no data. */
void sy_admin_dashboard_page(struct sy_admin_req *r)
{
    const char *reason;

    if (sy_admin_authenticate(r, &reason) == 0) {
        reply_static(r, "text/html; charset=utf-8", sy_dashboard_html, sy_dashboard_html_end);
        return;
    }
    /* Only credentials that fail are an event: opening the form is not. */
    if (reason)
        sy_admin_log_auth_failed(r, "/", reason);
    reply_login(r, 401, reason ? "That token is no longer accepted: sign in again." : NULL);
}

void sy_admin_dashboard_js(struct sy_admin_req *r)
{
    reply_static(r, "text/javascript; charset=utf-8", sy_dashboard_js, sy_dashboard_js_end);
}

void sy_admin_dashboard_css(struct sy_admin_req *r)
{
    reply_static(r, "text/css; charset=utf-8", sy_dashboard_css, sy_dashboard_css_end);
}

/* ---- sign-in ---- */

static void reply_see_other(struct sy_admin_req *r, const char *cookie)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    struct evbuffer *buf = evbuffer_new();

    if (!buf) {
        sy_admin_reply_error(r, 500, "out of memory");
        return;
    }
    evbuffer_add_printf(buf, "see /\n");
    if (cookie)
        evhttp_add_header(h, "Set-Cookie", cookie);
    evhttp_add_header(h, "Location", "/");
    sy_admin_reply_buffer(r, 303, "text/plain; charset=utf-8", buf);
    evbuffer_free(buf);
}

/*
 * The "token" field of an application/x-www-form-urlencoded body, decoded
 * and trimmed, or NULL when missing or empty. The caller cleanses and frees
 * it (with its length in *len).
 */
static char *form_token(struct sy_admin_req *r, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t n = evbuffer_get_length(in);
    char *body = malloc(n + 1), *token = NULL;
    struct evkeyvalq fields;
    const char *value;

    if (!body)
        return NULL;
    evbuffer_copyout(in, body, n);
    body[n] = '\0';
    TAILQ_INIT(&fields);
    if (evhttp_parse_query_str(body, &fields) == 0 &&
        (value = evhttp_find_header(&fields, "token")) != NULL) {
        value += strspn(value, " \t\r\n");
        size_t vlen = strlen(value);
        while (vlen > 0 && strchr(" \t\r\n", value[vlen - 1]))
            vlen--;
        if (vlen > 0 && (token = strndup(value, vlen)) != NULL)
            *len = vlen;
    }
    evhttp_clear_headers(&fields);
    OPENSSL_cleanse(body, n);
    free(body);
    return token;
}

/*
 * POST /login, from the sign-in form: a good token comes back as a session
 * cookie and a redirect to the dashboard. HttpOnly keeps it from scripts,
 * SameSite=Strict from other sites' requests. It cannot be Secure: the admin
 * listener speaks plain HTTP on loopback, and a Secure cookie would never be
 * sent back over it.
 */
void sy_admin_dashboard_login(struct sy_admin_req *r)
{
    size_t len = 0;
    char *token, *encoded = NULL, cookie[1024];

    if (!r->conf->admin.token_file) {
        reply_see_other(r, NULL);   /* nothing to sign in to */
        return;
    }
    token = form_token(r, &len);
    r->token = token ? sy_admin_token_index(token, len) : -1;
    if (r->token < 0) {
        sy_admin_log_auth_failed(r, "/login", token ? "wrong token" : "no token");
        reply_login(r, 401, token ? "That token was refused." : "Enter a token.");
    } else if (!(encoded = evhttp_uriencode(token, (ev_ssize_t)len, 0))) {
        sy_admin_reply_error(r, 500, "out of memory");
    } else if ((size_t)snprintf(cookie, sizeof(cookie),
                                SY_ADMIN_COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/",
                                encoded) >= sizeof(cookie)) {
        reply_login(r, 400, "That token is too long to keep in a cookie: use the "
                    "Authorization header.");
    } else {
        sy_admin_log_action(r, "login", NULL, NULL, NULL, 0);
        reply_see_other(r, cookie);
    }
    if (token) {
        OPENSSL_cleanse(token, len);
        free(token);
    }
    if (encoded) {
        OPENSSL_cleanse(encoded, strlen(encoded));
        free(encoded);
    }
    OPENSSL_cleanse(cookie, sizeof(cookie));
}

void sy_admin_dashboard_logout(struct sy_admin_req *r)
{
    reply_see_other(r, SY_ADMIN_COOKIE "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
}

/* ---- GET /api/v1/dashboard ---- */

static json_t *ms_or_null(const struct sy_hist *h, double q)
{
    return sy_hist_count(h) ? json_real((double)sy_hist_quantile(h, q) / 1000.0) : json_null();
}

/* Adds a window's figures to obj: rates per covered second, quantiles in ms. */
static int add_window(json_t *obj, int64_t covered_ms, const struct sy_metrics_window *w)
{
    double seconds = covered_ms > 0 ? (double)covered_ms / 1000.0 : 0.0;
    int rc = 0;

    rc |= json_object_set_new(obj, "covered_s", json_real(seconds));
    rc |= json_object_set_new(obj, "requests", json_integer((json_int_t)w->requests));
    rc |= json_object_set_new(obj, "requests_per_s",
                              json_real(seconds > 0 ? (double)w->requests / seconds : 0.0));
    rc |= json_object_set_new(obj, "errors", json_integer((json_int_t)w->errors));
    rc |= json_object_set_new(obj, "error_rate", json_real(
        w->requests ? (double)w->errors / (double)w->requests : 0.0));
    rc |= json_object_set_new(obj, "p50_ms", ms_or_null(&w->hist, 0.50));
    rc |= json_object_set_new(obj, "p95_ms", ms_or_null(&w->hist, 0.95));
    rc |= json_object_set_new(obj, "p99_ms", ms_or_null(&w->hist, 0.99));
    return rc ? -1 : 0;
}

static json_t *slot_json(const struct sy_service *svc, enum sy_slot slot)
{
    struct sy_metrics_window w;
    json_t *obj = json_pack("{s:s}", "pool", svc->slot_pool[slot]->name);
    int64_t covered_ms = sy_metrics_service_window(svc->metric_id[slot], WINDOW_MS, &w);

    if (obj && add_window(obj, covered_ms, &w) < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *service_json(const struct sy_service *svc, int64_t now_ms)
{
    enum sy_slot other = sy_live_active(svc) == SY_SLOT_BLUE ? SY_SLOT_GREEN : SY_SLOT_BLUE;

    return json_pack("{s:s,s:s,s:i,s:s,s:s,s:i,s:b,s:b,s:{s:o,s:o},s:o*,s:o*}",
                     "name", svc->name, "active", slot_names[sy_live_active(svc)],
                     "canary_weight", sy_live_canary_weight(svc), "canary_slot", slot_names[other],
                     "rollout", sy_rollout_state_name(svc->live->rollout.state),
                     "scaling_signal", svc->live->scaling.recommendation,
                     "ready", sy_pool_healthy(svc->slot_pool[sy_live_active(svc)], now_ms),
                     "maintenance", sy_live_maintenance(svc),
                     "slots", "blue", slot_json(svc, SY_SLOT_BLUE),
                     "green", slot_json(svc, SY_SLOT_GREEN),
                     "rollout_detail", sy_admin_rollout_json(svc, sy_clock_ms(CLOCK_MONOTONIC)),
                     "scaling", sy_admin_scaling_json(svc));
}

static json_t *instance_json(const struct sy_pool *pool, const struct sy_instance *inst,
                             int64_t now_ms)
{
    struct sy_metrics_window w;
    const struct sy_instance_live *live = inst->live;
    json_t *obj = json_pack(
        "{s:s,s:i,s:s,s:s,s:b,s:I}", "addr", inst->addr.text, "weight", inst->weight,
        "state", sy_live_state(live, now_ms),
        "health", sy_health_name(atomic_load_explicit(&live->health, memory_order_relaxed)),
        "drained", atomic_load_explicit(&live->drained, memory_order_relaxed),
        "in_flight", (json_int_t)sy_balance_in_flight(pool, inst));
    /* the upstream series: time to the response head, 5xx as errors */
    int64_t covered_ms = sy_metrics_upstream_window(inst->metric_id, WINDOW_MS, &w);

    if (obj && add_window(obj, covered_ms, &w) < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *pool_json(const struct sy_pool *pool, int64_t now_ms)
{
    json_t *instances = json_array();
    size_t healthy = 0, usable = 0;

    for (size_t i = 0; instances && i < pool->ninstances; i++) {
        const struct sy_instance *inst = &pool->instances[i];
        healthy += sy_live_healthy(inst->live, now_ms);
        usable += sy_live_usable(inst->live, now_ms);
        if (json_array_append_new(instances, instance_json(pool, inst, now_ms)) < 0) {
            json_decref(instances);
            instances = NULL;
        }
    }
    return json_pack("{s:s,s:b,s:I,s:I,s:o}", "name", pool->name,
                     "health_checks", pool->health.enabled, "healthy", (json_int_t)healthy,
                     "usable", (json_int_t)usable, "instances", instances);
}

static json_t *dashboard_json(const struct sy_admin_req *r)
{
    const struct sy_conf *conf = r->conf;
    json_t *services = json_array(), *pools = json_array();
    char ts[32];

    for (size_t i = 0; services && i < conf->nservices; i++)
        if (json_array_append_new(services, service_json(&conf->services[i], r->now_ms)) < 0) {
            json_decref(services);
            services = NULL;
        }
    for (size_t i = 0; pools && i < conf->npools; i++)
        if (json_array_append_new(pools, pool_json(&conf->pools[i], r->now_ms)) < 0) {
            json_decref(pools);
            pools = NULL;
        }
    sy_log_format_ts(ts, r->now_ms);
    return json_pack("{s:s,s:I,s:s,s:i,s:s,s:o,s:o,s:o*}", "version", SY_VERSION,
                     "uptime_s", (json_int_t)sy_admin_uptime_s(), "generated_at", ts,
                     "window_s", WINDOW_MS / 1000,
                     "auth", conf->admin.token_file ? "token" : "open",
                     "services", services, "pools", pools, "fleet", sy_admin_fleet_json());
}

void sy_admin_dashboard_data(struct sy_admin_req *r)
{
    json_t *doc = dashboard_json(r);
    char *text = doc ? json_dumps(doc, JSON_FLAGS) : NULL;
    struct evbuffer *buf = text ? evbuffer_new() : NULL;

    json_decref(doc);
    if (!buf || evbuffer_add(buf, text, strlen(text)) < 0 || evbuffer_add(buf, "\n", 1) < 0) {
        if (buf)
            evbuffer_free(buf);
        free(text);
        sy_admin_reply_error(r, 500, "out of memory");
        return;
    }
    free(text);
    sy_admin_reply_buffer(r, 200, "application/json", buf);
    evbuffer_free(buf);
}
