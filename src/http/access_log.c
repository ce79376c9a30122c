/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * access_log.c: one JSON line per request (SPEC.md, Logs), formatted on
 * the worker into a stack buffer with a small escaping writer - no JSON
 * library on the hot path - and handed to the log ring.
 */
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "http.h"

#define LINE_MAX_BYTES 8192

struct line {
    char *p;
    char *end;
    bool overflow;
};

int64_t sy_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void put(struct line *l, const char *s, size_t n)
{
    if ((size_t)(l->end - l->p) < n) {
        l->overflow = true;
        return;
    }
    memcpy(l->p, s, n);
    l->p += n;
}

#define PUT_LIT(l, lit) put((l), (lit), sizeof(lit) - 1)

/* Length of a valid UTF-8 sequence at s (RFC 3629), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] >= 0xc2 && s[0] <= 0xdf && n >= 2 && (s[1] & 0xc0) == 0x80)
        return 2;
    if (s[0] >= 0xe0 && s[0] <= 0xef && n >= 3 && (s[1] & 0xc0) == 0x80 &&
        (s[2] & 0xc0) == 0x80) {
        unsigned cp = (s[0] & 0x0fu) << 12 | (s[1] & 0x3fu) << 6 | (s[2] & 0x3fu);
        return cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff) ? 3 : 0;
    }
    if (s[0] >= 0xf0 && s[0] <= 0xf4 && n >= 4 && (s[1] & 0xc0) == 0x80 &&
        (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80) {
        unsigned cp = (s[0] & 0x07u) << 18 | (s[1] & 0x3fu) << 12 | (s[2] & 0x3fu) << 6 |
                      (s[3] & 0x3fu);
        return cp >= 0x10000 && cp <= 0x10ffff ? 4 : 0;
    }
    return 0;
}

/* JSON string contents (no quotes); bytes that are not valid UTF-8 become U+FFFD. */
static void put_escaped(struct line *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;

    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '"' && u[run] != '\\')
            run++;
        put(l, s + i, run - i);
        if (run == n)
            break;
        i = run;
        if (u[i] == '"' || u[i] == '\\') {
            char esc[2] = {'\\', (char)u[i]};
            put(l, esc, 2);
            i++;
        } else if (u[i] < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[u[i] >> 4], hex[u[i] & 15]};
            put(l, esc, 6);
            i++;
        } else {
            size_t k = utf8_len(u + i, n - i);
            if (k) {
                put(l, s + i, k);
                i += k;
            } else {
                PUT_LIT(l, "\\ufffd");
                i++;
            }
        }
    }
}

static void put_str(struct line *l, const char *s, size_t n)
{
    PUT_LIT(l, "\"");
    put_escaped(l, s, n);
    PUT_LIT(l, "\"");
}

static void put_cstr(struct line *l, const char *s)
{
    put_str(l, s ? s : "", s ? strlen(s) : 0);
}

/* Decimal digits by hand: snprintf costs more than the rest of the line. */
static void put_uint(struct line *l, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(l, tmp + i, sizeof(tmp) - i);
}

/* Milliseconds with microsecond precision, as "12.345". */
static void put_ms(struct line *l, int64_t us)
{
    if (us < 0)
        us = 0;
    put_uint(l, (uint64_t)us / 1000);
    char frac[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                    (char)('0' + us % 10)};
    put(l, frac, 4);
}

static void put_span(struct line *l, const char *data, struct sy_span sp)
{
    put_str(l, data + sp.off, sp.len);
}

static void put_header(struct line *l, const struct sy_request *req, const char *data,
                       enum sy_header_id id)
{
    int i = sy_http_find(&req->head, id);
    if (i < 0)
        put_str(l, "", 0);
    else
        put_span(l, data, req->head.headers[i].value);
}

/* A route is named by its host and path prefix, as "*.example.com/api". */
static void put_route(struct line *l, const struct sy_route *route)
{
    PUT_LIT(l, "\"");
    if (route) {
        put_escaped(l, route->host, strlen(route->host));
        put_escaped(l, route->path, route->path_len);
    }
    PUT_LIT(l, "\"");
}

void sy_access_log(const struct sy_request *req)
{
    char buf[LINE_MAX_BYTES], ts[32];
    struct line l = {buf, buf + sizeof(buf) - 1, false};
    const char *data = req->client->in ? req->client->in->data : "";
    bool parsed = req->head.head_len > 0;
    int64_t end_us = sy_now_us();

    if (!sy_log_enabled(SY_LOG_ACCESS))
        return;
    sy_log_format_ts(ts, req->start_wall_ms);
    PUT_LIT(&l, "{\"ts\":\"");
    put(&l, ts, strlen(ts));
    PUT_LIT(&l, "\",\"request_id\":");
    put_cstr(&l, req->request_id);
    PUT_LIT(&l, ",\"client_ip\":");
    put_cstr(&l, req->client_ip[0] ? req->client_ip : req->peer_ip);
    PUT_LIT(&l, ",\"country\":\"\",\"method\":");
    if (parsed)
        put_span(&l, data, req->head.method_text);
    else
        put_str(&l, "", 0);
    PUT_LIT(&l, ",\"host\":");
    if (parsed)
        put_span(&l, data, req->head.host);
    else
        put_str(&l, "", 0);
    PUT_LIT(&l, ",\"path\":");
    if (parsed)
        put_span(&l, data, req->head.path);
    else
        put_str(&l, "", 0);
    PUT_LIT(&l, ",\"status\":");
    put_uint(&l, (uint64_t)req->status);
    PUT_LIT(&l, ",\"bytes_in\":");
    put_uint(&l, req->head.head_len + req->req_relay.body_bytes + req->tunnel.to_app_bytes);
    PUT_LIT(&l, ",\"bytes_out\":");
    put_uint(&l, req->bytes_out + req->tunnel.to_client_bytes);
    PUT_LIT(&l, ",\"duration_ms\":");
    put_ms(&l, end_us - req->start_us);
    PUT_LIT(&l, ",\"upstream_ms\":");
    if (req->upstream_head_us)
        put_ms(&l, req->upstream_head_us - req->upstream_start_us);
    else
        PUT_LIT(&l, "null");
    PUT_LIT(&l, ",\"upstream\":");
    put_cstr(&l, req->instance ? req->instance->addr.text : "");
    PUT_LIT(&l, ",\"service\":");
    put_cstr(&l, req->service ? req->service->name : "");
    PUT_LIT(&l, ",\"slot\":");
    put_cstr(&l, req->service ? (req->slot == SY_SLOT_BLUE ? "blue" : "green") : "");
    PUT_LIT(&l, ",\"pool\":");
    put_cstr(&l, req->pool ? req->pool->name : "");
    PUT_LIT(&l, ",\"route\":");
    put_route(&l, req->route);
    PUT_LIT(&l, ",\"user_agent\":");
    if (parsed)
        put_header(&l, req, data, SY_HDR_USER_AGENT);
    else
        put_str(&l, "", 0);
    if (req->client->io.tls)
        PUT_LIT(&l, ",\"tls\":true");
    else
        PUT_LIT(&l, ",\"tls\":false");
    PUT_LIT(&l, ",\"proto\":");
    if (req->websocket && req->status == 101)
        put_cstr(&l, "websocket");
    else
        put_cstr(&l, req->head.version_minor == 0 && parsed ? "http/1.0" : "http/1.1");
    PUT_LIT(&l, "}\n");
    if (l.overflow) {
        sy_log_error(SY_LOG_WARN, "access", "access log line of request %s too long, dropped",
                     req->request_id);
        return;
    }
    sy_log_line(SY_LOG_ACCESS, buf, (size_t)(l.p - buf));
}
