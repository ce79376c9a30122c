/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cmd_canary.c: `switchyard-ctl canary SERVICE WEIGHT`, POST
 * /api/v1/services/SERVICE/canary {"weight": N}: the percentage (an
 * integer 0-100) of the service's traffic sent to the slot that is not
 * active.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ctl.h"

static int canary_exec(struct ctl *ctl, int argc, char **argv);

const struct ctl_cmd ctl_cmd_canary = {
    .name = "canary",
    .args = "SERVICE WEIGHT",
    .summary = "send WEIGHT % (0-100) of traffic to the other slot",
    .min_args = 2,
    .max_args = 2,
    .exec = canary_exec,
};

/* Digits only: "1e1", " 5", "+5" and "5%" are mistakes, not weights. */
static int parse_weight(const char *s, int *weight)
{
    long v = 0;

    if (s[0] == '\0')
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > 100)
            return -1;
    }
    *weight = (int)v;
    return 0;
}

static int canary_exec(struct ctl *ctl, int argc, char **argv)
{
    char path[1024] = "/api/v1/services";
    struct ctl_response resp;
    int weight, rc;

    (void)argc;
    if (parse_weight(argv[2], &weight) < 0)
        return ctl_usage_error(&ctl_cmd_canary, "WEIGHT is an integer from 0 to 100, not \"%s\"",
                               argv[2]);
    if (ctl_path_append(path, sizeof(path), argv[1]) < 0 ||
        ctl_path_append(path, sizeof(path), "canary") < 0)
        return ctl_usage_error(&ctl_cmd_canary, "SERVICE is too long");
    rc = ctl_call(ctl, "POST", path, json_pack("{s:i}", "weight", weight), &resp);
    if (rc >= 0)
        return rc;
    printf("service %s: canary weight %lld%%\n", argv[1],
           ctl_int(resp.body, "canary_weight", ctl_int(resp.body, "weight", weight)));
    ctl_response_free(&resp);
    return CTL_OK;
}
