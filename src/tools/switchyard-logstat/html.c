/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * html.c: `switchyard-logstat --html FILE`: the report document (the one --json prints) as one
 * page that opens offline and prints: inline style, charts as inline SVG (html_svg.c), no
 * script, no external resource. Every string in the document came from a log line and may be
 * hostile: it reaches the page only through lsh_esc*(). Nor is the document's shape trusted: a
 * missing, null or mistyped field shows as a dash, never as "(null)" or a crash.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"
#include "html_page.h"
#include "html_svg.h"

#define DASH      "\xe2\x80\x93"    /* en dash: a figure the document does not have */
#define CELL_MAX  160               /* bytes of a string shown in a cell; more goes to its title */
#define TITLE_MAX 2048              /* bytes of a string kept in a title attribute */
#define BAR_MAX   70                /* % of a share cell that a 100 % bar takes; then its figure */

/* ---- cells ---------------------------------------------------------------------------- */

/* The figure o.key in its unit, or a dash. */
static void put_num(struct lsh_page *pg, const json_t *o, const char *key, enum lsh_unit unit)
{
    char buf[LSH_FMT];
    double v;

    if (lsh_num(o, key, &v))
        lsh_put(pg, lsh_fmt_unit(buf, unit, v));
    else
        lsh_put(pg, "<span class=\"na\">" DASH "</span>");
}

static void td_num(struct lsh_page *pg, const json_t *o, const char *key, enum lsh_unit unit)
{
    lsh_put(pg, "<td class=\"n\">");
    put_num(pg, o, key, unit);
    lsh_put(pg, "</td>");
}

/* Any JSON value as text: a string cut to max bytes, numbers, true/false, a dash for null or
 * nothing, and an object or array as its compact JSON. */
static void put_value(struct lsh_page *pg, const json_t *v, size_t max)
{
    char buf[LSH_FMT];

    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING:
        if (json_string_length(v) == 0)
            lsh_put(pg, "<span class=\"na\">(empty)</span>");
        else
            lsh_esc_cut(pg, json_string_value(v), json_string_length(v), max);
        return;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        lsh_put(pg, buf);
        return;
    case JSON_REAL:
        snprintf(buf, sizeof(buf), "%g", json_real_value(v));
        lsh_put(pg, buf);
        return;
    case JSON_TRUE: lsh_put(pg, "true"); return;
    case JSON_FALSE: lsh_put(pg, "false"); return;
    case JSON_NULL: lsh_put(pg, "<span class=\"na\">" DASH "</span>"); return;
    case JSON_OBJECT:
    case JSON_ARRAY: break;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text != NULL)
        lsh_esc_cut(pg, text, strlen(text), max);
    free(text);
}

/* A cell holding a string from the logs: cut to CELL_MAX bytes, so that a 60 KiB user agent
 * cannot drown a table, and whole (up to TITLE_MAX) in its title. */
static void td_text(struct lsh_page *pg, const json_t *v)
{
    lsh_put(pg, "<td class=\"key\"");
    if (json_is_string(v) && json_string_length(v) > CELL_MAX) {
        lsh_put(pg, " title=\"");
        lsh_esc_cut(pg, json_string_value(v), json_string_length(v), TITLE_MAX);
        lsh_put(pg, "\"");
    }
    lsh_put(pg, ">");
    put_value(pg, v, CELL_MAX);
    lsh_put(pg, "</td>");
}

/* A timestamp string from the document: shown as it is (escaped), or a dash. */
static void put_ts(struct lsh_page *pg, const char *ts)
{
    if (ts == NULL)
        lsh_put(pg, "<span class=\"na\">" DASH "</span>");
    else
        lsh_esc_cut(pg, ts, strlen(ts), 40);
}

/* ---- tables --------------------------------------------------------------------------- */

/* {"key": s, "count": N} rows, with each row's share of total (or of the largest row). */
static void keycount_table(struct lsh_page *pg, const char *title, const char *keyhead,
                           const json_t *rows, double total)
{
    size_t n = json_array_size(rows);
    double max = 0;
    char buf[LSH_FMT];

    lsh_putf(pg, "<div><h4>%s</h4>\n", title);
    if (n == 0) {
        lsh_none(pg, "None.");
        lsh_put(pg, "</div>\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double v = lsh_num_or(json_array_get(rows, i), "count", 0);
        max = v > max ? v : max;
    }
    if (total < max)
        total = max;
    lsh_putf(pg, "<table><thead><tr><th>%s</th><th class=\"n\">Count</th><th class=\"share\">Share"
                 "</th></tr></thead><tbody>\n", keyhead);
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(rows, i);
        double v = lsh_num_or(row, "count", 0);

        lsh_put(pg, "<tr>");
        td_text(pg, lsh_get(row, "key"));
        td_num(pg, row, "count", LSH_COUNT);
        lsh_putf(pg, "<td class=\"share\"><span class=\"bar\" style=\"width:%.1f%%\"></span>%s</td>"
                     "</tr>\n", total > 0 ? v / total * BAR_MAX : 0,
                 lsh_fmt_rate(buf, total > 0 ? v / total : 0));
    }
    lsh_put(pg, "</tbody></table></div>\n");
}

struct breakdown {
    const char *key, *title, *keyhead;
};

/* {"total": N, "by_x": [{"key", "count"}], ...}: the total, then one table per breakdown. */
static void render_breakdowns(struct lsh_page *pg, const char *title, const json_t *o,
                              const struct breakdown *parts)
{
    char buf[LSH_FMT];

    lsh_putf(pg, "<h3>%s</h3>\n", title);
    if (!json_is_object(o)) {
        lsh_none(pg, "Not in the report.");
        return;
    }
    lsh_putf(pg, "<p><b>%s</b> in all.</p>\n<div class=\"grid\">\n",
             lsh_fmt_count(buf, lsh_num_or(o, "total", 0)));
    for (const struct breakdown *b = parts; b->key; b++)
        keycount_table(pg, b->title, b->keyhead, lsh_get(o, b->key), lsh_num_or(o, "total", 0));
    lsh_put(pg, "</div>\n");
}

/* ---- the sections --------------------------------------------------------------------- */

static void figure(struct lsh_page *pg, const char *label, const json_t *o, const char *key,
                   enum lsh_unit unit)
{
    lsh_put(pg, "<div class=\"fig\"><b>");
    put_num(pg, o, key, unit);
    lsh_putf(pg, "</b><span>%s</span></div>\n", label);
}

static void latency_row(struct lsh_page *pg, const char *label, const json_t *o)
{
    static const char *const keys[] = {"mean", "p50", "p95", "p99", "max"};

    lsh_putf(pg, "<tr><td>%s</td>", label);
    td_num(pg, o, "count", LSH_COUNT);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        td_num(pg, o, keys[i], LSH_MS);
    lsh_put(pg, "</tr>\n");
}

static void render_overview(struct lsh_page *pg, const json_t *ov)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    const json_t *status = lsh_get(ov, "status");
    double total = 0;
    char buf[LSH_FMT];

    if (!json_is_object(ov)) {
        lsh_none(pg, "No overview in the report.");
        return;
    }
    lsh_put(pg, "<div class=\"figs\">\n");
    figure(pg, "requests", ov, "requests", LSH_COUNT);
    figure(pg, "error rate (5xx)", ov, "error_rate", LSH_RATE);
    figure(pg, "p50 ms", lsh_get(ov, "duration_ms"), "p50", LSH_MS);
    figure(pg, "p95 ms", lsh_get(ov, "duration_ms"), "p95", LSH_MS);
    figure(pg, "p99 ms", lsh_get(ov, "duration_ms"), "p99", LSH_MS);
    figure(pg, "bytes in", ov, "bytes_in", LSH_BYTES);
    figure(pg, "bytes out", ov, "bytes_out", LSH_BYTES);
    lsh_put(pg, "</div>\n<div class=\"grid\">\n<div><h3>Status classes</h3>\n");
    for (size_t i = 0; i < 5; i++)
        total += lsh_num_or(status, classes[i], 0);
    lsh_put(pg, "<table><thead><tr><th>Status</th><th class=\"n\">Requests</th>"
                "<th class=\"share\">Share</th></tr></thead><tbody>\n");
    for (size_t i = 0; i < 5; i++) {
        double v = lsh_num_or(status, classes[i], 0);

        lsh_putf(pg, "<tr><td>%s</td>", classes[i]);
        td_num(pg, status, classes[i], LSH_COUNT);
        lsh_putf(pg, "<td class=\"share\"><span class=\"bar c%zu\" style=\"width:%.1f%%\"></span>%s"
                     "</td></tr>\n", i + 1, total > 0 ? v / total * BAR_MAX : 0,
                 lsh_fmt_rate(buf, total > 0 ? v / total : 0));
    }
    lsh_put(pg, "</tbody></table></div>\n<div><h3>Latency (ms)</h3>\n"
                "<table><thead><tr><th></th><th class=\"n\">Samples</th><th class=\"n\">Mean</th>"
                "<th class=\"n\">p50</th><th class=\"n\">p95</th><th class=\"n\">p99</th>"
                "<th class=\"n\">Max</th></tr></thead><tbody>\n");
    latency_row(pg, "total (<code>duration_ms</code>)", lsh_get(ov, "duration_ms"));
    latency_row(pg, "upstream (<code>upstream_ms</code>)", lsh_get(ov, "upstream_ms"));
    lsh_put(pg, "</tbody></table></div>\n</div>\n<h3>Latency distribution</h3>\n");
    lsh_chart_buckets(pg, lsh_get(ov, "duration_buckets"));
}

/* A slot name coloured when it is one of the two the gateway knows. */
static void td_slot(struct lsh_page *pg, const json_t *slot)
{
    const char *s = json_string_value(slot);
    const char *cls = s && strcmp(s, "blue") == 0 ? "slot-blue"
                      : s && strcmp(s, "green") == 0 ? "slot-green" : "";

    lsh_putf(pg, "<td class=\"%s\">", cls);
    put_value(pg, slot, CELL_MAX);
    lsh_put(pg, "</td>");
}

static void render_services(struct lsh_page *pg, const json_t *services)
{
    size_t n = json_array_size(services);

    if (n == 0) {
        lsh_none(pg, "No requests to any service.");
        return;
    }
    lsh_put(pg, "<table><thead><tr><th>Service</th><th>Slot</th><th class=\"n\">Requests</th>"
                "<th class=\"n\">Errors</th><th class=\"n\">Error rate</th>"
                "<th class=\"n\">p50 ms</th><th class=\"n\">p95 ms</th><th class=\"n\">p99 ms</th>"
                "</tr></thead><tbody>\n");
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(services, i);

        lsh_put(pg, "<tr>");
        td_text(pg, lsh_get(s, "service"));
        td_slot(pg, lsh_get(s, "slot"));
        td_num(pg, s, "requests", LSH_COUNT);
        td_num(pg, s, "errors", LSH_COUNT);
        td_num(pg, s, "error_rate", LSH_RATE);
        td_num(pg, s, "p50_ms", LSH_MS);
        td_num(pg, s, "p95_ms", LSH_MS);
        td_num(pg, s, "p99_ms", LSH_MS);
        lsh_put(pg, "</tr>\n");
    }
    lsh_put(pg, "</tbody></table>\n");
}

static void top_table(struct lsh_page *pg, const char *title, const char *keyhead,
                      const json_t *rows)
{
    size_t n = json_array_size(rows);
    bool overcount = false;

    lsh_putf(pg, "<h4>%s</h4>\n", title);
    if (n == 0) {
        lsh_none(pg, "None.");
        return;
    }
    for (size_t i = 0; i < n; i++)
        overcount |= lsh_get(json_array_get(rows, i), "overcount") != NULL;
    lsh_putf(pg, "<table class=\"top\"><thead><tr><th>%s</th><th class=\"n\">Requests</th>"
                 "<th class=\"n\">Errors"
                 "</th><th class=\"n\">Error rate</th><th class=\"n\">Mean ms</th>"
                 "<th class=\"n\">Max ms</th>%s</tr></thead><tbody>\n",
             keyhead, overcount ? "<th class=\"n\" title=\"the count may be high by at most this "
                                  "much\">Overcount \xe2\x89\xa4</th>" : "");
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(rows, i);

        lsh_put(pg, "<tr>");
        td_text(pg, lsh_get(row, "key"));
        td_num(pg, row, "requests", LSH_COUNT);
        td_num(pg, row, "errors", LSH_COUNT);
        td_num(pg, row, "error_rate", LSH_RATE);
        td_num(pg, row, "mean_ms", LSH_MS);
        td_num(pg, row, "max_ms", LSH_MS);
        if (overcount) {
            if (lsh_get(row, "overcount"))
                td_num(pg, row, "overcount", LSH_COUNT);
            else
                lsh_put(pg, "<td></td>");
        }
        lsh_put(pg, "</tr>\n");
    }
    lsh_put(pg, "</tbody></table>\n");
}

/* title is ours; raw_title, when set, is a name from the document (escaped). */
static void top_dimension(struct lsh_page *pg, const char *title, const char *raw_title,
                          const char *keyhead, const json_t *dim)
{
    static const char *const orders[][2] = {
        {"by_requests", "By requests"}, {"by_errors", "By errors"}, {"by_latency", "By latency"},
    };

    lsh_put(pg, "<h3>");
    lsh_put(pg, title);
    if (raw_title != NULL)
        lsh_esc_cut(pg, raw_title, strlen(raw_title), CELL_MAX);
    if (json_is_true(lsh_get(dim, "approximate")))
        lsh_put(pg, " <span class=\"badge approx\" title=\"more distinct keys than the table "
                    "holds: counts come from a top-K sketch\">approximate</span>");
    lsh_put(pg, "</h3>\n");
    if (!json_is_object(dim)) {
        lsh_none(pg, "Not in the report.");
        return;
    }
    for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++)
        if (lsh_present(lsh_get(dim, orders[i][0])))
            top_table(pg, orders[i][1], keyhead, lsh_get(dim, orders[i][0]));
}

static void render_top(struct lsh_page *pg, const json_t *top)
{
    static const char *const dims[][3] = {
        {"paths", "Paths", "Path"}, {"clients", "Clients", "Client"},
        {"countries", "Countries", "Country"}, {"user_agents", "User agents", "User agent"},
        {"upstreams", "Upstream instances", "Upstream"},
    };
    const char *key;
    const json_t *dim;
    char buf[LSH_FMT];
    double n;

    if (!json_is_object(top)) {
        lsh_none(pg, "No top tables in the report.");
        return;
    }
    if (lsh_num(top, "n", &n))
        lsh_putf(pg, "<p class=\"meta\">The %s largest of each.</p>\n", lsh_fmt_count(buf, n));
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (lsh_present(lsh_get(top, dims[i][0])))
            top_dimension(pg, dims[i][1], NULL, dims[i][2], lsh_get(top, dims[i][0]));
    /* Dimensions this page does not know yet still show, under their own (escaped) name. */
    json_object_foreach((json_t *)top, key, dim) {
        bool known = strcmp(key, "n") == 0;

        for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]) && !known; i++)
            known = strcmp(key, dims[i][0]) == 0;
        if (known || !json_is_object(dim))
            continue;
        top_dimension(pg, "", key, "Key", dim);
    }
}

static void render_rate_limiting(struct lsh_page *pg, const json_t *rl)
{
    static const struct breakdown responses[] = {
        {"by_client", "By client", "Client"}, {"by_route", "By route", "Route"},
        {NULL, NULL, NULL},
    };
    static const struct breakdown events[] = {
        {"by_client", "By client", "Client"}, {"by_route", "By route", "Route"},
        {"by_limit", "By limit", "Limit"}, {NULL, NULL, NULL},
    };

    if (!json_is_object(rl)) {
        lsh_none(pg, "No rate-limiting figures in the report.");
        return;
    }
    render_breakdowns(pg, "429 responses (access log)", lsh_get(rl, "responses"), responses);
    render_breakdowns(pg, "<code>rate_limited</code> events (security log)", lsh_get(rl, "events"),
                      events);
}

static void render_denials(struct lsh_page *pg, const json_t *dn)
{
    static const struct breakdown reasons[] = {
        {"by_reason", "By reason", "Reason"}, {NULL, NULL, NULL},
    };

    if (!json_is_object(dn)) {
        lsh_none(pg, "No denials in the report.");
        return;
    }
    render_breakdowns(pg, "Denied (<code>denied</code> events)", lsh_get(dn, "denied"), reasons);
    render_breakdowns(pg, "Bad requests (<code>bad_request</code> events)",
                      lsh_get(dn, "bad_requests"), reasons);
}

/* A column of an event table: the field key, or "key → key2" for a change. */
struct evcol {
    const char *head, *key, *key2;
};

static const struct evcol auth_cols[] = {
    {"Client", "client_ip", NULL}, {"Country", "country", NULL}, {"Path", "path", NULL},
    {"Reason", "reason", NULL}, {"Suppressed", "suppressed", NULL}, {NULL, NULL, NULL},
};
static const struct evcol admin_cols[] = {
    {"Client", "client_ip", NULL}, {"Action", "action", NULL}, {"Token", "token", NULL},
    {"Reason", "reason", NULL}, {NULL, NULL, NULL},
};
static const struct evcol rollout_cols[] = {
    {"Service", "service", NULL}, {"Action", "action", NULL}, {"State", "state", NULL},
    {"From \xe2\x86\x92 to", "from", "to"}, {"Step", "step", NULL}, {"Weight", "weight", NULL},
    {"Reason", "reason", NULL}, {NULL, NULL, NULL},
};
static const struct evcol health_cols[] = {
    {"Pool", "pool", NULL}, {"Instance", "instance", NULL},
    {"Health", "previous", "health"}, {"Reason", "reason", NULL}, {NULL, NULL, NULL},
};

/* Fields shown in a column of their own (or ts and event, which every line has). */
static bool shown(const struct evcol *cols, const char *key)
{
    if (strcmp(key, "ts") == 0 || strcmp(key, "event") == 0)
        return true;
    for (const struct evcol *c = cols; c->head; c++)
        if (strcmp(key, c->key) == 0 || (c->key2 && strcmp(key, c->key2) == 0))
            return true;
    return false;
}

/* A field for the "other fields" column: not in a column of its own, and not empty (an
 * event that has no client says client_ip "", which is no news). */
static bool other_field(const struct evcol *cols, const char *key, const json_t *v)
{
    return !shown(cols, key) && !json_is_null(v) &&
           !(json_is_string(v) && json_string_length(v) == 0);
}

static bool has_other(const json_t *ev, const struct evcol *cols)
{
    const char *key;
    const json_t *v;

    json_object_foreach((json_t *)ev, key, v)
        if (other_field(cols, key, v))
            return true;
    return false;
}

static void event_row(struct lsh_page *pg, const json_t *ev, const struct evcol *cols, bool other)
{
    const char *key;
    const json_t *v;

    lsh_put(pg, "<tr><td class=\"ts\">");
    put_ts(pg, lsh_str(ev, "ts"));
    lsh_put(pg, "</td>");
    for (const struct evcol *c = cols; c->head; c++) {
        if (c->key2 == NULL) {
            td_text(pg, lsh_get(ev, c->key));
            continue;
        }
        lsh_put(pg, "<td class=\"key\">");
        put_value(pg, lsh_get(ev, c->key), CELL_MAX);
        lsh_put(pg, " \xe2\x86\x92 ");
        put_value(pg, lsh_get(ev, c->key2), CELL_MAX);
        lsh_put(pg, "</td>");
    }
    if (other) {
        lsh_put(pg, "<td class=\"key other\">");
        json_object_foreach((json_t *)ev, key, v) {
            if (!other_field(cols, key, v))
                continue;
            lsh_put(pg, "<span class=\"kv\"><b>");
            lsh_esc_cut(pg, key, strlen(key), 64);
            lsh_put(pg, "</b>=");
            put_value(pg, v, CELL_MAX);
            lsh_put(pg, "</span> ");
        }
        lsh_put(pg, "</td>");
    }
    lsh_put(pg, "</tr>\n");
}

/* {"total": N, "omitted": N, "events": [security-log line, ...]}, oldest first. */
static void events_table(struct lsh_page *pg, const char *title, const json_t *group,
                         const struct evcol *cols)
{
    const json_t *events = lsh_get(group, "events");
    size_t n = json_array_size(events);
    bool other = false;
    char buf[LSH_FMT];
    double omitted;

    lsh_putf(pg, "<h3>%s</h3>\n", title);
    if (!json_is_object(group)) {
        lsh_none(pg, "Not in the report.");
        return;
    }
    lsh_putf(pg, "<p><b>%s</b> in all", lsh_fmt_count(buf, lsh_num_or(group, "total", (double)n)));
    if (lsh_num(group, "omitted", &omitted) && omitted > 0)
        lsh_putf(pg, "; %s more not listed here", lsh_fmt_count(buf, omitted));
    lsh_put(pg, ".</p>\n");
    if (n == 0)
        return;
    for (size_t i = 0; i < n && !other; i++)
        other = has_other(json_array_get(events, i), cols);
    lsh_put(pg, "<table class=\"events\"><thead><tr><th>Time (UTC)</th>");
    for (const struct evcol *c = cols; c->head; c++)
        lsh_putf(pg, "<th>%s</th>", c->head);
    lsh_putf(pg, "%s</tr></thead><tbody>\n", other ? "<th>Other fields</th>" : "");
    for (size_t i = 0; i < n; i++)
        if (json_is_object(json_array_get(events, i)))
            event_row(pg, json_array_get(events, i), cols, other);
    lsh_put(pg, "</tbody></table>\n");
}

static void render_admin(struct lsh_page *pg, const json_t *admin)
{
    if (!json_is_object(admin)) {
        lsh_none(pg, "No admin events in the report.");
        return;
    }
    events_table(pg, "Authentication failures", lsh_get(admin, "auth_failures"), auth_cols);
    events_table(pg, "Admin actions", lsh_get(admin, "admin_actions"), admin_cols);
}

static void render_changes(struct lsh_page *pg, const json_t *changes)
{
    if (!json_is_object(changes)) {
        lsh_none(pg, "No changes in the report.");
        return;
    }
    events_table(pg, "Rollouts", lsh_get(changes, "rollouts"), rollout_cols);
    events_table(pg, "Health changes", lsh_get(changes, "health_changes"), health_cols);
}

/* The suspect flags: the document's name, the figure behind it, how the page says it. */
static const struct {
    const char *flag, *head, *text;
    enum lsh_unit unit;
} suspect_flags[] = {
    {"distinct_404_paths", "Distinct 404 paths", "distinct 404 paths", LSH_COUNT},
    {"rate_limited", "429s", "429 responses", LSH_COUNT},
    {"bad_requests", "Bad requests", "bad requests", LSH_COUNT},
    {"peak_rps", "Peak req/s", "requests per second at peak", LSH_RPS},
};
#define NFLAGS (sizeof(suspect_flags) / sizeof(suspect_flags[0]))

static bool flagged(const json_t *client, const char *flag)
{
    const json_t *flags = lsh_get(client, "flags");

    for (size_t i = 0; i < json_array_size(flags); i++) {
        const char *f = json_string_value(json_array_get(flags, i));
        if (f && strcmp(f, flag) == 0)
            return true;
    }
    return false;
}

static void suspect_row(struct lsh_page *pg, const json_t *c)
{
    const json_t *flags = lsh_get(c, "flags");

    lsh_put(pg, "<tr>");
    td_text(pg, lsh_get(c, "client_ip"));
    td_num(pg, c, "requests", LSH_COUNT);
    for (size_t f = 0; f < NFLAGS; f++) {
        lsh_putf(pg, "<td class=\"n%s\">", flagged(c, suspect_flags[f].flag) ? " hit" : "");
        put_num(pg, c, suspect_flags[f].flag, suspect_flags[f].unit);
        lsh_put(pg, "</td>");
    }
    lsh_put(pg, "<td>");
    for (size_t i = 0; i < json_array_size(flags); i++) {
        const json_t *flag = json_array_get(flags, i);

        lsh_put(pg, "<span class=\"badge flag\">");
        put_value(pg, flag, 64);
        lsh_put(pg, "</span>");
    }
    lsh_put(pg, "</td></tr>\n");
}

static void render_suspects(struct lsh_page *pg, const json_t *sus)
{
    const json_t *th = lsh_get(sus, "thresholds"), *clients = lsh_get(sus, "clients");
    size_t n = json_array_size(clients);
    bool first = true;
    char buf[LSH_FMT];
    double v;

    if (!json_is_object(sus)) {
        lsh_none(pg, "No suspects in the report.");
        return;
    }
    for (size_t f = 0; f < NFLAGS; f++) {
        if (!lsh_num(th, suspect_flags[f].flag, &v))
            continue;
        lsh_putf(pg, "%s%s %s", first ? "<p class=\"meta\">Flag thresholds: " : ", ",
                 lsh_fmt_unit(buf, suspect_flags[f].unit, v), suspect_flags[f].text);
        first = false;
    }
    if (!first)
        lsh_put(pg, ". The figures that crossed one are marked.</p>\n");
    if (n == 0) {
        lsh_none(pg, "No client crossed a threshold.");
        return;
    }
    lsh_put(pg, "<table><thead><tr><th>Client</th><th class=\"n\">Requests</th>");
    for (size_t f = 0; f < NFLAGS; f++)
        lsh_putf(pg, "<th class=\"n\">%s</th>", suspect_flags[f].head);
    lsh_put(pg, "<th>Flags</th></tr></thead><tbody>\n");
    for (size_t i = 0; i < n; i++)
        suspect_row(pg, json_array_get(clients, i));
    lsh_put(pg, "</tbody></table>\n");
}

/* ---- the page ------------------------------------------------------------------------- */

static const struct section {
    const char *key, *title;
    void (*render)(struct lsh_page *pg, const json_t *v);
} sections[] = {
    {"overview", "Overview", render_overview},
    {"services", "Services and slots", render_services},
    {"timeline", "Timeline", lsh_render_timeline},
    {"top", "Top", render_top},
    {"rate_limiting", "Rate limiting", render_rate_limiting},
    {"denials", "Denials and bad requests", render_denials},
    {"admin", "Authentication and admin actions", render_admin},
    {"changes", "Rollouts and health changes", render_changes},
    {"suspects", "Suspects", render_suspects},
};
#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

/* System fonts, a light page that prints as it shows; the charts take their colours from the
 * classes their paths carry. */
static const char css[] =
    ":root{--bg:#f3f5f8;--card:#fff;--text:#1a1f26;--muted:#5d6876;--faint:#8d97a3;"
    "--border:#dce1e7;--grid:#e6eaef;--blue:#2f6fed;--green:#0f9d76;--bad:#d93636;"
    "--warn:#d98200;--violet:#7b5bd6;"
    "--mono:ui-monospace,\"SFMono-Regular\",\"DejaVu Sans Mono\",Menlo,Consolas,monospace}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--text);font:14px/1.45 system-ui,"
    "-apple-system,\"Segoe UI\",Roboto,\"Noto Sans\",\"DejaVu Sans\",sans-serif;"
    "font-variant-numeric:tabular-nums}\n"
    "main{max-width:1160px;margin:0 auto;padding:24px}\n"
    "h1{margin:0 0 6px;font-size:24px}h2{margin:0 0 12px;font-size:19px}\n"
    "h3{margin:20px 0 8px;font-size:15px}h4{margin:12px 0 4px;font-size:13px;"
    "color:var(--muted)}\n"
    "p{margin:4px 0}.meta{color:var(--muted)}code{font-family:var(--mono);font-size:.92em}\n"
    ".summary,section{background:var(--card);border:1px solid var(--border);border-radius:10px;"
    "padding:16px 20px;margin:16px 0}\n"
    "nav ul{display:flex;flex-wrap:wrap;gap:4px 16px;list-style:none;padding:0;margin:12px 0}\n"
    "nav a{color:var(--blue);text-decoration:none}\n"
    ".notice{border-left:4px solid var(--warn);background:#fff6e5;padding:8px 12px;"
    "margin:12px 0;border-radius:4px}\n"
    ".badline{color:var(--bad)}\n"
    "table{border-collapse:collapse;width:100%;margin:2px 0 10px}\n"
    "th,td{padding:3px 8px;border-bottom:1px solid var(--grid);text-align:left;"
    "vertical-align:top}\n"
    "th{font-size:12px;font-weight:600;color:var(--muted);border-bottom-color:var(--border)}\n"
    ".n{text-align:right;white-space:nowrap}.na{color:var(--faint)}\n"
    ".key,.ts{font-family:var(--mono);font-size:12.5px;overflow-wrap:anywhere}"
    ".key{min-width:9em}.top th:first-child{width:36%}\n"
    ".ts{white-space:nowrap}\n"
    ".share{width:30%;white-space:nowrap;font-size:12px;color:var(--muted)}\n"
    ".bar{display:inline-block;height:9px;margin-right:6px;background:var(--blue);"
    "border-radius:2px;vertical-align:middle}\n"
    ".bar.c4{background:var(--warn)}.bar.c5{background:var(--bad)}\n"
    ".grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:0 28px}\n"
    ".figs{display:flex;flex-wrap:wrap;gap:10px;margin:4px 0 8px}\n"
    ".fig{border:1px solid var(--border);border-radius:8px;padding:6px 14px;min-width:120px}\n"
    ".fig b{display:block;font-size:21px;font-weight:600}.fig span{font-size:12px;"
    "color:var(--muted)}\n"
    ".badge{display:inline-block;font-size:11px;font-weight:500;padding:1px 7px;"
    "border-radius:9px;margin:0 4px 2px 0;white-space:nowrap}\n"
    ".badge.flag{background:#fde8e8;color:#a32020}.badge.approx{background:#fff1d6;"
    "color:#8a5300}\n"
    "td.hit{color:#a32020;font-weight:600;background:#fdf1f1}\n"
    ".slot-blue{color:var(--blue);font-weight:600}.slot-green{color:var(--green);"
    "font-weight:600}\n"
    ".kv{white-space:nowrap}.kv b{font-weight:600;color:var(--muted)}\n"
    ".none{color:var(--muted);font-style:italic}\n"
    "figure{margin:4px 0 16px}figcaption{color:var(--muted);font-size:12px}\n"
    "svg.chart{display:block;width:100%;height:auto}\n"
    "svg text{font:11px system-ui,sans-serif;fill:var(--muted)}svg text.val{font-size:10px}\n"
    "svg .gl{stroke:var(--grid)}svg .ax{stroke:var(--faint)}svg .bk{fill:var(--blue)}\n"
    ".s-req{--c:var(--blue)}.s-5xx{--c:var(--bad)}.s-429{--c:var(--warn)}"
    ".s-p95{--c:var(--violet)}\n"
    "svg path{fill:none;stroke:var(--c);stroke-width:1.6;stroke-linejoin:round}\n"
    "svg path.area{stroke:none;fill:var(--c);fill-opacity:.12}svg circle{fill:var(--c)}\n"
    ".lg{margin-right:16px;white-space:nowrap}.lg i{display:inline-block;width:14px;height:3px;"
    "margin-right:5px;vertical-align:middle;background:var(--c)}\n"
    "@media print{body{background:#fff;font-size:11px}main{max-width:none;padding:0}"
    "nav{display:none}.summary,section{border:none;padding:0;margin:12px 0}"
    "h2,h3,h4{break-after:avoid}tr,figure,.fig{break-inside:avoid}"
    "*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}\n";

static void page_filters(struct lsh_page *pg, const json_t *filters)
{
    static const char *const keys[] = {"since", "until", "service", "status", "client",
                                       "path_prefix"};
    bool first = true;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const json_t *v = lsh_get(filters, keys[i]);

        if (!lsh_present(v))
            continue;
        lsh_putf(pg, "%s<code>%s</code> ", first ? "<p><b>Filters</b> " : ", ", keys[i]);
        put_value(pg, v, CELL_MAX);
        first = false;
    }
    if (!first)
        lsh_put(pg, "</p>\n");
}

static void page_inputs(struct lsh_page *pg, const json_t *inputs)
{
    size_t n = json_array_size(inputs);
    bool errors = false;

    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        errors |= lsh_present(lsh_get(json_array_get(inputs, i), "error"));
    lsh_putf(pg, "<table class=\"inputs\"><thead><tr><th>Input</th><th class=\"n\">Lines</th>"
                 "<th class=\"n\">Bad</th>%s</tr></thead><tbody>\n",
             errors ? "<th>Error</th>" : "");
    for (size_t i = 0; i < n; i++) {
        const json_t *in = json_array_get(inputs, i);

        lsh_put(pg, "<tr>");
        td_text(pg, lsh_get(in, "name"));
        td_num(pg, in, "lines", LSH_COUNT);
        td_num(pg, in, "bad", LSH_COUNT);
        if (errors) {
            lsh_put(pg, "<td class=\"badline\">");
            if (lsh_present(lsh_get(in, "error")))
                put_value(pg, lsh_get(in, "error"), CELL_MAX);
            lsh_put(pg, "</td>");
        }
        lsh_put(pg, "</tr>\n");
    }
    lsh_put(pg, "</tbody></table>\n");
}

static void page_lines(struct lsh_page *pg, const json_t *lines)
{
    const json_t *fb = lsh_get(lines, "first_bad");
    double v;

    if (!json_is_object(lines))
        return;
    lsh_put(pg, "<p><b>Lines</b> ");
    put_num(pg, lines, "total", LSH_COUNT);
    lsh_put(pg, " read: ");
    put_num(pg, lines, "access", LSH_COUNT);
    lsh_put(pg, " access, ");
    put_num(pg, lines, "security", LSH_COUNT);
    lsh_put(pg, " security, ");
    put_num(pg, lines, "bad", LSH_COUNT);
    lsh_put(pg, " bad");
    if (lsh_num(lines, "filtered", &v) && v > 0) {
        lsh_put(pg, ", ");
        put_num(pg, lines, "filtered", LSH_COUNT);
        lsh_put(pg, " left out by the filters");
    }
    if (lsh_num(lines, "fallback", &v) && v > 0) {
        lsh_put(pg, "; ");
        put_num(pg, lines, "fallback", LSH_COUNT);
        lsh_put(pg, " read by the fallback JSON parser");
    }
    lsh_put(pg, ".</p>\n");
    if (json_is_object(fb)) {
        lsh_put(pg, "<p class=\"badline\"><b>First bad line</b> <code>");
        put_value(pg, lsh_get(fb, "file"), CELL_MAX);
        lsh_put(pg, ":");
        put_value(pg, lsh_get(fb, "line"), 32);
        lsh_put(pg, "</code>: ");
        put_value(pg, lsh_get(fb, "reason"), CELL_MAX);
        lsh_put(pg, "</p>\n");
    }
}

static const char *fmt_span(char *buf, double ms)
{
    long long s = llround(ms / 1000);

    if (ms < 60000)
        snprintf(buf, LSH_FMT, "%.3g s", ms / 1000);
    else if (s < 3600)
        snprintf(buf, LSH_FMT, "%lld min %02lld s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, LSH_FMT, "%lld h %02lld min", s / 3600, s / 60 % 60);
    else
        snprintf(buf, LSH_FMT, "%lld d %lld h", s / 86400, s / 3600 % 24);
    return buf;
}

static void page_summary(struct lsh_page *pg, const json_t *report)
{
    const json_t *period = lsh_get(report, "period");
    const char *first = lsh_str(period, "first"), *last = lsh_str(period, "last");
    double t0, t1, version;
    char buf[LSH_FMT];

    lsh_put(pg, "<div class=\"summary\">\n<p><b>Period</b> ");
    if (first == NULL && last == NULL) {
        lsh_put(pg, "<span class=\"na\">no timestamped line</span>");
    } else {
        put_ts(pg, first);
        lsh_put(pg, " " DASH " ");
        put_ts(pg, last);
        if (lsh_parse_ts(first, &t0) && lsh_parse_ts(last, &t1) && t1 >= t0)
            lsh_putf(pg, " (%s)", fmt_span(buf, t1 - t0));
    }
    lsh_put(pg, "</p>\n");
    page_lines(pg, lsh_get(report, "lines"));
    page_filters(pg, lsh_get(report, "filters"));
    page_inputs(pg, lsh_get(report, "inputs"));
    lsh_put(pg, "<p class=\"meta\">Generated ");
    put_ts(pg, lsh_str(report, "generated"));
    if (lsh_num(report, "version", &version) && version != 1)
        lsh_putf(pg, "; report version %s (this page knows version 1)",
                 lsh_fmt_count(buf, version));
    lsh_put(pg, ".</p>\n</div>\n");
    if (json_is_true(lsh_get(report, "approximate")))
        lsh_put(pg, "<p class=\"notice\"><b>Approximate.</b> The input held more distinct keys "
                    "(clients, paths, ...) than the tables keep: the figures of the tables marked "
                    "<span class=\"badge approx\">approximate</span> come from a top-K sketch and "
                    "may be high by at most their overcount.</p>\n");
}

int ls_html_write(FILE *out, const json_t *report)
{
    struct lsh_page pg = {.out = out};

    if (out == NULL) {
        errno = EINVAL;
        return -1;
    }
    lsh_putf(&pg, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                  "<title>Switchyard log report</title>\n<style>\n%s</style>\n</head>\n<body>\n"
                  "<main>\n<header>\n<h1>Switchyard log report</h1>\n", css);
    page_summary(&pg, report);
    lsh_put(&pg, "<nav><ul>");
    for (size_t i = 0; i < NSECTIONS; i++)
        if (lsh_present(lsh_get(report, sections[i].key)))
            lsh_putf(&pg, "<li><a href=\"#%s\">%s</a></li>", sections[i].key, sections[i].title);
    lsh_put(&pg, "</ul></nav>\n</header>\n");
    for (size_t i = 0; i < NSECTIONS; i++) {
        const json_t *v = lsh_get(report, sections[i].key);

        if (!lsh_present(v))
            continue;
        lsh_putf(&pg, "<section id=\"%s\">\n<h2>%s</h2>\n", sections[i].key, sections[i].title);
        sections[i].render(&pg, v);
        lsh_put(&pg, "</section>\n");
    }
    lsh_put(&pg, "</main>\n</body>\n</html>\n");
    errno = 0;
    if (pg.err == 0 && fflush(out) == EOF)
        pg.err = errno ? errno : EIO;
    if (pg.err == 0 && ferror(out))
        pg.err = EIO;
    if (pg.err) {
        errno = pg.err;
        return -1;
    }
    return 0;
}
