/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * text.c: the report document as aligned tables for a terminal, 100
 * columns wide: the first column (a path, a client, a user agent) takes
 * what the figures leave and is cut with "~" when it must be.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "logstat.h"

#define WIDTH 100
#define MAX_COLS 9

/* ---- values from the document, tolerant of anything missing ---- */

static json_int_t num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : json_is_real(v) ? (json_int_t)json_real_value(v) : 0;
}

static double real(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* Latency: "850us", "12.3ms", "1.25s". */
static void fmt_ms(char *out, size_t n, double v)
{
    if (isnan(v))
        snprintf(out, n, "-");
    else if (v < 1)
        snprintf(out, n, "%.0fus", v * 1000);
    else if (v < 100)
        snprintf(out, n, "%.3gms", v);
    else if (v < 1000)
        snprintf(out, n, "%.0fms", v);
    else
        snprintf(out, n, "%.3gs", v / 1000);
}

static void fmt_pct(char *out, size_t n, double v)
{
    snprintf(out, n, isnan(v) ? "-" : v == 0 ? "0%%" : v < 0.0001 ? "<0.01%%" : "%.2f%%",
             v * 100);
}

static void fmt_bytes(char *out, size_t n, double v)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;

    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* ---- tables ---- */

struct table {
    size_t ncols, nrows;
    const char *head[MAX_COLS];
    char **cells;           /* nrows x ncols, owned */
};

static void table_row(struct table *t, ...)
{
    va_list ap;

    char **cells = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*cells));
    if (!cells)
        return;
    t->cells = cells;
    va_start(ap, t);
    for (size_t c = 0; c < t->ncols; c++) {
        const char *v = va_arg(ap, const char *);
        cells[t->nrows * t->ncols + c] = strdup(v ? v : "");
    }
    va_end(ap);
    t->nrows++;
}

/* Terminal columns of UTF-8 text: one per code point. */
static size_t columns(const char *s, size_t bytes)
{
    size_t n = 0;

    for (size_t i = 0; i < bytes; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* The bytes of s that fill at most cols columns. */
static size_t fit(const char *s, size_t cols)
{
    size_t i = 0, n = 0;

    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80 && n++ == cols)
            break;
    }
    return i;
}

static int print_cell(FILE *out, const char *s, size_t width, bool left)
{
    size_t cols = columns(s, strlen(s));

    if (cols > width) {    /* only the first column is ever cut */
        size_t keep = fit(s, width - 1);
        return fprintf(out, "%.*s~", (int)keep, s) < 0 ? -1 : 0;
    }
    if (left)
        return fprintf(out, "%s%*s", s, (int)(width - cols), "") < 0 ? -1 : 0;
    return fprintf(out, "%*s%s", (int)(width - cols), "", s) < 0 ? -1 : 0;
}

static int table_print(FILE *out, struct table *t)
{
    size_t width[MAX_COLS] = {0}, rest = 0;
    int rc = 0;

    for (size_t c = 0; c < t->ncols; c++) {
        width[c] = columns(t->head[c], strlen(t->head[c]));
        for (size_t r = 0; r < t->nrows; r++) {
            const char *v = t->cells[r * t->ncols + c];
            size_t w = columns(v, strlen(v));
            if (w > width[c])
                width[c] = w;
        }
        if (c > 0)
            rest += width[c] + 2;
    }
    if (width[0] + rest > WIDTH)
        width[0] = rest + 12 < WIDTH ? WIDTH - rest : 12;
    if (t->nrows == 0) {
        rc |= fprintf(out, "  (none)\n") < 0 ? -1 : 0;
    } else {
        for (size_t r = 0; r <= t->nrows; r++) {
            for (size_t c = 0; c < t->ncols; c++) {
                const char *v = r == 0 ? t->head[c] : t->cells[(r - 1) * t->ncols + c];
                if (c > 0)
                    rc |= fputs("  ", out) < 0 ? -1 : 0;
                rc |= print_cell(out, v, width[c], c == 0 || (r == 0 && c == 0));
            }
            rc |= fputc('\n', out) == EOF ? -1 : 0;
        }
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->nrows = 0;
    return rc;
}

static int heading(FILE *out, const char *title)
{
    return fprintf(out, "\n== %s\n", title) < 0 ? -1 : 0;
}

/* ---- sections ---- */

static int quantile_line(FILE *out, const char *label, const json_t *q)
{
    char p50[16], p95[16], p99[16], max[16], mean[16];

    if (num(q, "count") == 0)
        return fprintf(out, "%-10s no samples\n", label) < 0 ? -1 : 0;
    fmt_ms(p50, sizeof(p50), real(q, "p50"));
    fmt_ms(p95, sizeof(p95), real(q, "p95"));
    fmt_ms(p99, sizeof(p99), real(q, "p99"));
    fmt_ms(max, sizeof(max), real(q, "max"));
    fmt_ms(mean, sizeof(mean), real(q, "mean"));
    return fprintf(out, "%-10s p50 %s  p95 %s  p99 %s  max %s  mean %s  (%lld samples)\n",
                   label, p50, p95, p99, max, mean, (long long)num(q, "count")) < 0 ? -1 : 0;
}

static int overview(FILE *out, const json_t *o)
{
    const json_t *st = json_object_get(o, "status");
    char in[24], outb[24], rate[16];
    int rc = heading(out, "Overview");

    fmt_bytes(in, sizeof(in), (double)num(o, "bytes_in"));
    fmt_bytes(outb, sizeof(outb), (double)num(o, "bytes_out"));
    fmt_pct(rate, sizeof(rate), real(o, "error_rate"));
    rc |= fprintf(out, "%-10s %lld   in %s   out %s\n", "requests", (long long)num(o, "requests"),
                  in, outb) < 0 ? -1 : 0;
    rc |= fprintf(out, "%-10s 1xx %lld  2xx %lld  3xx %lld  4xx %lld  5xx %lld   5xx rate %s\n",
                  "status", (long long)num(st, "1xx"), (long long)num(st, "2xx"),
                  (long long)num(st, "3xx"), (long long)num(st, "4xx"),
                  (long long)num(st, "5xx"), rate) < 0 ? -1 : 0;
    rc |= quantile_line(out, "duration", json_object_get(o, "duration_ms"));
    rc |= quantile_line(out, "upstream", json_object_get(o, "upstream_ms"));
    return rc;
}

static int services(FILE *out, const json_t *a)
{
    struct table t = {.ncols = 8, .head = {"SERVICE", "SLOT", "REQUESTS", "5XX", "5XX RATE",
                                           "P50", "P95", "P99"}};
    size_t i;
    json_t *s;

    json_array_foreach(a, i, s) {
        char req[24], err[24], rate[16], p50[16], p95[16], p99[16];
        snprintf(req, sizeof(req), "%lld", (long long)num(s, "requests"));
        snprintf(err, sizeof(err), "%lld", (long long)num(s, "errors"));
        fmt_pct(rate, sizeof(rate), real(s, "error_rate"));
        fmt_ms(p50, sizeof(p50), real(s, "p50_ms"));
        fmt_ms(p95, sizeof(p95), real(s, "p95_ms"));
        fmt_ms(p99, sizeof(p99), real(s, "p99_ms"));
        table_row(&t, str(s, "service"), str(s, "slot"), req, err, rate, p50, p95, p99);
    }
    return heading(out, "Services and slots") | table_print(out, &t);
}

static int timeline(FILE *out, const json_t *tl)
{
    struct table t = {.ncols = 5, .head = {"START", "REQUESTS", "5XX", "429", "P95"}};
    char title[64];
    size_t i;
    json_t *p;

    snprintf(title, sizeof(title), "Timeline (every %llds)", (long long)num(tl, "interval_s"));
    json_array_foreach(json_object_get(tl, "points"), i, p) {
        char req[24], err[24], rl[24], p95[16];
        snprintf(req, sizeof(req), "%lld", (long long)num(p, "requests"));
        snprintf(err, sizeof(err), "%lld", (long long)num(p, "errors"));
        snprintf(rl, sizeof(rl), "%lld", (long long)num(p, "rate_limited"));
        fmt_ms(p95, sizeof(p95), real(p, "p95_ms"));
        table_row(&t, str(p, "start"), req, err, rl, p95);
    }
    return heading(out, title) | table_print(out, &t);
}

static int top_ranking(FILE *out, const char *what, const char *title_what, const char *by,
                       const json_t *a, bool approximate)
{
    struct table t = {.ncols = 6, .head = {what, "REQUESTS", "5XX", "5XX RATE", "MEAN", "MAX"}};
    char title[96];
    size_t i;
    json_t *e;

    json_array_foreach(a, i, e) {
        char req[32], err[24], rate[16], mean[16], max[16];
        if (num(e, "overcount"))
            snprintf(req, sizeof(req), "%lld (~%lld)", (long long)num(e, "requests"),
                     (long long)num(e, "overcount"));
        else
            snprintf(req, sizeof(req), "%lld", (long long)num(e, "requests"));
        snprintf(err, sizeof(err), "%lld", (long long)num(e, "errors"));
        fmt_pct(rate, sizeof(rate), real(e, "error_rate"));
        fmt_ms(mean, sizeof(mean), real(e, "mean_ms"));
        fmt_ms(max, sizeof(max), real(e, "max_ms"));
        table_row(&t, str(e, "key"), req, err, rate, mean, max);
    }
    snprintf(title, sizeof(title), "Top %s by %s%s", title_what, by,
             approximate ? " (approximate)" : "");
    return heading(out, title) | table_print(out, &t);
}

static int top(FILE *out, const json_t *top)
{
    static const struct {
        const char *key, *label, *title;
    } dims[] = {
        {"paths", "PATH", "paths"}, {"clients", "CLIENT", "clients"},
        {"countries", "COUNTRY", "countries"}, {"user_agents", "USER AGENT", "user agents"},
        {"upstreams", "UPSTREAM", "upstream instances"},
    };
    static const struct {
        const char *key, *label;
    } ranks[] = {{"by_requests", "requests"}, {"by_errors", "5xx"}, {"by_latency", "latency"}};
    int rc = 0;

    for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
        const json_t *dim = json_object_get(top, dims[d].key);
        if (!dim)
            continue;
        for (size_t r = 0; r < 3; r++) {
            const json_t *a = json_object_get(dim, ranks[r].key);
            if (r > 0 && json_array_size(a) == 0)
                continue;   /* no errors, no latency: nothing to rank */
            rc |= top_ranking(out, dims[d].label, dims[d].title, ranks[r].label, a,
                              json_is_true(json_object_get(dim, "approximate")));
        }
    }
    return rc;
}

static int counts(FILE *out, const char *title, const char *what, const json_t *a)
{
    struct table t = {.ncols = 2, .head = {what, "COUNT"}};
    size_t i;
    json_t *e;

    json_array_foreach(a, i, e) {
        char n[48];
        if (num(e, "overcount"))
            snprintf(n, sizeof(n), "%lld (~%lld)", (long long)num(e, "count"),
                     (long long)num(e, "overcount"));
        else
            snprintf(n, sizeof(n), "%lld", (long long)num(e, "count"));
        table_row(&t, str(e, "key"), n);
    }
    return heading(out, title) | table_print(out, &t);
}

static int rate_limiting(FILE *out, const json_t *rl)
{
    const json_t *resp = json_object_get(rl, "responses"), *ev = json_object_get(rl, "events");
    char title[96];
    int rc = 0;

    snprintf(title, sizeof(title), "429 responses: %lld (access log), by client",
             (long long)num(resp, "total"));
    rc |= counts(out, title, "CLIENT", json_object_get(resp, "by_client"));
    rc |= counts(out, "429 responses by route", "ROUTE", json_object_get(resp, "by_route"));
    snprintf(title, sizeof(title), "rate_limited events: %lld (security log), by limit",
             (long long)num(ev, "total"));
    rc |= counts(out, title, "LIMIT", json_object_get(ev, "by_limit"));
    rc |= counts(out, "rate_limited events by client", "CLIENT", json_object_get(ev, "by_client"));
    rc |= counts(out, "rate_limited events by route", "ROUTE", json_object_get(ev, "by_route"));
    return rc;
}

static int denials(FILE *out, const json_t *d)
{
    const json_t *den = json_object_get(d, "denied"), *bad = json_object_get(d, "bad_requests");
    char title[96];
    int rc = 0;

    snprintf(title, sizeof(title), "Denied: %lld, by reason", (long long)num(den, "total"));
    rc |= counts(out, title, "REASON", json_object_get(den, "by_reason"));
    snprintf(title, sizeof(title), "Bad requests: %lld, by reason", (long long)num(bad, "total"));
    rc |= counts(out, title, "REASON", json_object_get(bad, "by_reason"));
    return rc;
}

/* An event line: its time, then the fields that say what happened. */
static int event_list(FILE *out, const char *title, const json_t *list, const char *const *fields)
{
    char head[128];
    size_t i;
    json_t *e;
    int rc;

    snprintf(head, sizeof(head), "%s: %lld%s", title, (long long)num(list, "total"),
             num(list, "omitted") ? " (oldest left out)" : "");
    rc = heading(out, head);
    if (json_array_size(json_object_get(list, "events")) == 0)
        return rc | (fprintf(out, "  (none)\n") < 0 ? -1 : 0);
    json_array_foreach(json_object_get(list, "events"), i, e) {
        char line[WIDTH * 4];
        size_t used = (size_t)snprintf(line, sizeof(line), "%s", str(e, "ts"));
        for (size_t f = 0; fields[f] && used < sizeof(line); f++) {
            const json_t *v = json_object_get(e, fields[f]);
            if (json_is_string(v) && json_string_length(v))
                used += (size_t)snprintf(line + used, sizeof(line) - used, "  %s=%s", fields[f],
                                         json_string_value(v));
            else if (json_is_number(v))
                used += (size_t)snprintf(line + used, sizeof(line) - used, "  %s=%g", fields[f],
                                         json_number_value(v));
        }
        rc |= fprintf(out, "%s\n", line) < 0 ? -1 : 0;
    }
    return rc;
}

static int admin(FILE *out, const json_t *a)
{
    static const char *const auth[] = {"client_ip", "path", "reason", "suppressed", NULL};
    static const char *const act[] = {"client_ip", "token", "action", "service", "slot", "pool",
                                      "instance", "weight", "reason", NULL};
    return event_list(out, "Authentication failures", json_object_get(a, "auth_failures"), auth)
           | event_list(out, "Admin actions", json_object_get(a, "admin_actions"), act);
}

static int changes(FILE *out, const json_t *c)
{
    static const char *const ro[] = {"service", "action", "by", "state", "from", "to", "step",
                                     "weight", "reason", NULL};
    static const char *const hc[] = {"pool", "instance", "previous", "health", "reason", NULL};
    return event_list(out, "Rollouts", json_object_get(c, "rollouts"), ro)
           | event_list(out, "Health changes", json_object_get(c, "health_changes"), hc);
}

static int suspects(FILE *out, const json_t *s)
{
    const json_t *th = json_object_get(s, "thresholds");
    struct table t = {.ncols = 7, .head = {"CLIENT", "REQUESTS", "404 PATHS", "429", "BAD",
                                           "PEAK RPS", "FLAGS"}};
    char title[160];
    size_t i;
    json_t *c;

    snprintf(title, sizeof(title), "Suspects (flagged at %lld distinct 404 paths, %lld limited, "
             "%lld bad, %g req/s in 10 s)", (long long)num(th, "distinct_404_paths"),
             (long long)num(th, "rate_limited"), (long long)num(th, "bad_requests"),
             real(th, "peak_rps"));
    json_array_foreach(json_object_get(s, "clients"), i, c) {
        char req[24], nf[24], rl[24], bad[24], rps[24], flags[96] = "";
        size_t j;
        json_t *f;
        snprintf(req, sizeof(req), "%lld", (long long)num(c, "requests"));
        snprintf(nf, sizeof(nf), "%lld", (long long)num(c, "distinct_404_paths"));
        snprintf(rl, sizeof(rl), "%lld", (long long)num(c, "rate_limited"));
        snprintf(bad, sizeof(bad), "%lld", (long long)num(c, "bad_requests"));
        snprintf(rps, sizeof(rps), "%.1f", real(c, "peak_rps"));
        json_array_foreach(json_object_get(c, "flags"), j, f) {
            if (j)
                strncat(flags, ",", sizeof(flags) - strlen(flags) - 1);
            strncat(flags, json_string_value(f) ? json_string_value(f) : "",
                    sizeof(flags) - strlen(flags) - 1);
        }
        table_row(&t, str(c, "client_ip"), req, nf, rl, bad, rps, flags);
    }
    return heading(out, title) | table_print(out, &t);
}

int ls_text_write(FILE *out, const json_t *doc)
{
    const json_t *lines = json_object_get(doc, "lines");
    const json_t *period = json_object_get(doc, "period");
    const json_t *first_bad = json_object_get(lines, "first_bad");
    const json_t *v;
    int rc = 0;

    rc |= fprintf(out, "Switchyard log report: %s .. %s\n",
                  *str(period, "first") ? str(period, "first") : "-",
                  *str(period, "last") ? str(period, "last") : "-") < 0 ? -1 : 0;
    rc |= fprintf(out, "lines: %lld access, %lld security, %lld bad, %lld filtered out\n",
                  (long long)num(lines, "access"), (long long)num(lines, "security"),
                  (long long)num(lines, "bad"), (long long)num(lines, "filtered")) < 0 ? -1 : 0;
    if (json_is_object(first_bad))
        rc |= fprintf(out, "first bad line: %s:%lld: %s\n", str(first_bad, "file"),
                      (long long)num(first_bad, "line"), str(first_bad, "reason")) < 0 ? -1 : 0;
    size_t i;
    json_t *in;
    json_array_foreach(json_object_get(doc, "inputs"), i, in)
        if (*str(in, "error"))
            rc |= fprintf(out, "input error: %s\n", str(in, "error")) < 0 ? -1 : 0;
    if (json_is_true(json_object_get(doc, "approximate")))
        rc |= fputs("approximate: more distinct keys than --table-size; a count marked (~N)\n"
                    "may include up to N from keys left out\n", out) == EOF ? -1 : 0;

    if ((v = json_object_get(doc, "overview")))
        rc |= overview(out, v);
    if ((v = json_object_get(doc, "services")))
        rc |= services(out, v);
    if ((v = json_object_get(doc, "timeline")))
        rc |= timeline(out, v);
    if ((v = json_object_get(doc, "top")))
        rc |= top(out, v);
    if ((v = json_object_get(doc, "rate_limiting")))
        rc |= rate_limiting(out, v);
    if ((v = json_object_get(doc, "denials")))
        rc |= denials(out, v);
    if ((v = json_object_get(doc, "admin")))
        rc |= admin(out, v);
    if ((v = json_object_get(doc, "changes")))
        rc |= changes(out, v);
    if ((v = json_object_get(doc, "suspects")))
        rc |= suspects(out, v);
    return rc ? -1 : 0;
}
