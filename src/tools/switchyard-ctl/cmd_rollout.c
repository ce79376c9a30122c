/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cmd_rollout.c: `switchyard-ctl rollout SERVICE ACTION`. The actions
 * start, pause, resume, abort and promote are POST
 * /api/v1/services/SERVICE/rollout {"action": ACTION}; status is a GET of
 * the same path, printed one field a line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static int rollout_exec(struct ctl *ctl, int argc, char **argv);

const struct ctl_cmd ctl_cmd_rollout = {
    .name = "rollout",
    .args = "SERVICE start|pause|resume|abort|promote|status",
    .summary = "drive or show the canary rollout",
    .min_args = 2,
    .max_args = 2,
    .exec = rollout_exec,
};

static const char *const actions[] = {"start", "pause", "resume", "abort", "promote"};

/* "field: value", nested objects and arrays as compact JSON. */
static void print_fields(const json_t *obj)
{
    const char *key;
    const json_t *v;

    json_object_foreach((json_t *)obj, key, v) {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

        printf("%s: %s\n", key, text ? text : json_is_string(v) ? json_string_value(v) : "?");
        free(text);
    }
}

static int rollout_exec(struct ctl *ctl, int argc, char **argv)
{
    const char *action = argv[2];
    int status = strcmp(action, "status") == 0, known = status;
    char path[1024] = "/api/v1/services";
    struct ctl_response resp;
    int rc;

    (void)argc;
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        known |= strcmp(action, actions[i]) == 0;
    if (!known)
        return ctl_usage_error(&ctl_cmd_rollout, "unknown rollout action \"%s\"", action);
    if (ctl_path_append(path, sizeof(path), argv[1]) < 0 ||
        ctl_path_append(path, sizeof(path), "rollout") < 0)
        return ctl_usage_error(&ctl_cmd_rollout, "SERVICE is too long");
    if (status)
        rc = ctl_call(ctl, "GET", path, NULL, &resp);
    else
        rc = ctl_call(ctl, "POST", path, json_pack("{s:s}", "action", action), &resp);
    if (rc >= 0)
        return rc;
    if (status)
        print_fields(resp.body);
    else if (ctl_str(resp.body, "state", NULL))
        printf("service %s: rollout %s: state %s\n", argv[1], action,
               ctl_str(resp.body, "state", NULL));
    else
        printf("service %s: rollout %s done\n", argv[1], action);
    ctl_response_free(&resp);
    return CTL_OK;
}
