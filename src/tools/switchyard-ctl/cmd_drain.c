/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cmd_drain.c: `switchyard-ctl drain|undrain POOL ADDR`, POST
 * /api/v1/pools/POOL/instances/ADDR/drain (or /undrain) with no body.
 * ADDR is percent-encoded, so "[::1]:9001" travels as "%5B::1%5D:9001".
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int drain_exec(struct ctl *ctl, int argc, char **argv);

const struct ctl_cmd ctl_cmd_drain = {
    .name = "drain",
    .args = "POOL ADDR",
    .summary = "stop new requests to one instance",
    .min_args = 2,
    .max_args = 2,
    .exec = drain_exec,
};

const struct ctl_cmd ctl_cmd_undrain = {
    .name = "undrain",
    .args = "POOL ADDR",
    .summary = "let one instance take new requests again",
    .min_args = 2,
    .max_args = 2,
    .exec = drain_exec,
};

static int drain_exec(struct ctl *ctl, int argc, char **argv)
{
    const char *action = argv[0];
    char path[2048] = "/api/v1/pools";
    struct ctl_response resp;
    int rc;

    (void)argc;
    if (ctl_path_append(path, sizeof(path), argv[1]) < 0 ||
        ctl_path_append(path, sizeof(path), "instances") < 0 ||
        ctl_path_append(path, sizeof(path), argv[2]) < 0 ||
        ctl_path_append(path, sizeof(path), action) < 0)
        return ctl_usage_error(strcmp(action, "drain") == 0 ? &ctl_cmd_drain : &ctl_cmd_undrain,
                               "POOL or ADDR is too long");
    if ((rc = ctl_call(ctl, "POST", path, NULL, &resp)) >= 0)
        return rc;
    if (json_is_true(json_object_get(resp.body, "drained")))
        printf("pool %s: instance %s drained: no new requests, in-flight ones finish\n",
               ctl_str(resp.body, "pool", argv[1]), ctl_str(resp.body, "instance", argv[2]));
    else
        printf("pool %s: instance %s undrained: takes new requests\n",
               ctl_str(resp.body, "pool", argv[1]), ctl_str(resp.body, "instance", argv[2]));
    ctl_response_free(&resp);
    return CTL_OK;
}
