/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * scan.c: a log line to a record. The gateway writes its lines itself
 * (access_log.c, log.c): one flat object, plain strings, numbers without
 * exponents. The fast scanner reads exactly that and hands anything else
 * (escapes, nested values) to jansson, so a line means the same whichever
 * path read it; tests/unit/test_logstat_scan.c holds them to it.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "logstat.h"

/* ---- time ---- */

static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t ls_parse_rfc3339(const char *s, size_t n)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        || s[13] != ':' || s[16] != ':')
        return LS_NO_TIME;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 || h > 23 || mi < 0
        || mi > 59 || sec < 0 || sec > 60)
        return LS_NO_TIME;
    size_t i = 19;
    int64_t ms = 0;
    if (i < n && s[i] == '.') {
        int scale = 100, nd = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, nd++) {
            ms += (s[i] - '0') * scale;
            scale /= 10;
        }
        if (nd == 0)
            return LS_NO_TIME;
    }
    int64_t offset_s = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return LS_NO_TIME;
        offset_s = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return LS_NO_TIME;
    }
    if (i != n)
        return LS_NO_TIME;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    return t * 1000 + ms;
}

void ls_format_ts(char out[32], int64_t ms)
{
    char buf[96];   /* room for any int, which the compiler cannot rule out */
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms - (int64_t)secs * 1000));
    memcpy(out, buf, 31);
    out[31] = '\0';
}

int64_t ls_parse_duration_ms(const char *s)
{
    int64_t total = 0;

    if (!*s)
        return -1;
    while (*s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno || v < 0 || !isfinite(v))
            return -1;
        double unit = 1000;
        if (*end == 's')
            end++;
        else if (*end == 'm' && end[1] == 's')
            unit = 1, end += 2;
        else if (*end == 'm')
            unit = 60e3, end++;
        else if (*end == 'h')
            unit = 3600e3, end++;
        else if (*end == 'd')
            unit = 86400e3, end++;
        else if (*end != '\0' || total != 0)
            return -1;
        if (v * unit > 1e15)
            return -1;
        total += (int64_t)(v * unit);
        s = end;
    }
    return total;
}

int64_t ls_parse_time_arg(const char *s, int64_t now_ms)
{
    int64_t t = ls_parse_rfc3339(s, strlen(s));
    if (t != LS_NO_TIME)
        return t;
    /* A bare date means its midnight, UTC. */
    if (strlen(s) == 10) {
        char full[32];
        snprintf(full, sizeof(full), "%sT00:00:00Z", s);
        t = ls_parse_rfc3339(full, strlen(full));
        if (t != LS_NO_TIME)
            return t;
    }
    int64_t d = ls_parse_duration_ms(s);
    return d < 0 ? LS_NO_TIME : now_ms - d;
}

/* ---- fields ---- */

enum field {
    F_NONE, F_TS, F_CLIENT_IP, F_COUNTRY, F_ROUTE, F_SERVICE, F_METHOD, F_HOST, F_PATH,
    F_USER_AGENT, F_UPSTREAM, F_SLOT, F_POOL, F_PROTO, F_STATUS, F_BYTES_IN, F_BYTES_OUT,
    F_DURATION, F_UPSTREAM_MS, F_EVENT, F_REASON, F_LIMIT, F_SUPPRESSED, F_REQUEST_ID,
};

#define KEY_IS(lit) (n == sizeof(lit) - 1 && memcmp(k, lit, sizeof(lit) - 1) == 0)

/* Every line has some twenty keys: a switch on the length leaves at most
 * three comparisons. */
static enum field field_of(const char *k, size_t n)
{
    switch (n) {
    case 2: return KEY_IS("ts") ? F_TS : F_NONE;
    case 4:
        return KEY_IS("host") ? F_HOST : KEY_IS("path") ? F_PATH : KEY_IS("slot") ? F_SLOT
             : KEY_IS("pool") ? F_POOL : F_NONE;
    case 5:
        return KEY_IS("route") ? F_ROUTE : KEY_IS("proto") ? F_PROTO : KEY_IS("event") ? F_EVENT
             : KEY_IS("limit") ? F_LIMIT : F_NONE;
    case 6:
        return KEY_IS("method") ? F_METHOD : KEY_IS("status") ? F_STATUS
             : KEY_IS("reason") ? F_REASON : F_NONE;
    case 7: return KEY_IS("country") ? F_COUNTRY : KEY_IS("service") ? F_SERVICE : F_NONE;
    case 8: return KEY_IS("bytes_in") ? F_BYTES_IN : KEY_IS("upstream") ? F_UPSTREAM : F_NONE;
    case 9: return KEY_IS("client_ip") ? F_CLIENT_IP : KEY_IS("bytes_out") ? F_BYTES_OUT : F_NONE;
    case 10:
        return KEY_IS("user_agent") ? F_USER_AGENT : KEY_IS("request_id") ? F_REQUEST_ID
             : KEY_IS("suppressed") ? F_SUPPRESSED : F_NONE;
    case 11:
        return KEY_IS("duration_ms") ? F_DURATION : KEY_IS("upstream_ms") ? F_UPSTREAM_MS
             : F_NONE;
    default: return F_NONE;
    }
}

static struct ls_str *string_field(struct ls_record *r, enum field f)
{
    switch (f) {
    case F_CLIENT_IP: return &r->client_ip;
    case F_COUNTRY: return &r->country;
    case F_ROUTE: return &r->route;
    case F_SERVICE: return &r->service;
    case F_METHOD: return &r->method;
    case F_HOST: return &r->host;
    case F_PATH: return &r->path;
    case F_USER_AGENT: return &r->user_agent;
    case F_UPSTREAM: return &r->upstream;
    case F_SLOT: return &r->slot;
    case F_POOL: return &r->pool;
    case F_PROTO: return &r->proto;
    case F_EVENT: return &r->event;
    case F_REASON: return &r->reason;
    case F_LIMIT: return &r->limit;
    default: return NULL;
    }
}

static void record_reset(struct ls_record *r)
{
    memset(r, 0, sizeof(*r));
    r->ts_ms = LS_NO_TIME;
    r->status = -1;
    r->duration_us = -1;
    r->upstream_us = -1;
}

/* What both scanners decide once every field is in: which log, and whether
 * its required fields are there. */
static enum ls_scan_result finish(struct ls_record *r, bool has_status, bool has_ts,
                                  const char **why)
{
    if (r->event.p) {
        r->kind = LS_SECURITY;
    } else if (has_status) {
        r->kind = LS_ACCESS;
        if (r->status < 100 || r->status > 599) {
            *why = "status out of range";
            return LS_SCAN_BAD;
        }
    } else {
        *why = "neither an access nor a security log line";
        return LS_SCAN_BAD;
    }
    if (!has_ts || r->ts_ms == LS_NO_TIME) {
        *why = has_ts ? "ts is not RFC 3339" : "no ts";
        return LS_SCAN_BAD;
    }
    return LS_SCAN_OK;
}

/* ---- the fast scanner ---- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

/* A JSON number without exponent and with at most 3 decimals, as
 * thousandths. NULL when it is not one (the fallback decides). */
static const char *number_milli(const char *p, const char *end, bool *neg, uint64_t *milli)
{
    uint64_t v = 0;
    int nd = 0, frac = 0;

    *neg = p < end && *p == '-';
    if (*neg)
        p++;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++nd > 15)
            return NULL;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    if (nd == 0 || (nd > 1 && p[-nd] == '0'))     /* JSON allows no leading zero */
        return NULL;
    v *= 1000;
    if (p < end && *p == '.') {
        uint64_t scale = 100;
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (++frac > 3)
                return NULL;
            v += (uint64_t)(*p - '0') * scale;
            scale /= 10;
        }
        if (frac == 0)
            return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E'))
        return NULL;
    *milli = v;
    return p;
}

static bool set_number(struct ls_record *r, enum field f, bool neg, uint64_t milli)
{
    bool whole = milli % 1000 == 0;

    switch (f) {
    case F_STATUS:
        if (neg || !whole || milli / 1000 > 999)
            return false;
        r->status = (int)(milli / 1000);
        return true;
    case F_BYTES_IN:
    case F_BYTES_OUT:
    case F_SUPPRESSED:
        if (neg || !whole)
            return false;
        *(f == F_BYTES_IN ? &r->bytes_in : f == F_BYTES_OUT ? &r->bytes_out : &r->suppressed)
            = milli / 1000;
        return true;
    case F_DURATION:
    case F_UPSTREAM_MS:
        if (neg)
            return false;
        *(f == F_DURATION ? &r->duration_us : &r->upstream_us) = (int64_t)milli;
        return true;
    default:
        return true;    /* a number where we want none: ignored, as jansson's path does */
    }
}

/* The closing quote of a string that starts at p, when all its bytes are
 * ones the fast scanner takes as they are: printable ASCII without
 * escapes. NULL otherwise: control characters (invalid JSON), escapes and
 * anything beyond ASCII (which must be valid UTF-8) are jansson's to judge.
 * Eight bytes at a time: this loop reads most of every line. */
static const char *plain_string_end(const char *p, const char *end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;

#ifdef __SSE2__
    /* Sixteen at a time where SSE2 is there (every x86-64): as signed
     * bytes, both < 0x20 and >= 0x80 are below 0x20. */
    const __m128i quotes = _mm_set1_epi8('"'), backslashes = _mm_set1_epi8('\\');
    const __m128i spaces = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quotes),
                                                    _mm_cmpeq_epi8(v, backslashes)),
                                       _mm_cmplt_epi8(v, spaces));
        int mask = _mm_movemask_epi8(special);
        if (mask) {
            p += __builtin_ctz((unsigned)mask);
            return *p == '"' ? p : NULL;
        }
        p += 16;
    }
#endif
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t quote = w ^ (ones * '"'), slash = w ^ (ones * '\\');
        uint64_t special = ((quote - ones) & ~quote) | ((slash - ones) & ~slash)
                           | (w - ones * 0x20) | w;
        if (special & highs)
            break;      /* one of the eight is special: the byte loop finds which */
        p += 8;
    }
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p;
        if (c < 0x20 || c >= 0x80 || c == '\\')
            return NULL;
    }
    return NULL;
}

enum ls_scan_result ls_scan_fast(const char *line, size_t len, struct ls_record *r,
                                 const char **why)
{
    const char *p = line, *end = line + len;
    bool has_status = false, has_ts = false;

    record_reset(r);
    p = skip_ws(p, end);
    if (p == end || *p != '{')
        return LS_SCAN_FALLBACK;    /* jansson tells "not JSON" from "not an object" */
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return LS_SCAN_FALLBACK;
    for (;;) {
        if (p == end || *p != '"')
            return LS_SCAN_FALLBACK;
        const char *k = ++p;
        const char *q = plain_string_end(p, end);
        if (!q)
            return LS_SCAN_FALLBACK;
        enum field f = field_of(k, (size_t)(q - k));
        p = skip_ws(q + 1, end);
        if (p == end || *p != ':')
            return LS_SCAN_FALLBACK;
        p = skip_ws(p + 1, end);
        if (p == end)
            return LS_SCAN_FALLBACK;
        if (*p == '"') {
            const char *v = ++p;
            q = plain_string_end(p, end);
            if (!q)
                return LS_SCAN_FALLBACK;
            struct ls_str *dst = string_field(r, f);
            if (dst) {
                dst->p = v;
                dst->n = (uint32_t)(q - v);
            } else if (f == F_TS) {
                has_ts = true;
                r->ts_ms = ls_parse_rfc3339(v, (size_t)(q - v));
            } else if (f != F_NONE && f != F_REQUEST_ID) {
                return LS_SCAN_FALLBACK;    /* a string where we want a number */
            }
            p = q + 1;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            bool neg;
            uint64_t milli;
            p = number_milli(p, end, &neg, &milli);
            if (!p || !set_number(r, f, neg, milli) || string_field(r, f) || f == F_TS)
                return LS_SCAN_FALLBACK;
            has_status |= f == F_STATUS;
        } else if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            if (f != F_NONE && f != F_UPSTREAM_MS && f != F_DURATION)
                return LS_SCAN_FALLBACK;
            p += 4;
        } else if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
            if (f != F_NONE)
                return LS_SCAN_FALLBACK;
            p += 4;
        } else if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
            if (f != F_NONE)
                return LS_SCAN_FALLBACK;
            p += 5;
        } else {
            return LS_SCAN_FALLBACK;
        }
        p = skip_ws(p, end);
        if (p == end)
            return LS_SCAN_FALLBACK;
        if (*p == '}')
            break;
        if (*p != ',')
            return LS_SCAN_FALLBACK;
        p = skip_ws(p + 1, end);
    }
    if (skip_ws(p + 1, end) != end)
        return LS_SCAN_FALLBACK;
    return finish(r, has_status, has_ts, why);
}

/* ---- the fallback ---- */

enum ls_scan_result ls_scan_json(const char *line, size_t len, struct ls_record *r,
                                 json_t **holder, const char **why)
{
    json_error_t jerr;
    const char *key;
    json_t *v;
    bool has_status = false, has_ts = false;

    record_reset(r);
    *holder = json_loadb(line, len, 0, &jerr);
    if (!*holder) {
        *why = "not JSON";
        return LS_SCAN_BAD;
    }
    if (!json_is_object(*holder)) {
        *why = "not a JSON object";
        return LS_SCAN_BAD;
    }
    json_object_foreach(*holder, key, v) {
        enum field f = field_of(key, strlen(key));
        struct ls_str *dst = string_field(r, f);
        if (f == F_NONE || f == F_REQUEST_ID)
            continue;
        if (dst) {
            if (!json_is_string(v))
                goto wrong_type;
            dst->p = json_string_value(v);
            dst->n = (uint32_t)json_string_length(v);
        } else if (f == F_TS) {
            if (!json_is_string(v))
                goto wrong_type;
            has_ts = true;
            r->ts_ms = ls_parse_rfc3339(json_string_value(v), json_string_length(v));
        } else if (json_is_null(v) && (f == F_DURATION || f == F_UPSTREAM_MS)) {
            continue;
        } else if (json_is_number(v)) {
            double d = json_number_value(v);
            if (d < 0 || d > 1e15 || !isfinite(d))
                goto wrong_type;
            double milli = round(d * 1000);
            if (f != F_DURATION && f != F_UPSTREAM_MS && fmod(milli, 1000) != 0)
                goto wrong_type;
            if (!set_number(r, f, false, (uint64_t)milli))
                goto wrong_type;
            has_status |= f == F_STATUS;
        } else {
            goto wrong_type;
        }
    }
    return finish(r, has_status, has_ts, why);

wrong_type:
    *why = "a field has the wrong type";
    return LS_SCAN_BAD;
}
