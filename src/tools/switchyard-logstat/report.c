/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * report.c: the statistics as the report document (docs/logstat.md), the
 * one thing the JSON, text and HTML outputs all render. Keys are inserted
 * in a fixed order and printed in it, so the document is stable.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* SPEC.md's default latency buckets, in ms: the distribution chart's bars. */
static const double bucket_ms[] = {5, 10, 25, 50, 100, 200, 300, 500, 1000, 2000, 2500, 5000,
                                   10000};
#define NBUCKETS (sizeof(bucket_ms) / sizeof(bucket_ms[0]))

/* Latency in ms, to the microsecond. */
static json_t *ms(uint64_t us)
{
    return json_real((double)us / 1000.0);
}

static json_t *ratio(uint64_t part, uint64_t whole)
{
    return json_real(whole ? round((double)part / (double)whole * 1e6) / 1e6 : 0.0);
}

static json_t *ts_or_null(int64_t t)
{
    char buf[32];

    if (t == LS_NO_TIME)
        return json_null();
    ls_format_ts(buf, t);
    return json_string(buf);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* Invalid UTF-8 in a key (a path from the wire) would make jansson refuse
 * the string: those bytes become U+FFFD, as the gateway's writer does. */
static json_t *key_string(const char *key, size_t n)
{
    json_t *v = json_stringn(key, n);
    if (v)
        return v;
    char *clean = malloc(n * 3 + 1), *o = clean;
    if (!clean)
        return json_string("");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x80) {
            *o++ = (char)c;
            continue;
        }
        size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        json_t *probe = len > 1 && i + len <= n ? json_stringn(key + i, len) : NULL;
        if (probe) {
            memcpy(o, key + i, len);
            o += len;
            i += len - 1;
            json_decref(probe);
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
        }
    }
    v = json_stringn(clean, (size_t)(o - clean));
    free(clean);
    return v ? v : json_string("");
}

static json_t *quantiles(const struct sy_hist *h)
{
    uint64_t n = sy_hist_count(h);

    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "count", (json_int_t)n,
                     "mean", n ? json_real(round((double)sy_hist_sum_us(h) / (double)n) / 1000.0)
                               : json_real(0),
                     "p50", ms(sy_hist_quantile(h, 0.50)), "p95", ms(sy_hist_quantile(h, 0.95)),
                     "p99", ms(sy_hist_quantile(h, 0.99)), "max", ms(sy_hist_max(h)));
}

static json_t *duration_buckets(const struct sy_hist *h)
{
    json_t *a = json_array();
    uint64_t below = 0;

    for (size_t i = 0; i < NBUCKETS; i++) {
        uint64_t le = sy_hist_count_le(h, (uint64_t)(bucket_ms[i] * 1000));
        json_array_append_new(a, json_pack("{s:f, s:I}", "le_ms", bucket_ms[i], "count",
                                           (json_int_t)(le - below)));
        below = le;
    }
    json_array_append_new(a, json_pack("{s:n, s:I}", "le_ms", "count",
                                       (json_int_t)(sy_hist_count(h) - below)));
    return a;
}

static json_t *overview(const struct ls_stats *s)
{
    return json_pack("{s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:o, s:o, s:o, s:o}",
                     "requests", (json_int_t)s->requests, "bytes_in", (json_int_t)s->bytes_in,
                     "bytes_out", (json_int_t)s->bytes_out, "status",
                     "1xx", (json_int_t)s->status_class[1], "2xx", (json_int_t)s->status_class[2],
                     "3xx", (json_int_t)s->status_class[3], "4xx", (json_int_t)s->status_class[4],
                     "5xx", (json_int_t)s->status_class[5],
                     "error_rate", ratio(s->status_class[5], s->requests),
                     "duration_ms", quantiles(&s->duration),
                     "upstream_ms", quantiles(&s->upstream),
                     "duration_buckets", duration_buckets(&s->duration));
}

static int by_service(const void *a, const void *b)
{
    const struct ls_service_slot *x = a, *y = b;
    int c = strcmp(x->service, y->service);
    return c ? c : strcmp(x->slot, y->slot);
}

static json_t *services(const struct ls_stats *s)
{
    json_t *a = json_array();
    struct ls_service_slot *sorted = malloc((s->nservices ? s->nservices : 1) * sizeof(*sorted));

    if (!sorted)
        return a;
    if (s->nservices)
        memcpy(sorted, s->services, s->nservices * sizeof(*sorted));
    qsort(sorted, s->nservices, sizeof(*sorted), by_service);
    for (size_t i = 0; i < s->nservices; i++) {
        const struct ls_service_slot *ss = &sorted[i];
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:o}", "service", ss->service,
                         "slot", ss->slot, "requests", (json_int_t)ss->requests, "errors",
                         (json_int_t)ss->errors, "error_rate", ratio(ss->errors, ss->requests),
                         "p50_ms", ms(sy_hist_quantile(&ss->duration, 0.50)),
                         "p95_ms", ms(sy_hist_quantile(&ss->duration, 0.95)),
                         "p99_ms", ms(sy_hist_quantile(&ss->duration, 0.99))));
    }
    free(sorted);
    return a;
}

static json_t *timeline(const struct ls_stats *s)
{
    json_t *points = json_array();

    for (size_t i = 0; i < s->npoints; i++) {
        const struct ls_point *p = &s->points[i];
        json_t *p95 = p->duration && sy_hist_count(p->duration)
                          ? ms(sy_hist_quantile(p->duration, 0.95)) : json_null();
        json_array_append_new(points, json_pack("{s:o, s:I, s:I, s:I, s:o}", "start",
                                                ts_or_null((s->base + (int64_t)i) * s->interval_ms),
                                                "requests", (json_int_t)p->requests, "errors",
                                                (json_int_t)p->errors, "rate_limited",
                                                (json_int_t)p->rate_limited, "p95_ms", p95));
    }
    return json_pack("{s:I, s:o}", "interval_s", (json_int_t)(s->interval_ms / 1000), "points",
                     points);
}

/* ---- top tables ---- */

static int by_requests(const void *a, const void *b)
{
    const struct ls_entry *x = *(struct ls_entry *const *)a, *y = *(struct ls_entry *const *)b;
    if (x->requests != y->requests)
        return x->requests < y->requests ? 1 : -1;
    return strcmp(x->key, y->key);
}

static int by_errors(const void *a, const void *b)
{
    const struct ls_entry *x = *(struct ls_entry *const *)a, *y = *(struct ls_entry *const *)b;
    if (x->errors != y->errors)
        return x->errors < y->errors ? 1 : -1;
    return by_requests(a, b);
}

static double mean_us(const struct ls_entry *e)
{
    return e->lat_count ? (double)e->lat_sum_us / (double)e->lat_count : 0;
}

static int by_latency(const void *a, const void *b)
{
    const struct ls_entry *x = *(struct ls_entry *const *)a, *y = *(struct ls_entry *const *)b;
    double mx = mean_us(x), my = mean_us(y);
    if (mx != my)
        return mx < my ? 1 : -1;
    return by_requests(a, b);
}

static int by_weight(const void *a, const void *b)
{
    const struct ls_entry *x = *(struct ls_entry *const *)a, *y = *(struct ls_entry *const *)b;
    if (x->weight != y->weight)
        return x->weight < y->weight ? 1 : -1;
    return strcmp(x->key, y->key);
}

/* A key ranks by latency only with a few samples: one slow request is not a
 * slow path. */
#define LATENCY_MIN_SAMPLES 5

static json_t *top_entry(const struct ls_entry *e)
{
    json_t *o = json_pack("{s:o, s:I, s:I, s:o, s:o, s:o}", "key", key_string(e->key, e->keylen),
                          "requests", (json_int_t)e->requests, "errors", (json_int_t)e->errors,
                          "error_rate", ratio(e->errors, e->requests),
                          "mean_ms", json_real(round(mean_us(e)) / 1000.0),
                          "max_ms", ms(e->lat_max_us));
    if (e->overcount)
        json_object_set_new(o, "overcount", json_integer((json_int_t)e->overcount));
    return o;
}

static json_t *top_ranking(const struct ls_table *t, size_t n,
                           int (*cmp)(const void *, const void *), int which)
{
    struct ls_entry **v = ls_table_sorted(t, cmp);
    json_t *a = json_array();

    for (size_t i = 0; i < t->n && json_array_size(a) < n; i++) {
        const struct ls_entry *e = v[i];
        if (e->requests == 0 || (which == 1 && e->errors == 0)
            || (which == 2 && e->lat_count < LATENCY_MIN_SAMPLES))
            continue;
        json_array_append_new(a, top_entry(e));
    }
    free(v);
    return a;
}

static json_t *top_table(const struct ls_table *t, size_t n)
{
    return json_pack("{s:b, s:o, s:o, s:o}", "approximate", t->evictions > 0,
                     "by_requests", top_ranking(t, n, by_requests, 0),
                     "by_errors", top_ranking(t, n, by_errors, 1),
                     "by_latency", top_ranking(t, n, by_latency, 2));
}

/* {"key", "count"} by weight, the way rate-limit and denial tables count. */
static json_t *counts(const struct ls_table *t, size_t n)
{
    struct ls_entry **v = ls_table_sorted(t, by_weight);
    json_t *a = json_array();

    for (size_t i = 0; i < t->n && i < n; i++) {
        json_t *o = json_pack("{s:o, s:I}", "key", key_string(v[i]->key, v[i]->keylen), "count",
                              (json_int_t)v[i]->weight);
        if (v[i]->overcount)
            json_object_set_new(o, "overcount", json_integer((json_int_t)v[i]->overcount));
        json_array_append_new(a, o);
    }
    free(v);
    return a;
}

static json_t *events(const struct ls_event_list *l)
{
    json_t *a = json_array();

    for (size_t i = 0; i < l->n; i++)
        json_array_append(a, l->ring[(l->head + i) % l->cap]);
    return json_pack("{s:I, s:I, s:o}", "total", (json_int_t)l->total, "omitted",
                     (json_int_t)(l->total - l->n), "events", a);
}

/* ---- suspects ---- */

struct suspect {
    const struct ls_entry *e;
    uint64_t distinct_404, rate_limited;
    double peak_rps;
    unsigned nflags;
};

static int by_flags(const void *a, const void *b)
{
    const struct suspect *x = a, *y = b;
    if (x->nflags != y->nflags)
        return x->nflags < y->nflags ? 1 : -1;
    if (x->e->weight != y->e->weight)
        return x->e->weight < y->e->weight ? 1 : -1;
    return strcmp(x->e->key, y->e->key);
}

/* Suspects past this many are left out; the first ones say enough. */
#define SUSPECTS_MAX 100

static json_t *suspects(const struct ls_stats *s)
{
    const struct ls_options *o = &s->opt;
    struct suspect *v = calloc(s->clients.n ? s->clients.n : 1, sizeof(*v));
    size_t n = 0;
    json_t *list = json_array();

    for (size_t i = 0; v && i < s->clients.n; i++) {
        const struct ls_entry *e = &s->clients.entries[i];
        struct suspect sp = {.e = e, .distinct_404 = ls_entry_distinct(e)};
        /* Both logs may be given: a limited request is one 429 response and
         * one rate_limited event, not two. */
        sp.rate_limited = e->rate_limited_responses > e->rate_limited_events
                              ? e->rate_limited_responses : e->rate_limited_events;
        sp.peak_rps = (double)e->peak_win_count / LS_SUSPECT_WINDOW_S;
        sp.nflags = (sp.distinct_404 >= o->suspect_404) + (sp.rate_limited >= o->suspect_429)
                    + (e->bad_requests >= o->suspect_bad) + (sp.peak_rps >= o->suspect_rps);
        if (sp.nflags)
            v[n++] = sp;
    }
    if (v)
        qsort(v, n, sizeof(*v), by_flags);
    for (size_t i = 0; i < n && i < SUSPECTS_MAX; i++) {
        const struct suspect *sp = &v[i];
        json_t *flags = json_array();
        if (sp->distinct_404 >= o->suspect_404)
            json_array_append_new(flags, json_string("distinct_404_paths"));
        if (sp->rate_limited >= o->suspect_429)
            json_array_append_new(flags, json_string("rate_limited"));
        if (sp->e->bad_requests >= o->suspect_bad)
            json_array_append_new(flags, json_string("bad_requests"));
        if (sp->peak_rps >= o->suspect_rps)
            json_array_append_new(flags, json_string("peak_rps"));
        json_array_append_new(
            list, json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:f, s:o}", "client_ip",
                            key_string(sp->e->key, sp->e->keylen), "requests",
                            (json_int_t)sp->e->requests, "not_found",
                            (json_int_t)sp->e->not_found, "distinct_404_paths",
                            (json_int_t)sp->distinct_404, "rate_limited",
                            (json_int_t)sp->rate_limited, "bad_requests",
                            (json_int_t)sp->e->bad_requests, "peak_rps", sp->peak_rps, "flags",
                            flags));
    }
    free(v);
    return json_pack("{s:{s:I, s:I, s:I, s:f}, s:b, s:I, s:o}", "thresholds",
                     "distinct_404_paths", (json_int_t)o->suspect_404, "rate_limited",
                     (json_int_t)o->suspect_429, "bad_requests", (json_int_t)o->suspect_bad,
                     "peak_rps", o->suspect_rps, "approximate", s->clients.evictions > 0,
                     "omitted", (json_int_t)(n > SUSPECTS_MAX ? n - SUSPECTS_MAX : 0),
                     "clients", list);
}

/* ---- the document ---- */

static json_t *inputs(const struct ls_stats *s)
{
    json_t *a = json_array();

    for (size_t i = 0; i < s->ninputs; i++) {
        const struct ls_input_stat *in = &s->inputs[i];
        json_t *o = json_pack("{s:o, s:I, s:I}", "name", key_string(in->name, strlen(in->name)),
                              "lines", (json_int_t)in->lines, "bad", (json_int_t)in->bad);
        if (in->error)
            json_object_set_new(o, "error", key_string(in->error, strlen(in->error)));
        json_array_append_new(a, o);
    }
    return a;
}

static bool any_evicted(const struct ls_stats *s)
{
    const struct ls_table *t[] = {
        &s->paths, &s->clients, &s->countries, &s->agents, &s->upstreams,
        &s->rl_resp_client, &s->rl_resp_route, &s->rl_ev_client, &s->rl_ev_route,
        &s->rl_ev_limit, &s->denied_reason, &s->bad_reason,
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (t[i]->evictions)
            return true;
    return false;
}

json_t *ls_stats_report(const struct ls_stats *s, int64_t now_ms)
{
    const struct ls_options *o = &s->opt;
    const struct ls_filter *f = &o->filter;
    size_t n = o->top_n;
    json_t *doc = json_object();
    json_t *first_bad = json_null();

    if (s->first_bad_file)
        first_bad = json_pack("{s:o, s:I, s:s}", "file",
                              key_string(s->first_bad_file, strlen(s->first_bad_file)), "line",
                              (json_int_t)s->first_bad_line, "reason", s->first_bad_reason);
    json_object_set_new(doc, "version", json_integer(1));
    json_object_set_new(doc, "generated", ts_or_null(now_ms));
    json_object_set_new(doc, "inputs", inputs(s));
    json_object_set_new(doc, "lines", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
                                                "total", (json_int_t)s->lines,
                                                "access", (json_int_t)s->access,
                                                "security", (json_int_t)s->security,
                                                "bad", (json_int_t)s->bad,
                                                "filtered", (json_int_t)s->filtered,
                                                "fallback", (json_int_t)s->fallback,
                                                "first_bad", first_bad));
    json_object_set_new(doc, "filters", json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}",
                                                  "since", ts_or_null(f->since_ms),
                                                  "until", ts_or_null(f->until_ms),
                                                  "service", str_or_null(f->service),
                                                  "status", str_or_null(f->status_text),
                                                  "client", str_or_null(f->client),
                                                  "path_prefix", str_or_null(f->path_prefix)));
    json_object_set_new(doc, "period", json_pack("{s:o, s:o}", "first", ts_or_null(s->first_ts),
                                                 "last", ts_or_null(s->last_ts)));
    json_object_set_new(doc, "approximate", json_boolean(any_evicted(s)));

    if (o->reports & LS_R_OVERVIEW)
        json_object_set_new(doc, "overview", overview(s));
    if (o->reports & LS_R_SERVICES)
        json_object_set_new(doc, "services", services(s));
    if (o->reports & LS_R_TIMELINE)
        json_object_set_new(doc, "timeline", timeline(s));
    if (o->reports & LS_R_TOP)
        json_object_set_new(doc, "top", json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "n",
                                                  (json_int_t)n,
                                                  "paths", top_table(&s->paths, n),
                                                  "clients", top_table(&s->clients, n),
                                                  "countries", top_table(&s->countries, n),
                                                  "user_agents", top_table(&s->agents, n),
                                                  "upstreams", top_table(&s->upstreams, n)));
    if (o->reports & LS_R_RATE_LIMITING)
        json_object_set_new(
            doc, "rate_limiting",
            json_pack("{s:{s:I, s:o, s:o}, s:{s:I, s:o, s:o, s:o}}", "responses", "total",
                      (json_int_t)s->rl_responses, "by_client", counts(&s->rl_resp_client, n),
                      "by_route", counts(&s->rl_resp_route, n), "events", "total",
                      (json_int_t)s->rl_events, "by_client", counts(&s->rl_ev_client, n),
                      "by_route", counts(&s->rl_ev_route, n), "by_limit",
                      counts(&s->rl_ev_limit, n)));
    if (o->reports & LS_R_DENIALS)
        json_object_set_new(doc, "denials",
                            json_pack("{s:{s:I, s:o}, s:{s:I, s:o}}", "denied", "total",
                                      (json_int_t)s->denied, "by_reason",
                                      counts(&s->denied_reason, n), "bad_requests", "total",
                                      (json_int_t)s->bad_requests, "by_reason",
                                      counts(&s->bad_reason, n)));
    if (o->reports & LS_R_ADMIN)
        json_object_set_new(doc, "admin", json_pack("{s:o, s:o}", "auth_failures",
                                                     events(&s->auth_failures), "admin_actions",
                                                     events(&s->admin_actions)));
    if (o->reports & LS_R_CHANGES)
        json_object_set_new(doc, "changes", json_pack("{s:o, s:o}", "rollouts",
                                                      events(&s->rollouts), "health_changes",
                                                      events(&s->health_changes)));
    if (o->reports & LS_R_SUSPECTS)
        json_object_set_new(doc, "suspects", suspects(s));
    return doc;
}
