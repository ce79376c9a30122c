/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cmd_maintenance.c: `switchyard-ctl maintenance SERVICE on|off`, POST
 * /api/v1/services/SERVICE/maintenance {"enabled": BOOL}: while on, the
 * service answers every request with its maintenance page.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int maintenance_exec(struct ctl *ctl, int argc, char **argv);

const struct ctl_cmd ctl_cmd_maintenance = {
    .name = "maintenance",
    .args = "SERVICE on|off",
    .summary = "serve the maintenance page, or stop",
    .min_args = 2,
    .max_args = 2,
    .exec = maintenance_exec,
};

static int maintenance_exec(struct ctl *ctl, int argc, char **argv)
{
    char path[1024] = "/api/v1/services";
    struct ctl_response resp;
    int on, rc;

    (void)argc;
    if (strcmp(argv[2], "on") != 0 && strcmp(argv[2], "off") != 0)
        return ctl_usage_error(&ctl_cmd_maintenance, "say on or off, not \"%s\"", argv[2]);
    on = strcmp(argv[2], "on") == 0;
    if (ctl_path_append(path, sizeof(path), argv[1]) < 0 ||
        ctl_path_append(path, sizeof(path), "maintenance") < 0)
        return ctl_usage_error(&ctl_cmd_maintenance, "SERVICE is too long");
    rc = ctl_call(ctl, "POST", path, json_pack("{s:b}", "enabled", on), &resp);
    if (rc >= 0)
        return rc;
    printf("service %s: maintenance %s\n", argv[1],
           on ? "on: every request gets the maintenance page" : "off: serving again");
    ctl_response_free(&resp);
    return CTL_OK;
}
