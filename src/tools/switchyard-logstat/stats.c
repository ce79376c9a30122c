/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * stats.c: counting. Each line is scanned (fast, else jansson), filtered
 * and added to every report at once, so one pass over a day of logs
 * answers every question; report.c builds the document afterwards.
 */
#include <stdlib.h>
#include <string.h>

#include "stats.h"

static const char *const report_names[] = {
    "overview", "services", "timeline", "top", "rate_limiting", "denials", "admin", "changes",
    "suspects",
};

unsigned ls_report_bit(const char *name, size_t n)
{
    for (unsigned i = 0; i < sizeof(report_names) / sizeof(report_names[0]); i++)
        if (strlen(report_names[i]) == n && memcmp(report_names[i], name, n) == 0)
            return 1u << i;
    return 0;
}

const char *ls_report_name(unsigned bit)
{
    for (unsigned i = 0; i < sizeof(report_names) / sizeof(report_names[0]); i++)
        if (bit == 1u << i)
            return report_names[i];
    return "";
}

void ls_options_default(struct ls_options *o)
{
    memset(o, 0, sizeof(*o));
    o->reports = LS_R_ALL;
    o->interval_ms = 60000;
    o->top_n = 10;
    o->table_size = 10000;
    o->events_kept = 200;
    o->suspect_404 = 20;
    o->suspect_429 = 50;
    o->suspect_bad = 10;
    o->suspect_rps = 20;
    o->filter.since_ms = LS_NO_TIME;
    o->filter.until_ms = LS_NO_TIME;
}

int ls_filter_set_status(struct ls_filter *f, const char *list)
{
    const char *p = list;

    memset(f->status, 0, sizeof(f->status));
    f->status_text = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 3 && p[0] >= '1' && p[0] <= '5' && (p[1] == 'x' || p[1] == 'X')
            && (p[2] == 'x' || p[2] == 'X')) {
            for (int s = (p[0] - '0') * 100; s < (p[0] - '0') * 100 + 100; s++)
                f->status[s] = true;
        } else if (n == 3 && p[0] >= '1' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9'
                   && p[2] >= '0' && p[2] <= '9') {
            f->status[(p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0')] = true;
        } else {
            return -1;
        }
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
}

/* ---- set-up ---- */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fputs(LS_NAME ": out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p) {
        fputs(LS_NAME ": out of memory\n", stderr);
        exit(1);
    }
    return p;
}

#define NTABLES 12

static void all_tables(struct ls_stats *s, struct ls_table *out[NTABLES])
{
    struct ls_table *list[NTABLES] = {
        &s->paths, &s->clients, &s->countries, &s->agents, &s->upstreams,
        &s->rl_resp_client, &s->rl_resp_route, &s->rl_ev_client, &s->rl_ev_route,
        &s->rl_ev_limit, &s->denied_reason, &s->bad_reason,
    };
    memcpy(out, list, sizeof(list));
}

static void event_list_init(struct ls_event_list *l, size_t cap)
{
    l->cap = cap;
    l->ring = cap ? xcalloc(cap, sizeof(*l->ring)) : NULL;
}

static void event_list_free(struct ls_event_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_decref(l->ring[(l->head + i) % l->cap]);
    free(l->ring);
}

struct ls_stats *ls_stats_new(const struct ls_options *opt)
{
    struct ls_stats *s = xcalloc(1, sizeof(*s));
    struct ls_table *t[NTABLES];

    s->opt = *opt;
    if (sy_sipkey_random(&s->hashkey) < 0)
        s->hashkey = (struct sy_sipkey){0x736f6d6570736575ull, 0x646f72616e646f6dull};
    all_tables(s, t);
    for (size_t i = 0; i < NTABLES; i++)
        ls_table_init(t[i], opt->table_size, &s->hashkey);
    s->interval_ms = opt->interval_ms;
    s->first_ts = s->last_ts = LS_NO_TIME;
    event_list_init(&s->auth_failures, opt->events_kept);
    event_list_init(&s->admin_actions, opt->events_kept);
    event_list_init(&s->rollouts, opt->events_kept);
    event_list_init(&s->health_changes, opt->events_kept);
    return s;
}

void ls_stats_free(struct ls_stats *s)
{
    struct ls_table *t[NTABLES];

    if (!s)
        return;
    all_tables(s, t);
    for (size_t i = 0; i < NTABLES; i++)
        ls_table_free(t[i]);
    for (size_t i = 0; i < s->nservices; i++) {
        free(s->services[i].service);
        free(s->services[i].slot);
    }
    free(s->services);
    for (size_t i = 0; i < s->npoints; i++)
        free(s->points[i].duration);
    free(s->points);
    event_list_free(&s->auth_failures);
    event_list_free(&s->admin_actions);
    event_list_free(&s->rollouts);
    event_list_free(&s->health_changes);
    for (size_t i = 0; i < s->ninputs; i++) {
        free(s->inputs[i].name);
        free(s->inputs[i].error);
    }
    free(s->inputs);
    free(s->first_bad_file);
    free(s);
}

/* ---- inputs and bad lines ---- */

void ls_stats_begin_input(struct ls_stats *s, const char *name)
{
    s->inputs = realloc(s->inputs, (s->ninputs + 1) * sizeof(*s->inputs));
    if (!s->inputs) {
        fputs(LS_NAME ": out of memory\n", stderr);
        exit(1);
    }
    s->inputs[s->ninputs++] = (struct ls_input_stat){.name = xstrndup(name, strlen(name))};
}

static struct ls_input_stat *current(struct ls_stats *s)
{
    if (!s->ninputs)
        ls_stats_begin_input(s, "-");
    return &s->inputs[s->ninputs - 1];
}

void ls_stats_input_error(struct ls_stats *s, const char *error)
{
    struct ls_input_stat *in = current(s);

    if (!in->error)
        in->error = xstrndup(error, strlen(error));
}

void ls_stats_bad(struct ls_stats *s, uint64_t no, const char *why)
{
    struct ls_input_stat *in = current(s);

    in->lines++;
    in->bad++;
    s->lines++;
    s->bad++;
    if (!s->first_bad_file) {
        s->first_bad_file = xstrndup(in->name, strlen(in->name));
        s->first_bad_line = no;
        s->first_bad_reason = why;
    }
}

uint64_t ls_stats_lines_read(const struct ls_stats *s)
{
    return s->lines;
}

/* ---- filters ---- */

static bool str_is(struct ls_str v, const char *want)
{
    size_t n = strlen(want);
    return v.n == n && (n == 0 || memcmp(v.p, want, n) == 0);
}

static bool kept(const struct ls_filter *f, const struct ls_record *r)
{
    if (f->since_ms != LS_NO_TIME && r->ts_ms < f->since_ms)
        return false;
    if (f->until_ms != LS_NO_TIME && r->ts_ms >= f->until_ms)
        return false;
    if (f->service && !str_is(r->service, f->service))
        return false;
    if (f->client && !str_is(r->client_ip, f->client))
        return false;
    /* Security lines have no status and (mostly) no path: these two select
     * among access lines only. */
    if (r->kind == LS_ACCESS) {
        if (f->status_text && !f->status[r->status])
            return false;
        if (f->path_prefix) {
            size_t n = strlen(f->path_prefix);
            if (r->path.n < n || (n && memcmp(r->path.p, f->path_prefix, n) != 0))
                return false;
        }
    }
    return true;
}

/* ---- access lines ---- */

static struct ls_service_slot *service_slot(struct ls_stats *s, struct ls_str service,
                                            struct ls_str slot)
{
    static const struct ls_str other = {"(other)", 7};

    if (s->nservices) {
        struct ls_service_slot *last = &s->services[s->last_service];
        if (str_is(service, last->service) && str_is(slot, last->slot))
            return last;
    }
    for (size_t i = 0; i < s->nservices; i++) {
        if (str_is(service, s->services[i].service) && str_is(slot, s->services[i].slot)) {
            s->last_service = i;
            return &s->services[i];
        }
    }
    if (s->nservices == LS_MAX_SERVICE_SLOTS)
        return service_slot(s, other, (struct ls_str){"", 0});
    if (!s->services)
        s->services = xcalloc(LS_MAX_SERVICE_SLOTS + 1, sizeof(*s->services));
    struct ls_service_slot *ss = &s->services[s->nservices];
    ss->service = xstrndup(service.p ? service.p : "", service.n);
    ss->slot = xstrndup(slot.p ? slot.p : "", slot.n);
    s->last_service = s->nservices++;
    return ss;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Doubles the timeline's interval, merging pairs of points. */
static void widen(struct ls_stats *s)
{
    int64_t old_interval = s->interval_ms, interval = old_interval * 2;
    int64_t base = floor_div(s->base, 2);
    size_t n = (size_t)(floor_div(s->base + (int64_t)s->npoints - 1, 2) - base + 1);
    struct ls_point *points = xcalloc(n, sizeof(*points));

    for (size_t i = 0; i < s->npoints; i++) {
        struct ls_point *from = &s->points[i];
        struct ls_point *to = &points[floor_div(s->base + (int64_t)i, 2) - base];
        to->requests += from->requests;
        to->errors += from->errors;
        to->rate_limited += from->rate_limited;
        if (from->duration && !to->duration) {
            to->duration = from->duration;
        } else if (from->duration) {
            sy_hist_merge(to->duration, from->duration);
            free(from->duration);
        }
    }
    free(s->points);
    s->points = points;
    s->npoints = n;
    s->base = base;
    s->interval_ms = interval;
}

static struct ls_point *point_at(struct ls_stats *s, int64_t ts)
{
    int64_t idx = floor_div(ts, s->interval_ms);

    if (s->npoints && idx >= s->base && idx < s->base + (int64_t)s->npoints)
        return &s->points[idx - s->base];
    if (!s->npoints) {
        s->points = xcalloc(1, sizeof(*s->points));
        s->npoints = 1;
        s->base = idx;
        return s->points;
    }
    int64_t lo = idx < s->base ? idx : s->base;
    int64_t hi = idx > s->base + (int64_t)s->npoints - 1 ? idx : s->base + (int64_t)s->npoints - 1;
    while (hi - lo + 1 > LS_MAX_POINTS) {
        widen(s);
        idx = floor_div(ts, s->interval_ms);
        lo = idx < s->base ? idx : s->base;
        hi = idx > s->base + (int64_t)s->npoints - 1 ? idx : s->base + (int64_t)s->npoints - 1;
    }
    size_t n = (size_t)(hi - lo + 1);
    struct ls_point *points = xcalloc(n, sizeof(*points));
    memcpy(points + (s->base - lo), s->points, s->npoints * sizeof(*points));
    free(s->points);
    s->points = points;
    s->npoints = n;
    s->base = lo;
    return &s->points[idx - s->base];
}

static void entry_request(struct ls_entry *e, const struct ls_record *r)
{
    e->requests++;
    e->errors += r->status >= 500;
    if (r->duration_us >= 0) {
        e->lat_count++;
        e->lat_sum_us += (uint64_t)r->duration_us;
        if ((uint64_t)r->duration_us > e->lat_max_us)
            e->lat_max_us = (uint64_t)r->duration_us;
    }
}

static struct ls_entry *count_key(struct ls_table *t, struct ls_str key, uint64_t weight)
{
    if (!key.p || key.n == 0)
        return NULL;
    return ls_table_add(t, key.p, key.n, ls_table_hash(t, key.p, key.n), weight);
}

static void client_window(struct ls_entry *e, int64_t ts_ms)
{
    int64_t win = floor_div(ts_ms, LS_SUSPECT_WINDOW_S * 1000);

    if (e->win != win || e->win_count == 0) {
        e->win = win;
        e->win_count = 0;
    }
    if (++e->win_count > e->peak_win_count)
        e->peak_win_count = e->win_count;
}

static void access_line(struct ls_stats *s, const struct ls_record *r)
{
    unsigned opt = s->opt.reports;

    s->requests++;
    s->bytes_in += r->bytes_in;
    s->bytes_out += r->bytes_out;
    s->status_class[r->status / 100]++;
    if (r->duration_us >= 0)
        sy_hist_record(&s->duration, (uint64_t)r->duration_us);
    if (r->upstream_us >= 0)
        sy_hist_record(&s->upstream, (uint64_t)r->upstream_us);

    if (opt & LS_R_SERVICES) {
        struct ls_service_slot *ss = service_slot(s, r->service, r->slot);
        ss->requests++;
        ss->errors += r->status >= 500;
        if (r->duration_us >= 0)
            sy_hist_record(&ss->duration, (uint64_t)r->duration_us);
    }
    if (opt & LS_R_TIMELINE) {
        struct ls_point *pt = point_at(s, r->ts_ms);
        pt->requests++;
        pt->errors += r->status >= 500;
        pt->rate_limited += r->status == 429;
        if (r->duration_us >= 0) {
            if (!pt->duration)
                pt->duration = xcalloc(1, sizeof(*pt->duration));
            sy_hist_record(pt->duration, (uint64_t)r->duration_us);
        }
    }
    uint64_t path_hash = 0;
    if (opt & (LS_R_TOP | LS_R_SUSPECTS)) {
        /* The query string would make every search its own path. */
        const char *q = r->path.p ? memchr(r->path.p, '?', r->path.n) : NULL;
        struct ls_str path = {r->path.p, q ? (uint32_t)(q - r->path.p) : r->path.n};
        path_hash = path.n ? ls_table_hash(&s->paths, path.p, path.n) : 0;
        if ((opt & LS_R_TOP) && path.n)
            entry_request(ls_table_add(&s->paths, path.p, path.n, path_hash, 1), r);
        struct ls_entry *c = count_key(&s->clients, r->client_ip, 1);
        if (c) {
            entry_request(c, r);
            client_window(c, r->ts_ms);
            if (r->status == 404) {
                c->not_found++;
                ls_entry_mark_distinct(c, path_hash);
            }
            c->rate_limited_responses += r->status == 429;
        }
    }
    if (opt & LS_R_TOP) {
        struct ls_entry *e;
        if ((e = count_key(&s->countries, r->country, 1)))
            entry_request(e, r);
        if ((e = count_key(&s->agents, r->user_agent, 1)))
            entry_request(e, r);
        if ((e = count_key(&s->upstreams, r->upstream, 1))) {
            /* An instance's latency is what it took to answer, not the client's. */
            struct ls_record up = *r;
            up.duration_us = r->upstream_us;
            entry_request(e, &up);
        }
    }
    if (r->status == 429) {
        s->rl_responses++;
        if (opt & LS_R_RATE_LIMITING) {
            count_key(&s->rl_resp_client, r->client_ip, 1);
            count_key(&s->rl_resp_route, r->route, 1);
        }
    }
}

/* ---- security lines ---- */

static void keep_event(struct ls_event_list *l, const char *line, size_t len, json_t *parsed)
{
    l->total++;
    if (!l->cap)
        return;
    json_t *obj = parsed ? json_incref(parsed) : json_loadb(line, len, 0, NULL);
    if (!obj)
        return;
    if (l->n == l->cap) {   /* keep the newest: drop the oldest */
        json_decref(l->ring[l->head]);
        l->ring[l->head] = obj;
        l->head = (l->head + 1) % l->cap;
    } else {
        l->ring[(l->head + l->n++) % l->cap] = obj;
    }
}

static void security_line(struct ls_stats *s, const struct ls_record *r, const char *line,
                          size_t len, json_t *parsed)
{
    uint64_t n = 1 + r->suppressed;     /* a summary line stands for its events */
    unsigned opt = s->opt.reports;
    struct ls_entry *c = NULL;

    if ((opt & LS_R_SUSPECTS) && (str_is(r->event, "rate_limited")
                                  || str_is(r->event, "bad_request")))
        c = count_key(&s->clients, r->client_ip, n);

    if (str_is(r->event, "rate_limited")) {
        s->rl_events += n;
        if (c)
            c->rate_limited_events += n;
        if (opt & LS_R_RATE_LIMITING) {
            count_key(&s->rl_ev_client, r->client_ip, n);
            count_key(&s->rl_ev_route, r->route, n);
            count_key(&s->rl_ev_limit, r->limit, n);
        }
    } else if (str_is(r->event, "denied")) {
        s->denied += n;
        if (opt & LS_R_DENIALS)
            count_key(&s->denied_reason, r->reason, n);
    } else if (str_is(r->event, "bad_request")) {
        s->bad_requests += n;
        if (c)
            c->bad_requests += n;
        if (opt & LS_R_DENIALS)
            count_key(&s->bad_reason, r->reason, n);
    } else if (str_is(r->event, "auth_failed")) {
        if (opt & LS_R_ADMIN)
            keep_event(&s->auth_failures, line, len, parsed);
    } else if (str_is(r->event, "admin_action")) {
        if (opt & LS_R_ADMIN)
            keep_event(&s->admin_actions, line, len, parsed);
    } else if (str_is(r->event, "rollout")) {
        if (opt & LS_R_CHANGES)
            keep_event(&s->rollouts, line, len, parsed);
    } else if (str_is(r->event, "health_change")) {
        if (opt & LS_R_CHANGES)
            keep_event(&s->health_changes, line, len, parsed);
    }
}

void ls_stats_line(struct ls_stats *s, uint64_t no, const char *line, size_t len)
{
    struct ls_record r;
    json_t *holder = NULL;
    const char *why = "not JSON";

    if (len == 0 || (len == 1 && line[0] == '\r'))
        return;     /* blank lines carry nothing */
    enum ls_scan_result res = ls_scan_fast(line, len, &r, &why);
    if (res == LS_SCAN_FALLBACK) {
        s->fallback++;
        res = ls_scan_json(line, len, &r, &holder, &why);
    }
    if (res != LS_SCAN_OK) {
        json_decref(holder);
        ls_stats_bad(s, no, why);
        return;
    }
    s->lines++;
    current(s)->lines++;
    if (!kept(&s->opt.filter, &r)) {
        s->filtered++;
    } else {
        if (s->first_ts == LS_NO_TIME || r.ts_ms < s->first_ts)
            s->first_ts = r.ts_ms;
        if (s->last_ts == LS_NO_TIME || r.ts_ms > s->last_ts)
            s->last_ts = r.ts_ms;
        if (r.kind == LS_ACCESS) {
            s->access++;
            access_line(s, &r);
        } else {
            s->security++;
            security_line(s, &r, line, len, holder);
        }
    }
    json_decref(holder);
}
