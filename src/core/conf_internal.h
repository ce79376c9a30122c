/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_internal.h: what the conf_*.c files share: the validation context
 * that collects every error as "FILE: JSON.PATH: message", typed getters
 * that report wrong types and ranges themselves, and each section parser.
 * Not for use outside src/core/conf*.c.
 */
#ifndef SY_CONF_INTERNAL_H
#define SY_CONF_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "conf.h"

#define CONF_PATH_MAX 512

struct conf_ctx {
    const char *file;               /* the -c file, first on every line */
    struct sy_conf_errors *errs;
    struct sy_conf *conf;           /* being filled */
};

/* conf_layers.c: layers 1-4 merged into one document, or NULL */
json_t *sy_conf_layers_load(struct conf_ctx *ctx, const struct sy_conf_source *src);
int sy_conf_read_tokens(struct conf_ctx *ctx, struct sy_admin *admin);

/* conf_value.c: errors, paths and typed values */
void conf_err(struct conf_ctx *ctx, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void conf_err_raw(struct conf_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *conf_path(char *buf, const char *base, const char *key);
const char *conf_path_index(char *buf, const char *base, size_t i);
bool conf_object(struct conf_ctx *ctx, const json_t *obj, const char *path,
                 const char *const *keys);
/* an object of free-form names (pools, services, rate_limits) */
bool conf_map(struct conf_ctx *ctx, const json_t *map, const char *path);
bool conf_int(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
              int64_t lo, int64_t hi, int64_t *out);
bool conf_int32(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
                int lo, int hi, int *out);
bool conf_duration(struct conf_ctx *ctx, const json_t *obj, const char *path,
                   const char *key_ms, int64_t lo_ms, int64_t *out_ms);
bool conf_double(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
                 double lo, double hi, bool lo_open, double *out);
bool conf_bool(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
               bool *out);
const char *conf_string(struct conf_ctx *ctx, const json_t *obj, const char *path,
                        const char *key);
bool conf_strdup(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
                 char **out);
bool conf_enum(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
               const char *const *names, int *out);
bool conf_required(struct conf_ctx *ctx, const json_t *obj, const char *path,
                   const char *key);
bool conf_readable(struct conf_ctx *ctx, const char *path, const char *file);
bool conf_addr(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
               struct sy_addr *out);
char *conf_dup(struct conf_ctx *ctx, const char *s);
void *conf_calloc(struct conf_ctx *ctx, size_t n, size_t size);
bool conf_is_token(const char *s);
bool conf_is_name(const char *s);
bool conf_name(struct conf_ctx *ctx, const char *path, const char *name);
size_t conf_array(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
                  json_t **out);
bool conf_strings(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
                  char ***out, size_t *n);
bool conf_cidrs(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
                struct sy_cidr **out, size_t *n);

/* section parsers, each filling ctx->conf from the merged document */
void conf_parse_main(struct conf_ctx *ctx, const json_t *root);    /* conf_parse.c */
void conf_parse_admin(struct conf_ctx *ctx, const json_t *root);
void conf_parse_pools(struct conf_ctx *ctx, const json_t *root);   /* conf_pools.c */
void conf_parse_services(struct conf_ctx *ctx, const json_t *root);
void conf_parse_rate_limits(struct conf_ctx *ctx, const json_t *root);  /* conf_routes.c */
void conf_parse_routes(struct conf_ctx *ctx, const json_t *root);

#endif
