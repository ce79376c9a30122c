/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * testd.c: a small, fast HTTP/1.1 app instance for the integration tests, the
 * demo and the benchmarks. One process serves any number of ports, each with
 * its own instance name; endpoints misbehave on request (/hang, /reset, ...).
 * It must never be the bottleneck of a benchmark: raw events (one read and
 * one write per keep-alive request, no epoll_ctl), bodies streamed.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#define MAX_HEAD        (64 * 1024)     /* request head limit: 431 beyond */
#define MAX_LINE        4096            /* chunk-size and trailer lines */
#define OUT_HIGH        (256 * 1024)    /* stop producing above this */
#define IN_HIGH         (1024 * 1024)   /* stop reading above this */
#define READ_FIRST      16384           /* first read of a readable event */
#define READ_MORE       65536           /* further reads while the socket fills them */
#define READ_MAX        (256 * 1024)    /* per readable event: stay fair */
#define MAX_LISTEN      64
#define MAX_THREADS     64
#define PATTERN_LEN     (64 * 1024)     /* a multiple of the 64-byte period */
#define SLOW_PIECES     10
#define SLOW_PIECE_LEN  10

/*
 * Endpoints (any method; the request body is always read fully first):
 *   /, anything unknown  200 "NAME\n", headers X-Instance: NAME, X-Port: PORT
 *   /health              200 "ok"
 *   /status/CODE         CODE (200-599) with body "status CODE\n"
 *   /delay/MS            200 "NAME\n" after MS ms (a timer, never blocking)
 *   /bytes/N             N pattern bytes with Content-Length, streamed;
 *                        ?chunked=1 chunked, ?close=1 no length and close;
 *                        ?type=text|json|svg|png sets Content-Type (else
 *                        application/octet-stream); ?enc=gzip, ?nt=1, ?etag=1,
 *                        ?vary=1 add Content-Encoding: gzip (the bytes stay
 *                        plain), Cache-Control: no-transform, ETag: "pattern",
 *                        Vary: Origin (the compress policy's tests)
 *   /echo, /upload       200 JSON: method, target, version, headers [[n, v]],
 *                        body_bytes, body_crc32 (zlib's), body_chunked, instance, port
 *   /hang                never answers; /reset closes with RST; /garbage sends
 *                        "NOT HTTP\r\n\r\n" and closes; /close answers, then closes
 *   /slow-body/MS        Content-Length 100 at once, the body in 10 pieces over MS ms
 *   /stats               {"requests", "connections", "port", "instance"} of this port
 * Pattern bytes: byte k of a body is PATTERN_ALPHABET[k % 64].
 *
 * Per-port faults (--listen HOST:PORT=NAME,fail=P,delay=MS), for the rollout
 * tests: on that port the name endpoint answers every request after MS ms (a
 * timer) and 500 "NAME failed\n" for P percent of them, spread evenly and
 * deterministically: its k-th request (from 1) fails when (k * P) % 100 < P.
 * /health and the other endpoints are unaffected.
 */
static const char PATTERN_ALPHABET[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/";

struct lspec {
    struct sockaddr_storage ss;
    int sslen;
    char host[64];
    int port;
    char name[64];
    int fail_pct;               /* per-port faults of the name endpoint */
    int delay_ms;
    bool faulty;                /* fail_pct or delay_ms: the default path tests only this */
    _Atomic uint64_t requests;
    _Atomic uint64_t connections;
    _Atomic uint64_t name_requests; /* counted only when faulty */
};

enum conn_state {
    ST_HEAD,            /* waiting for a complete request head */
    ST_BODY_CL,         /* reading a Content-Length body */
    ST_CHUNK_SIZE,      /* chunked body: size line */
    ST_CHUNK_DATA,
    ST_CHUNK_CRLF,
    ST_CHUNK_TRAILER,
    ST_RESPONDING,      /* response in progress: timer or streaming */
    ST_HANG,            /* never answer */
    ST_CLOSING,         /* close once the output is flushed */
    ST_ABORT,           /* close with RST now (/reset) */
};

enum endpoint {
    EP_NAME, EP_HEALTH, EP_STATUS, EP_DELAY, EP_BYTES, EP_ECHO, EP_HANG,
    EP_RESET, EP_GARBAGE, EP_CLOSE, EP_SLOW, EP_STATS,
};

struct conn {
    evutil_socket_t fd;
    struct evbuffer *in, *out;
    struct event *rev, *wev;    /* rev is pending while reading is wanted */
    bool reading, writing;
    struct lspec *ls;
    struct event *timer;
    enum conn_state state;
    bool peer_eof;
    /* the current request */
    char *head;
    size_t head_cap;
    size_t head_len;
    size_t method_len, target_len;
    const char *target;
    int minor;                  /* HTTP/1.minor */
    bool is_head;
    bool keepalive;
    bool want_crc;
    int64_t content_length;     /* -1: none */
    bool chunked;
    uint64_t body_left;
    uint64_t body_bytes;
    uint32_t crc;
    enum endpoint ep;
    uint64_t arg;
    bool fail_now;              /* a faulty port's name request that answers 500 */
    bool q_chunked, q_close;
    const char *q_type;         /* /bytes Content-Type */
    char q_hdrs[160];           /* /bytes extra header lines, consumed by send_head */
    /* the current streamed response */
    uint64_t out_left;
    uint64_t out_off;
    bool out_chunked;
    int slow_sent;
    int64_t slow_step_ms;
};

struct worker {
    struct event_base *base;
    pthread_t thread;
};

static struct lspec listens[MAX_LISTEN];
static int nlistens;
static const char *default_name = "testd";
static bool quiet;
static uint32_t crc_table[256];
static char pattern[PATTERN_LEN];

static void conn_process(struct conn *c);
static void conn_run(struct conn *c);
static void conn_free(struct conn *c);

/* The CRC-32 table (zlib polynomial) and the pattern block. */
static void tables_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t v = i;
        for (int k = 0; k < 8; k++)
            v = (v & 1) ? 0xEDB88320u ^ (v >> 1) : v >> 1;
        crc_table[i] = v;
    }
    for (size_t i = 0; i < PATTERN_LEN; i++)
        pattern[i] = PATTERN_ALPHABET[i % 64];
}

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

/* Response statuses that never carry a body (RFC 9110 6.4.1). */
static bool status_has_body(int status)
{
    return status != 204 && status != 304;
}

/*
 * Writes a response head. len < 0: no Content-Length (the body is chunked
 * when c->out_chunked, else delimited by the close).
 */
static void send_head(struct conn *c, int status, const char *ctype, int64_t len)
{
    struct evbuffer *out = c->out;
    char lenhdr[64] = "";
    const char *connhdr = "";

    if (len >= 0 && status_has_body(status))
        snprintf(lenhdr, sizeof(lenhdr), "Content-Length: %" PRId64 "\r\n", len);
    else if (len < 0 && c->out_chunked)
        snprintf(lenhdr, sizeof(lenhdr), "Transfer-Encoding: chunked\r\n");
    if (!c->keepalive)
        connhdr = "Connection: close\r\n";
    else if (c->minor == 0)
        connhdr = "Connection: keep-alive\r\n";
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s"
                        "X-Instance: %s\r\nX-Port: %d\r\n%s%s\r\n",
                        status, reason(status), ctype, lenhdr, c->ls->name,
                        c->ls->port, c->q_hdrs, connhdr);
    c->q_hdrs[0] = '\0';
}

/* Closes once the output is flushed (conn_run frees c then). */
static void close_after_flush(struct conn *c)
{
    c->state = ST_CLOSING;
}

/* Ends the current response: close, or go back to reading the next request. */
static void response_done(struct conn *c)
{
    if (!c->keepalive || c->peer_eof)
        close_after_flush(c);
    else
        c->state = ST_HEAD;
}

static void send_simple(struct conn *c, int status, const char *body, size_t len)
{
    if (!status_has_body(status))
        len = 0;
    send_head(c, status, "text/plain", (int64_t)len);
    if (!c->is_head && len > 0)
        evbuffer_add(c->out, body, len);
    response_done(c);
}

/* An error before the request was read fully: answer and close. */
static void send_error(struct conn *c, int status)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "error %d\n", status);

    c->keepalive = false;
    c->is_head = false;
    send_simple(c, status, body, (size_t)n);
}

static void json_str(struct evbuffer *out, const char *s, size_t n)
{
    evbuffer_add(out, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(out, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            /* non-ASCII bytes as Latin-1 code points: the JSON stays valid */
            evbuffer_add_printf(out, "\\u%04x", ch);
        else
            evbuffer_add(out, &s[i], 1);
    }
    evbuffer_add(out, "\"", 1);
}

static void json_headers(struct conn *c, struct evbuffer *out)
{
    const char *p = (const char *)memchr(c->head, '\n', c->head_len) + 1;
    const char *end = c->head + c->head_len;
    bool first = true;

    evbuffer_add(out, "[", 1);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *lend = (eol > p && eol[-1] == '\r') ? eol - 1 : eol;
        const char *colon = memchr(p, ':', (size_t)(lend - p));
        if (lend == p || colon == NULL)
            break;
        const char *v = colon + 1;
        while (v < lend && (*v == ' ' || *v == '\t'))
            v++;
        const char *vend = lend;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        evbuffer_add(out, first ? "[" : ",[", first ? 1 : 2);
        json_str(out, p, (size_t)(colon - p));
        evbuffer_add(out, ",", 1);
        json_str(out, v, (size_t)(vend - v));
        evbuffer_add(out, "]", 1);
        first = false;
        p = eol + 1;
    }
    evbuffer_add(out, "]", 1);
}

static void send_echo(struct conn *c)
{
    struct evbuffer *body = evbuffer_new();

    evbuffer_add(body, "{\"method\":", 10);
    json_str(body, c->head, c->method_len);
    evbuffer_add(body, ",\"target\":", 10);
    json_str(body, c->target, c->target_len);
    evbuffer_add_printf(body, ",\"version\":\"HTTP/1.%d\",\"headers\":", c->minor);
    json_headers(c, body);
    evbuffer_add_printf(body, ",\"body_bytes\":%" PRIu64 ",\"body_crc32\":%" PRIu32
                        ",\"body_chunked\":%s,\"instance\":", c->body_bytes, c->crc,
                        c->chunked ? "true" : "false");
    json_str(body, c->ls->name, strlen(c->ls->name));
    evbuffer_add_printf(body, ",\"port\":%d}\n", c->ls->port);
    send_head(c, 200, "application/json", (int64_t)evbuffer_get_length(body));
    if (!c->is_head)
        evbuffer_add_buffer(c->out, body);
    evbuffer_free(body);
    response_done(c);
}

static void send_stats(struct conn *c)
{
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "{\"requests\":%" PRIu64 ",\"connections\":%" PRIu64
                     ",\"port\":%d,\"instance\":\"%s\"}\n",
                     atomic_load(&c->ls->requests), atomic_load(&c->ls->connections),
                     c->ls->port, c->ls->name);

    send_head(c, 200, "application/json", n);
    if (!c->is_head)
        evbuffer_add(c->out, body, (size_t)n);
    response_done(c);
}

static void send_name(struct conn *c)
{
    char body[80];
    int n = snprintf(body, sizeof(body), "%s\n", c->ls->name);

    send_simple(c, 200, body, (size_t)n);
}

/* The name endpoint of a faulty port, once its delay (if any) is over. */
static void send_name_or_fail(struct conn *c)
{
    char body[80];
    int n;

    if (!c->fail_now) {
        send_name(c);
        return;
    }
    n = snprintf(body, sizeof(body), "%s failed\n", c->ls->name);
    send_simple(c, 500, body, (size_t)n);
}

/* Adds pattern bytes [off, off + n) of the body to out, by reference: no copy. */
static void add_pattern(struct evbuffer *out, uint64_t off, size_t n)
{
    while (n > 0) {
        size_t at = (size_t)(off % PATTERN_LEN);
        size_t take = PATTERN_LEN - at < n ? PATTERN_LEN - at : n;
        evbuffer_add_reference(out, pattern + at, take, NULL, NULL);
        off += take;
        n -= take;
    }
}

/* Produces /bytes output up to the high-water mark; the write callback resumes it. */
static void stream_fill(struct conn *c)
{
    struct evbuffer *out = c->out;

    while (c->out_left > 0 && evbuffer_get_length(out) < OUT_HIGH) {
        size_t n = c->out_left < PATTERN_LEN ? (size_t)c->out_left : PATTERN_LEN;
        if (c->out_chunked)
            evbuffer_add_printf(out, "%zx\r\n", n);
        add_pattern(out, c->out_off, n);
        if (c->out_chunked)
            evbuffer_add(out, "\r\n", 2);
        c->out_off += n;
        c->out_left -= n;
    }
    if (c->out_left > 0)
        return;
    if (c->out_chunked)
        evbuffer_add(out, "0\r\n\r\n", 5);
    response_done(c);
}

static void start_bytes(struct conn *c)
{
    c->out_left = c->is_head ? 0 : c->arg;
    c->out_off = 0;
    /* an HTTP/1.0 client cannot take chunked: fall back to close-delimited */
    if (c->q_chunked && c->minor == 0)
        c->q_close = true;
    c->out_chunked = c->q_chunked && !c->q_close;
    if (c->q_close)
        c->keepalive = false;
    send_head(c, 200, c->q_type,
              c->out_chunked || c->q_close ? -1 : (int64_t)c->arg);
    c->state = ST_RESPONDING;
    stream_fill(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *out = c->out;

    (void)fd;
    (void)what;
    if (c->ep == EP_DELAY || c->ep == EP_NAME) {
        if (c->ep == EP_NAME)
            send_name_or_fail(c);
        else
            send_name(c);
        conn_run(c);
        return;
    }
    add_pattern(out, (uint64_t)c->slow_sent * SLOW_PIECE_LEN, SLOW_PIECE_LEN);
    if (++c->slow_sent < SLOW_PIECES) {
        struct timeval tv = { c->slow_step_ms / 1000, (c->slow_step_ms % 1000) * 1000 };
        evtimer_add(c->timer, &tv);
        return;
    }
    response_done(c);
    conn_run(c);
}

/*
 * A precise monotonic clock: libevent's default may be the coarse one (1 ms
 * or worse), with which a /delay/100 answer can leave after 99 ms.
 */
static struct event_base *new_base(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

static void start_timer(struct conn *c, int64_t ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    if (c->timer == NULL)
        c->timer = evtimer_new(event_get_base(c->rev), timer_cb, c);
    c->state = ST_RESPONDING;
    /* From now, not from the loop's cached time: a busy turn would cut the delay short. */
    event_base_update_cache_time(event_get_base(c->rev));
    evtimer_add(c->timer, &tv);
}

static void start_slow(struct conn *c)
{
    send_head(c, 200, "application/octet-stream", SLOW_PIECES * SLOW_PIECE_LEN);
    if (c->is_head) {
        response_done(c);
        return;
    }
    c->slow_sent = 0;
    c->slow_step_ms = (int64_t)c->arg / SLOW_PIECES;
    start_timer(c, 0);
}

/*
 * The name endpoint of a port with fail/delay options. The per-port counter
 * spreads the failures evenly across threads and connections, so a test sees
 * a rate close to P over a few dozen requests.
 */
static void start_faulty_name(struct conn *c)
{
    struct lspec *ls = c->ls;
    uint64_t k = atomic_fetch_add_explicit(&ls->name_requests, 1, memory_order_relaxed) + 1;

    c->fail_now = ls->fail_pct > 0 && (k * (uint64_t)ls->fail_pct) % 100 < (uint64_t)ls->fail_pct;
    if (ls->delay_ms > 0)
        start_timer(c, ls->delay_ms);
    else
        send_name_or_fail(c);
}

/* The request is read fully: answer it. */
static void dispatch(struct conn *c)
{
    struct evbuffer *out = c->out;
    char body[64];
    int n;

    switch (c->ep) {
    case EP_NAME:
        if (c->ls->faulty)
            start_faulty_name(c);
        else
            send_name(c);
        break;
    case EP_HEALTH:  send_simple(c, 200, "ok", 2); break;
    case EP_STATS:   send_stats(c); break;
    case EP_ECHO:    send_echo(c); break;
    case EP_BYTES:   start_bytes(c); break;
    case EP_SLOW:    start_slow(c); break;
    case EP_DELAY:   start_timer(c, (int64_t)c->arg); break;
    case EP_HANG:    c->state = ST_HANG; break;
    case EP_RESET:   c->state = ST_ABORT; break;
    case EP_STATUS:
        n = snprintf(body, sizeof(body), "status %d\n", (int)c->arg);
        send_simple(c, (int)c->arg, body, (size_t)n);
        break;
    case EP_CLOSE:
        c->keepalive = false;
        send_name(c);
        break;
    case EP_GARBAGE:
        evbuffer_add(out, "NOT HTTP\r\n\r\n", 12);
        c->keepalive = false;
        response_done(c);
        break;
    }
}

static bool query_has(const char *q, size_t qlen, const char *param)
{
    size_t plen = strlen(param);
    const char *p = q, *end = q + qlen;

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) == plen && memcmp(p, param, plen) == 0)
            return true;
        p = e + 1;
    }
    return false;
}

static bool parse_u64(const char *s, size_t n, uint64_t *v)
{
    uint64_t r = 0;

    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        r = r * 10 + (uint64_t)(s[i] - '0');
    }
    *v = r;
    return true;
}

/* /bytes query options: its Content-Type and extra header lines. */
static void bytes_options(struct conn *c, const char *q, size_t n)
{
    static const struct { const char *param, *value; } types[] = {
        { "type=text", "text/plain; charset=utf-8" }, { "type=json", "application/json" },
        { "type=svg", "image/svg+xml" }, { "type=png", "image/png" },
    }, lines[] = {
        { "enc=gzip", "Content-Encoding: gzip\r\n" },
        { "nt=1", "Cache-Control: no-transform\r\n" },
        { "etag=1", "ETag: \"pattern\"\r\n" }, { "vary=1", "Vary: Origin\r\n" },
    };

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (query_has(q, n, types[i].param))
            c->q_type = types[i].value;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        if (query_has(q, n, lines[i].param))
            strcat(c->q_hdrs, lines[i].value);
}

/* Picks the endpoint from the request path; returns an error status or 0. */
static int route(struct conn *c)
{
    const char *p = c->target, *end = c->target + c->target_len;
    const char *q = memchr(p, '?', c->target_len);
    size_t plen;

    if (end - p > 7 && strncasecmp(p, "http://", 7) == 0) {
        const char *slash = memchr(p + 7, '/', (size_t)(end - p - 7));
        p = slash ? slash : end;
    }
    plen = (size_t)((q ? q : end) - p);
    c->q_chunked = q && query_has(q + 1, (size_t)(end - q - 1), "chunked=1");
    c->q_close = q && query_has(q + 1, (size_t)(end - q - 1), "close=1");
    c->ep = EP_NAME;
    static const struct { const char *prefix; enum endpoint ep; bool arg; } tab[] = {
        { "/health", EP_HEALTH, false }, { "/stats", EP_STATS, false },
        { "/echo", EP_ECHO, false }, { "/upload", EP_ECHO, false },
        { "/hang", EP_HANG, false }, { "/reset", EP_RESET, false },
        { "/garbage", EP_GARBAGE, false }, { "/close", EP_CLOSE, false },
        { "/status/", EP_STATUS, true }, { "/delay/", EP_DELAY, true },
        { "/bytes/", EP_BYTES, true }, { "/slow-body/", EP_SLOW, true },
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        size_t tl = strlen(tab[i].prefix);
        if (plen < tl || memcmp(p, tab[i].prefix, tl) != 0)
            continue;
        if (!tab[i].arg && plen != tl)
            continue;
        if (tab[i].arg && !parse_u64(p + tl, plen - tl, &c->arg))
            return 400;
        c->ep = tab[i].ep;
        break;
    }
    if (c->ep == EP_STATUS && (c->arg < 200 || c->arg > 599))
        return 400;
    c->q_type = "application/octet-stream";
    c->q_hdrs[0] = '\0';
    if (c->ep == EP_BYTES && q)
        bytes_options(c, q + 1, (size_t)(end - q - 1));
    return 0;
}

/* Token search in a comma-separated header value, case-insensitive. */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);

    for (size_t i = 0; i + tl <= n; i++) {
        if (strncasecmp(v + i, tok, tl) != 0)
            continue;
        bool start = i == 0 || v[i - 1] == ',' || v[i - 1] == ' ' || v[i - 1] == '\t';
        bool stop = i + tl == n || v[i + tl] == ',' || v[i + tl] == ' ' || v[i + tl] == '\t';
        if (start && stop)
            return true;
    }
    return false;
}

static int parse_header(struct conn *c, const char *p, const char *lend)
{
    const char *colon = memchr(p, ':', (size_t)(lend - p));
    size_t nlen;
    const char *v;
    size_t vlen;

    if (colon == NULL || colon == p)
        return 400;
    nlen = (size_t)(colon - p);
    v = colon + 1;
    while (v < lend && (*v == ' ' || *v == '\t'))
        v++;
    vlen = (size_t)(lend - v);
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
        uint64_t cl;
        if (!parse_u64(v, vlen, &cl) || (c->content_length >= 0 && (uint64_t)c->content_length != cl))
            return 400;
        c->content_length = (int64_t)cl;
    } else if (nlen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
        c->chunked = has_token(v, vlen, "chunked");
        if (!c->chunked)
            return 400;
    } else if (nlen == 10 && strncasecmp(p, "connection", 10) == 0) {
        if (has_token(v, vlen, "close"))
            c->keepalive = false;
        else if (has_token(v, vlen, "keep-alive") && c->minor == 0)
            c->keepalive = true;
    }
    return 0;
}

static int parse_request_line(struct conn *c, const char *lend)
{
    const char *sp1 = memchr(c->head, ' ', (size_t)(lend - c->head));
    const char *sp2;

    if (sp1 == NULL || sp1 == c->head)
        return 400;
    sp2 = memchr(sp1 + 1, ' ', (size_t)(lend - sp1 - 1));
    if (sp2 == NULL || sp2 == sp1 + 1 || lend - sp2 != 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return 400;
    if (sp2[8] != '0' && sp2[8] != '1')
        return 400;
    c->minor = sp2[8] - '0';
    c->keepalive = c->minor == 1;
    c->method_len = (size_t)(sp1 - c->head);
    c->target = sp1 + 1;
    c->target_len = (size_t)(sp2 - sp1 - 1);
    c->is_head = c->method_len == 4 && memcmp(c->head, "HEAD", 4) == 0;
    return 0;
}

/* Parses c->head (one complete head); returns an error status or 0. */
static int parse_head(struct conn *c)
{
    const char *end = c->head + c->head_len;
    const char *eol = memchr(c->head, '\n', c->head_len);
    int err;

    c->content_length = -1;
    c->chunked = false;
    if (eol == NULL || eol == c->head || eol[-1] != '\r')
        return 400;
    if ((err = parse_request_line(c, eol - 1)) != 0)
        return err;
    for (const char *p = eol + 1; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL || eol[-1] != '\r')
            return 400;
        if (eol - 1 == p)
            break;
        if ((err = parse_header(c, p, eol - 1)) != 0)
            return err;
    }
    return route(c);
}

static void begin_body(struct conn *c)
{
    c->body_bytes = 0;
    c->crc = 0;
    c->want_crc = c->ep == EP_ECHO;
    if (c->chunked) {
        c->state = ST_CHUNK_SIZE;
    } else if (c->content_length > 0) {
        c->body_left = (uint64_t)c->content_length;
        c->state = ST_BODY_CL;
    } else {
        c->body_left = 0;
        c->state = ST_BODY_CL;
    }
}

/* Returns 1: a head was read, 0: need more bytes, -1: c was answered/freed. */
static int read_head(struct conn *c, struct evbuffer *in)
{
    struct evbuffer_ptr pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    int err;

    if (pos.pos < 0) {
        if (evbuffer_get_length(in) > MAX_HEAD) {
            send_error(c, 431);
            return -1;
        }
        return 0;
    }
    c->head_len = (size_t)pos.pos + 4;
    if (c->head_len > MAX_HEAD) {
        send_error(c, 431);
        return -1;
    }
    if (c->head_cap < c->head_len) {
        c->head_cap = c->head_len < 1024 ? 1024 : MAX_HEAD;
        c->head = realloc(c->head, c->head_cap);
    }
    evbuffer_remove(in, c->head, c->head_len);
    atomic_fetch_add_explicit(&c->ls->requests, 1, memory_order_relaxed);
    if ((err = parse_head(c)) != 0) {
        send_error(c, err);
        return -1;
    }
    begin_body(c);
    return 1;
}

/* Consumes up to max body bytes from in, feeding the crc. */
static size_t consume_body(struct conn *c, struct evbuffer *in, uint64_t max)
{
    size_t avail = evbuffer_get_length(in);
    size_t n = max < avail ? (size_t)max : avail;
    size_t left = c->want_crc ? n : 0;

    while (left > 0) {
        struct evbuffer_iovec v[16];
        int nv = evbuffer_peek(in, (ev_ssize_t)left, NULL, v, 16);
        size_t done = 0;
        for (int i = 0; i < nv && i < 16 && done < left; i++) {
            size_t take = v[i].iov_len < left - done ? v[i].iov_len : left - done;
            c->crc = crc_update(c->crc, v[i].iov_base, take);
            done += take;
        }
        evbuffer_drain(in, done);
        left -= done;
    }
    if (!c->want_crc)
        evbuffer_drain(in, n);
    c->body_bytes += n;
    return n;
}

/* One step of the chunked decoder; returns 1 progress, 0 need more, -1 error. */
static int read_chunked(struct conn *c, struct evbuffer *in)
{
    size_t len;
    char *line;

    if (c->state == ST_CHUNK_DATA) {
        c->body_left -= consume_body(c, in, c->body_left);
        if (c->body_left > 0)
            return 0;
        c->state = ST_CHUNK_CRLF;
        return 1;
    }
    if (c->state == ST_CHUNK_CRLF) {
        char crlf[2];
        if (evbuffer_get_length(in) < 2)
            return 0;
        evbuffer_remove(in, crlf, 2);
        c->state = ST_CHUNK_SIZE;
        return crlf[0] == '\r' && crlf[1] == '\n' ? 1 : -1;
    }
    line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF_STRICT);
    if (line == NULL)
        return evbuffer_get_length(in) > MAX_LINE ? -1 : 0;
    if (c->state == ST_CHUNK_TRAILER) {
        free(line);
        if (len == 0)
            c->state = ST_RESPONDING;
        return 1;
    }
    char *stop;
    errno = 0;
    unsigned long long size = strtoull(line, &stop, 16);
    bool ok = isxdigit((unsigned char)line[0]) && errno == 0
              && (*stop == '\0' || *stop == ';' || *stop == ' ' || *stop == '\t');
    free(line);
    if (!ok)
        return -1;
    c->body_left = size;
    c->state = size == 0 ? ST_CHUNK_TRAILER : ST_CHUNK_DATA;
    return 1;
}

/* Reads the body; returns 1 when complete, 0 need more, -1 error. */
static int read_body(struct conn *c, struct evbuffer *in)
{
    if (c->state == ST_BODY_CL) {
        c->body_left -= consume_body(c, in, c->body_left);
        return c->body_left == 0 ? 1 : 0;
    }
    for (;;) {
        int r = read_chunked(c, in);
        if (r <= 0)
            return r;
        if (c->state == ST_RESPONDING)
            return 1;
    }
}

/* Runs the request state machine over the buffered input. */
static void conn_process(struct conn *c)
{
    struct evbuffer *in = c->in;
    struct evbuffer *out = c->out;
    int r;

    for (;;) {
        if (c->state == ST_HANG || c->state == ST_CLOSING) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        if (c->state == ST_RESPONDING || c->state == ST_ABORT
            || evbuffer_get_length(out) >= OUT_HIGH)
            return;
        if (c->state == ST_HEAD) {
            r = read_head(c, in);
            if (r <= 0)
                break;
        }
        r = read_body(c, in);
        if (r < 0) {
            send_error(c, 400);
            return;
        }
        if (r == 0)
            break;
        c->state = ST_RESPONDING;
        dispatch(c);
    }
    /* the peer half-closed and no answer is pending: flush and close */
    if (c->peer_eof && c->state != ST_RESPONDING)
        close_after_flush(c);
}

/* Reading is wanted while the peer may send and the input is under its cap. */
static void update_read(struct conn *c)
{
    bool want = !c->peer_eof && evbuffer_get_length(c->in) < IN_HIGH;

    if (want && !c->reading)
        event_add(c->rev, NULL);
    else if (!want && c->reading)
        event_del(c->rev);
    c->reading = want;
}

/* Writes what the socket takes; returns -1 on a write error. */
static int flush_out(struct conn *c)
{
    bool pending;

    if (evbuffer_get_length(c->out) > 0 && evbuffer_write(c->out, c->fd) < 0
        && errno != EAGAIN && errno != EINTR)
        return -1;
    pending = evbuffer_get_length(c->out) > 0;
    if (pending && !c->writing)
        event_add(c->wev, NULL);
    else if (!pending && c->writing)
        event_del(c->wev);
    c->writing = pending;
    return 0;
}

/* SO_LINGER 0 makes close() send RST instead of FIN. */
static void conn_reset(struct conn *c)
{
    struct linger lg = { 1, 0 };

    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    conn_free(c);
}

/* More output can be produced right away once the socket took everything. */
static bool can_produce(const struct conn *c)
{
    if (c->state == ST_RESPONDING)
        return c->ep == EP_BYTES;
    return c->state == ST_HEAD && evbuffer_get_length(c->in) > 0;
}

/* Drives c after any event: parse, answer, write, close; may free c. */
static void conn_run(struct conn *c)
{
    for (;;) {
        conn_process(c);
        if (c->state == ST_ABORT) {
            conn_reset(c);
            return;
        }
        if (c->state == ST_RESPONDING && c->ep == EP_BYTES)
            stream_fill(c);
        size_t produced = evbuffer_get_length(c->out);
        if (flush_out(c) < 0 || (c->state == ST_CLOSING && !c->writing)) {
            conn_free(c);
            return;
        }
        if (c->writing || produced == 0 || !can_produce(c))
            break;
    }
    update_read(c);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    size_t want = READ_FIRST, total = 0;

    (void)what;
    while (total < READ_MAX) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(c->in, (ev_ssize_t)want, &v, 1) < 1)
            break;
        ssize_t n = read(fd, v.iov_base, v.iov_len);
        if (n <= 0) {
            if (n == 0)
                c->peer_eof = true;
            else if (errno != EAGAIN && errno != EINTR)
                c->peer_eof = true;
            break;
        }
        v.iov_len = (size_t)n;
        evbuffer_commit_space(c->in, &v, 1);
        total += (size_t)n;
        /* a short read drained the socket: save the EAGAIN read */
        if ((size_t)n < want)
            break;
        want = READ_MORE;
    }
    if (c->peer_eof && c->state == ST_HANG) {
        conn_free(c);
        return;
    }
    conn_run(c);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_run(arg);
}

static void conn_free(struct conn *c)
{
    if (c->timer != NULL)
        event_free(c->timer);
    event_free(c->rev);
    event_free(c->wev);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    evutil_closesocket(c->fd);
    free(c->head);
    free(c);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct lspec *ls = arg;
    struct event_base *base = evconnlistener_get_base(l);
    struct conn *c = calloc(1, sizeof(*c));
    int one = 1;

    (void)sa;
    (void)salen;
    atomic_fetch_add_explicit(&ls->connections, 1, memory_order_relaxed);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->ls = ls;
    c->state = ST_HEAD;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, read_cb, c);
    c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, write_cb, c);
    update_read(c);
}

/* Opens a listening socket; SO_REUSEPORT lets each thread own one. */
static int open_listener(struct lspec *ls)
{
    int one = 1;
    int fd = socket(ls->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ls->ss, (socklen_t)ls->sslen) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "testd: listen %s:%d: %s\n", ls->host, ls->port, strerror(errno));
        close(fd);
        return -1;
    }
    if (ls->port == 0) {
        /* the first thread's bind picked the port; the others share it */
        socklen_t len = sizeof(ls->ss);
        getsockname(fd, (struct sockaddr *)&ls->ss, &len);
        ls->port = ntohs(ls->ss.ss_family == AF_INET6
                         ? ((struct sockaddr_in6 *)&ls->ss)->sin6_port
                         : ((struct sockaddr_in *)&ls->ss)->sin_port);
    }
    return fd;
}

/* The ",fail=P,delay=MS" options after a --listen name (opts points after the comma). */
static int parse_listen_opts(struct lspec *ls, const char *opts)
{
    while (*opts != '\0') {
        const char *comma = strchr(opts, ',');
        size_t n = comma ? (size_t)(comma - opts) : strlen(opts);
        uint64_t v;

        if (n > 5 && memcmp(opts, "fail=", 5) == 0 && parse_u64(opts + 5, n - 5, &v)
            && v <= 100)
            ls->fail_pct = (int)v;
        else if (n > 6 && memcmp(opts, "delay=", 6) == 0 && parse_u64(opts + 6, n - 6, &v)
                 && v <= 3600 * 1000)
            ls->delay_ms = (int)v;
        else
            return -1;
        opts += n + (comma ? 1 : 0);
    }
    ls->faulty = ls->fail_pct > 0 || ls->delay_ms > 0;
    return 0;
}

/*
 * HOST:PORT[=NAME[,fail=P][,delay=MS]], HOST an IPv4 address or [IPv6]; port
 * 0 picks a free one.
 */
static int parse_listen(const char *arg)
{
    struct lspec *ls = &listens[nlistens];
    const char *eq = strchr(arg, '=');
    size_t alen = eq ? (size_t)(eq - arg) : strlen(arg);
    const char *colon = memrchr(arg, ':', alen);
    uint64_t port;
    size_t hlen;
    const char *h = arg;

    if (nlistens == MAX_LISTEN || colon == NULL
        || !parse_u64(colon + 1, alen - (size_t)(colon + 1 - arg), &port) || port > 65535)
        return -1;
    hlen = (size_t)(colon - arg);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(ls->host))
        return -1;
    memcpy(ls->host, h, hlen);
    ls->host[hlen] = '\0';
    memset(&ls->ss, 0, sizeof(ls->ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ls->ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ls->ss;
    if (inet_pton(AF_INET, ls->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        ls->sslen = sizeof(*sin);
    } else if (inet_pton(AF_INET6, ls->host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        ls->sslen = sizeof(*sin6);
    } else {
        return -1;
    }
    ls->port = (int)port;
    ls->fail_pct = 0;
    ls->delay_ms = 0;
    ls->faulty = false;
    if (eq != NULL) {
        const char *comma = strchr(eq + 1, ',');
        size_t nlen = comma ? (size_t)(comma - eq - 1) : strlen(eq + 1);
        if (comma && parse_listen_opts(ls, comma + 1) < 0)
            return -1;
        if (nlen >= sizeof(ls->name))
            nlen = sizeof(ls->name) - 1;        /* truncated, as before the options */
        memcpy(ls->name, eq + 1, nlen);
        ls->name[nlen] = '\0';
    } else {
        ls->name[0] = '\0';
    }
    nlistens++;
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    event_base_dispatch(w->base);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: testd [--listen HOST:PORT[=NAME[,fail=PERCENT][,delay=MS]]]... "
            "[--name NAME] [--threads N] [--quiet]\n");
    exit(2);
}

static int parse_args(int argc, char **argv, int *nthreads)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quiet") == 0) {
            quiet = true;
        } else if (i + 1 < argc && strcmp(a, "--listen") == 0) {
            if (parse_listen(argv[++i]) < 0) {
                fprintf(stderr, "testd: bad --listen %s\n", argv[i]);
                return -1;
            }
        } else if (i + 1 < argc && strcmp(a, "--name") == 0) {
            default_name = argv[++i];
        } else if (i + 1 < argc && strcmp(a, "--threads") == 0) {
            *nthreads = atoi(argv[++i]);
            if (*nthreads < 1 || *nthreads > MAX_THREADS)
                return -1;
        } else {
            return -1;
        }
    }
    if (nlistens == 0 && parse_listen("127.0.0.1:8000") < 0)
        return -1;
    for (int i = 0; i < nlistens; i++) {
        if (listens[i].name[0] == '\0')
            snprintf(listens[i].name, sizeof(listens[i].name), "%s", default_name);
    }
    return 0;
}

/* Binds every port for every thread; port 0 is resolved by the first bind. */
static int start_listeners(struct worker *w, int nthreads)
{
    for (int i = 0; i < nlistens; i++) {
        for (int t = 0; t < nthreads; t++) {
            int fd = open_listener(&listens[i]);
            if (fd < 0)
                return -1;
            if (!evconnlistener_new(w[t].base, accept_cb, &listens[i],
                                    LEV_OPT_CLOSE_ON_FREE, -1, fd))
                return -1;
        }
        if (!quiet && listens[i].faulty)
            printf("testd: listening %s:%d name=%s fail=%d delay=%d\n", listens[i].host,
                   listens[i].port, listens[i].name, listens[i].fail_pct, listens[i].delay_ms);
        else if (!quiet)
            printf("testd: listening %s:%d name=%s\n", listens[i].host, listens[i].port,
                   listens[i].name);
    }
    if (!quiet)
        printf("testd: ready\n");
    fflush(stdout);
    return 0;
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    exit(0);
}

int main(int argc, char **argv)
{
    static struct worker workers[MAX_THREADS];
    int nthreads = 1;
    struct event *ev_term, *ev_int;

    if (parse_args(argc, argv, &nthreads) < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    tables_init();
    for (int t = 0; t < nthreads; t++)
        workers[t].base = new_base();
    if (start_listeners(workers, nthreads) < 0)
        return 1;
    ev_term = evsignal_new(workers[0].base, SIGTERM, stop_cb, NULL);
    ev_int = evsignal_new(workers[0].base, SIGINT, stop_cb, NULL);
    evsignal_add(ev_term, NULL);
    evsignal_add(ev_int, NULL);
    for (int t = 1; t < nthreads; t++)
        pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]);
    event_base_dispatch(workers[0].base);
    return 0;
}
