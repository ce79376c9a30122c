/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * html_svg.c: the --html page's charts as inline SVG: the latency distribution (a bar per
 * bucket) and the timeline (requests, 5xx, 429 and p95 per interval). Any figure of the
 * document may be absurd (1e308, negative): y stays on its axis, gridlines and time ticks stop
 * at a dozen, and past PLOT_MAX the timeline's points merge.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "html_page.h"
#include "html_svg.h"

/* Chart geometry, in SVG user units (the SVG scales to the page's width). */
#define CH_W      960
#define CH_H      240
#define CH_L      60                /* left margin: the y labels */
#define CH_R      20
#define CH_T      14
#define CH_B      26                /* bottom margin: the x labels */
#define PLOT_MAX  600               /* above this many points, neighbours merge (their max) */
#define DOTS_MAX  60                /* up to this many points, each also gets a dot */

/* ---- axes ----------------------------------------------------------------------------- */

struct axis {
    double max, step;               /* 0 .. max, a gridline every step */
};

/* About four gridlines at 1, 2 or 5 times a power of ten. */
static void y_axis(double vmax, bool integral, struct axis *ax)
{
    double raw, mag, step;

    if (!(vmax > 0))
        vmax = integral ? 4 : 1;
    if (vmax > 1e300)           /* no real figure; the axis must stay finite */
        vmax = 1e300;
    raw = vmax / 4;
    mag = pow(10, floor(log10(raw)));
    step = raw <= mag ? mag : raw <= 2 * mag ? 2 * mag : raw <= 5 * mag ? 5 * mag : 10 * mag;
    if (integral && step < 1)
        step = 1;
    ax->step = step;
    ax->max = step * ceil(vmax / step - 1e-9);
    if (ax->max <= 0)
        ax->max = step;
}

static double y_of(const struct axis *ax, double v)
{
    double ph = CH_H - CH_T - CH_B;

    v = v < 0 ? 0 : v > ax->max ? ax->max : v;
    return CH_T + ph - v / ax->max * ph;
}

static void svg_open(struct lsh_page *pg, const char *label)
{
    lsh_putf(pg, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">"
                 "<title>%s</title>\n",
             CH_W, CH_H, label, label);
}

static void svg_y_grid(struct lsh_page *pg, const struct axis *ax, enum lsh_unit unit)
{
    char buf[LSH_FMT];

    /* At most a dozen lines, whatever the figures: a max of 1e308 rounds up to infinity. */
    for (int i = 0; i <= 12 && i * ax->step <= ax->max * (1 + 1e-9); i++) {
        double v = i * ax->step, y = y_of(ax, v);

        lsh_putf(pg, "<line class=\"%s\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
                     "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                 i == 0 ? "ax" : "gl", CH_L, y, CH_W - CH_R, y, CH_L - 6, y + 4,
                 lsh_fmt_unit(buf, unit, v));
    }
}

/* An x label, kept inside the drawing at both ends. */
static void svg_x_label(struct lsh_page *pg, double x, const char *label)
{
    const char *anchor = x < CH_L + 30 ? "start" : x > CH_W - CH_R - 30 ? "end" : "middle";

    lsh_putf(pg, "<line class=\"ax\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                 "<text class=\"xt\" x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">",
             x, CH_H - CH_B, x, CH_H - CH_B + 4, x, CH_H - CH_B + 16, anchor);
    lsh_esc(pg, label);
    lsh_put(pg, "</text>\n");
}

/* ---- the latency distribution --------------------------------------------------------- */

static const char *fmt_le(char *buf, double le_ms)
{
    if (le_ms >= 1000)
        snprintf(buf, LSH_FMT, "%g s", le_ms / 1000);
    else
        snprintf(buf, LSH_FMT, "%g ms", le_ms);
    return buf;
}

/* "≤5 ms" for a bucket's upper bound; "> 10 s" for the one above the last bound (le null). */
static void bucket_label(char *out, const json_t *buckets, size_t i)
{
    char a[LSH_FMT];
    double le;

    if (lsh_num(json_array_get(buckets, i), "le_ms", &le)) {
        snprintf(out, LSH_FMT + 8, "\xe2\x89\xa4%s", fmt_le(a, le));
    } else if (json_is_null(lsh_get(json_array_get(buckets, i), "le_ms")) && i > 0 &&
               lsh_num(json_array_get(buckets, i - 1), "le_ms", &le)) {
        snprintf(out, LSH_FMT + 8, ">%s", fmt_le(a, le));
    } else {
        snprintf(out, LSH_FMT + 8, "?");
    }
}

void lsh_chart_buckets(struct lsh_page *pg, const json_t *buckets)
{
    size_t n = json_array_size(buckets), every;
    double total = 0, vmax = 0, pw = CH_W - CH_L - CH_R, bw;
    char label[LSH_FMT + 8], c[LSH_FMT], r[LSH_FMT];
    struct axis ax;

    if (n == 0) {
        lsh_none(pg, "No latency distribution in the report.");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double v = lsh_num_or(json_array_get(buckets, i), "count", 0);

        total += v;
        vmax = v > vmax ? v : vmax;
    }
    y_axis(vmax, true, &ax);
    bw = pw / (double)n;
    every = n <= 16 ? 1 : (n + 15) / 16;
    lsh_put(pg, "<figure>");
    svg_open(pg, "Latency distribution: requests per duration bucket");
    svg_y_grid(pg, &ax, LSH_COUNT);
    for (size_t i = 0; i < n; i++) {
        double v = lsh_num_or(json_array_get(buckets, i), "count", 0), x = CH_L + i * bw;
        double y = y_of(&ax, v), gap = bw > 8 ? bw * 0.12 : 0.5;

        bucket_label(label, buckets, i);
        lsh_putf(pg, "<rect class=\"bk\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                     "<title>%s: %s (%s)</title></rect>\n",
                 x + gap, y, bw - 2 * gap, CH_H - CH_B - y, label, lsh_fmt_count(c, v),
                 lsh_fmt_rate(r, total > 0 ? v / total : 0));
        if (v > 0 && n <= 24)
            lsh_putf(pg, "<text class=\"val\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">"
                         "%s</text>\n", x + bw / 2, y - 4, c);
        if (i % every == 0)
            lsh_putf(pg, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                     x + bw / 2, CH_H - CH_B + 16, label);
    }
    lsh_put(pg, "</svg><figcaption>Requests by total duration (<code>duration_ms</code>), "
                "each bar one bucket of the gateway's histogram.</figcaption></figure>\n");
}

/* ---- the timeline --------------------------------------------------------------------- */

enum series { S_REQ, S_5XX, S_429, S_P95, NSERIES };

static const char *const series_key[NSERIES] = {"requests", "errors", "rate_limited", "p95_ms"};
static const char *const series_class[NSERIES] = {"s-req", "s-5xx", "s-429", "s-p95"};

struct tpoint {
    double t;                       /* x: ms since the epoch, or the index + 0.5 */
    double v[NSERIES];              /* NAN where the document has no figure */
};

/* Owned by lsh_render_timeline: the points as read (merged when there are many), the x domain. */
struct timeline {
    struct tpoint *pts;
    size_t n, n_raw, merged;        /* merged: points of the document per drawn point */
    double t0, t1, interval_ms;
    bool by_time;                   /* false: a start did not parse, x is the index */
    const json_t *raw;              /* the document's points, for labels by index */
};

static double x_of(const struct timeline *tl, double t)
{
    return CH_L + (t - tl->t0) / (tl->t1 - tl->t0) * (CH_W - CH_L - CH_R);
}

/* A time in ms since the epoch, in UTC by strftime form; "?" if it has no such date. */
static void fmt_time(char *buf, size_t size, double ms, const char *form)
{
    time_t t = (time_t)floor(ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, form, &tm) == 0)
        snprintf(buf, size, "?");
}

/* An interval in its largest whole unit: "1 min", "15 s", "1 h". */
static const char *fmt_interval(char *buf, double s)
{
    if (s >= 86400 && fmod(s, 86400) == 0)
        snprintf(buf, LSH_FMT, "%.0f d", s / 86400);
    else if (s >= 3600 && fmod(s, 3600) == 0)
        snprintf(buf, LSH_FMT, "%.0f h", s / 3600);
    else if (s >= 60 && fmod(s, 60) == 0)
        snprintf(buf, LSH_FMT, "%.0f min", s / 60);
    else
        snprintf(buf, LSH_FMT, "%g s", s);
    return buf;
}

/* More points than PLOT_MAX: neighbours merge, each merged point the max of its group, so
 * that a spike of 5xx in one interval out of thousands still shows. */
static void timeline_merge(struct timeline *tl)
{
    size_t k = (tl->n + PLOT_MAX - 1) / PLOT_MAX, m = 0;

    for (size_t i = 0; i < tl->n; i += k, m++) {
        size_t end = i + k < tl->n ? i + k : tl->n;
        struct tpoint out = {.t = (tl->pts[i].t + tl->pts[end - 1].t) / 2};

        for (int s = 0; s < NSERIES; s++) {
            out.v[s] = NAN;
            for (size_t j = i; j < end; j++)
                if (!isnan(tl->pts[j].v[s]) && (isnan(out.v[s]) || tl->pts[j].v[s] > out.v[s]))
                    out.v[s] = tl->pts[j].v[s];
        }
        tl->pts[m] = out;
    }
    tl->merged = k;
    tl->n = m;
}

static int timeline_read(struct timeline *tl, const json_t *timeline)
{
    const json_t *points = lsh_get(timeline, "points");
    double interval_ms = lsh_num_or(timeline, "interval_s", 60) * 1000;

    /* Below 1 ms, the interval would vanish next to a time in ms since 1970. */
    if (!(interval_ms >= 1) || !isfinite(interval_ms))
        interval_ms = 60000;
    tl->interval_ms = interval_ms;
    tl->raw = points;
    tl->n = tl->n_raw = json_array_size(points);
    tl->merged = 1;
    tl->by_time = true;
    if (tl->n == 0)
        return 0;
    tl->pts = calloc(tl->n, sizeof(*tl->pts));
    if (tl->pts == NULL)
        return -1;
    for (size_t i = 0; i < tl->n; i++) {
        const json_t *p = json_array_get(points, i);
        double start;

        if (tl->by_time && lsh_parse_ts(lsh_str(p, "start"), &start)) {
            /* A point stands for its interval: drawn at the interval's middle. */
            tl->pts[i].t = start + interval_ms / 2;
            if (i == 0 || start < tl->t0)
                tl->t0 = start;
            if (i == 0 || start + interval_ms > tl->t1)
                tl->t1 = start + interval_ms;
        } else {
            tl->by_time = false;
        }
        for (int s = 0; s < NSERIES; s++)
            tl->pts[i].v[s] = lsh_num_or(p, series_key[s], NAN);
    }
    if (!tl->by_time) {
        for (size_t i = 0; i < tl->n; i++)
            tl->pts[i].t = (double)i + 0.5;
        tl->t0 = 0;
        tl->t1 = (double)tl->n;
    }
    if (tl->n > PLOT_MAX)
        timeline_merge(tl);
    return 0;
}

/* Time ticks at a round step (1 s .. 1 year) that gives at most six, labelled in UTC. */
static void timeline_x_ticks(struct lsh_page *pg, const struct timeline *tl)
{
    static const double steps_s[] = {1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
                                     7200, 10800, 21600, 43200, 86400, 172800, 604800,
                                     2592000, 31536000};
    size_t nsteps = sizeof(steps_s) / sizeof(steps_s[0]), i = 0;
    double span = tl->t1 - tl->t0, step_ms;
    const char *form;
    char label[LSH_FMT];
    int drawn = 0;

    if (!tl->by_time) {
        /* Starts that do not parse: five ticks by index, labelled with the string itself. */
        for (int j = 0; j < 5 && tl->n_raw > 0; j++) {
            size_t idx = (size_t)llround(j * (double)(tl->n_raw - 1) / 4);
            const char *s = lsh_str(json_array_get(tl->raw, idx), "start");

            if (j > 0 && idx == (size_t)llround((j - 1) * (double)(tl->n_raw - 1) / 4))
                continue;
            if (s == NULL)
                s = "?";
            snprintf(label, sizeof(label), "%.*s", (int)lsh_utf8_cut(s, strlen(s), 24), s);
            svg_x_label(pg, x_of(tl, (double)idx + 0.5), label);
        }
        return;
    }
    while (i + 1 < nsteps && span / (steps_s[i] * 1000) > 6)
        i++;
    step_ms = steps_s[i] * 1000;
    if (steps_s[i] >= 86400)
        form = "%Y-%m-%d";
    else if (span >= 86400000.0)
        form = "%m-%d %H:%M";
    else
        form = steps_s[i] < 60 ? "%H:%M:%S" : "%H:%M";
    /* drawn < 12: with an absurd interval, t + step_ms may never pass t1 (or change t). */
    for (double t = ceil(tl->t0 / step_ms) * step_ms; t <= tl->t1 && drawn < 12;
         t += step_ms) {
        fmt_time(label, sizeof(label), t, form);
        svg_x_label(pg, x_of(tl, t), label);
        drawn++;
    }
    if (drawn == 0) {
        fmt_time(label, sizeof(label), tl->t0, "%H:%M:%S");
        svg_x_label(pg, x_of(tl, tl->t0), label);
    }
}

/* One series as a line, broken where a figure is missing; as a filled area below it when
 * area is set. */
static void timeline_path(struct lsh_page *pg, const struct timeline *tl, const struct axis *ax,
                          int s, bool area)
{
    double base = y_of(ax, 0), last_x = 0;
    bool open = false;

    lsh_putf(pg, "<path class=\"%s%s\" d=\"", series_class[s], area ? " area" : "");
    for (size_t i = 0; i < tl->n; i++) {
        double v = tl->pts[i].v[s], x = x_of(tl, tl->pts[i].t);

        if (isnan(v)) {
            if (open && area)
                lsh_putf(pg, "L%.1f,%.1fZ", last_x, base);
            open = false;
            continue;
        }
        if (!open && area)
            lsh_putf(pg, "M%.1f,%.1fL%.1f,%.1f", x, base, x, y_of(ax, v));
        else
            lsh_putf(pg, "%c%.1f,%.1f", open ? 'L' : 'M', x, y_of(ax, v));
        open = true;
        last_x = x;
    }
    if (open && area)
        lsh_putf(pg, "L%.1f,%.1fZ", last_x, base);
    lsh_put(pg, "\"/>\n");
}

/* Dots where a line alone would not show a point: all of them when there are few, else the
 * points whose neighbours are both missing. */
static void timeline_dots(struct lsh_page *pg, const struct timeline *tl, const struct axis *ax,
                          int s)
{
    for (size_t i = 0; i < tl->n; i++) {
        bool alone = (i == 0 || isnan(tl->pts[i - 1].v[s])) &&
                     (i + 1 == tl->n || isnan(tl->pts[i + 1].v[s]));

        if (isnan(tl->pts[i].v[s]) || (tl->n > DOTS_MAX && !alone))
            continue;
        lsh_putf(pg, "<circle class=\"dot %s\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>",
                 series_class[s], x_of(tl, tl->pts[i].t), y_of(ax, tl->pts[i].v[s]));
    }
    lsh_put(pg, "\n");
}

static void timeline_chart(struct lsh_page *pg, const struct timeline *tl, const int *series,
                           int nseries, enum lsh_unit unit, const char *label)
{
    double vmax = 0;
    struct axis ax;

    for (int k = 0; k < nseries; k++)
        for (size_t i = 0; i < tl->n; i++)
            if (tl->pts[i].v[series[k]] > vmax)
                vmax = tl->pts[i].v[series[k]];
    y_axis(vmax, unit == LSH_COUNT, &ax);
    svg_open(pg, label);
    svg_y_grid(pg, &ax, unit);
    timeline_x_ticks(pg, tl);
    if (series[0] == S_REQ)
        timeline_path(pg, tl, &ax, S_REQ, true);
    for (int k = 0; k < nseries; k++) {
        timeline_path(pg, tl, &ax, series[k], false);
        timeline_dots(pg, tl, &ax, series[k]);
    }
    lsh_put(pg, "</svg>");
}

static void legend(struct lsh_page *pg, const char *cls, const char *text)
{
    lsh_putf(pg, "<span class=\"lg\"><i class=\"%s\"></i>%s</span>", cls, text);
}

void lsh_render_timeline(struct lsh_page *pg, const json_t *timeline)
{
    /* 5xx drawn last: on top of 429 where both are low. */
    static const int counts[] = {S_REQ, S_429, S_5XX}, p95[] = {S_P95};
    struct timeline tl = {0};
    char iv[LSH_FMT], from[LSH_FMT], to[LSH_FMT];

    if (timeline_read(&tl, timeline) < 0) {
        pg->err = pg->err ? pg->err : ENOMEM;
        return;
    }
    if (tl.n == 0) {
        lsh_none(pg, "No requests in the period: nothing to chart.");
        return;
    }
    fmt_interval(iv, tl.interval_ms / 1000);
    lsh_put(pg, "<p class=\"meta\">");
    lsh_putf(pg, "%s", lsh_fmt_count(from, (double)tl.n_raw));
    lsh_putf(pg, " interval%s of %s", tl.n_raw == 1 ? "" : "s", iv);
    if (tl.by_time) {
        fmt_time(from, sizeof(from), tl.t0, "%Y-%m-%d %H:%M:%S");
        fmt_time(to, sizeof(to), tl.t1, "%Y-%m-%d %H:%M:%S");
        lsh_putf(pg, ", %s to %s UTC", from, to);
    }
    if (tl.merged > 1)
        lsh_putf(pg, "; each drawn point is the highest of %zu intervals", tl.merged);
    lsh_put(pg, ".</p>\n");

    lsh_put(pg, "<h3>Requests, 5xx and 429 per interval</h3>\n<figure>");
    timeline_chart(pg, &tl, counts, 3, LSH_COUNT, "Requests, 5xx and 429 responses per interval");
    lsh_put(pg, "<figcaption>");
    legend(pg, "s-req", "requests");
    legend(pg, "s-5xx", "5xx responses");
    legend(pg, "s-429", "429 responses");
    lsh_put(pg, "</figcaption></figure>\n");

    lsh_put(pg, "<h3>p95 latency per interval</h3>\n<figure>");
    timeline_chart(pg, &tl, p95, 1, LSH_MS, "p95 of duration_ms per interval, in ms");
    lsh_put(pg, "<figcaption>");
    legend(pg, "s-p95", "p95 of <code>duration_ms</code> (ms); gaps: intervals without requests");
    lsh_put(pg, "</figcaption></figure>\n");
    free(tl.pts);
}
