/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * access.c: the access module, access.allow, access.deny and
 * access.deny_countries (SPEC.md). One longest-prefix table holds both
 * lists, so the longest prefix that contains the client decides whatever
 * list it is in; on a prefix in both lists, allow wins (allow before
 * deny). An address in no list is let in, unless access.allow is not
 * empty: then the allow list is the only way in. A client an allow prefix
 * names is not checked against the country list; any other client whose
 * country is in deny_countries is refused. A refusal is a 403 with a JSON
 * body, a "denied" security-log event (collapsed per client and rule
 * under a flood) and switchyard_denied_total{reason}.
 */
#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/sy_module.h"
#include "http/request.h"

enum rule { RULE_ALLOW, RULE_DENY };

/* What a refusal is called in the metric's reason label and the log. */
enum why { WHY_DENY_LIST, WHY_NOT_ALLOWED, WHY_COUNTRY, NWHY };
static const char *const why_names[NWHY] = {"deny_list", "not_in_allow_list", "country"};
static const char *const why_reasons[NWHY] = {
    "client address in access.deny",
    "client address not in access.allow",
    "client country in access.deny_countries",
};

struct access_state {
    struct sy_cidr_table *table;        /* NULL: no prefix */
    bool allow_list;                    /* access.allow is not empty */
    const struct sy_access *conf;       /* deny_countries */
    uint32_t denied[NWHY];              /* switchyard_denied_total series */
};

static int access_prepare(const struct sy_conf *conf, void **state, char *err, size_t errlen)
{
    const struct sy_access *a = &conf->access;
    size_t n = a->nallow + a->ndeny;

    *state = NULL;
    if (n == 0 && a->ndeny_countries == 0)
        return 0;
    struct access_state *st = calloc(1, sizeof(*st));
    struct sy_cidr *prefixes = calloc(n ? n : 1, sizeof(*prefixes));
    int *values = calloc(n ? n : 1, sizeof(*values));
    if (!st || !prefixes || !values)
        goto nomem;
    /* allow first: on a prefix in both lists, the first one's value wins */
    if (a->nallow)
        memcpy(prefixes, a->allow, a->nallow * sizeof(*prefixes));
    if (a->ndeny)
        memcpy(prefixes + a->nallow, a->deny, a->ndeny * sizeof(*prefixes));
    for (size_t i = 0; i < n; i++)
        values[i] = i < a->nallow ? RULE_ALLOW : RULE_DENY;
    if (n && !(st->table = sy_cidr_table_build(prefixes, values, n)))
        goto nomem;
    st->allow_list = a->nallow > 0;
    st->conf = a;
    for (int w = 0; w < NWHY; w++)
        st->denied[w] = sy_metrics_counter("switchyard_denied_total", why_names[w], NULL);
    free(prefixes);
    free(values);
    *state = st;
    return 0;
nomem:
    free(prefixes);
    free(values);
    free(st);
    snprintf(err, errlen, "access: out of memory building the access lists");
    return -1;
}

static void access_release(void *state)
{
    struct access_state *st = state;

    sy_cidr_table_free(st->table);
    free(st);
}

static bool country_denied(const struct sy_access *a, const char *country)
{
    if (!country[0])
        return false;
    for (size_t i = 0; i < a->ndeny_countries; i++)
        if (a->deny_countries[i][0] == country[0] && a->deny_countries[i][1] == country[1])
            return true;
    return false;
}

static enum sy_phase_result deny(struct sy_request *req, const struct access_state *st,
                                 enum why why)
{
    const char *ip = sy_req_client_ip(req);
    const struct sy_route *route = sy_req_route(req);
    char key[96];
    const struct sy_log_field fields[] = {
        {.name = "rule", .str = why_names[why]},
        {.name = "route", .str = route ? route->label : ""},
    };

    /* one line per client and rule a second under a flood */
    int klen = snprintf(key, sizeof(key), "%s|%s", why_names[why], ip);
    sy_log_security_keyed("denied", key, (size_t)klen < sizeof(key) ? (size_t)klen
                          : sizeof(key) - 1, ip, sy_req_country(req), why_reasons[why],
                          fields, sizeof(fields) / sizeof(fields[0]));
    sy_metrics_count_event(sy_req_metrics(req), st->denied[why], 1);
    sy_req_respond(req, 403, why_reasons[why], NULL);
    return SY_PHASE_DONE;
}

static enum sy_phase_result access_on_client(struct sy_request *req, void *state, void *scratch)
{
    const struct access_state *st = state;
    unsigned len;

    (void)scratch;
    if (!st)
        return SY_PHASE_CONTINUE;
    int rule = st->table ? sy_cidr_table_lookup(st->table, sy_req_client_addr(req), &len) : -1;
    if (rule == RULE_DENY)
        return deny(req, st, WHY_DENY_LIST);
    if (rule < 0 && st->allow_list)
        return deny(req, st, WHY_NOT_ALLOWED);
    if (rule != RULE_ALLOW && country_denied(st->conf, sy_req_country(req)))
        return deny(req, st, WHY_COUNTRY);
    return SY_PHASE_CONTINUE;
}

const struct sy_module sy_access_module = {
    .name = "access",
    .conf_prepare = access_prepare,
    .conf_release = access_release,
    .on_client = access_on_client,
};
