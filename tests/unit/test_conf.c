/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_conf.c: sy_conf_load() end to end on files written into a mkdtemp
 * directory (the tests chdir there, so relative paths are its files):
 * layers and merge, overlays, SWITCHYARD__ variables, token files, every
 * validation rule with its exact "FILE: JSON.PATH: message" line, defaults,
 * and the example configurations. Test JSON uses ' for " to stay readable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/conf.h"
#include "core/live.h"

#define POOL "'pools': {'p': {'instances': [{'addr': '127.0.0.1:9001'}]}}"
#define SVC "'services': {'s': {'blue': 'p', 'green': 'p'}}"

static char orig_dir[4096];
static char tmp_dir[] = "/tmp/test_conf.XXXXXX";

/* Writes text into name, each ' turned into " */
static void
write_file(const char *name, const char *text)
{
    FILE *fp = fopen(name, "w");

    assert_non_null(fp);
    for (const char *c = text; *c != '\0'; c++)
        fputc(*c == '\'' ? '"' : *c, fp);
    fclose(fp);
}

static int
load_env(const char *file, const char *env, char *const *vars, struct sy_conf **conf,
         struct sy_conf_errors *errs)
{
    const struct sy_conf_source src = {.file = file, .env_name = env, .environ = vars};

    return sy_conf_load(&src, conf, errs);
}

/* Loads text as c.json; fails the test with every error line if it is invalid. */
static struct sy_conf *
load_ok_env(const char *text, char *const *vars)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;

    write_file("c.json", text);
    if (load_env("c.json", NULL, vars, &conf, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            print_error("%s\n", errs.lines[i]);
        sy_conf_errors_free(&errs);
        fail_msg("configuration refused");
    }
    assert_int_equal(errs.count, 0);
    return conf;
}

static struct sy_conf *
load_ok(const char *text)
{
    return load_ok_env(text, NULL);
}

static bool
has_line(const struct sy_conf_errors *errs, const char *line)
{
    for (size_t i = 0; i < errs->count; i++) {
        if (strcmp(errs->lines[i], line) == 0)
            return true;
    }
    return false;
}

static void
assert_refused(const struct sy_conf_errors *errs, int rc, struct sy_conf *conf, const char *line)
{
    assert_int_equal(rc, -1);
    assert_null(conf);
    if (!has_line(errs, line)) {
        for (size_t i = 0; i < errs->count; i++)
            print_error("got: %s\n", errs->lines[i]);
        fail_msg("missing error line: %s", line);
    }
}

/* Loads text as c.json and expects the error line among those reported. */
static void
expect_error(const char *text, const char *line)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;
    int rc;

    write_file("c.json", text);
    rc = load_env("c.json", NULL, NULL, &conf, &errs);
    assert_refused(&errs, rc, conf, line);
    sy_conf_errors_free(&errs);
}

struct rule {
    const char *json;
    const char *error;
};

static void
expect_rules(const struct rule *rules, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_error(rules[i].json, rules[i].error);
}

static int
group_setup(void **state)
{
    (void)state;
    if (getcwd(orig_dir, sizeof(orig_dir)) == NULL || mkdtemp(tmp_dir) == NULL
        || chdir(tmp_dir) != 0)
        return -1;
    unsetenv("SWITCHYARD_ENV");
    return 0;
}

static int
group_teardown(void **state)
{
    char cmd[256];

    (void)state;
    if (chdir(orig_dir) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_defaults(void **state)
{
    struct sy_conf *conf = load_ok("{}");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    (void)state;
    assert_string_equal(conf->file, "c.json");
    assert_int_equal(conf->workers, cores < 1 ? 1 : cores);
    assert_int_equal(conf->shutdown_timeout_ms, 30000);
    assert_int_equal(conf->nlisten, 1);
    assert_string_equal(conf->listen[0].addr.text, "0.0.0.0:8080");
    assert_false(conf->listen[0].tls);
    assert_int_equal(conf->limits.max_connections, 10000);
    assert_int_equal(conf->limits.max_connections_per_ip, 0);
    assert_int_equal(conf->limits.max_header_bytes, 16384);
    assert_int_equal(conf->limits.max_headers, 100);
    assert_int_equal(conf->limits.max_uri_bytes, 8192);
    assert_int_equal(conf->limits.max_body_bytes, 104857600);
    assert_int_equal(conf->limits.client_header_timeout_ms, 10000);
    assert_int_equal(conf->limits.client_body_timeout_ms, 60000);
    assert_int_equal(conf->limits.keepalive_timeout_ms, 5000);
    assert_int_equal(conf->ntrusted_proxies, 0);
    assert_string_equal(conf->admin.listen.text, "127.0.0.1:9901");
    assert_null(conf->admin.token_file);
    assert_int_equal(conf->admin.ntokens, 0);
    assert_int_equal(conf->npools + conf->nservices + conf->nroutes + conf->nrate_limits, 0);
    assert_null(conf->geoip_database);
    assert_false(conf->redis.enabled);
    assert_null(conf->log.access);
    assert_null(conf->log.security);
    assert_null(conf->log.error);
    assert_int_equal(conf->log.level, SY_LOG_INFO);
    assert_null(conf->state_file);
    assert_true(json_is_object(conf->json));
    sy_conf_unref(conf);
}

/* The default URI limit follows a head limit set below it (found by the edge suite). */
static void
test_uri_limit_follows_small_head_limit(void **state)
{
    (void)state;
    struct sy_conf *conf = load_ok("{'limits': {'max_header_bytes': 4096}}");
    assert_int_equal(conf->limits.max_header_bytes, 4096);
    assert_int_equal(conf->limits.max_uri_bytes, 4096);
    assert_int_equal(conf->limits.tunnel_idle_timeout_ms, 600000);
    sy_conf_unref(conf);
}

/* Found by fuzz_conf: a device as token file read forever; a FIFO blocked -t. */
static void
test_token_file_must_be_regular(void **state)
{
    (void)state;
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;

    write_file("c.json", "{'admin': {'token_file': '/dev/zero'}}");
    assert_int_equal(load_env("c.json", NULL, NULL, &conf, &errs), -1);
    assert_null(conf);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.lines[0],
                        "c.json: admin.token_file: \"/dev/zero\" is not a regular file");
    sy_conf_errors_free(&errs);
}

/* Found by fuzz_conf: a control character in a key must not split the error line. */
static void
test_error_lines_escape_controls(void **state)
{
    (void)state;
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;

    write_file("c.json", "{'x\\ny\\u001b': 1}");
    assert_int_equal(load_env("c.json", NULL, NULL, &conf, &errs), -1);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.lines[0], "c.json: x\\x0ay\\x1b: unknown key");
    sy_conf_errors_free(&errs);
}

static void
test_object_defaults(void **state)
{
    struct sy_conf *conf = load_ok("{" POOL ", " SVC ", 'routes': [{'service': 's'}],"
                                   " 'rate_limits': {'r': {'rate': 7}}}");
    const struct sy_pool *p = &conf->pools[0];
    const struct sy_service *s = &conf->services[0];
    const struct sy_route *r = &conf->routes[0];
    const struct sy_rate_limit *rl = &conf->rate_limits[0];

    (void)state;
    assert_int_equal(p->balance, SY_BALANCE_ROUND_ROBIN);
    assert_int_equal(p->keepalive, 64);
    assert_int_equal(p->connect_timeout_ms, 1000);
    assert_int_equal(p->read_timeout_ms, 30000);
    assert_int_equal(p->retries, 1);
    assert_false(p->tls);
    assert_false(p->health.enabled);
    assert_int_equal(p->passive.max_fails, 5);
    assert_int_equal(p->passive.eject_ms, 30000);
    assert_int_equal(p->passive.max_eject_percent, 10);
    assert_int_equal(p->instances[0].weight, 1);
    assert_non_null(p->instances[0].live);
    /* without active checks an instance is up from the start */
    assert_int_equal(p->instances[0].live->health, SY_HEALTH_UP);
    assert_int_equal(s->active, SY_SLOT_BLUE);
    assert_ptr_equal(s->slot_pool[SY_SLOT_BLUE], p);
    assert_ptr_equal(s->slot_pool[SY_SLOT_GREEN], p);
    assert_int_equal(s->canary.weight, 0);
    assert_int_equal(s->canary.sticky, SY_STICKY_NONE);
    assert_null(s->canary.force_header);
    assert_int_equal(s->rollout.nsteps, 4);
    assert_int_equal(s->rollout.steps[0], 5);
    assert_int_equal(s->rollout.steps[3], 100);
    assert_int_equal(s->rollout.step_interval_ms, 60000);
    assert_int_equal(s->rollout.min_requests, 100);
    assert_true(s->rollout.max_error_rate == 0.10);
    assert_int_equal(s->rollout.max_p95_ms, 5000);
    assert_true(s->rollout.max_p95_ratio == 2.5);
    assert_int_equal(s->scaling.max_p95_ms, 2000);
    assert_int_equal(s->scaling.max_queue, 100);
    assert_true(s->scaling.max_error_rate == 0.05);
    assert_false(s->maintenance.enabled);
    assert_int_equal(s->maintenance.status, 503);
    assert_int_equal(s->maintenance.retry_after_ms, 300000);
    assert_null(s->maintenance.body_file);
    assert_int_equal(s->tunnel_drain_ms, 0);
    assert_string_equal(r->host, "*");
    assert_string_equal(r->path, "/");
    assert_int_equal(r->path_len, 1);
    assert_ptr_equal(r->service, s);
    assert_null(r->rate_limit);
    assert_false(r->https_redirect);
    assert_false(r->compress);
    assert_false(r->cors.enabled);
    assert_int_equal(rl->key, SY_RL_KEY_CLIENT_IP);
    assert_int_equal(rl->rate, 7);
    assert_int_equal(rl->per_ms, 1000);
    assert_int_equal(rl->burst, 7);
    assert_false(rl->store_redis);
    assert_int_equal(rl->headers, SY_RL_HEADERS_LEGACY);
    assert_ptr_equal(sy_conf_pool(conf, "p"), p);
    assert_null(sy_conf_pool(conf, "q"));
    assert_ptr_equal(sy_conf_service(conf, "s"), s);
    assert_null(sy_conf_service(conf, "p"));
    sy_conf_unref(conf);
}

static void
test_health_defaults(void **state)
{
    struct sy_conf *conf = load_ok("{'pools': {'p': {'instances': [{'addr': '127.0.0.1:1'}],"
                                   " 'health': {}}}}");
    const struct sy_health_conf *h = &conf->pools[0].health;

    (void)state;
    assert_true(h->enabled);
    assert_string_equal(h->path, "/health");
    assert_int_equal(h->interval_ms, 2000);
    assert_int_equal(h->timeout_ms, 1000);
    assert_int_equal(h->rise, 2);
    assert_int_equal(h->fall, 3);
    assert_int_equal(h->nexpect, 1);
    assert_int_equal(h->expect[0].lo, 200);
    assert_int_equal(h->expect[0].hi, 399);
    sy_conf_unref(conf);
}

static void
test_stored_values(void **state)
{
    struct sy_conf *conf;

    (void)state;
    write_file("geo.mmdb", "x");
    write_file("ca.pem", "x");
    conf = load_ok("{'pools': {'p': {'instances': [{'addr': '127.0.0.1:1', 'weight': 5}],"
                   "   'tls': {'ca_file': 'ca.pem'}, 'balance': 'ip_hash',"
                   "   'health': {'expect_status': '200,204,300-399'}}},"
                   " 'services': {'s': {'blue': 'p', 'green': 'p', 'active': 'green',"
                   "   'canary': {'weight': 10, 'sticky': 'header:X-User', 'force_header': 'X-Canary'}}},"
                   " 'routes': [{'host': 'WWW.Example.COM', 'path': '/api', 'service': 's',"
                   "   'rate_limit': 'by-country', 'headers': {'request': {'set': {'X-A': '1'},"
                   "   'remove': ['Cookie']}}, 'cors': {'origins': ['*', 'http://localhost:3000'],"
                   "   'methods': ['GET'], 'max_age_s': 600}}, {'host': '*.Example.com', 'service': 's'}],"
                   " 'rate_limits': {'by-country': {'key': 'country', 'rate': 5, 'burst': 0,"
                   "   'headers': 'both', 'store': 'redis'}, 'h': {'key': 'header:X-Key', 'rate': 1}},"
                   " 'access': {'allow': ['10.0.0.0/8'], 'deny': ['::1'], 'deny_countries': ['ru', 'Kp']},"
                   " 'geoip': {'database': 'geo.mmdb'}, 'redis': {'url': 'unix:/run/redis.sock?db=2'},"
                   " 'log': {'access': '', 'error': 'e.log', 'level': 'debug'}, 'workers': 3,"
                   " 'trusted_proxies': ['127.0.0.1/32', '::1']}");
    assert_int_equal(conf->workers, 3);
    assert_int_equal(conf->pools[0].instances[0].weight, 5);
    assert_true(conf->pools[0].tls);
    assert_string_equal(conf->pools[0].tls_ca_file, "ca.pem");
    assert_int_equal(conf->pools[0].balance, SY_BALANCE_IP_HASH);
    assert_int_equal(conf->pools[0].health.nexpect, 3);
    assert_int_equal(conf->pools[0].health.expect[1].lo, 204);
    assert_int_equal(conf->pools[0].health.expect[2].hi, 399);
    assert_int_equal(conf->services[0].active, SY_SLOT_GREEN);
    assert_int_equal(conf->services[0].canary.sticky, SY_STICKY_HEADER);
    assert_string_equal(conf->services[0].canary.sticky_header, "X-User");
    assert_string_equal(conf->services[0].canary.force_header, "X-Canary");
    assert_string_equal(conf->routes[0].host, "www.example.com");
    assert_string_equal(conf->routes[1].host, "*.example.com");
    assert_int_equal(conf->routes[0].path_len, 4);
    assert_int_equal(conf->routes[1].index, 1);
    assert_ptr_equal(conf->routes[0].rate_limit, &conf->rate_limits[0]);
    assert_string_equal(conf->routes[0].request_headers.set_names[0], "X-A");
    assert_string_equal(conf->routes[0].request_headers.set_values[0], "1");
    assert_string_equal(conf->routes[0].request_headers.remove[0], "Cookie");
    assert_true(conf->routes[0].cors.enabled);
    assert_int_equal(conf->routes[0].cors.norigins, 2);
    assert_int_equal(conf->routes[0].cors.max_age_ms, 600000);
    assert_int_equal(conf->rate_limits[0].key, SY_RL_KEY_COUNTRY);
    assert_int_equal(conf->rate_limits[0].burst, 0);
    assert_true(conf->rate_limits[0].store_redis);
    assert_int_equal(conf->rate_limits[0].headers, SY_RL_HEADERS_BOTH);
    assert_int_equal(conf->rate_limits[1].key, SY_RL_KEY_HEADER);
    assert_string_equal(conf->rate_limits[1].key_header, "X-Key");
    assert_int_equal(conf->access.nallow, 1);
    assert_int_equal(conf->access.ndeny, 1);
    assert_int_equal(conf->access.ndeny_countries, 2);
    assert_string_equal(conf->access.deny_countries[0], "RU");
    assert_string_equal(conf->access.deny_countries[1], "KP");
    assert_string_equal(conf->geoip_database, "geo.mmdb");
    assert_true(conf->redis.enabled);
    assert_string_equal(conf->redis.key_prefix, "switchyard:");
    assert_int_equal(conf->redis.on_failure, SY_REDIS_FAIL_ALLOW);
    assert_null(conf->log.access);
    assert_string_equal(conf->log.error, "e.log");
    assert_int_equal(conf->log.level, SY_LOG_DEBUG);
    assert_int_equal(conf->ntrusted_proxies, 2);
    sy_conf_unref(conf);
}

static void
test_merge_layers(void **state)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;

    (void)state;
    write_file("m.json", "{'workers': 2, 'state_file': 'a.json', 'log': {'level': 'warn', 'access': 'a.log'},"
               " 'listen': [{'addr': '127.0.0.1:8001'}, {'addr': '127.0.0.1:8002'}]}");
    write_file("m.prod.json", "{'state_file': null, 'log': {'access': 'b.log'},"
               " 'listen': [{'addr': '127.0.0.1:8003'}]}");
    assert_int_equal(load_env("m.json", "prod", NULL, &conf, &errs), 0);
    assert_int_equal(conf->workers, 2);
    assert_null(conf->state_file);                      /* null deletes */
    assert_int_equal(conf->log.level, SY_LOG_WARN);     /* objects merge */
    assert_string_equal(conf->log.access, "b.log");
    assert_int_equal(conf->nlisten, 1);                 /* arrays replace */
    assert_string_equal(conf->listen[0].addr.text, "127.0.0.1:8003");
    assert_null(json_object_get(conf->json, "state_file"));
    sy_conf_unref(conf);
}

static void
test_overlay_from_environment(void **state)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;

    (void)state;
    write_file("o.json", "{'workers': 2}");
    write_file("o.staging.json", "{'workers': 4}");
    setenv("SWITCHYARD_ENV", "staging", 1);
    assert_int_equal(load_env("o.json", NULL, NULL, &conf, &errs), 0);
    assert_int_equal(conf->workers, 4);
    sy_conf_unref(conf);
    setenv("SWITCHYARD_ENV", "", 1);
    assert_int_equal(load_env("o.json", NULL, NULL, &conf, &errs), 0);
    assert_int_equal(conf->workers, 2);
    sy_conf_unref(conf);
    unsetenv("SWITCHYARD_ENV");
}

static void
test_overlay_missing(void **state)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;
    int rc;

    (void)state;
    write_file("o.json", "{}");
    rc = load_env("o.json", "nope", NULL, &conf, &errs);
    assert_refused(&errs, rc, conf, "o.nope.json: cannot open: No such file or directory");
    sy_conf_errors_free(&errs);
}

static void
test_missing_file(void **state)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;
    int rc = load_env("absent.json", NULL, NULL, &conf, &errs);

    (void)state;
    assert_refused(&errs, rc, conf, "absent.json: cannot open: No such file or directory");
    assert_int_equal(errs.count, 1);
    sy_conf_errors_free(&errs);
}

static void
test_syntax_error(void **state)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;
    int rc;

    (void)state;
    write_file("s.json", "{\n  'workers': 2,\n  'listen': [}\n");
    rc = load_env("s.json", NULL, NULL, &conf, &errs);
    assert_int_equal(rc, -1);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.lines[0], "s.json:3:14: unexpected token near '}'");
    sy_conf_errors_free(&errs);
    expect_error("{'workers': 1, 'workers': 2}",
                 "c.json:1:24: duplicate object key near '\"workers\"'");
    expect_error("[1]", "c.json: expected a JSON object at the top level");
}

static void
test_env_vars(void **state)
{
    char *env[] = {
        "PATH=/bin", "SWITCHYARD_ENV=ignored", "SWITCHYARD__WORKERS=3",
        "SWITCHYARD__ADMIN__LISTEN=127.0.0.2:9999", "SWITCHYARD__LISTEN__1__ADDR=127.0.0.1:7002",
        "SWITCHYARD__LOG={\"level\": \"error\"}", "SWITCHYARD__STATE_FILE=null",
        "SWITCHYARD__POOLS__P__RETRIES=0", "SWITCHYARD__POOLS__P__INSTANCES__0__WEIGHT=9", NULL,
    };
    struct sy_conf *conf = load_ok_env("{" POOL ", 'state_file': 'x.json', 'log': {'access': 'a.log'},"
                                       " 'listen': [{'addr': '127.0.0.1:7000'},"
                                       " {'addr': '127.0.0.1:7001'}]}", env);

    (void)state;
    assert_int_equal(conf->workers, 3);                         /* JSON value */
    assert_string_equal(conf->admin.listen.text, "127.0.0.2:9999");  /* string value */
    assert_string_equal(conf->listen[0].addr.text, "127.0.0.1:7000");
    assert_string_equal(conf->listen[1].addr.text, "127.0.0.1:7002");  /* array index */
    assert_int_equal(conf->log.level, SY_LOG_ERROR);
    assert_string_equal(conf->log.access, "a.log");             /* object merged */
    assert_null(conf->state_file);
    assert_int_equal(conf->pools[0].retries, 0);
    assert_int_equal(conf->pools[0].instances[0].weight, 9);
    sy_conf_unref(conf);
}

static void
test_env_var_errors(void **state)
{
    char *env[] = {"SWITCHYARD__LISTEN__5__ADDR=127.0.0.1:1", "SWITCHYARD__WORKERS__X=1",
                   "SWITCHYARD__=1", "SWITCHYARD__LIMITS__MAX_HEADERS=5000", NULL};
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;
    int rc;

    (void)state;
    write_file("c.json", "{}");
    rc = load_env("c.json", NULL, env, &conf, &errs);
    assert_int_equal(rc, -1);
    assert_int_equal(errs.count, 3);
    assert_string_equal(errs.lines[0], "c.json: SWITCHYARD__LISTEN__5__ADDR: no object or array"
                        " element \"5\" to set a key in");
    assert_string_equal(errs.lines[1], "c.json: SWITCHYARD__WORKERS__X: no object or array"
                        " element \"workers\" to set a key in");
    assert_string_equal(errs.lines[2], "c.json: SWITCHYARD__: cannot set \"\" (empty key, or no"
                        " such array element)");
    sy_conf_errors_free(&errs);
    /* values from variables are validated like any other */
    rc = load_env("c.json", NULL, env + 3, &conf, &errs);
    assert_refused(&errs, rc, conf, "c.json: limits.max_headers: must be between 1 and 1000");
    sy_conf_errors_free(&errs);
}

static void
test_token_file(void **state)
{
    struct sy_conf *conf;

    (void)state;
    write_file("tokens", "# admin tokens\n  alpha  \n\n\t# old one\nbeta\r\n   \ngamma");
    conf = load_ok("{'admin': {'listen': '0.0.0.0:9901', 'token_file': 'tokens'}}");
    assert_string_equal(conf->admin.token_file, "tokens");
    assert_int_equal(conf->admin.ntokens, 3);
    assert_string_equal(conf->admin.tokens[0], "alpha");
    assert_string_equal(conf->admin.tokens[1], "beta");
    assert_string_equal(conf->admin.tokens[2], "gamma");
    assert_null(json_object_get(conf->json, "tokens"));
    sy_conf_unref(conf);
    expect_error("{'admin': {'token_file': 'no-tokens'}}",
                 "c.json: admin.token_file: cannot read \"no-tokens\": No such file or directory");
}

static void
test_admin_loopback(void **state)
{
    struct sy_conf *conf;

    (void)state;
    expect_error("{'admin': {'listen': '0.0.0.0:9901'}}", "c.json: admin: admin.listen is not"
                 " loopback: a token_file with at least one token is required");
    write_file("empty-tokens", "# none yet\n\n");
    expect_error("{'admin': {'listen': '10.0.0.1:9901', 'token_file': 'empty-tokens'}}",
                 "c.json: admin: admin.listen is not loopback: a token_file with at least one"
                 " token is required");
    conf = load_ok("{'admin': {'listen': '[::1]:9901'}}");
    sy_conf_unref(conf);
    conf = load_ok("{'admin': {'listen': '127.0.0.5:9901', 'token_file': 'empty-tokens'}}");
    sy_conf_unref(conf);
}

static void
test_durations(void **state)
{
    struct sy_conf *conf;
    struct sy_conf_errors errs = {0};
    int rc;

    (void)state;
    conf = load_ok("{'shutdown_timeout_s': 30, 'limits': {'keepalive_timeout_s': 2},"
                   " 'services': {'s': {'blue': 'p', 'green': 'p', 'rollout': {'step_interval_ms': 500},"
                   "   'maintenance': {'retry_after_ms': 1500}, 'tunnel_drain_s': 4}}, " POOL "}");
    assert_int_equal(conf->shutdown_timeout_ms, 30000);
    assert_int_equal(conf->limits.keepalive_timeout_ms, 2000);
    assert_int_equal(conf->services[0].rollout.step_interval_ms, 500);
    assert_int_equal(conf->services[0].maintenance.retry_after_ms, 1500);
    assert_int_equal(conf->services[0].tunnel_drain_ms, 4000);
    sy_conf_unref(conf);
    expect_error("{'shutdown_timeout_ms': 1000, 'shutdown_timeout_s': 1}",
                 "c.json: shutdown_timeout_s: conflicts with shutdown_timeout_ms (give one of them)");
    expect_error("{'shutdown_timeout_s': -1}", "c.json: shutdown_timeout_s: must not be negative");
    expect_error("{'shutdown_timeout_ms': 1.5}", "c.json: shutdown_timeout_ms: expected an integer");
    expect_error("{'limits': {'client_body_timeout_s': 0}}",
                 "c.json: limits.client_body_timeout_s: must be at least 1 ms");
    /* a later layer may restate a duration in the other unit */
    write_file("d.json", "{'shutdown_timeout_ms': 1000}");
    write_file("d.fast.json", "{'shutdown_timeout_s': 2}");
    assert_int_equal(load_env("d.json", "fast", NULL, &conf, &errs), 0);
    assert_int_equal(conf->shutdown_timeout_ms, 2000);
    sy_conf_unref(conf);
    write_file("d.both.json", "{'shutdown_timeout_s': 2, 'shutdown_timeout_ms': 5}");
    rc = load_env("d.json", "both", NULL, &conf, &errs);
    assert_refused(&errs, rc, conf,
                   "d.json: shutdown_timeout_s: conflicts with shutdown_timeout_ms (give one of them)");
    sy_conf_errors_free(&errs);
}

static void
test_unknown_keys(void **state)
{
    static const struct rule rules[] = {
        {"{'worker': 2}", "c.json: worker: unknown key"},
        {"{'listen': [{'addr': '127.0.0.1:1', 'proto': 'h1'}]}", "c.json: listen[0].proto: unknown key"},
        {"{'limits': {'max_conns': 1}}", "c.json: limits.max_conns: unknown key"},
        {"{'pools': {'p': {'instances': [{'addr': '127.0.0.1:1', 'wieght': 2}]}}}",
         "c.json: pools.p.instances[0].wieght: unknown key"},
        {"{'pools': {'p': {'instances': [{'addr': '127.0.0.1:1'}], 'health': {'pth': '/'}}}}",
         "c.json: pools.p.health.pth: unknown key"},
        {"{'pools': {'p': {'instances': [{'addr': '127.0.0.1:1'}], 'passive': {'x': 1}}}}",
         "c.json: pools.p.passive.x: unknown key"},
        {"{" POOL ", 'services': {'s': {'blue': 'p', 'green': 'p', 'rollout': {'rollback':"
         " {'max_p99_ms': 1}}}}}", "c.json: services.s.rollout.rollback.max_p99_ms: unknown key"},
        {"{" POOL ", " SVC ", 'routes': [{'service': 's', 'headers': {'response': {'add': {}}}}]}",
         "c.json: routes[0].headers.response.add: unknown key"},
        {"{'admin': {'port': 1}}", "c.json: admin.port: unknown key"},
        {"{'redis': {'url': 'redis://h:1', 'db': 1}}", "c.json: redis.db: unknown key"},
        {"{'log': {'debug': true}}", "c.json: log.debug: unknown key"},
        {"{'access': {'allow_countries': []}}", "c.json: access.allow_countries: unknown key"},
        {"{'rate_limits': {'r': {'rate': 1, 'window_ms': 1}}}", "c.json: rate_limits.r.window_ms: unknown key"},
    };

    (void)state;
    expect_rules(rules, sizeof(rules) / sizeof(rules[0]));
}

static void
test_several_errors(void **state)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;
    int rc;

    (void)state;
    write_file("c.json", "{'workers': 0, 'bogus': 1, 'pools': {'app-blue': {'instances':"
               " [{'addr': '127.0.0.1:9001'}, {'addr': '127.0.0.1:99999'}], 'retries': 20}},"
               " 'routes': [{'service': 'nope'}]}");
    rc = load_env("c.json", NULL, NULL, &conf, &errs);
    assert_int_equal(rc, -1);
    assert_null(conf);
    assert_int_equal(errs.count, 5);
    assert_true(has_line(&errs, "c.json: bogus: unknown key"));
    assert_true(has_line(&errs, "c.json: workers: must be between 1 and 256"));
    assert_true(has_line(&errs, "c.json: pools.app-blue.instances[1].addr: invalid port 99999"));
    assert_true(has_line(&errs, "c.json: pools.app-blue.retries: must be between 0 and 10"));
    assert_true(has_line(&errs, "c.json: routes[0].service: unknown service \"nope\""));
    sy_conf_errors_free(&errs);
}

static void
test_rules_top(void **state)
{
    static const struct rule rules[] = {
        {"{'workers': 0}", "c.json: workers: must be between 1 and 256"},
        {"{'workers': 257}", "c.json: workers: must be between 1 and 256"},
        {"{'workers': 'many'}", "c.json: workers: expected \"auto\" or an integer"},
        {"{'listen': []}", "c.json: listen: must not be empty"},
        {"{'listen': {}}", "c.json: listen: expected an array"},
        {"{'listen': [{'http2': false}]}", "c.json: listen[0].addr: is required"},
        {"{'listen': [{'addr': 'localhost'}]}", "c.json: listen[0].addr: missing port"},
        {"{'listen': [{'addr': 'no-such-host.invalid:80'}]}",
         "c.json: listen[0].addr: cannot resolve host \"no-such-host.invalid\""},
        {"{'listen': [{'addr': '*:8080'}, {'addr': '0.0.0.0:8080'}]}",
         "c.json: listen[1].addr: duplicate address \"0.0.0.0:8080\" (also listen[0])"},
        {"{'listen': [{'addr': '*:8443', 'tls': {'certificates': []}}]}",
         "c.json: listen[0].tls.certificates: must not be empty"},
        {"{'listen': [{'addr': '*:8443', 'tls': {}}]}", "c.json: listen[0].tls.certificates: is required"},
        {"{'listen': [{'addr': '*:8443', 'tls': {'certificates': [{'cert': 'none.pem', 'key': 'k'}]}}]}",
         "c.json: listen[0].tls.certificates[0].cert: cannot read \"none.pem\": No such file or directory"},
        {"{'listen': [{'addr': '*:8443', 'tls': {'certificates': [{'cert': 'none.pem'}]}}]}",
         "c.json: listen[0].tls.certificates[0].key: is required"},
        {"{'listen': [{'addr': '*:8080', 'http2': true}]}", "c.json: listen[0].http2: http2 needs a tls listener"},
        {"{'listen': [{'addr': '*:8080', 'http2': 1}]}", "c.json: listen[0].http2: expected a boolean"},
        {"{'limits': {'max_headers': 0}}", "c.json: limits.max_headers: must be between 1 and 1000"},
        {"{'limits': {'max_header_bytes': 1000}}", "c.json: limits.max_header_bytes: must be between 1024 and 1048576"},
        {"{'limits': {'max_uri_bytes': 100}}", "c.json: limits.max_uri_bytes: must be at least 256"},
        {"{'limits': {'max_uri_bytes': 20000}}",
         "c.json: limits.max_uri_bytes: must be between 256 and max_header_bytes (16384)"},
        {"{'limits': {'max_connections': 0}}", "c.json: limits.max_connections: must be at least 1"},
        {"{'limits': {'max_body_bytes': -1}}", "c.json: limits.max_body_bytes: must not be negative"},
        {"{'limits': {'client_header_timeout_ms': 0}}",
         "c.json: limits.client_header_timeout_ms: must be at least 1 ms"},
        {"{'limits': 5}", "c.json: limits: expected an object"},
        {"{'trusted_proxies': ['10.0.0.0/33']}", "c.json: trusted_proxies[0]: invalid prefix length 33"},
        {"{'trusted_proxies': ['proxy.local']}", "c.json: trusted_proxies[0]: invalid address \"proxy.local\""},
        {"{'trusted_proxies': [10]}", "c.json: trusted_proxies[0]: expected a string"},
        {"{'admin': {'listen': '127.0.0.1'}}", "c.json: admin.listen: missing port"},
        {"{'state_file': 5}", "c.json: state_file: expected a string"},
        {"{'shutdown_timeout_ms': '30'}", "c.json: shutdown_timeout_ms: expected an integer"},
    };

    (void)state;
    expect_rules(rules, sizeof(rules) / sizeof(rules[0]));
}

static void
test_rules_access(void **state)
{
    static const struct rule rules[] = {
        {"{'access': {'deny_countries': ['RU']}}", "c.json: access.deny_countries: country rules need geoip.database"},
        {"{'access': {'deny_countries': ['USA']}}",
         "c.json: access.deny_countries[0]: invalid country code \"USA\" (expected two letters)"},
        {"{'access': {'allow': ['1.2.3.4/40']}}", "c.json: access.allow[0]: invalid prefix length 40"},
        {"{'access': {'deny': ['::/200']}}", "c.json: access.deny[0]: invalid prefix length 200"},
        {"{'geoip': {'database': 'missing.mmdb'}}",
         "c.json: geoip.database: cannot read \"missing.mmdb\": No such file or directory"},
        {"{'geoip': {}}", "c.json: geoip.database: is required"},
        {"{'redis': {'url': 'http://h:1'}}", "c.json: redis.url: invalid redis url (expected"
         " redis://[:password@]host:port[/db] or unix:/path[?db=N])"},
        {"{'redis': {'url': 'redis://:secret@h'}}", "c.json: redis.url: invalid redis url (expected"
         " redis://[:password@]host:port[/db] or unix:/path[?db=N])"},
        {"{'redis': {'url': 'unix:relative.sock'}}", "c.json: redis.url: invalid redis url (expected"
         " redis://[:password@]host:port[/db] or unix:/path[?db=N])"},
        {"{'redis': {'url': 'redis://h:6379/x'}}", "c.json: redis.url: invalid redis url (expected"
         " redis://[:password@]host:port[/db] or unix:/path[?db=N])"},
        {"{'redis': {}}", "c.json: redis.url: is required"},
        {"{'redis': {'url': 'redis://h:1', 'on_failure': 'crash'}}",
         "c.json: redis.on_failure: invalid value \"crash\" (expected one of allow, deny, local)"},
        {"{'log': {'level': 'trace'}}",
         "c.json: log.level: invalid value \"trace\" (expected one of error, warn, info, debug)"},
        {"{'log': {'access': false}}", "c.json: log.access: expected a string"},
    };
    struct sy_conf *conf;

    (void)state;
    expect_rules(rules, sizeof(rules) / sizeof(rules[0]));
    conf = load_ok("{'redis': {'url': 'redis://:pw@cache.local:6379/2', 'key_prefix': 'sy:',"
                   " 'on_failure': 'local'}}");
    assert_string_equal(conf->redis.key_prefix, "sy:");
    assert_int_equal(conf->redis.on_failure, SY_REDIS_FAIL_LOCAL);
    sy_conf_unref(conf);
    conf = load_ok("{'redis': {'url': 'redis://[::1]:6379'}}");
    sy_conf_unref(conf);
}

#define INST "'instances': [{'addr': '127.0.0.1:1'}]"

static void
test_rules_pools(void **state)
{
    static const struct rule rules[] = {
        {"{'pools': {'app-blue': {'instances': [{'addr': '127.0.0.1:9001'}, {'addr': '127.0.0.1:99999'}]}}}",
         "c.json: pools.app-blue.instances[1].addr: invalid port 99999"},
        {"{'pools': {'p': {'instances': [{'addr': '127.0.0.1:1'}, {'addr': '127.0.0.1:1'}]}}}",
         "c.json: pools.p.instances[1].addr: duplicate address \"127.0.0.1:1\" (also instances[0])"},
        {"{'pools': {'p': {}}}", "c.json: pools.p.instances: is required"},
        {"{'pools': {'p': {'instances': []}}}", "c.json: pools.p.instances: must not be empty"},
        {"{'pools': {'p': {'instances': [{'weight': 1}]}}}", "c.json: pools.p.instances[0].addr: is required"},
        {"{'pools': {'p': {'instances': [{'addr': '127.0.0.1:1', 'weight': 0}]}}}",
         "c.json: pools.p.instances[0].weight: must be between 1 and 1000"},
        {"{'pools': {'p': {'instances': [{'addr': '127.0.0.1:1', 'weight': 1001}]}}}",
         "c.json: pools.p.instances[0].weight: must be between 1 and 1000"},
        {"{'pools': {'p': {" INST ", 'balance': 'random'}}}",
         "c.json: pools.p.balance: invalid value \"random\" (expected one of round_robin, least_conn, ip_hash)"},
        {"{'pools': {'p': {" INST ", 'keepalive': 10001}}}", "c.json: pools.p.keepalive: must be between 0 and 10000"},
        {"{'pools': {'p': {" INST ", 'retries': 11}}}", "c.json: pools.p.retries: must be between 0 and 10"},
        {"{'pools': {'p': {" INST ", 'connect_timeout_ms': 0}}}",
         "c.json: pools.p.connect_timeout_ms: must be at least 1 ms"},
        {"{'pools': {'p': {" INST ", 'read_timeout_s': 0}}}", "c.json: pools.p.read_timeout_s: must be at least 1 ms"},
        {"{'pools': {'p': {" INST ", 'tls': 'yes'}}}", "c.json: pools.p.tls: expected a boolean or an object"},
        {"{'pools': {'p': {" INST ", 'tls': {'ca_file': 'no-ca.pem'}}}}",
         "c.json: pools.p.tls.ca_file: cannot read \"no-ca.pem\": No such file or directory"},
        {"{'pools': {'p': {" INST ", 'passive': {'max_fails': 1001}}}}",
         "c.json: pools.p.passive.max_fails: must be between 0 and 1000"},
        {"{'pools': {'p': {" INST ", 'passive': {'max_eject_percent': 101}}}}",
         "c.json: pools.p.passive.max_eject_percent: must be between 0 and 100"},
        {"{'pools': {'p': {" INST ", 'passive': {'eject_ms': -5}}}}",
         "c.json: pools.p.passive.eject_ms: must not be negative"},
        {"{'pools': {'bad name': {" INST "}}}",
         "c.json: pools.bad name: invalid name \"bad name\" (allowed: letters, digits, '_', '.', '-')"},
        {"{'pools': []}", "c.json: pools: expected an object"},
        {"{'pools': {'p': 1}}", "c.json: pools.p: expected an object"},
    };

    (void)state;
    expect_rules(rules, sizeof(rules) / sizeof(rules[0]));
}

static void
test_rules_health(void **state)
{
    static const struct rule rules[] = {
        {"{'pools': {'p': {" INST ", 'health': {'rise': 0}}}}", "c.json: pools.p.health.rise: must be between 1 and 100"},
        {"{'pools': {'p': {" INST ", 'health': {'fall': 101}}}}", "c.json: pools.p.health.fall: must be between 1 and 100"},
        {"{'pools': {'p': {" INST ", 'health': {'interval_ms': 99}}}}",
         "c.json: pools.p.health.interval_ms: must be at least 100 ms"},
        {"{'pools': {'p': {" INST ", 'health': {'timeout_ms': 0}}}}",
         "c.json: pools.p.health.timeout_ms: must be at least 1 ms"},
        {"{'pools': {'p': {" INST ", 'health': {'interval_ms': 1000, 'timeout_ms': 1000}}}}",
         "c.json: pools.p.health.timeout_ms: must be less than interval_ms (1000)"},
        {"{'pools': {'p': {" INST ", 'health': {'interval_s': 1, 'timeout_s': 2}}}}",
         "c.json: pools.p.health.timeout_s: must be less than interval_ms (1000)"},
        {"{'pools': {'p': {" INST ", 'health': {'path': 'health'}}}}",
         "c.json: pools.p.health.path: must start with '/'"},
        {"{'pools': {'p': {" INST ", 'health': {'expect_status': '200-99'}}}}",
         "c.json: pools.p.health.expect_status: invalid status list \"200-99\" (expected like"
         " \"200-399\" or \"200,204,300-399\", each 100..599)"},
        {"{'pools': {'p': {" INST ", 'health': {'expect_status': '600'}}}}",
         "c.json: pools.p.health.expect_status: invalid status list \"600\" (expected like"
         " \"200-399\" or \"200,204,300-399\", each 100..599)"},
        {"{'pools': {'p': {" INST ", 'health': {'expect_status': '200,'}}}}",
         "c.json: pools.p.health.expect_status: invalid status list \"200,\" (expected like"
         " \"200-399\" or \"200,204,300-399\", each 100..599)"},
        {"{'pools': {'p': {" INST ", 'health': {'expect_status': 200}}}}",
         "c.json: pools.p.health.expect_status: expected a string"},
        {"{'pools': {'p': {" INST ", 'health': true}}}", "c.json: pools.p.health: expected an object"},
    };

    (void)state;
    expect_rules(rules, sizeof(rules) / sizeof(rules[0]));
}

#define SVC_WITH(x) "{" POOL ", 'services': {'s': {'blue': 'p', 'green': 'p', " x "}}}"

static void
test_rules_services(void **state)
{
    static const struct rule rules[] = {
        {"{" POOL ", 'services': {'s': {'green': 'p'}}}", "c.json: services.s.blue: is required"},
        {"{" POOL ", 'services': {'s': {'blue': 'p'}}}", "c.json: services.s.green: is required"},
        {"{" POOL ", 'services': {'s': {'blue': 'p', 'green': 'x'}}}",
         "c.json: services.s.green: unknown pool \"x\""},
        {SVC_WITH("'active': 'red'"), "c.json: services.s.active: invalid value \"red\" (expected one of blue, green)"},
        {SVC_WITH("'canary': {'weight': 101}"), "c.json: services.s.canary.weight: must be between 0 and 100"},
        {SVC_WITH("'canary': {'sticky': 'header:'}"), "c.json: services.s.canary.sticky: invalid value"
         " \"header:\" (expected one of none, cookie, client_ip, header:NAME)"},
        {SVC_WITH("'canary': {'sticky': 'session'}"), "c.json: services.s.canary.sticky: invalid value"
         " \"session\" (expected one of none, cookie, client_ip, header:NAME)"},
        {SVC_WITH("'canary': {'force_header': 'X Canary'}"),
         "c.json: services.s.canary.force_header: invalid header name \"X Canary\""},
        {SVC_WITH("'rollout': {'steps': []}"), "c.json: services.s.rollout.steps: must not be empty"},
        {SVC_WITH("'rollout': {'steps': [0, 50]}"), "c.json: services.s.rollout.steps[0]: must be between 1 and 100"},
        {SVC_WITH("'rollout': {'steps': [10, 10]}"),
         "c.json: services.s.rollout.steps[1]: must be greater than the step before it"},
        {SVC_WITH("'rollout': {'steps': [50, 101]}"), "c.json: services.s.rollout.steps[1]: must be between 1 and 100"},
        {SVC_WITH("'rollout': {'min_requests': -1}"), "c.json: services.s.rollout.min_requests: must not be negative"},
        {SVC_WITH("'rollout': {'rollback': {'max_error_rate': 1.5}}"),
         "c.json: services.s.rollout.rollback.max_error_rate: must be between 0 and 1"},
        {SVC_WITH("'rollout': {'rollback': {'max_error_rate': 'x'}}"),
         "c.json: services.s.rollout.rollback.max_error_rate: expected a number"},
        {SVC_WITH("'rollout': {'rollback': {'max_p95_ratio': 0}}"),
         "c.json: services.s.rollout.rollback.max_p95_ratio: must be greater than 0"},
        {SVC_WITH("'scaling': {'max_error_rate': -0.1}"),
         "c.json: services.s.scaling.max_error_rate: must be between 0 and 1"},
        {SVC_WITH("'scaling': {'max_queue': -1}"), "c.json: services.s.scaling.max_queue: must not be negative"},
        {SVC_WITH("'maintenance': {'status': 200}"), "c.json: services.s.maintenance.status: must be between 400 and 599"},
        {SVC_WITH("'maintenance': {'enabled': 'yes'}"), "c.json: services.s.maintenance.enabled: expected a boolean"},
        {SVC_WITH("'maintenance': {'body_file': 'down.html'}"),
         "c.json: services.s.maintenance.body_file: cannot read \"down.html\": No such file or directory"},
        {SVC_WITH("'maintenance': {'retry_after_s': 1, 'retry_after_ms': 1}"),
         "c.json: services.s.maintenance.retry_after_s: conflicts with retry_after_ms (give one of them)"},
        {SVC_WITH("'tunnel_drain_ms': -1"), "c.json: services.s.tunnel_drain_ms: must not be negative"},
        {"{" POOL ", 'services': {'s/1': {'blue': 'p', 'green': 'p'}}}",
         "c.json: services.s/1: invalid name \"s/1\" (allowed: letters, digits, '_', '.', '-')"},
    };

    (void)state;
    expect_rules(rules, sizeof(rules) / sizeof(rules[0]));
}

#define ROUTE(x) "{" POOL ", " SVC ", 'routes': [{'service': 's', " x "}]}"

static void
test_rules_routes(void **state)
{
    static const struct rule rules[] = {
        {"{" POOL ", " SVC ", 'routes': [{'path': '/'}]}", "c.json: routes[0].service: is required"},
        {"{" POOL ", " SVC ", 'routes': [{'service': 'x'}]}", "c.json: routes[0].service: unknown service \"x\""},
        {"{'routes': {}}", "c.json: routes: expected an array"},
        {"{'routes': [5]}", "c.json: routes[0]: expected an object"},
        {ROUTE("'host': 'bad_host!'"), "c.json: routes[0].host: invalid host \"bad_host!\""},
        {ROUTE("'host': '*.'"), "c.json: routes[0].host: invalid host \"*.\""},
        {ROUTE("'host': 'a..b'"), "c.json: routes[0].host: invalid host \"a..b\""},
        {ROUTE("'path': 'api'"), "c.json: routes[0].path: must start with '/'"},
        {ROUTE("'rate_limit': 'r'"), "c.json: routes[0].rate_limit: unknown rate limit \"r\""},
        {ROUTE("'https_redirect': true"), "c.json: routes[0].https_redirect: https_redirect needs a TLS listener"},
        {ROUTE("'compress': 'yes'"), "c.json: routes[0].compress: expected a boolean"},
        {ROUTE("'headers': {'request': {'set': {'Content-Length': '5'}}}"),
         "c.json: routes[0].headers.request.set.Content-Length: cannot set framing header Content-Length"},
        {ROUTE("'headers': {'response': {'set': {'connection': 'close'}}}"),
         "c.json: routes[0].headers.response.set.connection: cannot set framing header connection"},
        {ROUTE("'headers': {'response': {'remove': ['Transfer-Encoding']}}"),
         "c.json: routes[0].headers.response.remove[0]: cannot remove framing header Transfer-Encoding"},
        {ROUTE("'headers': {'request': {'remove': ['Server', 'te']}}"),
         "c.json: routes[0].headers.request.remove[1]: cannot remove framing header te"},
        {ROUTE("'headers': {'request': {'set': {'X Bad': 'v'}}}"),
         "c.json: routes[0].headers.request.set.X Bad: invalid header name \"X Bad\""},
        {ROUTE("'headers': {'request': {'set': {'X-A': 5}}}"), "c.json: routes[0].headers.request.set.X-A: expected a string"},
        {ROUTE("'headers': {'request': {'set': {'X-A': 'a\\nb'}}}"),
         "c.json: routes[0].headers.request.set.X-A: invalid header value (control character)"},
        {ROUTE("'headers': {'request': {'remove': 'Server'}}"), "c.json: routes[0].headers.request.remove: expected an array"},
        {ROUTE("'cors': {'origins': ['ftp://x.example']}"),
         "c.json: routes[0].cors.origins[0]: invalid origin \"ftp://x.example\" (expected \"*\" or \"https://host[:port]\")"},
        {ROUTE("'cors': {'origins': ['https://x.example/']}"),
         "c.json: routes[0].cors.origins[0]: invalid origin \"https://x.example/\" (expected \"*\" or \"https://host[:port]\")"},
        {ROUTE("'cors': {'origins': ['https://x.example:0']}"),
         "c.json: routes[0].cors.origins[0]: invalid origin \"https://x.example:0\" (expected \"*\" or \"https://host[:port]\")"},
        {ROUTE("'cors': {'methods': ['GET', 'GE T']}"), "c.json: routes[0].cors.methods[1]: invalid method \"GE T\""},
        {ROUTE("'cors': {'max_age_s': -1}"), "c.json: routes[0].cors.max_age_s: must not be negative"},
    };

    (void)state;
    expect_rules(rules, sizeof(rules) / sizeof(rules[0]));
}

static void
test_rules_rate_limits(void **state)
{
    static const struct rule rules[] = {
        {"{'rate_limits': {'r': {'key': 'ip', 'rate': 1}}}", "c.json: rate_limits.r.key: invalid value \"ip\""
         " (expected one of client_ip, route, country, header:NAME)"},
        {"{'rate_limits': {'r': {'key': 'header:X Y', 'rate': 1}}}", "c.json: rate_limits.r.key: invalid value"
         " \"header:X Y\" (expected one of client_ip, route, country, header:NAME)"},
        {"{'rate_limits': {'r': {'key': 'country', 'rate': 1}}}",
         "c.json: rate_limits.r.key: country rules need geoip.database"},
        {"{'rate_limits': {'r': {}}}", "c.json: rate_limits.r.rate: is required"},
        {"{'rate_limits': {'r': {'rate': 0}}}", "c.json: rate_limits.r.rate: must be at least 1"},
        {"{'rate_limits': {'r': {'rate': 1, 'per_ms': 0}}}", "c.json: rate_limits.r.per_ms: must be at least 1 ms"},
        {"{'rate_limits': {'r': {'rate': 1, 'burst': -1}}}", "c.json: rate_limits.r.burst: must not be negative"},
        {"{'rate_limits': {'r': {'rate': 1, 'store': 'redis'}}}",
         "c.json: rate_limits.r.store: store \"redis\" needs a \"redis\" section"},
        {"{'rate_limits': {'r': {'rate': 1, 'store': 'memcached'}}}",
         "c.json: rate_limits.r.store: invalid value \"memcached\" (expected one of local, redis)"},
        {"{'rate_limits': {'r': {'rate': 1, 'headers': 'ietf'}}}",
         "c.json: rate_limits.r.headers: invalid value \"ietf\" (expected one of legacy, draft, both, none)"},
        {"{'rate_limits': {'r!': {'rate': 1}}}",
         "c.json: rate_limits.r!: invalid name \"r!\" (allowed: letters, digits, '_', '.', '-')"},
        {"{'rate_limits': {'r': {'rate': '5'}}}", "c.json: rate_limits.r.rate: expected an integer"},
    };
    struct sy_conf *conf;

    (void)state;
    expect_rules(rules, sizeof(rules) / sizeof(rules[0]));
    conf = load_ok("{'rate_limits': {'r': {'rate': 10, 'per_s': 60, 'key': 'route'}}}");
    assert_int_equal(conf->rate_limits[0].per_ms, 60000);
    assert_int_equal(conf->rate_limits[0].key, SY_RL_KEY_ROUTE);
    sy_conf_unref(conf);
}

/* SPEC.md "Configuration" example, verbatim */
static const char spec_example[] =
    "{\n"
    "  'workers': 'auto',\n"
    "  'shutdown_timeout_ms': 30000,\n"
    "  'listen': [\n"
    "    {'addr': '0.0.0.0:8080'},\n"
    "    {'addr': '0.0.0.0:8443', 'http2': true,\n"
    "     'tls': {'certificates': [{'cert': 'conf/tls/site.pem', 'key': 'conf/tls/site.key'}]}}\n"
    "  ],\n"
    "  'limits': {\n"
    "    'max_connections': 10000, 'max_connections_per_ip': 0,\n"
    "    'max_header_bytes': 16384, 'max_headers': 100, 'max_body_bytes': 104857600,\n"
    "    'client_header_timeout_ms': 10000, 'client_body_timeout_ms': 60000,\n"
    "    'keepalive_timeout_ms': 5000\n"
    "  },\n"
    "  'trusted_proxies': ['127.0.0.1/32'],\n"
    "  'admin': {'listen': '127.0.0.1:9901', 'token_file': 'conf/admin.token'},\n"
    "  'pools': {\n"
    "    'app-blue': {\n"
    "      'instances': [{'addr': '127.0.0.1:9001', 'weight': 1}, {'addr': '127.0.0.1:9002'}],\n"
    "      'balance': 'round_robin',\n"
    "      'keepalive': 64,\n"
    "      'connect_timeout_ms': 1000, 'read_timeout_ms': 30000,\n"
    "      'retries': 1,\n"
    "      'health': {'path': '/health', 'interval_ms': 2000, 'timeout_ms': 1000,\n"
    "                 'rise': 2, 'fall': 3, 'expect_status': '200-399'},\n"
    "      'passive': {'max_fails': 5, 'eject_ms': 30000}\n"
    "    },\n"
    "    'app-green': {'instances': [{'addr': '127.0.0.1:9011'}, {'addr': '127.0.0.1:9012'}]}\n"
    "  },\n"
    "  'services': {\n"
    "    'app': {\n"
    "      'blue': 'app-blue', 'green': 'app-green', 'active': 'blue',\n"
    "      'canary': {'weight': 0, 'sticky': 'cookie', 'force_header': 'X-Canary'},\n"
    "      'rollout': {\n"
    "        'steps': [5, 25, 50, 100], 'step_interval_s': 60, 'min_requests': 100,\n"
    "        'rollback': {'max_error_rate': 0.10, 'max_p95_ms': 5000, 'max_p95_ratio': 2.5}\n"
    "      },\n"
    "      'scaling': {'max_p95_ms': 2000, 'max_queue': 100, 'max_error_rate': 0.05}\n"
    "    }\n"
    "  },\n"
    "  'routes': [\n"
    "    {'host': '*', 'path': '/', 'service': 'app', 'rate_limit': 'per-ip',\n"
    "     'https_redirect': false, 'compress': true,\n"
    "     'headers': {'response': {'set': {'Strict-Transport-Security': 'max-age=31536000'}, 'remove': ['Server']},\n"
    "                 'request': {'set': {}, 'remove': []}},\n"
    "     'cors': {'origins': ['https://app.example.com'], 'methods': ['GET', 'POST'], 'max_age_s': 600}}\n"
    "  ],\n"
    "  'rate_limits': {\n"
    "    'per-ip': {'key': 'client_ip', 'rate': 100, 'per_ms': 1000, 'burst': 200, 'store': 'local'}\n"
    "  },\n"
    "  'access': {'allow': [], 'deny': [], 'deny_countries': []},\n"
    "  'geoip': {'database': 'data/GeoLite2-Country.mmdb'},\n"
    "  'redis': {'url': 'redis://127.0.0.1:6379/0', 'key_prefix': 'switchyard:', 'on_failure': 'allow'},\n"
    "  'log': {'access': 'logs/access.log', 'security': 'logs/security.log',\n"
    "          'error': 'logs/error.log', 'level': 'info'},\n"
    "  'state_file': 'state/switchyard-state.json'\n"
    "}\n";

static void
test_spec_example(void **state)
{
    struct sy_conf *conf;

    (void)state;
    if (system("mkdir -p conf/tls data") != 0)
        fail_msg("mkdir");
    write_file("conf/tls/site.pem", "cert");
    write_file("conf/tls/site.key", "key");
    write_file("conf/admin.token", "# tokens\nsecret-1\n");
    write_file("data/GeoLite2-Country.mmdb", "mmdb");
    conf = load_ok(spec_example);
    assert_int_equal(conf->nlisten, 2);
    assert_true(conf->listen[1].tls);
    assert_true(conf->listen[1].http2);
    assert_int_equal(conf->listen[1].ncerts, 1);
    assert_string_equal(conf->listen[1].certs[0].key, "conf/tls/site.key");
    assert_int_equal(conf->admin.ntokens, 1);
    assert_int_equal(conf->npools, 2);
    assert_string_equal(conf->pools[1].name, "app-green");
    assert_true(conf->pools[0].health.enabled);
    assert_false(conf->pools[1].health.enabled);
    assert_int_equal(conf->services[0].canary.sticky, SY_STICKY_COOKIE);
    assert_int_equal(conf->services[0].rollout.step_interval_ms, 60000);
    assert_true(conf->routes[0].compress);
    assert_int_equal(conf->routes[0].response_headers.nset, 1);
    assert_int_equal(conf->routes[0].cors.max_age_ms, 600000);
    assert_int_equal(conf->rate_limits[0].burst, 200);
    assert_true(conf->redis.enabled);
    assert_string_equal(conf->state_file, "state/switchyard-state.json");
    sy_conf_unref(conf);
}

/* The shipped example must load with no other file present. */
static void
test_repository_example(void **state)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;
    char path[8192];

    (void)state;
    snprintf(path, sizeof(path), "%s/conf/switchyard.json", orig_dir);
    if (load_env(path, NULL, NULL, &conf, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            print_error("%s\n", errs.lines[i]);
        fail_msg("conf/switchyard.json refused");
    }
    assert_string_equal(conf->listen[0].addr.text, "0.0.0.0:8080");
    assert_string_equal(conf->admin.listen.text, "127.0.0.1:9901");
    assert_int_equal(conf->npools, 2);
    assert_int_equal(conf->pools[0].ninstances, 2);
    assert_true(conf->pools[1].health.enabled);
    assert_string_equal(conf->services[0].name, "app");
    assert_int_equal(conf->nroutes, 1);
    assert_int_equal(conf->nrate_limits, 1);
    assert_string_equal(conf->log.access, "logs/access.log");
    assert_string_equal(conf->state_file, "state/switchyard-state.json");
    sy_conf_unref(conf);
}

static void
test_https_redirect_with_tls(void **state)
{
    struct sy_conf *conf;

    (void)state;
    write_file("site.pem", "cert");
    conf = load_ok("{" POOL ", " SVC ", 'listen': [{'addr': '127.0.0.1:8080'}, {'addr': '127.0.0.1:8443',"
                   " 'http2': false, 'tls': {'certificates': [{'cert': 'site.pem', 'key': 'site.pem'}]}}],"
                   " 'routes': [{'service': 's', 'https_redirect': true}]}");
    assert_true(conf->routes[0].https_redirect);
    assert_false(conf->listen[1].http2);
    sy_conf_unref(conf);
}

static void
test_refcount(void **state)
{
    struct sy_conf *conf = load_ok("{" POOL ", " SVC "}");

    (void)state;
    /* stands in for sy_balance_prepare(): freed with the snapshot */
    conf->pools[0].balance_state = malloc(64);
    assert_ptr_equal(sy_conf_ref(conf), conf);
    assert_int_equal(atomic_load(&conf->refs), 2);
    sy_conf_unref(conf);
    assert_int_equal(atomic_load(&conf->refs), 1);
    sy_conf_unref(conf);        /* frees; ASan reports any leak */
    sy_conf_unref(NULL);
}

static void
test_errors_appended(void **state)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;

    (void)state;
    write_file("c.json", "{'workers': 0}");
    assert_int_equal(load_env("c.json", NULL, NULL, &conf, &errs), -1);
    assert_int_equal(load_env("c.json", NULL, NULL, &conf, NULL), -1);
    assert_int_equal(errs.count, 1);
    sy_conf_errors_free(&errs);
    assert_int_equal(errs.count, 0);
    assert_null(errs.lines);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_uri_limit_follows_small_head_limit),
        cmocka_unit_test(test_token_file_must_be_regular),
        cmocka_unit_test(test_error_lines_escape_controls),
        cmocka_unit_test(test_object_defaults),
        cmocka_unit_test(test_health_defaults),
        cmocka_unit_test(test_stored_values),
        cmocka_unit_test(test_merge_layers),
        cmocka_unit_test(test_overlay_from_environment),
        cmocka_unit_test(test_overlay_missing),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_env_vars),
        cmocka_unit_test(test_env_var_errors),
        cmocka_unit_test(test_token_file),
        cmocka_unit_test(test_admin_loopback),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_several_errors),
        cmocka_unit_test(test_rules_top),
        cmocka_unit_test(test_rules_access),
        cmocka_unit_test(test_rules_pools),
        cmocka_unit_test(test_rules_health),
        cmocka_unit_test(test_rules_services),
        cmocka_unit_test(test_rules_routes),
        cmocka_unit_test(test_rules_rate_limits),
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_repository_example),
        cmocka_unit_test(test_https_redirect_with_tls),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_errors_appended),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
