/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * metrics.c: /metrics in the Prometheus text format 0.0.4: each family
 * opens with its HELP and TYPE lines, then its samples. The request and
 * latency families come from the metrics registry (core/metrics.h), the
 * others from the current snapshot and live state. Label values come from
 * the configuration, so they are escaped as the format says: backslash,
 * double quote and newline. Built in one flat buffer with a small writer
 * (10,000 series are about 40,000 lines) and handed to the reply by
 * reference, not copied.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/live.h"
#include "core/fleet.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/process.h"
#include "core/redis.h"
#include "core/worker.h"
#include "http/tls.h"
#include "metrics.h"

/* ---- the writer ---- */

struct text {
    char *p;
    size_t len, cap;
    bool failed;                /* out of memory: everything after is dropped */
};

static bool reserve(struct text *t, size_t n)
{
    if (t->failed)
        return false;
    if (t->len + n <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 65536;
    while (cap < t->len + n)
        cap *= 2;
    char *p = realloc(t->p, cap);
    if (!p) {
        t->failed = true;
        return false;
    }
    t->p = p;
    t->cap = cap;
    return true;
}

static void put(struct text *t, const char *s, size_t n)
{
    if (reserve(t, n)) {
        memcpy(t->p + t->len, s, n);
        t->len += n;
    }
}

static void put_str(struct text *t, const char *s)
{
    put(t, s, strlen(s));
}

#define PUT_LIT(t, lit) put((t), (lit), sizeof(lit) - 1)

/* Unchecked writers: the caller reserved room (20 bytes for a number). */
static char *copy(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *format_u64(char *p, uint64_t v)
{
    char digits[20];
    size_t n = 0;

    do {
        digits[sizeof(digits) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return copy(p, digits + sizeof(digits) - n, n);
}

/* Microseconds as seconds, shortest exact decimal: 5000 -> "0.005", 2500000 -> "2.5". */
static char *format_seconds(char *p, uint64_t us)
{
    char frac[8];
    int n = 6;

    p = format_u64(p, us / 1000000);
    us %= 1000000;
    if (!us)
        return p;
    frac[0] = '.';
    for (int i = 6; i >= 1; i--, us /= 10)
        frac[i] = (char)('0' + us % 10);
    while (frac[n] == '0')
        n--;
    return copy(p, frac, (size_t)n + 1);
}

static void put_u64(struct text *t, uint64_t v)
{
    if (reserve(t, 20))
        t->len = (size_t)(format_u64(t->p + t->len, v) - t->p);
}

static void put_escaped(struct text *t, const char *s)
{
    for (const char *run = s;; s++) {
        if (*s && *s != '\\' && *s != '"' && *s != '\n')
            continue;
        put(t, run, (size_t)(s - run));
        if (!*s)
            return;
        put(t, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n", 2);
        run = s + 1;
    }
}

/* name="value",... (escaped) into t; names and values both n long. */
static void put_labels(struct text *t, const char *const *names, const char *const *values,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            PUT_LIT(t, ",");
        put_str(t, names[i]);
        PUT_LIT(t, "=\"");
        put_escaped(t, values[i]);
        PUT_LIT(t, "\"");
    }
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
    PUT_LIT(t, "# HELP ");
    put_str(t, name);
    PUT_LIT(t, " ");
    put_str(t, help);
    PUT_LIT(t, "\n# TYPE ");
    put_str(t, name);
    PUT_LIT(t, " ");
    put_str(t, type);
    PUT_LIT(t, "\n");
}

/* name{LABELS} VALUE, where labels is already escaped text ("" for none). */
static void sample_signed(struct text *t, const char *name, const struct text *labels,
                          bool negative, uint64_t magnitude)
{
    put_str(t, name);
    if (labels->len) {
        PUT_LIT(t, "{");
        put(t, labels->p, labels->len);
        PUT_LIT(t, "}");
    }
    put_str(t, negative ? " -" : " ");
    put_u64(t, magnitude);
    PUT_LIT(t, "\n");
}

static void sample(struct text *t, const char *name, const struct text *labels, uint64_t value)
{
    sample_signed(t, name, labels, false, value);
}

/* ---- families from the registry ---- */

static const char *const route_label_names[] = {"service", "slot", "route"};
static const char *const slot_label_names[] = {"service", "slot"};
static const char *const upstream_label_names[] = {"pool", "instance"};

static void requests_total(struct text *t, struct text *labels)
{
    static const char name[] = "switchyard_http_requests_total";
    static struct sy_metrics_status statuses[SY_METRICS_MAX_STATUS + 1];
    uint32_t n = sy_metrics_count(SY_METRICS_ROUTE);

    family(t, name, "counter", "Requests answered, by service, slot, route (host and path "
           "prefix; empty when none matched) and status.");
    for (uint32_t id = 0; id < n; id++) {
        size_t nstatus = sy_metrics_statuses(id, statuses);
        if (!nstatus)
            continue;
        labels->len = 0;
        put_labels(labels, route_label_names, sy_metrics_labels(SY_METRICS_ROUTE, id), 3);
        size_t prefix = labels->len;
        for (size_t i = 0; i < nstatus; i++) {
            labels->len = prefix;
            PUT_LIT(labels, ",status=\"");
            put_u64(labels, (uint64_t)statuses[i].status);
            PUT_LIT(labels, "\"");
            sample(t, name, labels, statuses[i].count);
        }
    }
}

/* ,le="0.005"} and the like: each bound's text once. */
static const char *le_text(size_t i, size_t *len)
{
    static char text[SY_METRICS_NBOUNDS + 1][32];
    static size_t lens[SY_METRICS_NBOUNDS + 1];

    if (!lens[i]) {
        char *p = copy(text[i], ",le=\"", 5);
        if (i < SY_METRICS_NBOUNDS)
            p = format_seconds(p, sy_metrics_bounds_us[i]);
        else
            p = copy(p, "+Inf", 4);
        lens[i] = (size_t)(copy(p, "\"} ", 3) - text[i]);
    }
    *len = lens[i];
    return text[i];
}

/* name_bucket{LABELS,le="..."} for each bound and +Inf, then _sum and _count. */
static void histogram(struct text *t, const char *name, enum sy_metrics_kind kind,
                      const char *const *label_names, struct text *labels)
{
    uint32_t n = sy_metrics_count(kind);
    size_t name_len = strlen(name), le_len;
    struct sy_metrics_buckets b;

    for (uint32_t id = 0; id < n; id++) {
        sy_metrics_histogram(kind, id, &b);
        labels->len = 0;
        put_labels(labels, label_names, sy_metrics_labels(kind, id), 2);
        if (labels->failed || !reserve(t, (SY_METRICS_NBOUNDS + 3) * (name_len + labels->len + 64)))
            return;
        char *p = t->p + t->len;
        for (size_t i = 0; i <= SY_METRICS_NBOUNDS; i++) {
            const char *le = le_text(i, &le_len);
            p = copy(p, name, name_len);
            p = copy(p, "_bucket{", 8);
            p = copy(p, labels->p, labels->len);
            p = copy(p, le, le_len);
            p = format_u64(p, b.le[i]);
            *p++ = '\n';
        }
        p = copy(p, name, name_len);
        p = copy(p, "_sum{", 5);
        p = copy(p, labels->p, labels->len);
        p = copy(p, "} ", 2);
        p = format_seconds(p, b.sum_us);
        *p++ = '\n';
        p = copy(p, name, name_len);
        p = copy(p, "_count{", 7);
        p = copy(p, labels->p, labels->len);
        p = copy(p, "} ", 2);
        p = format_u64(p, b.le[SY_METRICS_NBOUNDS]);
        *p++ = '\n';
        t->len = (size_t)(p - t->p);
    }
}

static void durations(struct text *t, struct text *labels)
{
    static const char name[] = "switchyard_http_request_duration_seconds";

    family(t, name, "histogram", "Time from a request's first byte in to its response's "
           "last byte out, by service and slot (WebSocket tunnels are not timed).");
    histogram(t, name, SY_METRICS_SERVICE_SLOT, slot_label_names, labels);
}

static void upstream_times(struct text *t, struct text *labels)
{
    static const char name[] = "switchyard_upstream_response_seconds";

    family(t, name, "histogram", "Time from sending a request to an instance to its "
           "response head, by pool and instance.");
    histogram(t, name, SY_METRICS_UPSTREAM, upstream_label_names, labels);
}

/* ---- families from the snapshot and live state ---- */

static void instance_labels(struct text *labels, const struct sy_pool *pool,
                            const struct sy_instance *inst)
{
    const char *const values[] = {pool->name, inst->addr.text};

    labels->len = 0;
    put_labels(labels, upstream_label_names, values, 2);
}

static void upstream_up(struct text *t, struct text *labels, const struct sy_conf *conf,
                        int64_t now_ms)
{
    static const char name[] = "switchyard_upstream_up";

    family(t, name, "gauge", "1 while the instance is healthy and takes new requests "
           "(health up, not ejected, not drained), else 0.");
    for (size_t p = 0; p < conf->npools; p++) {
        const struct sy_pool *pool = &conf->pools[p];
        for (size_t i = 0; i < pool->ninstances; i++) {
            instance_labels(labels, pool, &pool->instances[i]);
            sample(t, name, labels, sy_live_healthy(pool->instances[i].live, now_ms) ? 1 : 0);
        }
    }
}

/* The checker writes these on the main thread, which is where we run. */
static void health_checks(struct text *t, struct text *labels, const struct sy_conf *conf)
{
    static const char name[] = "switchyard_upstream_health_checks_total";

    family(t, name, "counter", "Active health checks finished, by result.");
    for (size_t p = 0; p < conf->npools; p++) {
        const struct sy_pool *pool = &conf->pools[p];
        for (size_t i = 0; i < pool->ninstances; i++) {
            const struct sy_check_status *check = &pool->instances[i].live->check;
            instance_labels(labels, pool, &pool->instances[i]);
            size_t prefix = labels->len;
            PUT_LIT(labels, ",result=\"success\"");
            sample(t, name, labels, check->total_ok);
            labels->len = prefix;
            PUT_LIT(labels, ",result=\"failure\"");
            sample(t, name, labels, check->total_failed);
        }
    }
}

static void connections(struct text *t, struct text *labels)
{
    static const char name[] = "switchyard_connections_active";
    long n = sy_connections_active();

    family(t, name, "gauge", "Client connections open, all workers together.");
    labels->len = 0;
    sample(t, name, labels, n < 0 ? 0 : (uint64_t)n);
}

static void reloads(struct text *t, struct text *labels)
{
    static const char name[] = "switchyard_config_reloads_total";
    struct sy_reload_counts n = sy_process_reload_counts();

    family(t, name, "counter", "Configuration reloads since start, by result.");
    labels->len = 0;
    PUT_LIT(labels, "result=\"success\"");
    sample(t, name, labels, n.success);
    labels->len = 0;
    PUT_LIT(labels, "result=\"failure\"");
    sample(t, name, labels, n.failure);
}

static void log_dropped(struct text *t, struct text *labels)
{
    static const char name[] = "switchyard_log_dropped_total";

    family(t, name, "counter", "Log lines dropped because the writer fell behind, by log.");
    for (int s = 0; s < SY_LOG_NSTREAMS; s++) {
        const char *const names[] = {"log"}, *const values[] = {sy_log_stream_name(s)};
        labels->len = 0;
        put_labels(labels, names, values, 1);
        sample(t, name, labels, sy_log_dropped(s));
    }
}

/*
 * The Redis connections of the workers (core/redis.h). Without "redis" in
 * the configuration the families are written without samples: a gateway
 * that uses no Redis has no Redis to be down (no false alert on redis_up).
 */
static void redis(struct text *t, struct text *labels, const struct sy_conf *conf)
{
    static const char up[] = "switchyard_redis_up";
    static const char errors[] = "switchyard_redis_errors_total";
    static const char commands[] = "switchyard_redis_commands_total";
    struct sy_redis_stats st;

    sy_redis_stats(&st);
    labels->len = 0;
    family(t, up, "gauge", "1 while every worker's Redis connection is up, else 0.");
    if (conf->redis.enabled)
        sample(t, up, labels, st.connections > 0 && st.ready >= st.connections);
    family(t, errors, "counter", "Redis failures: connects that failed, connections lost, "
           "commands that timed out or got an error reply.");
    if (conf->redis.enabled)
        sample(t, errors, labels, st.errors);
    family(t, commands, "counter", "Commands sent to Redis, the handshakes' included.");
    if (conf->redis.enabled)
        sample(t, commands, labels, st.commands);
    family(t, "switchyard_fleet_gateways", "gauge", "Gateways on this Redis that showed up in "
           "the last 10 s, this one included (0 until Redis told).");
    if (sy_fleet_enabled())
        sample(t, "switchyard_fleet_gateways", labels, (uint64_t)sy_fleet_gateways());
}

/* Whether an earlier listener of conf already has the certificate file. */
static bool cert_seen(const struct sy_conf *conf, size_t listener, size_t index)
{
    size_t n;
    const struct sy_tls_cert_info *certs = sy_tls_server_certs(conf->listen[listener].tls_server,
                                                               &n);
    const char *file = certs[index].file;

    for (size_t l = 0; l <= listener; l++) {
        size_t m;
        const struct sy_tls_cert_info *other = conf->listen[l].tls_server
            ? sy_tls_server_certs(conf->listen[l].tls_server, &m) : NULL;
        for (size_t i = 0; other && i < (l == listener ? index : m); i++)
            if (strcmp(other[i].file, file) == 0)
                return true;
    }
    return false;
}

/* One sample per certificate file, however many listeners serve it. */
static void cert_expiry(struct text *t, struct text *labels, const struct sy_conf *conf)
{
    static const char name[] = "switchyard_tls_certificate_expiry_timestamp_seconds";
    static const char *const names[] = {"certificate"};

    family(t, name, "gauge", "When each served certificate expires (notAfter), in seconds "
           "since the epoch, by certificate file.");
    for (size_t l = 0; l < conf->nlisten; l++) {
        size_t n = 0;
        const struct sy_tls_cert_info *certs = conf->listen[l].tls_server
            ? sy_tls_server_certs(conf->listen[l].tls_server, &n) : NULL;
        for (size_t i = 0; i < n; i++) {
            if (cert_seen(conf, l, i))
                continue;
            labels->len = 0;
            put_labels(labels, names, &certs[i].file, 1);
            sample(t, name, labels, certs[i].not_after < 0 ? 0 : (uint64_t)certs[i].not_after);
        }
    }
}

static void services(struct text *t, struct text *labels, const struct sy_conf *conf)
{
    static const char slot_name[] = "switchyard_service_active_slot";
    static const char weight_name[] = "switchyard_service_canary_weight";
    static const char maint_name[] = "switchyard_service_maintenance";
    static const char *const slots[] = {"blue", "green"};

    family(t, slot_name, "gauge", "1 for the slot that takes the service's traffic, else 0.");
    for (size_t i = 0; i < conf->nservices; i++) {
        for (int s = 0; s < 2; s++) {
            const char *const values[] = {conf->services[i].name, slots[s]};
            labels->len = 0;
            put_labels(labels, slot_label_names, values, 2);
            sample(t, slot_name, labels, sy_live_active(&conf->services[i]) == (enum sy_slot)s);
        }
    }
    family(t, weight_name, "gauge", "Percent of the service's requests sent to the "
           "canary (the inactive slot).");
    for (size_t i = 0; i < conf->nservices; i++) {
        const char *const service[] = {conf->services[i].name};
        labels->len = 0;
        put_labels(labels, slot_label_names, service, 1);
        sample(t, weight_name, labels, (uint64_t)sy_live_canary_weight(&conf->services[i]));
    }
    family(t, maint_name, "gauge", "1 while the service answers every request with its "
           "maintenance page, else 0.");
    for (size_t i = 0; i < conf->nservices; i++) {
        const char *const service[] = {conf->services[i].name};
        labels->len = 0;
        put_labels(labels, slot_label_names, service, 1);
        sample(t, maint_name, labels, sy_live_maintenance(&conf->services[i]));
    }
}

/* The modules' counter families (metrics.h, SY_METRICS_COUNTER), by name. */
static const struct {
    const char *name, *help;
    const char *labels[2];
    size_t nlabels;
} counter_families[] = {
    {"switchyard_rate_limited_total", "Requests answered 429 by a rate limit, by limit and "
     "route.", {"limit", "route"}, 2},
    {"switchyard_denied_total", "Requests refused 403 by access control, by reason "
     "(deny_list, not_in_allow_list, country).", {"reason", NULL}, 1},
    {"switchyard_h2_streams_total", "HTTP/2 streams that carried a request, once closed, by "
     "result (ok, client_reset, malformed, error, refused, connection_closed).",
     {"result", NULL}, 1},
    {"switchyard_h2_goaway_total", "HTTP/2 connections sent GOAWAY, by reason (reload, "
     "shutdown, idle, header_timeout, flood, protocol_error).", {"reason", NULL}, 1},
};

static void event_counters(struct text *t, struct text *labels)
{
    uint32_t n = sy_metrics_count(SY_METRICS_COUNTER);

    for (size_t f = 0; f < sizeof(counter_families) / sizeof(counter_families[0]); f++) {
        family(t, counter_families[f].name, "counter", counter_families[f].help);
        for (uint32_t id = 0; id < n; id++) {
            const char *const *l = sy_metrics_labels(SY_METRICS_COUNTER, id);
            if (strcmp(l[0], counter_families[f].name) != 0)
                continue;
            labels->len = 0;
            put_labels(labels, counter_families[f].labels, l + 1, counter_families[f].nlabels);
            sample(t, counter_families[f].name, labels, sy_metrics_counter_value(id));
        }
    }
}

/* A gauge per service and slot, read from the service's live entry. */
static void slot_gauge(struct text *t, struct text *labels, const struct sy_conf *conf,
                       const char *name, const char *help, size_t field_offset)
{
    static const char *const slots[] = {"blue", "green"};

    family(t, name, "gauge", help);
    for (size_t i = 0; i < conf->nservices; i++) {
        const struct sy_service_live *live = conf->services[i].live;
        const _Atomic int *field = (const _Atomic int *)((const char *)live + field_offset);
        for (int s = 0; s < 2; s++) {
            const char *const values[] = {conf->services[i].name, slots[s]};
            int v = atomic_load_explicit(&field[s], memory_order_relaxed);
            labels->len = 0;
            put_labels(labels, slot_label_names, values, 2);
            sample(t, name, labels, v > 0 ? (uint64_t)v : 0);
        }
    }
}

static void deployments(struct text *t, struct text *labels, const struct sy_conf *conf)
{
    static const char state_name[] = "switchyard_rollout_state";
    static const char scale_name[] = "switchyard_scale_recommendation";
    static const char *const state_labels[] = {"service", "state"};

    family(t, state_name, "gauge", "1 for the state the service's rollout is in, else 0.");
    for (size_t i = 0; i < conf->nservices; i++) {
        const struct sy_service_live *live = conf->services[i].live;
        for (int s = 0; s < SY_ROLLOUT_NSTATES; s++) {
            const char *const values[] = {conf->services[i].name, sy_rollout_state_name(s)};
            labels->len = 0;
            put_labels(labels, state_labels, values, 2);
            sample(t, state_name, labels, live->rollout.state == (enum sy_rollout_state)s);
        }
    }
    family(t, scale_name, "gauge", "Scaling signal of the service's active pool: 1 add "
           "instances, -1 remove some, 0 hold (the figures: /api/v1/status).");
    for (size_t i = 0; i < conf->nservices; i++) {
        const char *const service[] = {conf->services[i].name};
        int r = conf->services[i].live->scaling.recommendation;
        labels->len = 0;
        put_labels(labels, slot_label_names, service, 1);
        sample_signed(t, scale_name, labels, r < 0, (uint64_t)(r < 0 ? -r : r));
    }
    slot_gauge(t, labels, conf, "switchyard_tunnels_active", "WebSocket tunnels open, by the "
               "service and slot they were opened on.", offsetof(struct sy_service_live, tunnels));
    slot_gauge(t, labels, conf, "switchyard_upstream_queue", "Requests waiting for an upstream "
               "connection (connect or TLS handshake under way), by service and slot.",
               offsetof(struct sy_service_live, connecting));
}

static void free_text(const void *data, size_t len, void *arg)
{
    (void)len, (void)arg;
    free((void *)data);
}

int sy_admin_metrics_write(struct evbuffer *out, const struct sy_conf *conf, int64_t now_ms)
{
    struct text t = {0}, labels = {0};

    requests_total(&t, &labels);
    durations(&t, &labels);
    upstream_times(&t, &labels);
    upstream_up(&t, &labels, conf, now_ms);
    health_checks(&t, &labels, conf);
    connections(&t, &labels);
    reloads(&t, &labels);
    log_dropped(&t, &labels);
    redis(&t, &labels, conf);
    cert_expiry(&t, &labels, conf);
    services(&t, &labels, conf);
    deployments(&t, &labels, conf);
    event_counters(&t, &labels);
    free(labels.p);
    if (t.failed || labels.failed ||
        evbuffer_add_reference(out, t.p, t.len, free_text, NULL) < 0) {
        free(t.p);
        return -1;
    }
    return 0;
}
