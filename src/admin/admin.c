/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * admin.c: the admin listener (SPEC.md, Admin API): evhttp on admin.listen
 * on the main thread, routing by the tables of the endpoint groups, bearer
 * token checks and the JSON replies. Every /api/ path needs a token when a
 * token_file is configured, in the Authorization header or the dashboard's
 * cookie; tokens are compared as SHA-256 digests with
 * CRYPTO_memcmp against every configured one, so the time taken tells
 * neither a token's content nor its length nor which line matched.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "admin.h"
#include "admin_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/upgrade.h"

#define MAX_BODY_BYTES      (64 * 1024)
#define MAX_HEADERS_BYTES   (16 * 1024)
#define TIMEOUT_S           10
#define LISTEN_BACKLOG      128
#define MAX_SEGMENTS        8
#define DIGEST_LEN          32          /* SHA-256 */
#define LOGGED_PATH_MAX     200         /* keeps an auth_failed line under the log's limit */

typedef unsigned char token_digest[DIGEST_LEN];

static struct {
    struct evhttp *http;
    struct evhttp_bound_socket *bound;  /* admin.listen; freed with http */
    struct sy_conf *conf;               /* our reference */
    token_digest *digests;              /* one per conf->admin.tokens line */
    size_t ndigests;
    bool tokens_lost;                   /* out of memory on reload: refuse every token */
    int64_t started_ms;                 /* monotonic */
} admin;

struct sy_conf *sy_admin_conf(void)
{
    return admin.conf;
}

int64_t sy_admin_uptime_s(void)
{
    return (sy_clock_ms(CLOCK_MONOTONIC) - admin.started_ms) / 1000;
}

/* ---- replies ---- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

void sy_admin_reply_buffer(struct sy_admin_req *r, int status, const char *content_type,
                           struct evbuffer *buf)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);

    evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_send_reply(r->req, status, reason_phrase(status), buf);
}

void sy_admin_reply_json(struct sy_admin_req *r, int status, json_t *obj)
{
    struct evbuffer *buf = evbuffer_new();
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);
    if (!buf || !text) {
        free(text);
        if (buf)
            evbuffer_free(buf);
        evhttp_send_error(r->req, 500, "Internal Server Error");
        return;
    }
    evbuffer_add(buf, text, strlen(text));
    evbuffer_add(buf, "\n", 1);
    free(text);
    sy_admin_reply_buffer(r, status, "application/json", buf);
    evbuffer_free(buf);
}

void sy_admin_reply_error(struct sy_admin_req *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sy_admin_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

/* ---- security events ---- */

void sy_admin_log_action(const struct sy_admin_req *r, const char *action, const char *reason,
                         const char *const *names, const char *const *values, size_t n)
{
    struct sy_log_field fields[8];
    size_t nf = 0;

    fields[nf++] = (struct sy_log_field){.name = "action", .str = action};
    fields[nf++] = (struct sy_log_field){.name = "token", .num = r->token};
    for (size_t i = 0; i < n && nf < sizeof(fields) / sizeof(fields[0]); i++)
        fields[nf++] = (struct sy_log_field){.name = names[i], .str = values[i]};
    sy_log_security("admin_action", r->client_ip, NULL, reason, fields, nf);
}

/* A token guesser's flood is summarised by sy_log_security itself. */
void sy_admin_log_auth_failed(const struct sy_admin_req *r, const char *path, const char *reason)
{
    char shown[LOGGED_PATH_MAX + 1];
    const struct sy_log_field field = {.name = "path", .str = shown};

    snprintf(shown, sizeof(shown), "%s", path);
    sy_log_security("auth_failed", r->client_ip, NULL, reason, &field, 1);
}

/* ---- tokens ---- */

static int digest(const void *data, size_t len, token_digest out)
{
    unsigned int n = 0;

    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == DIGEST_LEN ? 0 : -1;
}

static void free_digests(void)
{
    if (admin.digests)
        OPENSSL_cleanse(admin.digests, admin.ndigests * sizeof(*admin.digests));
    free(admin.digests);
    admin.digests = NULL;
    admin.ndigests = 0;
}

/* Digests of conf's tokens; on failure no token matches (fail closed). */
static void load_digests(const struct sy_conf *conf)
{
    const struct sy_admin *a = &conf->admin;

    free_digests();
    admin.tokens_lost = false;
    if (a->ntokens == 0)
        return;
    admin.digests = calloc(a->ntokens, sizeof(*admin.digests));
    for (size_t i = 0; admin.digests && i < a->ntokens; i++)
        if (digest(a->tokens[i], strlen(a->tokens[i]), admin.digests[i]) < 0)
            break;
        else
            admin.ndigests = i + 1;
    if (admin.ndigests != a->ntokens) {
        free_digests();
        admin.tokens_lost = true;
        sy_log_error(SY_LOG_ERROR, "admin", "cannot hash the admin tokens: every /api/ request "
                     "is refused until the next reload");
    }
}

/* The token of "Bearer TOKEN" (RFC 6750 section 2.1), or NULL. */
static const char *bearer_token(const char *value, size_t *len)
{
    if (strncasecmp(value, "Bearer", 6) != 0 || (value[6] != ' ' && value[6] != '\t'))
        return NULL;
    value += 6;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    *len = n;
    return n ? value : NULL;
}

/* Index of the matching token line, or -1; visits every line whatever matches. */
int sy_admin_token_index(const char *token, size_t len)
{
    token_digest d;
    int found = -1;

    if (admin.tokens_lost || digest(token, len, d) < 0)
        return -1;
    for (size_t i = 0; i < admin.ndigests; i++) {
        int equal = CRYPTO_memcmp(d, admin.digests[i], DIGEST_LEN) == 0;
        /* the first match wins; a mask, not a branch, on the comparison */
        int mask = -(equal & (found < 0));
        found = (found & ~mask) | ((int)i & mask);
    }
    OPENSSL_cleanse(d, sizeof(d));
    return found;
}

/*
 * The percent-decoded value of our cookie (RFC 6265 section 5.4: "name=value"
 * pairs split by "; ", in one or more Cookie headers), or NULL when absent
 * or empty. The caller cleanses and frees it.
 */
static char *cookie_token(struct evhttp_request *req, size_t *len)
{
    static const char name[] = SY_ADMIN_COOKIE "=";
    struct evkeyval *h;

    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next) {
        if (strcasecmp(h->key, "Cookie") != 0)
            continue;
        for (const char *p = h->value; *p;) {
            size_t n = strcspn(p, ";");
            if (n > sizeof(name) - 1 && strncmp(p, name, sizeof(name) - 1) == 0) {
                char *raw = strndup(p + sizeof(name) - 1, n - (sizeof(name) - 1));
                char *value = raw ? evhttp_uridecode(raw, 0, len) : NULL;
                free(raw);
                if (value && *len > 0 && strlen(value) == *len)
                    return value;
                free(value);
                return NULL;
            }
            p += n;
            p += strspn(p, "; \t");
        }
    }
    return NULL;
}

/*
 * A browser sends our cookie with every request to us, whichever page makes
 * it; SameSite=Strict does not help between two ports of one host (one
 * "site"), such as an app behind the gateway. So a change authorized by the
 * cookie alone must come from one of our own pages: browsers send Origin
 * with every POST, from a form or from fetch().
 */
static bool same_origin(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *origin = evhttp_find_header(in, "Origin");
    const char *host = evhttp_find_header(in, "Host");

    return origin && host && strncmp(origin, "http://", 7) == 0 &&
           strcasecmp(origin + 7, host) == 0;
}

int sy_admin_authenticate(struct sy_admin_req *r, const char **reason)
{
    const char *value, *token;
    char *cookie = NULL;
    size_t len = 0;
    enum evhttp_cmd_type method = evhttp_request_get_command(r->req);

    r->token = -1;
    *reason = NULL;
    if (!admin.conf->admin.token_file)
        return 0;
    value = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
    if (value) {
        if (!(token = bearer_token(value, &len))) {
            *reason = "malformed Authorization header";
            return -1;
        }
    } else if ((cookie = cookie_token(r->req, &len)) != NULL) {
        token = cookie;
    } else {
        return -1;
    }
    if (cookie && method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD &&
        !same_origin(r->req))
        *reason = "cookie sent from another origin";
    else if ((r->token = sy_admin_token_index(token, len)) < 0)
        *reason = "wrong token";
    if (cookie) {
        OPENSSL_cleanse(cookie, len);
        free(cookie);
    }
    return *reason ? -1 : 0;
}

/* 0 when the request may go on (r->token set); else it was answered 401. */
static int authorize(struct sy_admin_req *r, const char *path)
{
    const char *reason;

    if (sy_admin_authenticate(r, &reason) == 0)
        return 0;
    r->token = -1;
    if (!reason)
        reason = "no token";
    sy_admin_log_auth_failed(r, path, reason);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate", "Bearer");
    sy_admin_reply_error(r, 401, "unauthorized: %s", reason);
    return -1;
}

/* ---- routing ---- */

struct split_path {
    char *seg[MAX_SEGMENTS];    /* raw (still percent-encoded) */
    size_t n;
    char buf[1024];
};

/* "/a/b/c" into {"a", "b", "c"}; -1 when it does not fit or is malformed. */
static int split(const char *path, struct split_path *sp)
{
    size_t len = strlen(path);

    sp->n = 0;
    if (path[0] != '/' || len >= sizeof(sp->buf))
        return -1;
    memcpy(sp->buf, path + 1, len);
    for (char *p = sp->buf;;) {
        if (sp->n == MAX_SEGMENTS)
            return -1;
        sp->seg[sp->n++] = p;
        p = strchr(p, '/');
        if (!p)
            return 0;
        *p++ = '\0';
    }
}

static bool route_matches(const struct sy_admin_route *route, const struct split_path *sp,
                          const char **raw_args)
{
    const char *pat = route->pattern + 1;
    size_t i = 0, nargs = 0;

    while (i < sp->n) {
        const char *end = strchr(pat, '/');
        size_t plen = end ? (size_t)(end - pat) : strlen(pat);
        if (plen == 2 && memcmp(pat, "{}", 2) == 0) {
            if (sp->seg[i][0] == '\0' || nargs == ADMIN_MAX_ARGS)
                return false;
            raw_args[nargs++] = sp->seg[i];
        } else if (strlen(sp->seg[i]) != plen || memcmp(pat, sp->seg[i], plen) != 0) {
            return false;
        }
        i++;
        if (!end)
            return i == sp->n;
        pat = end + 1;
    }
    return false;
}

static unsigned request_method(struct evhttp_request *req)
{
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
    case EVHTTP_REQ_HEAD:
        return ADMIN_GET;
    case EVHTTP_REQ_POST:
        return ADMIN_POST;
    default:
        return 0;
    }
}

static void reply_not_allowed(struct sy_admin_req *r, unsigned methods)
{
    const char *allow = methods == ADMIN_POST ? "POST"
                        : methods == ADMIN_GET ? "GET, HEAD" : "GET, HEAD, POST";

    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Allow", allow);
    sy_admin_reply_error(r, 405, "method not allowed: use %s", allow);
}

/* A body, when there is one, is a JSON object; 0, or -1 once answered 400. */
static int parse_body(struct sy_admin_req *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(in);
    const char *data = len ? (const char *)evbuffer_pullup(in, -1) : "";
    json_error_t jerr;
    size_t i = 0;

    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    if (i == len)
        return 0;
    r->body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!r->body) {
        sy_admin_reply_error(r, 400, "bad JSON body: %s (line %d)", jerr.text, jerr.line);
        return -1;
    }
    if (!json_is_object(r->body)) {
        sy_admin_reply_error(r, 400, "the body must be a JSON object");
        return -1;
    }
    return 0;
}

/* Decodes the route's arguments; -1 once answered (a NUL byte is no name). */
static int decode_args(struct sy_admin_req *r, const char *const *raw, size_t n, char **decoded)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        decoded[i] = evhttp_uridecode(raw[i], 0, &len);
        if (!decoded[i] || strlen(decoded[i]) != len) {
            sy_admin_reply_error(r, 400, "bad percent-encoding in the path");
            return -1;
        }
        r->args[i] = decoded[i];
    }
    return 0;
}

static void dispatch(struct sy_admin_req *r, const char *path)
{
    struct split_path sp;
    const char *raw[ADMIN_MAX_ARGS];
    char *decoded[ADMIN_MAX_ARGS] = {NULL};
    unsigned method = request_method(r->req), path_methods = 0;

    if (split(path, &sp) < 0) {
        sy_admin_reply_error(r, 404, "no such endpoint");
        return;
    }
    for (size_t i = 0; i < sy_admin_api_nroutes; i++) {
        const struct sy_admin_route *route = &sy_admin_api_routes[i];
        if (!route_matches(route, &sp, raw))
            continue;
        path_methods |= route->methods;
        if (!(route->methods & method))
            continue;
        size_t nargs = 0;
        for (const char *p = route->pattern; (p = strstr(p, "{}")) != NULL; p += 2)
            nargs++;
        if (decode_args(r, raw, nargs, decoded) == 0 &&
            (method != ADMIN_POST || route->raw_body || parse_body(r) == 0))
            route->handle(r);
        for (size_t k = 0; k < nargs; k++)
            free(decoded[k]);
        return;
    }
    if (path_methods)
        reply_not_allowed(r, path_methods);
    else
        sy_admin_reply_error(r, 404, "no such endpoint");
}

static bool needs_token(const char *path)
{
    return strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    char *peer = NULL;
    ev_uint16_t port = 0;
    struct sy_admin_req r = {
        .req = req,
        .conf = admin.conf,
        .token = -1,
        .now_ms = sy_clock_ms(CLOCK_REALTIME),
    };
    (void)arg;

    evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &port);
    r.client_ip = peer ? peer : "";
    if (!path || !*path)
        path = "/";
    if (needs_token(path) && authorize(&r, path) < 0)
        return;
    dispatch(&r, path);
    json_decref(r.body);
}

/* ---- service ---- */

static int open_listener(const struct sy_addr *addr, char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "admin.listen %s: cannot listen: %s", addr->text, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static void admin_stop(void)
{
    /* Frees the listener and every connection; requests in flight are dropped. */
    if (admin.http)
        evhttp_free(admin.http);
    admin.http = NULL;
    admin.bound = NULL;
    free_digests();
    if (admin.conf)
        sy_conf_unref(admin.conf);
    admin.conf = NULL;
}

static void admin_reconfigure(struct sy_conf *conf)
{
    struct sy_conf *old = admin.conf;

    admin.conf = sy_conf_ref(conf);
    load_digests(conf);
    if (old)
        sy_conf_unref(old);
}

static void warn_open(const struct sy_conf *conf)
{
    const struct sy_admin *a = &conf->admin;

    if (!a->token_file)
        sy_log_error(SY_LOG_WARN, "admin", "admin.listen %s: no admin.token_file: /api/ is "
                     "open to every local user", a->listen.text);
    else if (a->ntokens == 0)
        sy_log_error(SY_LOG_WARN, "admin", "admin.token_file %s holds no token: every /api/ "
                     "request is refused", a->token_file);
}

static int admin_start(struct event_base *base, struct sy_conf *conf, char *err, size_t errlen)
{
    int fd;

    admin.started_ms = sy_clock_ms(CLOCK_MONOTONIC);
    admin.http = evhttp_new(base);
    if (!admin.http) {
        snprintf(err, errlen, "admin.listen %s: cannot create the HTTP server",
                 conf->admin.listen.text);
        return -1;
    }
    evhttp_set_gencb(admin.http, on_request, NULL);
    evhttp_set_max_body_size(admin.http, MAX_BODY_BYTES);
    evhttp_set_max_headers_size(admin.http, MAX_HEADERS_BYTES);
    evhttp_set_timeout(admin.http, TIMEOUT_S);
    /* Methods we route ourselves, to answer a JSON 405 with Allow (evhttp says 501). */
    evhttp_set_allowed_methods(admin.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_PATCH | EVHTTP_REQ_TRACE);
    /* After an upgrade the old process's socket, whose queue holds what it did not accept. */
    if (sy_upgrade_take("admin", &conf->admin.listen, &fd, 1) == 0 &&
        (fd = open_listener(&conf->admin.listen, err, errlen)) < 0)
        goto fail;
    if (!(admin.bound = evhttp_accept_socket_with_handle(admin.http, fd))) {
        snprintf(err, errlen, "admin.listen %s: cannot listen: %s", conf->admin.listen.text,
                 strerror(errno));
        close(fd);
        goto fail;
    }
    admin_reconfigure(conf);
    warn_open(conf);
    sy_log_error(SY_LOG_INFO, "admin", "admin API listening on %s", conf->admin.listen.text);
    return 0;
fail:
    admin_stop();
    return -1;
}

static int admin_listener(struct sy_upgrade_socket *out)
{
    if (!admin.bound)
        return -1;
    *out = (struct sy_upgrade_socket){"admin", admin.conf->admin.listen.text,
                                      evhttp_bound_socket_get_fd(admin.bound)};
    return 0;
}

/*
 * While an upgrade starts, new admin connections wait in the shared queue
 * for the new process: a switch made here meanwhile would be missing from
 * the state file it restored.
 */
static void admin_hold(bool held)
{
    struct evconnlistener *l = admin.bound ? evhttp_bound_socket_get_listener(admin.bound) : NULL;

    if (l && held)
        evconnlistener_disable(l);
    else if (l)
        evconnlistener_enable(l);
}

const struct sy_main_service sy_admin_service = {
    .start = admin_start,
    .reconfigure = admin_reconfigure,
    .stop = admin_stop,
    .listener = admin_listener,
    .hold = admin_hold,
};
