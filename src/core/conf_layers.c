/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_layers.c: layers 1-5 of SPEC.md "Configuration": built-in defaults,
 * the -c file, its ENV overlay, SWITCHYARD__A__B variables (merged with
 * RFC 7396 JSON merge patch), then admin.token_file. One twist to RFC 7396:
 * a later layer's "X_s" replaces an earlier layer's "X_ms" (and back), so
 * an overlay may restate a duration in the other unit without a conflict.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf_internal.h"

#define ENV_PREFIX "SWITCHYARD__"

/* Layer 1. Per-pool, per-service and per-route defaults live in the parsers. */
static const char defaults_json[] =
    "{\"workers\": \"auto\", \"shutdown_timeout_ms\": 30000,"
    " \"listen\": [{\"addr\": \"0.0.0.0:8080\"}],"
    " \"limits\": {\"max_connections\": 10000, \"max_connections_per_ip\": 0,"
    "   \"max_header_bytes\": 16384, \"max_headers\": 100,"
    "   \"max_body_bytes\": 104857600, \"client_header_timeout_ms\": 10000,"
    "   \"client_body_timeout_ms\": 60000, \"keepalive_timeout_ms\": 5000,"
    "   \"tunnel_idle_timeout_ms\": 600000},"
    " \"trusted_proxies\": [], \"admin\": {\"listen\": \"127.0.0.1:9901\"},"
    " \"pools\": {}, \"services\": {}, \"routes\": [], \"rate_limits\": {},"
    " \"log\": {\"level\": \"info\"}}";

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Removes from target the other unit of duration key, unless patch sets both. */
static void
drop_other_unit(json_t *target, const json_t *patch, const char *key)
{
    char other[256];
    size_t n = strlen(key);

    if (ends_with(key, "_ms") && n < sizeof(other))
        snprintf(other, sizeof(other), "%.*s_s", (int)(n - 3), key);
    else if (ends_with(key, "_s") && n + 1 < sizeof(other))
        snprintf(other, sizeof(other), "%.*s_ms", (int)(n - 2), key);
    else
        return;
    if (json_object_get(patch, other) == NULL)
        json_object_del(target, other);
}

/* RFC 7396 MergePatch(target, patch); takes target's reference, returns a new one. */
static json_t *
merge_patch(json_t *target, const json_t *patch)
{
    const char *key;
    json_t *value;

    if (!json_is_object(patch)) {
        json_decref(target);
        return json_deep_copy(patch);
    }
    if (!json_is_object(target)) {
        json_decref(target);
        target = json_object();
        if (target == NULL)
            return NULL;
    }
    json_object_foreach((json_t *)patch, key, value) {
        if (json_is_null(value)) {
            json_object_del(target, key);
            continue;
        }
        drop_other_unit(target, patch, key);
        json_object_set_new(target, key, merge_patch(json_incref(json_object_get(target, key)),
                                                     value));
    }
    return target;
}

/* A layer's file: one JSON object, or an error line naming file:line:column. */
static json_t *
read_layer(struct conf_ctx *ctx, const char *name)
{
    json_error_t e;
    json_t *doc;
    FILE *fp = fopen(name, "r");

    if (fp == NULL) {
        conf_err_raw(ctx, "%s: cannot open: %s", name, strerror(errno));
        return NULL;
    }
    doc = json_loadf(fp, JSON_REJECT_DUPLICATES, &e);
    fclose(fp);
    if (doc == NULL) {
        conf_err_raw(ctx, "%s:%d:%d: %s", name, e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        conf_err_raw(ctx, "%s: expected a JSON object at the top level", name);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* conf/switchyard.json + "prod" -> conf/switchyard.prod.json */
static char *
overlay_name(const char *file, const char *env)
{
    size_t base = strlen(file);
    char *name;

    if (ends_with(file, ".json"))
        base -= 5;
    if (asprintf(&name, "%.*s.%s.json", (int)base, file, env) < 0)
        return NULL;
    return name;
}

static json_t *
merge_file(struct conf_ctx *ctx, json_t *doc, const char *name)
{
    json_t *layer = read_layer(ctx, name);

    if (layer == NULL) {
        json_decref(doc);
        return NULL;
    }
    doc = merge_patch(doc, layer);
    json_decref(layer);
    return doc;
}

/* The child of node named by one lower-cased variable segment, or NULL. */
static json_t *
env_child(json_t *node, const char *seg, bool create)
{
    char *end;
    unsigned long i;

    if (json_is_array(node)) {
        i = strtoul(seg, &end, 10);
        if (!isdigit((unsigned char)seg[0]) || *end != '\0')
            return NULL;
        return json_array_get(node, i);
    }
    if (json_object_get(node, seg) == NULL && create)
        json_object_set_new(node, seg, json_object());
    return json_object_get(node, seg);
}

/* Sets the last segment of a variable's key in node (an object or array). */
static int
env_set(json_t *node, const char *seg, json_t *value)
{
    json_t *patch;

    if (json_is_object(node)) {
        patch = json_pack("{sO}", seg, value);
        if (patch == NULL)
            return -1;
        merge_patch(json_incref(node), patch);
        json_decref(node);
        json_decref(patch);
        return 0;
    }
    if (env_child(node, seg, false) == NULL)
        return -1;
    if (json_is_null(value))
        return json_array_remove(node, strtoul(seg, NULL, 10));
    return json_array_set_new(node, strtoul(seg, NULL, 10),
                              merge_patch(json_incref(env_child(node, seg, false)), value));
}

/* One SWITCHYARD__A__B=value; key is "a__b" lower-cased, at least one segment. */
static void
env_apply(struct conf_ctx *ctx, json_t *doc, const char *var, char *key, const char *text)
{
    json_error_t e;
    json_t *node = doc, *value;
    char *seg = key, *next;

    for (char *p = key; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    value = json_loads(text, JSON_DECODE_ANY, &e);
    if (value == NULL)
        value = json_string(text);
    for (; (next = strstr(seg, "__")) != NULL; seg = next + 2) {
        *next = '\0';
        if (*seg == '\0' || (node = env_child(node, seg, true)) == NULL
            || !(json_is_object(node) || json_is_array(node))) {
            conf_err_raw(ctx, "%s: %s: no object or array element \"%s\" to set a key in",
                         ctx->file, var, seg);
            json_decref(value);
            return;
        }
    }
    if (*seg == '\0' || value == NULL || env_set(node, seg, value) < 0)
        conf_err_raw(ctx, "%s: %s: cannot set \"%s\" (empty key, or no such array element)",
                     ctx->file, var, seg);
    json_decref(value);
}

static void
env_layer(struct conf_ctx *ctx, json_t *doc, char *const *environ)
{
    for (; environ != NULL && *environ != NULL; environ++) {
        const char *eq = strchr(*environ, '=');
        size_t plen = strlen(ENV_PREFIX);
        char *var, *key;

        if (eq == NULL || strncmp(*environ, ENV_PREFIX, plen) != 0)
            continue;
        var = strndup(*environ, (size_t)(eq - *environ));
        key = var != NULL ? strdup(var + plen) : NULL;
        if (key == NULL)
            conf_err_raw(ctx, "%s: out of memory", ctx->file);
        else
            env_apply(ctx, doc, var, key, eq + 1);
        free(var);
        free(key);
    }
}

json_t *
sy_conf_layers_load(struct conf_ctx *ctx, const struct sy_conf_source *src)
{
    const char *env = src->env_name != NULL ? src->env_name : getenv("SWITCHYARD_ENV");
    json_t *doc = json_loads(defaults_json, 0, NULL);
    char *overlay;

    doc = merge_file(ctx, doc, ctx->file);
    if (doc == NULL || env == NULL || env[0] == '\0') {
        if (doc != NULL)
            env_layer(ctx, doc, src->environ);
        return doc;
    }
    overlay = overlay_name(ctx->file, env);
    if (overlay == NULL) {
        conf_err_raw(ctx, "%s: out of memory", ctx->file);
        json_decref(doc);
        return NULL;
    }
    doc = merge_file(ctx, doc, overlay);
    free(overlay);
    if (doc != NULL)
        env_layer(ctx, doc, src->environ);
    return doc;
}

static char *
trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static int
add_token(struct sy_admin *admin, const char *token)
{
    char **tokens = realloc(admin->tokens, (admin->ntokens + 1) * sizeof(*tokens));

    if (tokens == NULL)
        return -1;
    admin->tokens = tokens;
    if ((tokens[admin->ntokens] = strdup(token)) == NULL)
        return -1;
    admin->ntokens++;
    return 0;
}

/* Layer 5: one token a line; blank lines and '#' comments skipped. */
/* Tokens are short; a bigger file is a mistake, not a token list. */
#define TOKEN_FILE_MAX (1 << 20)

int
sy_conf_read_tokens(struct conf_ctx *ctx, struct sy_admin *admin)
{
    struct stat st;
    FILE *fp = NULL;
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;

    /* A device or a FIFO would be read forever or block the start. */
    if (stat(admin->token_file, &st) == 0 && (!S_ISREG(st.st_mode) || st.st_size > TOKEN_FILE_MAX)) {
        conf_err(ctx, "admin.token_file", "\"%s\" is %s", admin->token_file,
                 S_ISREG(st.st_mode) ? "larger than 1 MiB" : "not a regular file");
        return -1;
    }
    fp = fopen(admin->token_file, "r");
    if (fp == NULL) {
        conf_err(ctx, "admin.token_file", "cannot read \"%s\": %s", admin->token_file,
                 strerror(errno));
        return -1;
    }
    while (rc == 0 && getline(&line, &cap, fp) != -1) {
        char *token = trim(line);

        if (token[0] != '\0' && token[0] != '#' && add_token(admin, token) < 0) {
            conf_err_raw(ctx, "%s: out of memory", ctx->file);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(fp)) {
        conf_err(ctx, "admin.token_file", "cannot read \"%s\": %s", admin->token_file,
                 strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(fp);
    return rc;
}
