/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf.h: the configuration snapshot (struct sy_conf) and its loader.
 * A snapshot is immutable once published; readers hold a reference
 * (sy_conf_ref/sy_conf_unref) and the last unref frees it and everything
 * below it. Error lines read "FILE: JSON.PATH: message" (SPEC.md).
 */
#ifndef SY_CONF_H
#define SY_CONF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

#include "addr.h"
#include "cidr.h"

struct sy_tls_cert {
    char *cert;                 /* PEM certificate chain file */
    char *key;                  /* PEM private key file */
};

struct sy_tls_server;           /* TLS contexts: http/tls.c */
struct sy_tls_client;

struct sy_listen {
    struct sy_addr addr;
    bool tls;                   /* has a "tls" object */
    bool http2;                 /* ALPN h2 offered (TLS only) */
    struct sy_tls_cert *certs;
    size_t ncerts;
    struct sy_tls_server *tls_server;   /* built by the prepare step, see free_prepared */
};

struct sy_limits {
    int64_t max_connections;
    int64_t max_connections_per_ip;   /* 0: unlimited */
    int64_t max_header_bytes;         /* whole request or response head */
    int64_t max_headers;
    int64_t max_uri_bytes;            /* request target; 414 beyond */
    int64_t max_body_bytes;           /* 0: unlimited */
    int64_t client_header_timeout_ms;
    int64_t client_body_timeout_ms;
    int64_t keepalive_timeout_ms;
    int64_t tunnel_idle_timeout_ms;   /* WebSocket tunnel with no byte either way */
    int64_t rate_limit_keys;          /* local rate-limit table: keys held (8 bytes each) */
    int64_t http2_max_concurrent_streams;   /* per HTTP/2 connection (SETTINGS) */
};

struct sy_admin {
    struct sy_addr listen;
    char *token_file;           /* NULL: no token file */
    char **tokens;              /* read from token_file, one per line */
    size_t ntokens;
};

enum sy_balance {
    SY_BALANCE_ROUND_ROBIN,     /* smooth weighted round robin */
    SY_BALANCE_LEAST_CONN,
    SY_BALANCE_IP_HASH,
};

struct sy_status_range {
    int lo, hi;                 /* inclusive */
};

struct sy_health_conf {
    bool enabled;               /* a "health" object was given */
    char *path;
    int64_t interval_ms;
    int64_t timeout_ms;
    int rise, fall;
    struct sy_status_range *expect;
    size_t nexpect;
};

struct sy_passive_conf {
    int max_fails;              /* 0: passive health off */
    int64_t eject_ms;
    int max_eject_percent;
};

struct sy_instance_live;         /* state that changes without a reload: live.h */
struct sy_service_live;

struct sy_instance {
    struct sy_addr addr;
    int weight;                 /* >= 1 */
    size_t index;               /* position in pool->instances */
    struct sy_instance_live *live;      /* never NULL in a loaded snapshot */
    uint32_t metric_id;         /* upstream series (metrics.h), set when prepared */
};

struct sy_pool_balance;         /* per-worker balancing state: balance.c */

struct sy_pool {
    char *name;
    size_t index;               /* position in conf->pools */
    struct sy_instance *instances;
    size_t ninstances;
    enum sy_balance balance;
    int keepalive;              /* idle upstream connections kept per instance per worker */
    int64_t connect_timeout_ms;
    int64_t read_timeout_ms;
    int retries;
    bool tls;                   /* TLS toward the instances */
    char *tls_ca_file;          /* verification CA for "tls" */
    struct sy_health_conf health;
    struct sy_passive_conf passive;
    /* nworkers entries, allocated by sy_balance_prepare(), freed with the snapshot */
    struct sy_pool_balance *balance_state;
    struct sy_tls_client *tls_client;   /* built by the prepare step, see free_prepared */
};

enum sy_slot {
    SY_SLOT_BLUE,
    SY_SLOT_GREEN,
};

enum sy_sticky {
    SY_STICKY_NONE,
    SY_STICKY_COOKIE,
    SY_STICKY_CLIENT_IP,
    SY_STICKY_HEADER,
};

struct sy_canary {
    int weight;                 /* 0..100 percent to the other slot */
    enum sy_sticky sticky;
    char *sticky_header;        /* for SY_STICKY_HEADER */
    char *force_header;         /* NULL: none */
};

struct sy_rollout_conf {
    int *steps;                 /* weights, each 1..100, increasing */
    size_t nsteps;
    int64_t step_interval_ms;
    int64_t min_requests;
    double max_error_rate;
    int64_t max_p95_ms;
    double max_p95_ratio;
};

struct sy_scaling_conf {
    int64_t max_p95_ms;
    int64_t max_queue;
    double max_error_rate;
};

struct sy_maintenance_conf {
    bool enabled;
    int status;
    int64_t retry_after_ms;
    char *body_file;            /* NULL: built-in page */
};

struct sy_service {
    char *name;
    size_t index;
    struct sy_pool *slot_pool[2];   /* indexed by enum sy_slot */
    enum sy_slot active;
    struct sy_canary canary;
    struct sy_rollout_conf rollout;
    struct sy_scaling_conf scaling;
    struct sy_maintenance_conf maintenance;
    int64_t tunnel_drain_ms;
    /* active slot and weight as they stand now (live.h); never NULL when loaded */
    struct sy_service_live *live;
    uint32_t metric_id[2];      /* service-slot series per slot (metrics.h), set when prepared */
};

struct sy_header_edit {
    char **set_names;
    char **set_values;
    size_t nset;
    char **remove;
    size_t nremove;
};

struct sy_cors {
    bool enabled;
    char **origins;
    size_t norigins;
    char **methods;
    size_t nmethods;
    int64_t max_age_ms;
};

enum sy_rl_key {
    SY_RL_KEY_CLIENT_IP,
    SY_RL_KEY_HEADER,
    SY_RL_KEY_ROUTE,
    SY_RL_KEY_COUNTRY,
};

enum sy_rl_headers {
    SY_RL_HEADERS_LEGACY,       /* RateLimit-Limit/-Remaining/-Reset */
    SY_RL_HEADERS_DRAFT,
    SY_RL_HEADERS_BOTH,
    SY_RL_HEADERS_NONE,
};

struct sy_rate_limit {
    char *name;
    size_t index;
    enum sy_rl_key key;
    char *key_header;           /* for SY_RL_KEY_HEADER */
    int64_t rate;
    int64_t per_ms;
    int64_t burst;
    bool store_redis;
    enum sy_rl_headers headers;
};

/* Modules a build can hold (src/http/modules.c). */
#define SY_MODULES_MAX 8

struct sy_route {
    size_t index;               /* position in the configuration's "routes" */
    char *host;                 /* lower case: "*", "*.example.com" or exact */
    char *path;                 /* prefix, starts with '/' */
    size_t path_len;
    char *label;                /* host then path, "*.example.com/api": logs and metrics */
    struct sy_service *service;
    struct sy_rate_limit *rate_limit;   /* NULL: none */
    bool https_redirect;
    bool compress;
    struct sy_header_edit request_headers;
    struct sy_header_edit response_headers;
    struct sy_cors cors;
    /* Route series per slot, then SY_SLOT_NONE's for requests answered
     * before a slot was picked (a 429, the maintenance page): metrics.h,
     * set when prepared. */
    uint32_t metric_route_id[3];
#define SY_ROUTE_SERIES_UNSPLIT 2
};

struct sy_access {
    struct sy_cidr *allow;
    size_t nallow;
    struct sy_cidr *deny;
    size_t ndeny;
    char (*deny_countries)[3];  /* ISO 3166 alpha-2, upper case */
    size_t ndeny_countries;
};

enum sy_redis_failure {
    SY_REDIS_FAIL_ALLOW,
    SY_REDIS_FAIL_DENY,
    SY_REDIS_FAIL_LOCAL,
};

struct sy_redis_conf {
    bool enabled;               /* a "redis" object was given */
    char *url;
    char *key_prefix;
    enum sy_redis_failure on_failure;
};

enum sy_log_level {
    SY_LOG_ERROR,
    SY_LOG_WARN,
    SY_LOG_INFO,
    SY_LOG_DEBUG,
};

struct sy_log_conf {
    char *access;               /* NULL or "": access log off */
    char *security;
    char *error;                /* NULL or "": standard error */
    enum sy_log_level level;
};

struct sy_conf {
    atomic_uint refs;
    char *file;                 /* the -c file, as given */
    int workers;                /* "auto" resolved to the number of cores */
    int64_t shutdown_timeout_ms;
    struct sy_listen *listen;
    size_t nlisten;
    struct sy_limits limits;
    struct sy_cidr *trusted_proxies;
    size_t ntrusted_proxies;
    struct sy_admin admin;
    struct sy_pool *pools;
    size_t npools;
    struct sy_service *services;
    size_t nservices;
    struct sy_route *routes;    /* in configuration order */
    size_t nroutes;
    struct sy_rate_limit *rate_limits;
    size_t nrate_limits;
    struct sy_access access;
    char *geoip_database;       /* NULL: no GeoIP */
    struct sy_redis_conf redis;
    struct sy_log_conf log;
    char *state_file;
    json_t *json;               /* the merged document (owned) */
    /*
     * Set by the protocol layer when it prepares the snapshot for serving:
     * frees what it built (TLS contexts), before the rest goes.
     */
    void (*free_prepared)(struct sy_conf *conf);
    /* each module's state for this snapshot (sy_module.h), by its place in the table */
    void *module_state[SY_MODULES_MAX];
};

/* Where a configuration comes from (SPEC.md, Configuration layers). */
struct sy_conf_source {
    const char *file;           /* -c; NULL: conf/switchyard.json */
    const char *env_name;       /* -e; NULL: $SWITCHYARD_ENV if set */
    char *const *environ;       /* for SWITCHYARD__A__B variables; NULL: none */
};

/* Every error found, one "FILE: JSON.PATH: message" line each. */
struct sy_conf_errors {
    char **lines;
    size_t count;
};

/*
 * Loads, merges and validates every layer. On success returns 0 and a new
 * snapshot with one reference; on failure returns -1 with every problem in
 * errs (never stops at the first one).
 */
int sy_conf_load(const struct sy_conf_source *src, struct sy_conf **out,
                 struct sy_conf_errors *errs);
void sy_conf_errors_free(struct sy_conf_errors *errs);

struct sy_conf *sy_conf_ref(struct sy_conf *conf);
void sy_conf_unref(struct sy_conf *conf);

const struct sy_pool *sy_conf_pool(const struct sy_conf *conf, const char *name);
const struct sy_service *sy_conf_service(const struct sy_conf *conf, const char *name);

#endif
