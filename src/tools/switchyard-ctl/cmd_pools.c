/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cmd_pools.c: `switchyard-ctl pools`, GET /api/v1/pools: one row per
 * instance. STATE is the gateway's one word (drained > ejected > health);
 * LAST CHECK is how long ago the active check ran and what it saw, "off"
 * for a pool without active checks.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int pools_exec(struct ctl *ctl, int argc, char **argv);

const struct ctl_cmd ctl_cmd_pools = {
    .name = "pools",
    .args = "",
    .summary = "every instance: state, health, in-flight, last check",
    .exec = pools_exec,
};

static void add_state(struct ctl_table *t, const json_t *inst)
{
    const char *state = ctl_str(inst, "state", "-");
    const char *until = ctl_str(inst, "ejected_until", NULL);

    if (strcmp(state, "ejected") == 0 && until && ctl_seconds_until(until) > 0)
        ctl_table_add(t, CTL_YELLOW, "ejected %llds", ctl_seconds_until(until));
    else
        ctl_table_add(t, ctl_state_color(state), "%s", state);
}

static void add_last_check(struct ctl_table *t, const json_t *pool, const json_t *inst)
{
    const json_t *check = json_object_get(inst, "last_check");
    const char *at = ctl_str(check, "at", NULL);
    const char *error = ctl_str(check, "error", NULL);
    long long status = ctl_int(check, "status", -1);
    char ago[64];

    if (json_is_false(json_object_get(pool, "health_checks"))) {
        ctl_table_add(t, CTL_PLAIN, "off");
        return;
    }
    if (at == NULL) {
        ctl_table_add(t, CTL_PLAIN, "-");
        return;
    }
    ctl_ago(at, ago, sizeof(ago));
    if (error)
        ctl_table_add(t, CTL_RED, "%s (%s)", ago, error);
    else if (status >= 0)
        ctl_table_add(t, CTL_PLAIN, "%s (%lld)", ago, status);
    else
        ctl_table_add(t, CTL_PLAIN, "%s", ago);
}

static int pools_exec(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_response resp;
    struct ctl_table *t;
    const json_t *pool, *inst;
    size_t i, j;
    int rc;

    (void)argc, (void)argv;
    if ((rc = ctl_call(ctl, "GET", "/api/v1/pools", NULL, &resp)) >= 0)
        return rc;
    t = ctl_table_new(6);
    ctl_table_add(t, CTL_PLAIN, "POOL");
    ctl_table_add(t, CTL_PLAIN, "INSTANCE");
    ctl_table_add(t, CTL_PLAIN, "STATE");
    ctl_table_add(t, CTL_PLAIN, "HEALTH");
    ctl_table_add(t, CTL_PLAIN, "IN-FLIGHT");
    ctl_table_add(t, CTL_PLAIN, "LAST CHECK");
    json_array_foreach(json_object_get(resp.body, "pools"), i, pool) {
        json_array_foreach(json_object_get(pool, "instances"), j, inst) {
            const char *health = ctl_str(inst, "health", "-");

            ctl_table_add(t, CTL_PLAIN, "%s", ctl_str(pool, "name", "-"));
            ctl_table_add(t, CTL_PLAIN, "%s", ctl_str(inst, "addr", "-"));
            add_state(t, inst);
            ctl_table_add(t, ctl_state_color(health), "%s", health);
            ctl_table_add(t, CTL_PLAIN, "%lld", ctl_int(inst, "in_flight", 0));
            add_last_check(t, pool, inst);
        }
    }
    ctl_table_print(t, ctl);
    ctl_table_free(t);
    ctl_response_free(&resp);
    return CTL_OK;
}
