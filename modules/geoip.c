/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * geoip.c: the geoip module. It gives every request its client's country
 * (ISO 3166 alpha-2, "" unknown) from geoip.database, for the access and
 * security logs, access.deny_countries and "country" rate-limit keys.
 *
 * The database stays open across reloads while the file is unchanged; a
 * reload opens it again when it changed (geoipupdate renames a new file in
 * place). A file that cannot be opened refuses the start (and switchyard
 * -t); at a reload the old database keeps serving and the error is logged.
 */
#include <stdio.h>

#include "core/geoip.h"
#include "core/log.h"
#include "core/sy_module.h"
#include "http/request.h"

/* Main thread: the database the newest snapshot uses, to reuse or fall back on. */
static struct sy_geoip *current;

static int geoip_prepare(const struct sy_conf *conf, void **state, char *err, size_t errlen)
{
    char why[512];
    struct sy_geoip *g;

    *state = NULL;
    if (!conf->geoip_database)
        return 0;
    if (current && !sy_geoip_changed(current, conf->geoip_database)) {
        g = current;
        sy_geoip_ref(g);
    } else if ((g = sy_geoip_open(conf->geoip_database, why, sizeof(why))) == NULL) {
        if (!current) {
            snprintf(err, errlen, "geoip.database: %s", why);
            return -1;
        }
        sy_log_error(SY_LOG_ERROR, "geoip", "geoip.database: %s; the database opened before "
                     "(%s) keeps serving", why, sy_geoip_path(current));
        g = current;
        sy_geoip_ref(g);
    } else if (current) {
        sy_log_error(SY_LOG_INFO, "geoip", "geoip.database %s opened again: it changed",
                     conf->geoip_database);
    }
    /* the module's own reference follows the newest snapshot */
    if (g != current) {
        sy_geoip_ref(g);
        sy_geoip_unref(current);
        current = g;
    }
    *state = g;
    return 0;
}

static void geoip_release(void *state)
{
    sy_geoip_unref(state);
}

static enum sy_phase_result geoip_on_client(struct sy_request *req, void *state, void *scratch)
{
    char country[3];

    (void)scratch;
    if (state) {
        sy_geoip_country(state, sy_req_client_addr(req), country);
        sy_req_set_country(req, country);
    }
    return SY_PHASE_CONTINUE;
}

const struct sy_module sy_geoip_module = {
    .name = "geoip",
    .conf_prepare = geoip_prepare,
    .conf_release = geoip_release,
    .on_client = geoip_on_client,
};
