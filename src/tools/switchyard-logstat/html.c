/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * html.c: `switchyard-logstat --html FILE`: the report document (the one --json prints) as one
 * page that opens offline and prints: inline style, charts drawn here as inline SVG, no script,
 * no external resource. Every string in the document came from a log line and may be hostile:
 * it reaches the page only through esc_*(). Nor is the document's shape trusted: a missing,
 * null or mistyped field shows as a dash, never as "(null)" or a crash.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "html.h"

#define DASH      "\xe2\x80\x93"    /* en dash: a figure the document does not have */
#define THIN      "\xe2\x80\xaf"    /* narrow no-break space: the thousands separator */
#define ELLIPSIS  "\xe2\x80\xa6"
#define CELL_MAX  160               /* bytes of a string shown in a cell; more goes to its title */
#define TITLE_MAX 2048              /* bytes of a string kept in a title attribute */
#define FMT       64                /* size of a formatted figure */
#define BAR_MAX   70                /* % of a share cell that a 100 % bar takes; then its figure */

/* Chart geometry, in SVG user units (the SVG scales to the page's width). */
#define CH_W      960
#define CH_H      240
#define CH_L      60                /* left margin: the y labels */
#define CH_R      20
#define CH_T      14
#define CH_B      26                /* bottom margin: the x labels */
#define PLOT_MAX  600               /* above this many points, neighbours merge (their max) */
#define DOTS_MAX  60                /* up to this many points, each also gets a dot */

struct page {
    FILE *out;
    int err;                        /* errno of the first failed write; later output skipped */
};

/* ---- output and escaping ---------------------------------------------------------------- */

static void put(struct page *pg, const char *s)
{
    if (pg->err)
        return;
    errno = 0;
    if (fputs(s, pg->out) == EOF)
        pg->err = errno ? errno : EIO;
}

static void putn(struct page *pg, const char *s, size_t n)
{
    if (pg->err || n == 0)
        return;
    errno = 0;
    if (fwrite(s, 1, n, pg->out) != n)
        pg->err = errno ? errno : EIO;
}

__attribute__((format(printf, 2, 3)))
static void putf(struct page *pg, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (pg->err)
        return;
    errno = 0;
    va_start(ap, fmt);
    rc = vfprintf(pg->out, fmt, ap);
    va_end(ap);
    if (rc < 0)
        pg->err = errno ? errno : EIO;
}

/* One escaper for text and attribute values alike: & < > " ' become references, so that no
 * string can end an element or an attribute, quoted either way. C0 controls (but tab and
 * newline), NUL included, and DEL are not allowed in HTML: they show as U+FFFD. */
static void esc_n(struct page *pg, const char *s, size_t n)
{
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *ref = NULL;

        switch (c) {
        case '&': ref = "&amp;"; break;
        case '<': ref = "&lt;"; break;
        case '>': ref = "&gt;"; break;
        case '"': ref = "&quot;"; break;
        case '\'': ref = "&#39;"; break;
        default:
            if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
                ref = "\xef\xbf\xbd";
        }
        if (ref == NULL)
            continue;
        putn(pg, s + run, i - run);
        put(pg, ref);
        run = i + 1;
    }
    putn(pg, s + run, n - run);
}

static void esc(struct page *pg, const char *s)
{
    if (s != NULL)
        esc_n(pg, s, strlen(s));
}

/* At most max bytes of s, cut back to the start of a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return max;
}

static void esc_cut(struct page *pg, const char *s, size_t n, size_t max)
{
    size_t cut = utf8_cut(s, n, max);

    esc_n(pg, s, cut);
    if (cut < n)
        put(pg, ELLIPSIS);
}

/* ---- reading the document --------------------------------------------------------------- */

/* json_object_get is NULL for a non-object, so a chain of get() never needs a type check. */
static const json_t *get(const json_t *o, const char *key)
{
    return json_object_get(o, key);
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(get(o, key));
}

static bool num(const json_t *o, const char *key, double *v)
{
    const json_t *j = get(o, key);

    if (!json_is_number(j))
        return false;
    *v = json_number_value(j);
    return isfinite(*v);
}

static double num_or(const json_t *o, const char *key, double dflt)
{
    double v;

    return num(o, key, &v) ? v : dflt;
}

/* A section is present when it is there and not null (--report picks sections). */
static bool present(const json_t *v)
{
    return v != NULL && !json_is_null(v);
}

/* ---- figures -------------------------------------------------------------------------- */

enum unit { U_COUNT, U_MS, U_RATE, U_BYTES, U_RPS };

/* 1234 stays 1234; from 10 000 on, groups of three with thin spaces. */
static const char *fmt_count(char *buf, double v)
{
    char digits[32];
    size_t len, lead, o = 0;
    long long x;

    if (fabs(v) >= 1e15) {
        snprintf(buf, FMT, "%.3g", v);
        return buf;
    }
    x = llround(v);
    len = (size_t)snprintf(digits, sizeof(digits), "%lld", x < 0 ? -x : x);
    if (x < 0)
        buf[o++] = '-';
    if (len < 5) {
        memcpy(buf + o, digits, len + 1);
        return buf;
    }
    lead = len % 3 ? len % 3 : 3;
    for (size_t i = 0; i < len; i++) {
        if (i >= lead && (i - lead) % 3 == 0) {
            memcpy(buf + o, THIN, sizeof(THIN) - 1);
            o += sizeof(THIN) - 1;
        }
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* Milliseconds: three significant figures or so, never more than three decimals. */
static const char *fmt_ms(char *buf, double v)
{
    double a = fabs(v);

    if (v == 0)
        snprintf(buf, FMT, "0");
    else if (a >= 100)
        fmt_count(buf, v);
    else if (a >= 10)
        snprintf(buf, FMT, "%.1f", v);
    else if (a >= 1)
        snprintf(buf, FMT, "%.2f", v);
    else
        snprintf(buf, FMT, "%.3f", v);
    return buf;
}

static const char *fmt_rate(char *buf, double r)
{
    double p = r * 100;

    if (r == 0)
        snprintf(buf, FMT, "0%%");
    else if (p > 0 && p < 0.01)
        snprintf(buf, FMT, "&lt;0.01%%");
    else if (fabs(p) < 10)
        snprintf(buf, FMT, "%.2f%%", p);
    else if (fabs(p) < 100)
        snprintf(buf, FMT, "%.1f%%", p);
    else
        snprintf(buf, FMT, "%.0f%%", p);
    return buf;
}

static const char *fmt_bytes(char *buf, double v)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = -1;

    if (fabs(v) < 1024) {
        snprintf(buf, FMT, "%.0f B", v);
        return buf;
    }
    while (fabs(v) >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, FMT, fabs(v) >= 100 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

static const char *fmt_unit(char *buf, enum unit unit, double v)
{
    switch (unit) {
    case U_MS: return fmt_ms(buf, v);
    case U_RATE: return fmt_rate(buf, v);
    case U_BYTES: return fmt_bytes(buf, v);
    case U_RPS:
        snprintf(buf, FMT, fabs(v) >= 100 ? "%.0f" : "%.1f", v);
        return buf;
    case U_COUNT: break;
    }
    return fmt_count(buf, v);
}

/* The figure o.key in its unit, or a dash. */
static void put_num(struct page *pg, const json_t *o, const char *key, enum unit unit)
{
    char buf[FMT];
    double v;

    if (num(o, key, &v))
        put(pg, fmt_unit(buf, unit, v));
    else
        put(pg, "<span class=\"na\">" DASH "</span>");
}

static void td_num(struct page *pg, const json_t *o, const char *key, enum unit unit)
{
    put(pg, "<td class=\"n\">");
    put_num(pg, o, key, unit);
    put(pg, "</td>");
}

/* Any JSON value as text: a string cut to max bytes, numbers, true/false, a dash for null or
 * nothing, and an object or array as its compact JSON. */
static void put_value(struct page *pg, const json_t *v, size_t max)
{
    char buf[FMT];

    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING:
        if (json_string_length(v) == 0)
            put(pg, "<span class=\"na\">(empty)</span>");
        else
            esc_cut(pg, json_string_value(v), json_string_length(v), max);
        return;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        put(pg, buf);
        return;
    case JSON_REAL:
        snprintf(buf, sizeof(buf), "%g", json_real_value(v));
        put(pg, buf);
        return;
    case JSON_TRUE: put(pg, "true"); return;
    case JSON_FALSE: put(pg, "false"); return;
    case JSON_NULL: put(pg, "<span class=\"na\">" DASH "</span>"); return;
    case JSON_OBJECT:
    case JSON_ARRAY: break;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text != NULL)
        esc_cut(pg, text, strlen(text), max);
    free(text);
}

/* A cell holding a string from the logs: cut to CELL_MAX bytes, so that a 60 KiB user agent
 * cannot drown a table, and whole (up to TITLE_MAX) in its title. */
static void td_text(struct page *pg, const json_t *v)
{
    put(pg, "<td class=\"key\"");
    if (json_is_string(v) && json_string_length(v) > CELL_MAX) {
        put(pg, " title=\"");
        esc_cut(pg, json_string_value(v), json_string_length(v), TITLE_MAX);
        put(pg, "\"");
    }
    put(pg, ">");
    put_value(pg, v, CELL_MAX);
    put(pg, "</td>");
}

static void none(struct page *pg, const char *what)
{
    putf(pg, "<p class=\"none\">%s</p>\n", what);
}

/* ---- time ----------------------------------------------------------------------------- */

/* RFC 3339 ("2026-11-23T17:00:00.000Z", or an offset) to milliseconds since the epoch. */
static bool parse_ts(const char *s, double *ms)
{
    int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
    double frac = 0, scale = 0.1;
    struct tm tm = {0};
    const char *p;

    if (s == NULL || sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
                            &n) != 6 || n == 0)
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
        return false;
    p = s + n;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    if (*p == '+' || *p == '-') {
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
            return false;
        if (*p == '-') {
            oh = -oh;
            om = -om;
        }
    } else if (*p != 'Z' && *p != 'z') {
        return false;
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *ms = ((double)timegm(&tm) - oh * 3600.0 - om * 60.0 + frac) * 1000;
    return true;
}

static void fmt_time(char *buf, size_t size, double ms, const char *form)
{
    time_t t = (time_t)floor(ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, form, &tm) == 0)
        snprintf(buf, size, "?");
}

static const char *fmt_span(char *buf, double ms)
{
    long long s = llround(ms / 1000);

    if (ms < 60000)
        snprintf(buf, FMT, "%.3g s", ms / 1000);
    else if (s < 3600)
        snprintf(buf, FMT, "%lld min %02lld s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, FMT, "%lld h %02lld min", s / 3600, s / 60 % 60);
    else
        snprintf(buf, FMT, "%lld d %lld h", s / 86400, s / 3600 % 24);
    return buf;
}

/* An interval in its largest whole unit: "1 min", "15 s", "1 h". */
static const char *fmt_interval(char *buf, double s)
{
    if (s >= 86400 && fmod(s, 86400) == 0)
        snprintf(buf, FMT, "%.0f d", s / 86400);
    else if (s >= 3600 && fmod(s, 3600) == 0)
        snprintf(buf, FMT, "%.0f h", s / 3600);
    else if (s >= 60 && fmod(s, 60) == 0)
        snprintf(buf, FMT, "%.0f min", s / 60);
    else
        snprintf(buf, FMT, "%g s", s);
    return buf;
}

/* A timestamp string from the document: shown as it is (escaped), or a dash. */
static void put_ts(struct page *pg, const char *ts)
{
    if (ts == NULL)
        put(pg, "<span class=\"na\">" DASH "</span>");
    else
        esc_cut(pg, ts, strlen(ts), 40);
}

/* ---- charts --------------------------------------------------------------------------- */

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

static void svg_open(struct page *pg, const char *label)
{
    putf(pg, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">"
             "<title>%s</title>\n",
         CH_W, CH_H, label, label);
}

static void svg_y_grid(struct page *pg, const struct axis *ax, enum unit unit)
{
    char buf[FMT];

    /* At most a dozen lines, whatever the figures: a max of 1e308 rounds up to infinity. */
    for (int i = 0; i <= 12 && i * ax->step <= ax->max * (1 + 1e-9); i++) {
        double v = i * ax->step, y = y_of(ax, v);

        putf(pg, "<line class=\"%s\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
                 "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
             i == 0 ? "ax" : "gl", CH_L, y, CH_W - CH_R, y, CH_L - 6, y + 4,
             fmt_unit(buf, unit, v));
    }
}

/* An x label, kept inside the drawing at both ends. */
static void svg_x_label(struct page *pg, double x, const char *label)
{
    const char *anchor = x < CH_L + 30 ? "start" : x > CH_W - CH_R - 30 ? "end" : "middle";

    putf(pg, "<line class=\"ax\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
             "<text class=\"xt\" x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">",
         x, CH_H - CH_B, x, CH_H - CH_B + 4, x, CH_H - CH_B + 16, anchor);
    esc(pg, label);
    put(pg, "</text>\n");
}

/* ---- the latency distribution --------------------------------------------------------- */

static const char *fmt_le(char *buf, double le_ms)
{
    if (le_ms >= 1000)
        snprintf(buf, FMT, "%g s", le_ms / 1000);
    else
        snprintf(buf, FMT, "%g ms", le_ms);
    return buf;
}

/* "≤5 ms" for a bucket's upper bound; "> 10 s" for the one above the last bound (le null). */
static void bucket_label(char *out, const json_t *buckets, size_t i)
{
    char a[FMT];
    double le;

    if (num(json_array_get(buckets, i), "le_ms", &le)) {
        snprintf(out, FMT + 8, "\xe2\x89\xa4%s", fmt_le(a, le));
    } else if (json_is_null(get(json_array_get(buckets, i), "le_ms")) && i > 0 &&
               num(json_array_get(buckets, i - 1), "le_ms", &le)) {
        snprintf(out, FMT + 8, ">%s", fmt_le(a, le));
    } else {
        snprintf(out, FMT + 8, "?");
    }
}

static void chart_buckets(struct page *pg, const json_t *buckets)
{
    size_t n = json_array_size(buckets), every;
    double total = 0, vmax = 0, pw = CH_W - CH_L - CH_R, bw;
    char label[FMT + 8], c[FMT], r[FMT];
    struct axis ax;

    if (n == 0) {
        none(pg, "No latency distribution in the report.");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double v = num_or(json_array_get(buckets, i), "count", 0);

        total += v;
        vmax = v > vmax ? v : vmax;
    }
    y_axis(vmax, true, &ax);
    bw = pw / (double)n;
    every = n <= 16 ? 1 : (n + 15) / 16;
    put(pg, "<figure>");
    svg_open(pg, "Latency distribution: requests per duration bucket");
    svg_y_grid(pg, &ax, U_COUNT);
    for (size_t i = 0; i < n; i++) {
        double v = num_or(json_array_get(buckets, i), "count", 0), x = CH_L + i * bw;
        double y = y_of(&ax, v), gap = bw > 8 ? bw * 0.12 : 0.5;

        bucket_label(label, buckets, i);
        putf(pg, "<rect class=\"bk\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                 "<title>%s: %s (%s)</title></rect>\n",
             x + gap, y, bw - 2 * gap, CH_H - CH_B - y, label, fmt_count(c, v),
             fmt_rate(r, total > 0 ? v / total : 0));
        if (v > 0 && n <= 24)
            putf(pg, "<text class=\"val\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                 x + bw / 2, y - 4, c);
        if (i % every == 0)
            putf(pg, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                 x + bw / 2, CH_H - CH_B + 16, label);
    }
    put(pg, "</svg><figcaption>Requests by total duration (<code>duration_ms</code>), "
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

/* Owned by render_timeline: the points as read (merged when there are many), the x domain. */
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
    const json_t *points = get(timeline, "points");
    double interval_ms = num_or(timeline, "interval_s", 60) * 1000;

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

        if (tl->by_time && parse_ts(str(p, "start"), &start)) {
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
            tl->pts[i].v[s] = num_or(p, series_key[s], NAN);
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
static void timeline_x_ticks(struct page *pg, const struct timeline *tl)
{
    static const double steps_s[] = {1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
                                     7200, 10800, 21600, 43200, 86400, 172800, 604800,
                                     2592000, 31536000};
    size_t nsteps = sizeof(steps_s) / sizeof(steps_s[0]), i = 0;
    double span = tl->t1 - tl->t0, step_ms;
    const char *form;
    char label[FMT];
    int drawn = 0;

    if (!tl->by_time) {
        /* Starts that do not parse: five ticks by index, labelled with the string itself. */
        for (int j = 0; j < 5 && tl->n_raw > 0; j++) {
            size_t idx = (size_t)llround(j * (double)(tl->n_raw - 1) / 4);
            const char *s = str(json_array_get(tl->raw, idx), "start");

            if (j > 0 && idx == (size_t)llround((j - 1) * (double)(tl->n_raw - 1) / 4))
                continue;
            if (s == NULL)
                s = "?";
            snprintf(label, sizeof(label), "%.*s", (int)utf8_cut(s, strlen(s), 24), s);
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
static void timeline_path(struct page *pg, const struct timeline *tl, const struct axis *ax,
                          int s, bool area)
{
    double base = y_of(ax, 0), last_x = 0;
    bool open = false;

    putf(pg, "<path class=\"%s%s\" d=\"", series_class[s], area ? " area" : "");
    for (size_t i = 0; i < tl->n; i++) {
        double v = tl->pts[i].v[s], x = x_of(tl, tl->pts[i].t);

        if (isnan(v)) {
            if (open && area)
                putf(pg, "L%.1f,%.1fZ", last_x, base);
            open = false;
            continue;
        }
        if (!open && area)
            putf(pg, "M%.1f,%.1fL%.1f,%.1f", x, base, x, y_of(ax, v));
        else
            putf(pg, "%c%.1f,%.1f", open ? 'L' : 'M', x, y_of(ax, v));
        open = true;
        last_x = x;
    }
    if (open && area)
        putf(pg, "L%.1f,%.1fZ", last_x, base);
    put(pg, "\"/>\n");
}

/* Dots where a line alone would not show a point: all of them when there are few, else the
 * points whose neighbours are both missing. */
static void timeline_dots(struct page *pg, const struct timeline *tl, const struct axis *ax,
                          int s)
{
    for (size_t i = 0; i < tl->n; i++) {
        bool alone = (i == 0 || isnan(tl->pts[i - 1].v[s])) &&
                     (i + 1 == tl->n || isnan(tl->pts[i + 1].v[s]));

        if (isnan(tl->pts[i].v[s]) || (tl->n > DOTS_MAX && !alone))
            continue;
        putf(pg, "<circle class=\"dot %s\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>",
             series_class[s], x_of(tl, tl->pts[i].t), y_of(ax, tl->pts[i].v[s]));
    }
    put(pg, "\n");
}

static void timeline_chart(struct page *pg, const struct timeline *tl, const int *series,
                           int nseries, enum unit unit, const char *label)
{
    double vmax = 0;
    struct axis ax;

    for (int k = 0; k < nseries; k++)
        for (size_t i = 0; i < tl->n; i++)
            if (tl->pts[i].v[series[k]] > vmax)
                vmax = tl->pts[i].v[series[k]];
    y_axis(vmax, unit == U_COUNT, &ax);
    svg_open(pg, label);
    svg_y_grid(pg, &ax, unit);
    timeline_x_ticks(pg, tl);
    if (series[0] == S_REQ)
        timeline_path(pg, tl, &ax, S_REQ, true);
    for (int k = 0; k < nseries; k++) {
        timeline_path(pg, tl, &ax, series[k], false);
        timeline_dots(pg, tl, &ax, series[k]);
    }
    put(pg, "</svg>");
}

static void legend(struct page *pg, const char *cls, const char *text)
{
    putf(pg, "<span class=\"lg\"><i class=\"%s\"></i>%s</span>", cls, text);
}

static void render_timeline(struct page *pg, const json_t *timeline)
{
    /* 5xx drawn last: on top of 429 where both are low. */
    static const int counts[] = {S_REQ, S_429, S_5XX}, p95[] = {S_P95};
    struct timeline tl = {0};
    char iv[FMT], from[FMT], to[FMT];

    if (timeline_read(&tl, timeline) < 0) {
        pg->err = pg->err ? pg->err : ENOMEM;
        return;
    }
    if (tl.n == 0) {
        none(pg, "No requests in the period: nothing to chart.");
        return;
    }
    fmt_interval(iv, tl.interval_ms / 1000);
    put(pg, "<p class=\"meta\">");
    putf(pg, "%s", fmt_count(from, (double)tl.n_raw));
    putf(pg, " interval%s of %s", tl.n_raw == 1 ? "" : "s", iv);
    if (tl.by_time) {
        fmt_time(from, sizeof(from), tl.t0, "%Y-%m-%d %H:%M:%S");
        fmt_time(to, sizeof(to), tl.t1, "%Y-%m-%d %H:%M:%S");
        putf(pg, ", %s to %s UTC", from, to);
    }
    if (tl.merged > 1)
        putf(pg, "; each drawn point is the highest of %zu intervals", tl.merged);
    put(pg, ".</p>\n");

    put(pg, "<h3>Requests, 5xx and 429 per interval</h3>\n<figure>");
    timeline_chart(pg, &tl, counts, 3, U_COUNT, "Requests, 5xx and 429 responses per interval");
    put(pg, "<figcaption>");
    legend(pg, "s-req", "requests");
    legend(pg, "s-5xx", "5xx responses");
    legend(pg, "s-429", "429 responses");
    put(pg, "</figcaption></figure>\n");

    put(pg, "<h3>p95 latency per interval</h3>\n<figure>");
    timeline_chart(pg, &tl, p95, 1, U_MS, "p95 of duration_ms per interval, in ms");
    put(pg, "<figcaption>");
    legend(pg, "s-p95", "p95 of <code>duration_ms</code> (ms); gaps: intervals without requests");
    put(pg, "</figcaption></figure>\n");
    free(tl.pts);
}

/* ---- tables --------------------------------------------------------------------------- */

/* {"key": s, "count": N} rows, with each row's share of total (or of the largest row). */
static void keycount_table(struct page *pg, const char *title, const char *keyhead,
                           const json_t *rows, double total)
{
    size_t n = json_array_size(rows);
    double max = 0;
    char buf[FMT];

    putf(pg, "<div><h4>%s</h4>\n", title);
    if (n == 0) {
        none(pg, "None.");
        put(pg, "</div>\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double v = num_or(json_array_get(rows, i), "count", 0);
        max = v > max ? v : max;
    }
    if (total < max)
        total = max;
    putf(pg, "<table><thead><tr><th>%s</th><th class=\"n\">Count</th><th class=\"share\">Share"
             "</th></tr></thead><tbody>\n", keyhead);
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(rows, i);
        double v = num_or(row, "count", 0);

        put(pg, "<tr>");
        td_text(pg, get(row, "key"));
        td_num(pg, row, "count", U_COUNT);
        putf(pg, "<td class=\"share\"><span class=\"bar\" style=\"width:%.1f%%\"></span>%s</td>"
                 "</tr>\n", total > 0 ? v / total * BAR_MAX : 0,
             fmt_rate(buf, total > 0 ? v / total : 0));
    }
    put(pg, "</tbody></table></div>\n");
}

struct breakdown {
    const char *key, *title, *keyhead;
};

/* {"total": N, "by_x": [{"key", "count"}], ...}: the total, then one table per breakdown. */
static void render_breakdowns(struct page *pg, const char *title, const json_t *o,
                              const struct breakdown *parts)
{
    char buf[FMT];

    putf(pg, "<h3>%s</h3>\n", title);
    if (!json_is_object(o)) {
        none(pg, "Not in the report.");
        return;
    }
    putf(pg, "<p><b>%s</b> in all.</p>\n<div class=\"grid\">\n",
         fmt_count(buf, num_or(o, "total", 0)));
    for (const struct breakdown *b = parts; b->key; b++)
        keycount_table(pg, b->title, b->keyhead, get(o, b->key), num_or(o, "total", 0));
    put(pg, "</div>\n");
}

/* ---- the sections --------------------------------------------------------------------- */

static void figure(struct page *pg, const char *label, const json_t *o, const char *key,
                   enum unit unit)
{
    put(pg, "<div class=\"fig\"><b>");
    put_num(pg, o, key, unit);
    putf(pg, "</b><span>%s</span></div>\n", label);
}

static void latency_row(struct page *pg, const char *label, const json_t *o)
{
    static const char *const keys[] = {"mean", "p50", "p95", "p99", "max"};

    putf(pg, "<tr><td>%s</td>", label);
    td_num(pg, o, "count", U_COUNT);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        td_num(pg, o, keys[i], U_MS);
    put(pg, "</tr>\n");
}

static void render_overview(struct page *pg, const json_t *ov)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    const json_t *status = get(ov, "status");
    double total = 0;
    char buf[FMT];

    if (!json_is_object(ov)) {
        none(pg, "No overview in the report.");
        return;
    }
    put(pg, "<div class=\"figs\">\n");
    figure(pg, "requests", ov, "requests", U_COUNT);
    figure(pg, "error rate (5xx)", ov, "error_rate", U_RATE);
    figure(pg, "p50 ms", get(ov, "duration_ms"), "p50", U_MS);
    figure(pg, "p95 ms", get(ov, "duration_ms"), "p95", U_MS);
    figure(pg, "p99 ms", get(ov, "duration_ms"), "p99", U_MS);
    figure(pg, "bytes in", ov, "bytes_in", U_BYTES);
    figure(pg, "bytes out", ov, "bytes_out", U_BYTES);
    put(pg, "</div>\n<div class=\"grid\">\n<div><h3>Status classes</h3>\n");
    for (size_t i = 0; i < 5; i++)
        total += num_or(status, classes[i], 0);
    put(pg, "<table><thead><tr><th>Status</th><th class=\"n\">Requests</th>"
            "<th class=\"share\">Share</th></tr></thead><tbody>\n");
    for (size_t i = 0; i < 5; i++) {
        double v = num_or(status, classes[i], 0);

        putf(pg, "<tr><td>%s</td>", classes[i]);
        td_num(pg, status, classes[i], U_COUNT);
        putf(pg, "<td class=\"share\"><span class=\"bar c%zu\" style=\"width:%.1f%%\"></span>%s"
                 "</td></tr>\n", i + 1, total > 0 ? v / total * BAR_MAX : 0,
             fmt_rate(buf, total > 0 ? v / total : 0));
    }
    put(pg, "</tbody></table></div>\n<div><h3>Latency (ms)</h3>\n"
            "<table><thead><tr><th></th><th class=\"n\">Samples</th><th class=\"n\">Mean</th>"
            "<th class=\"n\">p50</th><th class=\"n\">p95</th><th class=\"n\">p99</th>"
            "<th class=\"n\">Max</th></tr></thead><tbody>\n");
    latency_row(pg, "total (<code>duration_ms</code>)", get(ov, "duration_ms"));
    latency_row(pg, "upstream (<code>upstream_ms</code>)", get(ov, "upstream_ms"));
    put(pg, "</tbody></table></div>\n</div>\n<h3>Latency distribution</h3>\n");
    chart_buckets(pg, get(ov, "duration_buckets"));
}

/* A slot name coloured when it is one of the two the gateway knows. */
static void td_slot(struct page *pg, const json_t *slot)
{
    const char *s = json_string_value(slot);
    const char *cls = s && strcmp(s, "blue") == 0 ? "slot-blue"
                      : s && strcmp(s, "green") == 0 ? "slot-green" : "";

    putf(pg, "<td class=\"%s\">", cls);
    put_value(pg, slot, CELL_MAX);
    put(pg, "</td>");
}

static void render_services(struct page *pg, const json_t *services)
{
    size_t n = json_array_size(services);

    if (n == 0) {
        none(pg, "No requests to any service.");
        return;
    }
    put(pg, "<table><thead><tr><th>Service</th><th>Slot</th><th class=\"n\">Requests</th>"
            "<th class=\"n\">Errors</th><th class=\"n\">Error rate</th><th class=\"n\">p50 ms</th>"
            "<th class=\"n\">p95 ms</th><th class=\"n\">p99 ms</th></tr></thead><tbody>\n");
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(services, i);

        put(pg, "<tr>");
        td_text(pg, get(s, "service"));
        td_slot(pg, get(s, "slot"));
        td_num(pg, s, "requests", U_COUNT);
        td_num(pg, s, "errors", U_COUNT);
        td_num(pg, s, "error_rate", U_RATE);
        td_num(pg, s, "p50_ms", U_MS);
        td_num(pg, s, "p95_ms", U_MS);
        td_num(pg, s, "p99_ms", U_MS);
        put(pg, "</tr>\n");
    }
    put(pg, "</tbody></table>\n");
}

static void top_table(struct page *pg, const char *title, const char *keyhead, const json_t *rows)
{
    size_t n = json_array_size(rows);
    bool overcount = false;

    putf(pg, "<h4>%s</h4>\n", title);
    if (n == 0) {
        none(pg, "None.");
        return;
    }
    for (size_t i = 0; i < n; i++)
        overcount |= get(json_array_get(rows, i), "overcount") != NULL;
    putf(pg, "<table class=\"top\"><thead><tr><th>%s</th><th class=\"n\">Requests</th>"
             "<th class=\"n\">Errors"
             "</th><th class=\"n\">Error rate</th><th class=\"n\">Mean ms</th>"
             "<th class=\"n\">Max ms</th>%s</tr></thead><tbody>\n",
         keyhead, overcount ? "<th class=\"n\" title=\"the count may be high by at most this "
                              "much\">Overcount \xe2\x89\xa4</th>" : "");
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(rows, i);

        put(pg, "<tr>");
        td_text(pg, get(row, "key"));
        td_num(pg, row, "requests", U_COUNT);
        td_num(pg, row, "errors", U_COUNT);
        td_num(pg, row, "error_rate", U_RATE);
        td_num(pg, row, "mean_ms", U_MS);
        td_num(pg, row, "max_ms", U_MS);
        if (overcount) {
            if (get(row, "overcount"))
                td_num(pg, row, "overcount", U_COUNT);
            else
                put(pg, "<td></td>");
        }
        put(pg, "</tr>\n");
    }
    put(pg, "</tbody></table>\n");
}

/* title is ours; raw_title, when set, is a name from the document (escaped). */
static void top_dimension(struct page *pg, const char *title, const char *raw_title,
                          const char *keyhead, const json_t *dim)
{
    static const char *const orders[][2] = {
        {"by_requests", "By requests"}, {"by_errors", "By errors"}, {"by_latency", "By latency"},
    };

    put(pg, "<h3>");
    put(pg, title);
    if (raw_title != NULL)
        esc_cut(pg, raw_title, strlen(raw_title), CELL_MAX);
    if (json_is_true(get(dim, "approximate")))
        put(pg, " <span class=\"badge approx\" title=\"more distinct keys than the table holds: "
                "counts come from a top-K sketch\">approximate</span>");
    put(pg, "</h3>\n");
    if (!json_is_object(dim)) {
        none(pg, "Not in the report.");
        return;
    }
    for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++)
        if (present(get(dim, orders[i][0])))
            top_table(pg, orders[i][1], keyhead, get(dim, orders[i][0]));
}

static void render_top(struct page *pg, const json_t *top)
{
    static const char *const dims[][3] = {
        {"paths", "Paths", "Path"}, {"clients", "Clients", "Client"},
        {"countries", "Countries", "Country"}, {"user_agents", "User agents", "User agent"},
        {"upstreams", "Upstream instances", "Upstream"},
    };
    const char *key;
    const json_t *dim;
    char buf[FMT];
    double n;

    if (!json_is_object(top)) {
        none(pg, "No top tables in the report.");
        return;
    }
    if (num(top, "n", &n))
        putf(pg, "<p class=\"meta\">The %s largest of each.</p>\n", fmt_count(buf, n));
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (present(get(top, dims[i][0])))
            top_dimension(pg, dims[i][1], NULL, dims[i][2], get(top, dims[i][0]));
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

static void render_rate_limiting(struct page *pg, const json_t *rl)
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
        none(pg, "No rate-limiting figures in the report.");
        return;
    }
    render_breakdowns(pg, "429 responses (access log)", get(rl, "responses"), responses);
    render_breakdowns(pg, "<code>rate_limited</code> events (security log)", get(rl, "events"),
                      events);
}

static void render_denials(struct page *pg, const json_t *dn)
{
    static const struct breakdown reasons[] = {
        {"by_reason", "By reason", "Reason"}, {NULL, NULL, NULL},
    };

    if (!json_is_object(dn)) {
        none(pg, "No denials in the report.");
        return;
    }
    render_breakdowns(pg, "Denied (<code>denied</code> events)", get(dn, "denied"), reasons);
    render_breakdowns(pg, "Bad requests (<code>bad_request</code> events)",
                      get(dn, "bad_requests"), reasons);
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

static void event_row(struct page *pg, const json_t *ev, const struct evcol *cols, bool other)
{
    const char *key;
    const json_t *v;

    put(pg, "<tr><td class=\"ts\">");
    put_ts(pg, str(ev, "ts"));
    put(pg, "</td>");
    for (const struct evcol *c = cols; c->head; c++) {
        if (c->key2 == NULL) {
            td_text(pg, get(ev, c->key));
            continue;
        }
        put(pg, "<td class=\"key\">");
        put_value(pg, get(ev, c->key), CELL_MAX);
        put(pg, " \xe2\x86\x92 ");
        put_value(pg, get(ev, c->key2), CELL_MAX);
        put(pg, "</td>");
    }
    if (other) {
        put(pg, "<td class=\"key other\">");
        json_object_foreach((json_t *)ev, key, v) {
            if (!other_field(cols, key, v))
                continue;
            put(pg, "<span class=\"kv\"><b>");
            esc_cut(pg, key, strlen(key), 64);
            put(pg, "</b>=");
            put_value(pg, v, CELL_MAX);
            put(pg, "</span> ");
        }
        put(pg, "</td>");
    }
    put(pg, "</tr>\n");
}

/* {"total": N, "omitted": N, "events": [security-log line, ...]}, oldest first. */
static void events_table(struct page *pg, const char *title, const json_t *group,
                         const struct evcol *cols)
{
    const json_t *events = get(group, "events");
    size_t n = json_array_size(events);
    bool other = false;
    char buf[FMT];
    double omitted;

    putf(pg, "<h3>%s</h3>\n", title);
    if (!json_is_object(group)) {
        none(pg, "Not in the report.");
        return;
    }
    putf(pg, "<p><b>%s</b> in all", fmt_count(buf, num_or(group, "total", (double)n)));
    if (num(group, "omitted", &omitted) && omitted > 0)
        putf(pg, "; %s more not listed here", fmt_count(buf, omitted));
    put(pg, ".</p>\n");
    if (n == 0)
        return;
    for (size_t i = 0; i < n && !other; i++)
        other = has_other(json_array_get(events, i), cols);
    put(pg, "<table class=\"events\"><thead><tr><th>Time (UTC)</th>");
    for (const struct evcol *c = cols; c->head; c++)
        putf(pg, "<th>%s</th>", c->head);
    putf(pg, "%s</tr></thead><tbody>\n", other ? "<th>Other fields</th>" : "");
    for (size_t i = 0; i < n; i++)
        if (json_is_object(json_array_get(events, i)))
            event_row(pg, json_array_get(events, i), cols, other);
    put(pg, "</tbody></table>\n");
}

static void render_admin(struct page *pg, const json_t *admin)
{
    if (!json_is_object(admin)) {
        none(pg, "No admin events in the report.");
        return;
    }
    events_table(pg, "Authentication failures", get(admin, "auth_failures"), auth_cols);
    events_table(pg, "Admin actions", get(admin, "admin_actions"), admin_cols);
}

static void render_changes(struct page *pg, const json_t *changes)
{
    if (!json_is_object(changes)) {
        none(pg, "No changes in the report.");
        return;
    }
    events_table(pg, "Rollouts", get(changes, "rollouts"), rollout_cols);
    events_table(pg, "Health changes", get(changes, "health_changes"), health_cols);
}

/* The suspect flags: the document's name, the figure behind it, how the page says it. */
static const struct {
    const char *flag, *head, *text;
    enum unit unit;
} suspect_flags[] = {
    {"distinct_404_paths", "Distinct 404 paths", "distinct 404 paths", U_COUNT},
    {"rate_limited", "429s", "429 responses", U_COUNT},
    {"bad_requests", "Bad requests", "bad requests", U_COUNT},
    {"peak_rps", "Peak req/s", "requests per second at peak", U_RPS},
};
#define NFLAGS (sizeof(suspect_flags) / sizeof(suspect_flags[0]))

static bool flagged(const json_t *client, const char *flag)
{
    const json_t *flags = get(client, "flags");

    for (size_t i = 0; i < json_array_size(flags); i++) {
        const char *f = json_string_value(json_array_get(flags, i));
        if (f && strcmp(f, flag) == 0)
            return true;
    }
    return false;
}

static void suspect_row(struct page *pg, const json_t *c)
{
    const json_t *flags = get(c, "flags");

    put(pg, "<tr>");
    td_text(pg, get(c, "client_ip"));
    td_num(pg, c, "requests", U_COUNT);
    for (size_t f = 0; f < NFLAGS; f++) {
        putf(pg, "<td class=\"n%s\">", flagged(c, suspect_flags[f].flag) ? " hit" : "");
        put_num(pg, c, suspect_flags[f].flag, suspect_flags[f].unit);
        put(pg, "</td>");
    }
    put(pg, "<td>");
    for (size_t i = 0; i < json_array_size(flags); i++) {
        const json_t *flag = json_array_get(flags, i);

        put(pg, "<span class=\"badge flag\">");
        put_value(pg, flag, 64);
        put(pg, "</span>");
    }
    put(pg, "</td></tr>\n");
}

static void render_suspects(struct page *pg, const json_t *sus)
{
    const json_t *th = get(sus, "thresholds"), *clients = get(sus, "clients");
    size_t n = json_array_size(clients);
    bool first = true;
    char buf[FMT];
    double v;

    if (!json_is_object(sus)) {
        none(pg, "No suspects in the report.");
        return;
    }
    for (size_t f = 0; f < NFLAGS; f++) {
        if (!num(th, suspect_flags[f].flag, &v))
            continue;
        putf(pg, "%s%s %s", first ? "<p class=\"meta\">Flag thresholds: " : ", ",
             fmt_unit(buf, suspect_flags[f].unit, v), suspect_flags[f].text);
        first = false;
    }
    if (!first)
        put(pg, ". The figures that crossed one are marked.</p>\n");
    if (n == 0) {
        none(pg, "No client crossed a threshold.");
        return;
    }
    put(pg, "<table><thead><tr><th>Client</th><th class=\"n\">Requests</th>");
    for (size_t f = 0; f < NFLAGS; f++)
        putf(pg, "<th class=\"n\">%s</th>", suspect_flags[f].head);
    put(pg, "<th>Flags</th></tr></thead><tbody>\n");
    for (size_t i = 0; i < n; i++)
        suspect_row(pg, json_array_get(clients, i));
    put(pg, "</tbody></table>\n");
}

/* ---- the page ------------------------------------------------------------------------- */

static const struct section {
    const char *key, *title;
    void (*render)(struct page *pg, const json_t *v);
} sections[] = {
    {"overview", "Overview", render_overview},
    {"services", "Services and slots", render_services},
    {"timeline", "Timeline", render_timeline},
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

static void page_filters(struct page *pg, const json_t *filters)
{
    static const char *const keys[] = {"since", "until", "service", "status", "client",
                                       "path_prefix"};
    bool first = true;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const json_t *v = get(filters, keys[i]);

        if (!present(v))
            continue;
        putf(pg, "%s<code>%s</code> ", first ? "<p><b>Filters</b> " : ", ", keys[i]);
        put_value(pg, v, CELL_MAX);
        first = false;
    }
    if (!first)
        put(pg, "</p>\n");
}

static void page_inputs(struct page *pg, const json_t *inputs)
{
    size_t n = json_array_size(inputs);
    bool errors = false;

    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        errors |= present(get(json_array_get(inputs, i), "error"));
    putf(pg, "<table class=\"inputs\"><thead><tr><th>Input</th><th class=\"n\">Lines</th>"
             "<th class=\"n\">Bad</th>%s</tr></thead><tbody>\n", errors ? "<th>Error</th>" : "");
    for (size_t i = 0; i < n; i++) {
        const json_t *in = json_array_get(inputs, i);

        put(pg, "<tr>");
        td_text(pg, get(in, "name"));
        td_num(pg, in, "lines", U_COUNT);
        td_num(pg, in, "bad", U_COUNT);
        if (errors) {
            put(pg, "<td class=\"badline\">");
            if (present(get(in, "error")))
                put_value(pg, get(in, "error"), CELL_MAX);
            put(pg, "</td>");
        }
        put(pg, "</tr>\n");
    }
    put(pg, "</tbody></table>\n");
}

static void page_lines(struct page *pg, const json_t *lines)
{
    const json_t *fb = get(lines, "first_bad");
    double v;

    if (!json_is_object(lines))
        return;
    put(pg, "<p><b>Lines</b> ");
    put_num(pg, lines, "total", U_COUNT);
    put(pg, " read: ");
    put_num(pg, lines, "access", U_COUNT);
    put(pg, " access, ");
    put_num(pg, lines, "security", U_COUNT);
    put(pg, " security, ");
    put_num(pg, lines, "bad", U_COUNT);
    put(pg, " bad");
    if (num(lines, "filtered", &v) && v > 0) {
        put(pg, ", ");
        put_num(pg, lines, "filtered", U_COUNT);
        put(pg, " left out by the filters");
    }
    if (num(lines, "fallback", &v) && v > 0) {
        put(pg, "; ");
        put_num(pg, lines, "fallback", U_COUNT);
        put(pg, " read by the fallback JSON parser");
    }
    put(pg, ".</p>\n");
    if (json_is_object(fb)) {
        put(pg, "<p class=\"badline\"><b>First bad line</b> <code>");
        put_value(pg, get(fb, "file"), CELL_MAX);
        put(pg, ":");
        put_value(pg, get(fb, "line"), 32);
        put(pg, "</code>: ");
        put_value(pg, get(fb, "reason"), CELL_MAX);
        put(pg, "</p>\n");
    }
}

static void page_summary(struct page *pg, const json_t *report)
{
    const json_t *period = get(report, "period");
    const char *first = str(period, "first"), *last = str(period, "last");
    double t0, t1, version;
    char buf[FMT];

    put(pg, "<div class=\"summary\">\n<p><b>Period</b> ");
    if (first == NULL && last == NULL) {
        put(pg, "<span class=\"na\">no timestamped line</span>");
    } else {
        put_ts(pg, first);
        put(pg, " " DASH " ");
        put_ts(pg, last);
        if (parse_ts(first, &t0) && parse_ts(last, &t1) && t1 >= t0)
            putf(pg, " (%s)", fmt_span(buf, t1 - t0));
    }
    put(pg, "</p>\n");
    page_lines(pg, get(report, "lines"));
    page_filters(pg, get(report, "filters"));
    page_inputs(pg, get(report, "inputs"));
    put(pg, "<p class=\"meta\">Generated ");
    put_ts(pg, str(report, "generated"));
    if (num(report, "version", &version) && version != 1)
        putf(pg, "; report version %s (this page knows version 1)", fmt_count(buf, version));
    put(pg, ".</p>\n</div>\n");
    if (json_is_true(get(report, "approximate")))
        put(pg, "<p class=\"notice\"><b>Approximate.</b> The input held more distinct keys "
                "(clients, paths, ...) than the tables keep: the figures of the tables marked "
                "<span class=\"badge approx\">approximate</span> come from a top-K sketch and "
                "may be high by at most their overcount.</p>\n");
}

int ls_html_write(FILE *out, const json_t *report)
{
    struct page pg = {.out = out};

    if (out == NULL) {
        errno = EINVAL;
        return -1;
    }
    putf(&pg, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
              "<title>Switchyard log report</title>\n<style>\n%s</style>\n</head>\n<body>\n"
              "<main>\n<header>\n<h1>Switchyard log report</h1>\n", css);
    page_summary(&pg, report);
    put(&pg, "<nav><ul>");
    for (size_t i = 0; i < NSECTIONS; i++)
        if (present(get(report, sections[i].key)))
            putf(&pg, "<li><a href=\"#%s\">%s</a></li>", sections[i].key, sections[i].title);
    put(&pg, "</ul></nav>\n</header>\n");
    for (size_t i = 0; i < NSECTIONS; i++) {
        const json_t *v = get(report, sections[i].key);

        if (!present(v))
            continue;
        putf(&pg, "<section id=\"%s\">\n<h2>%s</h2>\n", sections[i].key, sections[i].title);
        sections[i].render(&pg, v);
        put(&pg, "</section>\n");
    }
    put(&pg, "</main>\n</body>\n</html>\n");
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
