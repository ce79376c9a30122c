/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * metrics.c: /metrics in the Prometheus text format 0.0.4: each family
 * opens with its HELP and TYPE lines, then its samples. Label values come
 * from the configuration (pool names, addresses), so they are escaped as
 * the format says: backslash, double quote and newline.
 */
#include <inttypes.h>
#include <stdatomic.h>

#include "core/live.h"
#include "core/process.h"
#include "core/worker.h"
#include "metrics.h"

static int family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0
               ? -1 : 0;
}

static int label_value(struct evbuffer *out, const char *s)
{
    int rc = 0;

    for (; *s && rc == 0; s++) {
        if (*s == '\\')
            rc = evbuffer_add(out, "\\\\", 2);
        else if (*s == '"')
            rc = evbuffer_add(out, "\\\"", 2);
        else if (*s == '\n')
            rc = evbuffer_add(out, "\\n", 2);
        else
            rc = evbuffer_add(out, s, 1);
    }
    return rc;
}

/* name{pool="P",instance="I"[,result="R"]} VALUE */
static int instance_sample(struct evbuffer *out, const char *name, const struct sy_pool *pool,
                           const struct sy_instance *inst, const char *result, uint64_t value)
{
    int rc = evbuffer_add_printf(out, "%s{pool=\"", name) < 0 ? -1 : 0;

    rc |= label_value(out, pool->name);
    rc |= evbuffer_add_printf(out, "\",instance=\"") < 0 ? -1 : 0;
    rc |= label_value(out, inst->addr.text);
    if (result)
        rc |= evbuffer_add_printf(out, "\",result=\"%s", result) < 0 ? -1 : 0;
    rc |= evbuffer_add_printf(out, "\"} %" PRIu64 "\n", value) < 0 ? -1 : 0;
    return rc;
}

static int upstream_up(struct evbuffer *out, const struct sy_conf *conf, int64_t now_ms)
{
    int rc = family(out, "switchyard_upstream_up", "gauge",
                    "1 while the instance is healthy and takes new requests "
                    "(health up, not ejected, not drained), else 0.");

    for (size_t p = 0; p < conf->npools; p++) {
        const struct sy_pool *pool = &conf->pools[p];
        for (size_t i = 0; i < pool->ninstances; i++) {
            const struct sy_instance *inst = &pool->instances[i];
            rc |= instance_sample(out, "switchyard_upstream_up", pool, inst, NULL,
                                  sy_live_healthy(inst->live, now_ms) ? 1 : 0);
        }
    }
    return rc;
}

/* The checker writes these on the main thread, which is where we run. */
static int health_checks(struct evbuffer *out, const struct sy_conf *conf)
{
    static const char name[] = "switchyard_upstream_health_checks_total";
    int rc = family(out, name, "counter", "Active health checks finished, by result.");

    for (size_t p = 0; p < conf->npools; p++) {
        const struct sy_pool *pool = &conf->pools[p];
        for (size_t i = 0; i < pool->ninstances; i++) {
            const struct sy_instance *inst = &pool->instances[i];
            const struct sy_check_status *check = &inst->live->check;
            rc |= instance_sample(out, name, pool, inst, "success", check->total_ok);
            rc |= instance_sample(out, name, pool, inst, "failure", check->total_failed);
        }
    }
    return rc;
}

static int reloads(struct evbuffer *out)
{
    static const char name[] = "switchyard_config_reloads_total";
    struct sy_reload_counts n = sy_process_reload_counts();
    int rc = family(out, name, "counter", "Configuration reloads since start, by result.");

    rc |= evbuffer_add_printf(out, "%s{result=\"success\"} %" PRIu64 "\n", name, n.success) < 0;
    rc |= evbuffer_add_printf(out, "%s{result=\"failure\"} %" PRIu64 "\n", name, n.failure) < 0;
    return rc ? -1 : 0;
}

static int connections(struct evbuffer *out)
{
    static const char name[] = "switchyard_connections_active";
    long n = sy_connections_active();
    int rc = family(out, name, "gauge", "Client connections open, all workers together.");

    rc |= evbuffer_add_printf(out, "%s %ld\n", name, n < 0 ? 0 : n) < 0 ? -1 : 0;
    return rc;
}

int sy_admin_metrics_write(struct evbuffer *out, const struct sy_conf *conf, int64_t now_ms)
{
    int rc = upstream_up(out, conf, now_ms);

    rc |= health_checks(out, conf);
    rc |= reloads(out);
    rc |= connections(out);
    return rc ? -1 : 0;
}
