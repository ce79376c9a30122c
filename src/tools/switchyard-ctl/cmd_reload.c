/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cmd_reload.c: `switchyard-ctl reload`, POST /api/v1/reload: the same as
 * SIGHUP, but the answer says whether the new configuration was taken
 * (409 and the reason when it was refused and the old one keeps serving).
 */
#include <stdio.h>

#include "ctl.h"

static int reload_exec(struct ctl *ctl, int argc, char **argv);

const struct ctl_cmd ctl_cmd_reload = {
    .name = "reload",
    .args = "",
    .summary = "reload the configuration (as SIGHUP), say if it was taken",
    .exec = reload_exec,
};

static int reload_exec(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_response resp;
    int rc;

    (void)argc, (void)argv;
    if ((rc = ctl_call(ctl, "POST", "/api/v1/reload", NULL, &resp)) >= 0)
        return rc;
    printf("%s %s\n", ctl_str(resp.body, "result", "reloaded"),
           ctl_str(resp.body, "config_file", "the configuration"));
    ctl_response_free(&resp);
    return CTL_OK;
}
