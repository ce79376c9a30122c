/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cmd_status.c: `switchyard-ctl status`, GET /api/v1/status: the gateway
 * in two lines, then a table of services (active slot, the pool of each
 * slot, canary weight, ready; MAINT while some service serves its
 * maintenance page; LEADER in a fleet: the gateway that runs the rollout
 * controller, "this" for the one asked) and one of pools (instances,
 * healthy, usable). In a fleet a third line names the gateway and counts them.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int status_exec(struct ctl *ctl, int argc, char **argv);

const struct ctl_cmd ctl_cmd_status = {
    .name = "status",
    .args = "",
    .summary = "services, active slots, canary weights, pool health",
    .exec = status_exec,
};

static void print_gateway(const json_t *st)
{
    const json_t *reloads = json_object_get(st, "reloads");
    char up[32] = "-";

    if (ctl_int(st, "uptime_s", -1) >= 0)
        ctl_duration(ctl_int(st, "uptime_s", 0), up, sizeof(up));
    printf("switchyard %s  pid %lld  up %s  workers %lld\n", ctl_str(st, "version", "-"),
           ctl_int(st, "pid", 0), up, ctl_int(st, "workers", 0));
    printf("config %s  reloads %lld ok, %lld failed\n", ctl_str(st, "config_file", "-"),
           ctl_int(reloads, "success", 0), ctl_int(reloads, "failure", 0));
    /* gateways without a fleet, or before fleets existed, send null or nothing */
    const json_t *fleet = json_object_get(st, "fleet");
    if (json_is_object(fleet))
        printf("fleet gateway %s  %lld gateway(s) on its Redis\n", ctl_str(fleet, "gateway", "-"),
               ctl_int(fleet, "gateways", 0));
    putchar('\n');
}

/* The leader column's text: "this" for the gateway asked, "-" when unknown. */
static const char *leader_text(const json_t *svc, const char *self)
{
    const char *leader = ctl_str(svc, "leader", NULL);

    if (!leader)
        return "-";
    return self && strcmp(leader, self) == 0 ? "this" : leader;
}

/* Gateways before 0.2 report no rollouts: the column shows when one does. */
static const char *rollout_state(const json_t *svc)
{
    const json_t *r = json_object_get(svc, "rollout");

    if (json_is_string(r))
        return json_string_value(r);
    return json_is_object(r) ? ctl_str(r, "state", NULL) : NULL;
}

static void print_services(struct ctl *ctl, const json_t *services, const char *self)
{
    const json_t *svc;
    size_t i;
    int rollouts = 0, scaling = 0, maint = 0, fleet = self != NULL;
    struct ctl_table *t;

    json_array_foreach(services, i, svc) {
        rollouts |= rollout_state(svc) != NULL;
        scaling |= json_is_object(json_object_get(svc, "scaling"));
        maint |= json_is_true(json_object_get(svc, "maintenance"));
    }
    t = ctl_table_new(6 + rollouts + scaling + maint + fleet);
    ctl_table_add(t, CTL_PLAIN, "SERVICE");
    ctl_table_add(t, CTL_PLAIN, "ACTIVE");
    ctl_table_add(t, CTL_PLAIN, "BLUE");
    ctl_table_add(t, CTL_PLAIN, "GREEN");
    ctl_table_add(t, CTL_PLAIN, "CANARY");
    if (rollouts)
        ctl_table_add(t, CTL_PLAIN, "ROLLOUT");
    if (scaling)
        ctl_table_add(t, CTL_PLAIN, "SCALE");
    if (maint)
        ctl_table_add(t, CTL_PLAIN, "MAINT");
    if (fleet)
        ctl_table_add(t, CTL_PLAIN, "LEADER");
    ctl_table_add(t, CTL_PLAIN, "READY");
    json_array_foreach(services, i, svc) {
        const json_t *pools = json_object_get(svc, "pools");
        const json_t *ready = json_object_get(svc, "ready");
        long long weight = ctl_int(svc, "canary_weight", -1);

        ctl_table_add(t, CTL_PLAIN, "%s", ctl_str(svc, "name", "-"));
        ctl_table_add(t, CTL_PLAIN, "%s", ctl_str(svc, "active", "-"));
        ctl_table_add(t, CTL_PLAIN, "%s", ctl_str(pools, "blue", "-"));
        ctl_table_add(t, CTL_PLAIN, "%s", ctl_str(pools, "green", "-"));
        if (weight >= 0)
            ctl_table_add(t, weight ? CTL_YELLOW : CTL_PLAIN, "%lld%%", weight);
        else
            ctl_table_add(t, CTL_PLAIN, "-");
        if (rollouts)
            ctl_table_add(t, CTL_PLAIN, "%s", rollout_state(svc) ? rollout_state(svc) : "-");
        if (scaling) {
            long long r = ctl_int(json_object_get(svc, "scaling"), "recommendation", 0);
            ctl_table_add(t, r > 0 ? CTL_YELLOW : CTL_PLAIN, r > 0 ? "+%lld" : "%lld", r);
        }
        if (maint) {
            bool on = json_is_true(json_object_get(svc, "maintenance"));
            ctl_table_add(t, on ? CTL_RED : CTL_PLAIN, "%s", on ? "on" : "-");
        }
        if (fleet)
            ctl_table_add(t, CTL_PLAIN, "%s", leader_text(svc, self));
        if (json_is_boolean(ready))
            ctl_table_add(t, json_is_true(ready) ? CTL_GREEN : CTL_RED, "%s",
                          json_is_true(ready) ? "yes" : "no");
        else
            ctl_table_add(t, CTL_PLAIN, "-");
    }
    ctl_table_print(t, ctl);
    ctl_table_free(t);
}

static void print_pools(struct ctl *ctl, const json_t *pools)
{
    struct ctl_table *t = ctl_table_new(4);
    const json_t *pool;
    size_t i;

    ctl_table_add(t, CTL_PLAIN, "POOL");
    ctl_table_add(t, CTL_PLAIN, "INSTANCES");
    ctl_table_add(t, CTL_PLAIN, "HEALTHY");
    ctl_table_add(t, CTL_PLAIN, "USABLE");
    json_array_foreach(pools, i, pool) {
        long long n = ctl_int(pool, "instances", 0);
        long long healthy = ctl_int(pool, "healthy", 0);
        long long usable = ctl_int(pool, "usable", 0);

        ctl_table_add(t, CTL_PLAIN, "%s", ctl_str(pool, "name", "-"));
        ctl_table_add(t, CTL_PLAIN, "%lld", n);
        ctl_table_add(t, healthy == 0 ? CTL_RED : healthy < n ? CTL_YELLOW : CTL_GREEN, "%lld",
                      healthy);
        ctl_table_add(t, usable == 0 ? CTL_RED : CTL_PLAIN, "%lld", usable);
    }
    ctl_table_print(t, ctl);
    ctl_table_free(t);
}

static int status_exec(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_response resp;
    int rc;

    (void)argc, (void)argv;
    if ((rc = ctl_call(ctl, "GET", "/api/v1/status", NULL, &resp)) >= 0)
        return rc;
    const json_t *fleet = json_object_get(resp.body, "fleet");
    print_gateway(resp.body);
    print_services(ctl, json_object_get(resp.body, "services"),
                   json_is_object(fleet) ? ctl_str(fleet, "gateway", "") : NULL);
    putchar('\n');
    print_pools(ctl, json_object_get(resp.body, "pools"));
    ctl_response_free(&resp);
    return CTL_OK;
}
