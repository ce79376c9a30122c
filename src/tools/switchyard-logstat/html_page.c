/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * html_page.c: the --html page's primitives (html_page.h). Output stops at the first failed
 * write and keeps its errno for ls_html_write to return; the one escaper turns any string of
 * the document into text that cannot end an element or an attribute.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "html_page.h"

#define THIN      "\xe2\x80\xaf"    /* narrow no-break space: the thousands separator */
#define ELLIPSIS  "\xe2\x80\xa6"

/* ---- output and escaping ---------------------------------------------------------------- */

void lsh_put(struct lsh_page *pg, const char *s)
{
    if (pg->err)
        return;
    errno = 0;
    if (fputs(s, pg->out) == EOF)
        pg->err = errno ? errno : EIO;
}

static void putn(struct lsh_page *pg, const char *s, size_t n)
{
    if (pg->err || n == 0)
        return;
    errno = 0;
    if (fwrite(s, 1, n, pg->out) != n)
        pg->err = errno ? errno : EIO;
}

void lsh_putf(struct lsh_page *pg, const char *fmt, ...)
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
static void esc_n(struct lsh_page *pg, const char *s, size_t n)
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
        lsh_put(pg, ref);
        run = i + 1;
    }
    putn(pg, s + run, n - run);
}

void lsh_esc(struct lsh_page *pg, const char *s)
{
    if (s != NULL)
        esc_n(pg, s, strlen(s));
}

/* At most max bytes of s, cut back to the start of a UTF-8 sequence. */
size_t lsh_utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return max;
}

void lsh_esc_cut(struct lsh_page *pg, const char *s, size_t n, size_t max)
{
    size_t cut = lsh_utf8_cut(s, n, max);

    esc_n(pg, s, cut);
    if (cut < n)
        lsh_put(pg, ELLIPSIS);
}

void lsh_none(struct lsh_page *pg, const char *what)
{
    lsh_putf(pg, "<p class=\"none\">%s</p>\n", what);
}

/* ---- reading the document --------------------------------------------------------------- */

/* json_object_get is NULL for a non-object, so a chain of lsh_get() never needs a type check. */
const json_t *lsh_get(const json_t *o, const char *key)
{
    return json_object_get(o, key);
}

const char *lsh_str(const json_t *o, const char *key)
{
    return json_string_value(lsh_get(o, key));
}

bool lsh_num(const json_t *o, const char *key, double *v)
{
    const json_t *j = lsh_get(o, key);

    if (!json_is_number(j))
        return false;
    *v = json_number_value(j);
    return isfinite(*v);
}

double lsh_num_or(const json_t *o, const char *key, double dflt)
{
    double v;

    return lsh_num(o, key, &v) ? v : dflt;
}

/* A section is present when it is there and not null (--report picks sections). */
bool lsh_present(const json_t *v)
{
    return v != NULL && !json_is_null(v);
}

/* ---- figures -------------------------------------------------------------------------- */

/* 1234 stays 1234; from 10 000 on, groups of three with thin spaces. */
const char *lsh_fmt_count(char *buf, double v)
{
    char digits[32];
    size_t len, lead, o = 0;
    long long x;

    if (fabs(v) >= 1e15) {
        snprintf(buf, LSH_FMT, "%.3g", v);
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
        snprintf(buf, LSH_FMT, "0");
    else if (a >= 100)
        lsh_fmt_count(buf, v);
    else if (a >= 10)
        snprintf(buf, LSH_FMT, "%.1f", v);
    else if (a >= 1)
        snprintf(buf, LSH_FMT, "%.2f", v);
    else
        snprintf(buf, LSH_FMT, "%.3f", v);
    return buf;
}

const char *lsh_fmt_rate(char *buf, double r)
{
    double p = r * 100;

    if (r == 0)
        snprintf(buf, LSH_FMT, "0%%");
    else if (p > 0 && p < 0.01)
        snprintf(buf, LSH_FMT, "&lt;0.01%%");
    else if (fabs(p) < 10)
        snprintf(buf, LSH_FMT, "%.2f%%", p);
    else if (fabs(p) < 100)
        snprintf(buf, LSH_FMT, "%.1f%%", p);
    else
        snprintf(buf, LSH_FMT, "%.0f%%", p);
    return buf;
}

static const char *fmt_bytes(char *buf, double v)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = -1;

    if (fabs(v) < 1024) {
        snprintf(buf, LSH_FMT, "%.0f B", v);
        return buf;
    }
    while (fabs(v) >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, LSH_FMT, fabs(v) >= 100 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

const char *lsh_fmt_unit(char *buf, enum lsh_unit unit, double v)
{
    switch (unit) {
    case LSH_MS: return fmt_ms(buf, v);
    case LSH_RATE: return lsh_fmt_rate(buf, v);
    case LSH_BYTES: return fmt_bytes(buf, v);
    case LSH_RPS:
        snprintf(buf, LSH_FMT, fabs(v) >= 100 ? "%.0f" : "%.1f", v);
        return buf;
    case LSH_COUNT: break;
    }
    return lsh_fmt_count(buf, v);
}

/* ---- time ----------------------------------------------------------------------------- */

/* RFC 3339 ("2026-11-23T17:00:00.000Z", or an offset) to milliseconds since the epoch. */
bool lsh_parse_ts(const char *s, double *ms)
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
