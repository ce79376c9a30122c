/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_parse.c: the process-wide sections of the merged document: workers,
 * listen, limits, trusted_proxies, access, geoip, redis, log, state_file and
 * admin. Files named here (certificates, the GeoIP database) must be readable
 * now, so a bad path fails "-t" rather than the first request.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_internal.h"
#include "redis.h"

static const char *const top_keys[] = {
    "workers", "shutdown_timeout_ms", "listen", "limits", "trusted_proxies", "admin", "pools",
    "services", "routes", "rate_limits", "access", "geoip", "redis", "log", "state_file", NULL,
};

static void
parse_workers(struct conf_ctx *ctx, const json_t *root)
{
    const json_t *v = json_object_get(root, "workers");
    long cores;

    if (v == NULL || (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0)) {
        cores = sysconf(_SC_NPROCESSORS_ONLN);
        ctx->conf->workers = cores < 1 ? 1 : (int)cores;
    } else if (json_is_integer(v)) {
        conf_int32(ctx, root, "", "workers", 1, 256, &ctx->conf->workers);
    } else {
        conf_err(ctx, "workers", "expected \"auto\" or an integer");
    }
}

static bool
same_sockaddr(const struct sy_addr *a, const struct sy_addr *b)
{
    return a->len == b->len && a->len > 0 && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static void
parse_certificate(struct conf_ctx *ctx, const json_t *v, const char *path,
                  struct sy_tls_cert *cert)
{
    static const char *const keys[] = {"cert", "key", NULL};
    char p[CONF_PATH_MAX];

    if (!conf_object(ctx, v, path, keys))
        return;
    if (conf_required(ctx, v, path, "cert") && conf_strdup(ctx, v, path, "cert", &cert->cert))
        conf_readable(ctx, conf_path(p, path, "cert"), cert->cert);
    if (conf_required(ctx, v, path, "key") && conf_strdup(ctx, v, path, "key", &cert->key))
        conf_readable(ctx, conf_path(p, path, "key"), cert->key);
}

static void
parse_tls(struct conf_ctx *ctx, const json_t *tls, const char *path, struct sy_listen *l)
{
    static const char *const keys[] = {"certificates", NULL};
    char base[CONF_PATH_MAX], p[CONF_PATH_MAX];
    json_t *arr, *v;
    size_t n, i;

    l->tls = true;
    if (!conf_object(ctx, tls, path, keys) || !conf_required(ctx, tls, path, "certificates"))
        return;
    n = conf_array(ctx, tls, path, "certificates", &arr);
    conf_path(base, path, "certificates");
    if (arr != NULL && n == 0)
        conf_err(ctx, base, "must not be empty");
    if (n == 0 || (l->certs = conf_calloc(ctx, n, sizeof(*l->certs))) == NULL)
        return;
    l->ncerts = n;
    json_array_foreach(arr, i, v)
        parse_certificate(ctx, v, conf_path_index(p, base, i), &l->certs[i]);
}

static void
parse_listener(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_listen *l)
{
    static const char *const keys[] = {"addr", "http2", "tls", NULL};
    const json_t *tls;
    char p[CONF_PATH_MAX];

    if (!conf_object(ctx, v, path, keys))
        return;
    if (conf_required(ctx, v, path, "addr"))
        conf_addr(ctx, v, path, "addr", &l->addr);
    if ((tls = json_object_get(v, "tls")) != NULL)
        parse_tls(ctx, tls, conf_path(p, path, "tls"), l);
    /* SPEC.md: HTTP/2 is offered by default on TLS listeners */
    l->http2 = l->tls;
    if (conf_bool(ctx, v, path, "http2", &l->http2) && l->http2 && !l->tls)
        conf_err(ctx, conf_path(p, path, "http2"), "http2 needs a tls listener");
}

static void
parse_listen(struct conf_ctx *ctx, const json_t *root)
{
    struct sy_conf *conf = ctx->conf;
    char p[CONF_PATH_MAX], q[CONF_PATH_MAX];
    json_t *arr, *v;
    size_t n = conf_array(ctx, root, "", "listen", &arr), i;

    if (arr != NULL && n == 0)
        conf_err(ctx, "listen", "must not be empty");
    if (n == 0 || (conf->listen = conf_calloc(ctx, n, sizeof(*conf->listen))) == NULL)
        return;
    conf->nlisten = n;
    json_array_foreach(arr, i, v) {
        parse_listener(ctx, v, conf_path_index(p, "listen", i), &conf->listen[i]);
        for (size_t j = 0; j < i; j++) {
            if (same_sockaddr(&conf->listen[i].addr, &conf->listen[j].addr)) {
                conf_err(ctx, conf_path(q, p, "addr"), "duplicate address \"%s\" (also listen[%zu])",
                         conf->listen[i].addr.text, j);
                break;
            }
        }
    }
}

static void
parse_limits(struct conf_ctx *ctx, const json_t *root)
{
    static const char *const keys[] = {
        "max_connections", "max_connections_per_ip", "max_header_bytes", "max_headers",
        "max_uri_bytes", "max_body_bytes", "client_header_timeout_ms", "client_body_timeout_ms",
        "keepalive_timeout_ms", "tunnel_idle_timeout_ms", "rate_limit_keys",
        "http2_max_concurrent_streams", NULL,
    };
    struct sy_limits *l = &ctx->conf->limits;
    const json_t *v = json_object_get(root, "limits");
    int64_t uri;

    if (v == NULL || !conf_object(ctx, v, "limits", keys))
        return;
    conf_int(ctx, v, "limits", "max_connections", 1, INT64_MAX, &l->max_connections);
    conf_int(ctx, v, "limits", "max_connections_per_ip", 0, INT64_MAX, &l->max_connections_per_ip);
    conf_int(ctx, v, "limits", "max_header_bytes", 1024, 1048576, &l->max_header_bytes);
    conf_int(ctx, v, "limits", "max_headers", 1, 1000, &l->max_headers);
    conf_int(ctx, v, "limits", "max_body_bytes", 0, INT64_MAX, &l->max_body_bytes);
    if (conf_int(ctx, v, "limits", "max_uri_bytes", 256, INT64_MAX, &uri)) {
        if (uri > l->max_header_bytes)
            conf_err(ctx, "limits.max_uri_bytes",
                     "must be between 256 and max_header_bytes (%lld)",
                     (long long)l->max_header_bytes);
        else
            l->max_uri_bytes = uri;
    } else if (l->max_uri_bytes > l->max_header_bytes) {
        l->max_uri_bytes = l->max_header_bytes;     /* the default follows a smaller head limit */
    }
    conf_duration(ctx, v, "limits", "client_header_timeout_ms", 1, &l->client_header_timeout_ms);
    conf_duration(ctx, v, "limits", "client_body_timeout_ms", 1, &l->client_body_timeout_ms);
    conf_duration(ctx, v, "limits", "keepalive_timeout_ms", 1, &l->keepalive_timeout_ms);
    conf_duration(ctx, v, "limits", "tunnel_idle_timeout_ms", 1, &l->tunnel_idle_timeout_ms);
    conf_int(ctx, v, "limits", "rate_limit_keys", 64, 1LL << 28, &l->rate_limit_keys);
    conf_int(ctx, v, "limits", "http2_max_concurrent_streams", 1, 1000,
             &l->http2_max_concurrent_streams);
}

static void
parse_geoip(struct conf_ctx *ctx, const json_t *root)
{
    static const char *const keys[] = {"database", NULL};
    const json_t *v = json_object_get(root, "geoip");

    if (v == NULL || !conf_object(ctx, v, "geoip", keys)
        || !conf_required(ctx, v, "geoip", "database"))
        return;
    if (conf_strdup(ctx, v, "geoip", "database", &ctx->conf->geoip_database))
        conf_readable(ctx, "geoip.database", ctx->conf->geoip_database);
}

static void
parse_redis(struct conf_ctx *ctx, const json_t *root)
{
    static const char *const keys[] = {"url", "key_prefix", "on_failure", NULL};
    static const char *const failures[] = {"allow", "deny", "local", NULL};
    struct sy_redis_conf *r = &ctx->conf->redis;
    const json_t *v = json_object_get(root, "redis");
    struct sy_redis_url url;
    char why[256];
    int mode;

    if (v == NULL || !conf_object(ctx, v, "redis", keys))
        return;
    r->enabled = true;
    /* the parser's messages never echo the URL: it may hold a password */
    if (conf_required(ctx, v, "redis", "url") && conf_strdup(ctx, v, "redis", "url", &r->url)
        && sy_redis_url_parse(r->url, &url, why, sizeof(why)) < 0)
        conf_err(ctx, "redis.url", "%s", why);
    conf_strdup(ctx, v, "redis", "key_prefix", &r->key_prefix);
    if (conf_enum(ctx, v, "redis", "on_failure", failures, &mode))
        r->on_failure = (enum sy_redis_failure)mode;
}

/* A log path: "" means off, stored as NULL. */
static void
log_path(struct conf_ctx *ctx, const json_t *v, const char *key, char **out)
{
    const char *s = conf_string(ctx, v, "log", key);

    if (s != NULL && s[0] != '\0')
        *out = conf_dup(ctx, s);
}

static void
parse_log(struct conf_ctx *ctx, const json_t *root)
{
    static const char *const keys[] = {"access", "security", "error", "level", NULL};
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    struct sy_log_conf *log = &ctx->conf->log;
    const json_t *v = json_object_get(root, "log");
    int level;

    if (v == NULL || !conf_object(ctx, v, "log", keys))
        return;
    log_path(ctx, v, "access", &log->access);
    log_path(ctx, v, "security", &log->security);
    log_path(ctx, v, "error", &log->error);
    if (conf_enum(ctx, v, "log", "level", levels, &level))
        log->level = (enum sy_log_level)level;
}

static void
parse_countries(struct conf_ctx *ctx, const json_t *v)
{
    struct sy_access *a = &ctx->conf->access;
    char p[CONF_PATH_MAX];
    json_t *arr, *c;
    size_t n = conf_array(ctx, v, "access", "deny_countries", &arr), i;
    const char *s;

    if (n == 0 || (a->deny_countries = conf_calloc(ctx, n, sizeof(*a->deny_countries))) == NULL)
        return;
    json_array_foreach(arr, i, c) {
        conf_path_index(p, "access.deny_countries", i);
        s = json_string_value(c);
        if (s == NULL) {
            conf_err(ctx, p, "expected a string");
        } else if (strlen(s) != 2 || !isalpha((unsigned char)s[0])
                   || !isalpha((unsigned char)s[1])) {
            conf_err(ctx, p, "invalid country code \"%s\" (expected two letters)", s);
        } else {
            a->deny_countries[a->ndeny_countries][0] = (char)toupper((unsigned char)s[0]);
            a->deny_countries[a->ndeny_countries][1] = (char)toupper((unsigned char)s[1]);
            a->ndeny_countries++;
        }
    }
    if (ctx->conf->geoip_database == NULL)
        conf_err(ctx, "access.deny_countries", "country rules need geoip.database");
}

static void
parse_access(struct conf_ctx *ctx, const json_t *root)
{
    static const char *const keys[] = {"allow", "deny", "deny_countries", NULL};
    struct sy_access *a = &ctx->conf->access;
    const json_t *v = json_object_get(root, "access");

    if (v == NULL || !conf_object(ctx, v, "access", keys))
        return;
    conf_cidrs(ctx, v, "access", "allow", &a->allow, &a->nallow);
    conf_cidrs(ctx, v, "access", "deny", &a->deny, &a->ndeny);
    parse_countries(ctx, v);
}

void
conf_parse_main(struct conf_ctx *ctx, const json_t *root)
{
    struct sy_conf *conf = ctx->conf;
    const char *state;

    conf_object(ctx, root, "", top_keys);
    parse_workers(ctx, root);
    conf_duration(ctx, root, "", "shutdown_timeout_ms", 0, &conf->shutdown_timeout_ms);
    parse_listen(ctx, root);
    parse_limits(ctx, root);
    conf_cidrs(ctx, root, "", "trusted_proxies", &conf->trusted_proxies, &conf->ntrusted_proxies);
    parse_geoip(ctx, root);
    parse_redis(ctx, root);
    parse_log(ctx, root);
    parse_access(ctx, root);
    state = conf_string(ctx, root, "", "state_file");
    if (state != NULL && state[0] != '\0')
        conf->state_file = conf_dup(ctx, state);
}

static bool
is_loopback(const struct sy_addr *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *ip;

    if (a->ss.ss_family == AF_INET)
        return ((const uint8_t *)&((const struct sockaddr_in *)&a->ss)->sin_addr)[0] == 127;
    if (a->ss.ss_family != AF_INET6)
        return false;
    ip = ((const struct sockaddr_in6 *)&a->ss)->sin6_addr.s6_addr;
    if (memcmp(ip, mapped, sizeof(mapped)) == 0)
        return ip[12] == 127;
    return IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)ip);
}

void
conf_parse_admin(struct conf_ctx *ctx, const json_t *root)
{
    static const char *const keys[] = {"listen", "token_file", NULL};
    struct sy_admin *admin = &ctx->conf->admin;
    const json_t *v = json_object_get(root, "admin");
    bool listen_ok = true;

    if (v == NULL) {
        sy_addr_parse("127.0.0.1:9901", &admin->listen, NULL, 0);
        return;
    }
    if (!conf_object(ctx, v, "admin", keys))
        return;
    if (json_object_get(v, "listen") == NULL)
        sy_addr_parse("127.0.0.1:9901", &admin->listen, NULL, 0);
    else
        listen_ok = conf_addr(ctx, v, "admin", "listen", &admin->listen);
    if (conf_strdup(ctx, v, "admin", "token_file", &admin->token_file)
        && sy_conf_read_tokens(ctx, admin) < 0)
        return;
    if (listen_ok && !is_loopback(&admin->listen) && admin->ntokens == 0)
        conf_err(ctx, "admin", "admin.listen is not loopback: a token_file with at least one"
                 " token is required");
}
