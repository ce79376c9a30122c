/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cmd_switch.c: `switchyard-ctl switch SERVICE blue|green [--force]`, POST
 * /api/v1/services/SERVICE/switch {"to": SLOT, "force": BOOL}: make SLOT
 * active with canary weight 0. The gateway refuses (409) when the target
 * pool has no healthy instance, unless forced.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int switch_exec(struct ctl *ctl, int argc, char **argv);

const struct ctl_cmd ctl_cmd_switch = {
    .name = "switch",
    .args = "SERVICE blue|green [--force]",
    .summary = "make a slot active (--force: even if unhealthy)",
    .min_args = 2,
    .max_args = 2,
    .takes_force = true,
    .exec = switch_exec,
};

static int switch_exec(struct ctl *ctl, int argc, char **argv)
{
    const char *slot = argv[2];
    char path[1024] = "/api/v1/services";
    struct ctl_response resp;
    int rc;

    (void)argc;
    if (strcmp(slot, "blue") != 0 && strcmp(slot, "green") != 0)
        return ctl_usage_error(&ctl_cmd_switch, "the slot is blue or green, not \"%s\"", slot);
    if (ctl_path_append(path, sizeof(path), argv[1]) < 0 ||
        ctl_path_append(path, sizeof(path), "switch") < 0)
        return ctl_usage_error(&ctl_cmd_switch, "SERVICE is too long");
    rc = ctl_call(ctl, "POST", path,
                  json_pack("{s:s, s:b}", "to", slot, "force", ctl->force ? 1 : 0), &resp);
    if (rc >= 0)
        return rc;
    printf("service %s: %s is active%s\n", argv[1], ctl_str(resp.body, "active", slot),
           ctl->force ? " (forced)" : "");
    ctl_response_free(&resp);
    return CTL_OK;
}
