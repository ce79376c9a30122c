/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_conf.c: libFuzzer target for sy_conf_load. The input is the -c file,
 * optionally followed by "\n--overlay--\n" and the ENV overlay file, and by
 * "\n--env--\n" and SWITCHYARD__ variables, one "A__B=value" a line. A load
 * must succeed with no error line or fail with at least one, free all it
 * allocated (LeakSanitizer), and a snapshot must hold together.
 */
#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OVERLAY_SEP "\n--overlay--\n"
#define ENV_SEP     "\n--env--\n"
#define ENV_PREFIX  "SWITCHYARD__"
#define MAX_VARS    32

/*
 * Replaces the C library's for the loader's addresses: numeric hosts and
 * "localhost" only, so that the fuzzer never sends random names to a DNS
 * server, and a run neither waits on nor depends on the network.
 */
int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
            struct addrinfo **res)
{
    static __typeof__(getaddrinfo) *real;
    struct addrinfo h = {0};

    if (real == NULL
        && (real = (__typeof__(getaddrinfo) *)dlsym(RTLD_NEXT, "getaddrinfo")) == NULL)
        abort();
    if (hints != NULL)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    if (node != NULL && strcmp(node, "localhost") == 0)
        node = "127.0.0.1";
    return real(node, service, &h, res);
}

/* The -c file and its overlay: written for every input, removed at exit. */
static char dir[64];
static char main_file[96];
static char overlay_file[96];

static void
remove_files(void)
{
    unlink(main_file);
    unlink(overlay_file);
    rmdir(dir);
}

/*
 * In /dev/shm when there is one: on a disk file system (ext4), rewriting a
 * truncated file forces a write to the device and would make every run slow.
 */
static void
make_dir(void)
{
    const char *tmp = getenv("TMPDIR");

    if (access("/dev/shm", W_OK) == 0)
        tmp = "/dev/shm";
    else if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 32)
        tmp = "/tmp";
    snprintf(dir, sizeof(dir), "%s/sy-fuzz-conf-XXXXXX", tmp);
    if (mkdtemp(dir) == NULL) {
        perror("fuzz_conf: mkdtemp");
        abort();
    }
    snprintf(main_file, sizeof(main_file), "%s/switchyard.json", dir);
    snprintf(overlay_file, sizeof(overlay_file), "%s/switchyard.fuzz.json", dir);
    atexit(remove_files);
}

static void
write_file(const char *name, const uint8_t *data, size_t size)
{
    FILE *fp = fopen(name, "w");

    if (fp == NULL || (size > 0 && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0) {
        perror(name);
        abort();
    }
}

static const uint8_t *
find(const uint8_t *data, size_t size, const char *sep)
{
    return memmem(data, size, sep, strlen(sep));
}

/* One environ entry per line of the variables part, each given the prefix. */
static size_t
make_environ(const uint8_t *p, size_t size, char **vars)
{
    const uint8_t *end = p + size;
    size_t n = 0;

    while (p < end && n < MAX_VARS) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl != NULL ? nl : end) - p);
        char *var = malloc(strlen(ENV_PREFIX) + len + 1);

        if (var == NULL)
            abort();
        memcpy(var, ENV_PREFIX, strlen(ENV_PREFIX));
        memcpy(var + strlen(ENV_PREFIX), p, len);
        var[strlen(ENV_PREFIX) + len] = '\0';
        vars[n++] = var;
        p += len + 1;
    }
    vars[n] = NULL;
    return n;
}

/* Every error line starts with the name of the file it is about (SPEC.md). */
static void
check_errors(const struct sy_conf_errors *errs, bool overlay)
{
    size_t mlen = strlen(main_file), olen = strlen(overlay_file);

    for (size_t i = 0; i < errs->count; i++) {
        const char *line = errs->lines[i];

        if (line == NULL)
            abort();
        if (!(strncmp(line, main_file, mlen) == 0 && line[mlen] == ':')
            && !(overlay && strncmp(line, overlay_file, olen) == 0 && line[olen] == ':'))
            abort();
    }
}

static bool
in_array(const void *p, const void *base, size_t n, size_t elem)
{
    const char *c = p, *b = base;

    return c >= b && c < b + n * elem && (size_t)(c - b) % elem == 0;
}

static void
check_pools(const struct sy_conf *conf)
{
    for (size_t i = 0; i < conf->npools; i++) {
        const struct sy_pool *pool = &conf->pools[i];

        if (pool->index != i || pool->name == NULL || pool->ninstances == 0
            || sy_conf_pool(conf, pool->name) != pool)
            abort();
        for (size_t j = 0; j < pool->ninstances; j++) {
            const struct sy_instance *inst = &pool->instances[j];

            if (inst->index != j || inst->weight < 1 || inst->live == NULL)
                abort();
        }
    }
    for (size_t i = 0; i < conf->nservices; i++) {
        const struct sy_service *svc = &conf->services[i];

        if (svc->index != i || svc->name == NULL || sy_conf_service(conf, svc->name) != svc
            || svc->canary.weight < 0 || svc->canary.weight > 100)
            abort();
        for (int s = SY_SLOT_BLUE; s <= SY_SLOT_GREEN; s++) {
            if (!in_array(svc->slot_pool[s], conf->pools, conf->npools, sizeof(*conf->pools)))
                abort();
        }
    }
}

static void
check_routes(const struct sy_conf *conf)
{
    for (size_t i = 0; i < conf->nroutes; i++) {
        const struct sy_route *r = &conf->routes[i];

        if (r->index != i || r->host == NULL || r->path == NULL || r->path[0] != '/'
            || r->path_len != strlen(r->path)
            || !in_array(r->service, conf->services, conf->nservices, sizeof(*conf->services)))
            abort();
        if (r->rate_limit != NULL && !in_array(r->rate_limit, conf->rate_limits,
                                               conf->nrate_limits, sizeof(*conf->rate_limits)))
            abort();
    }
    for (size_t i = 0; i < conf->nrate_limits; i++) {
        if (conf->rate_limits[i].index != i || conf->rate_limits[i].name == NULL)
            abort();
    }
}

static void
check_conf(const struct sy_conf *conf)
{
    if (conf->workers < 1 || conf->nlisten < 1 || conf->file == NULL
        || strcmp(conf->file, main_file) != 0 || !json_is_object(conf->json)
        || atomic_load(&conf->refs) != 1)
        abort();
    check_pools(conf);
    check_routes(conf);
}

/* Loads with an error list; when again, once more without one: same outcome. */
static void
load(const struct sy_conf_source *src, bool overlay, bool again)
{
    struct sy_conf_errors errs = {0};
    struct sy_conf *conf = NULL;
    int rc = sy_conf_load(src, &conf, &errs);

    if (rc == 0) {
        if (conf == NULL || errs.count != 0)
            abort();
        check_conf(conf);
        if (sy_conf_ref(conf) != conf)
            abort();
        sy_conf_unref(conf);
        sy_conf_unref(conf);
    } else if (rc != -1 || conf != NULL || errs.count == 0) {
        abort();
    }
    check_errors(&errs, overlay);
    sy_conf_errors_free(&errs);
    if (again) {
        conf = NULL;
        if (sy_conf_load(src, &conf, NULL) != rc)
            abort();
        sy_conf_unref(conf);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *env = find(data, size, ENV_SEP), *ov;
    size_t files = env != NULL ? (size_t)(env - data) : size;
    char *vars[MAX_VARS + 1] = {NULL};
    struct sy_conf_source src = {.file = main_file, .env_name = "", .environ = vars};
    size_t nvars = 0;

    if (dir[0] == '\0')
        make_dir();
    ov = find(data, files, OVERLAY_SEP);
    write_file(main_file, data, ov != NULL ? (size_t)(ov - data) : files);
    if (ov != NULL) {
        ov += strlen(OVERLAY_SEP);
        write_file(overlay_file, ov, (size_t)(data + files - ov));
        src.env_name = "fuzz";
    }
    if (env != NULL) {
        env += strlen(ENV_SEP);
        nvars = make_environ(env, (size_t)(data + size - env), vars);
    }
    load(&src, ov != NULL, size % 8 == 0);
    for (size_t i = 0; i < nvars; i++)
        free(vars[i]);
    return 0;
}
