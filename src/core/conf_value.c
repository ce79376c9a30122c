/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_value.c: the checks every section shares. Each getter reports its own
 * error (wrong type, out of range) at the key's JSON path and returns false,
 * so a caller keeps its default and goes on: every error is collected.
 * Durations accept "X_ms" or "X_s" for any key named X_ms.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_internal.h"

/*
 * Keys and values come from the file as written: a control character in
 * one must not split an error line or reach a terminal, so it is shown as
 * \xHH.
 */
static char *
escape_controls(char *line)
{
    size_t n = 0, len;
    char *out, *q;

    if (line == NULL)
        return NULL;
    for (const char *p = line; *p; p++)
        n += ((unsigned char)*p < 0x20 || *p == 0x7f);
    if (n == 0)
        return line;
    len = strlen(line);
    out = malloc(len + 3 * n + 1);
    if (out != NULL) {
        q = out;
        for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
            if (*p < 0x20 || *p == 0x7f)
                q += sprintf(q, "\\x%02x", *p);
            else
                *q++ = (char)*p;
        }
        *q = '\0';
    }
    free(line);
    return out;
}

static void
add_line(struct conf_ctx *ctx, char *line)
{
    struct sy_conf_errors *errs = ctx->errs;

    line = escape_controls(line);
    char **lines = realloc(errs->lines, (errs->count + 1) * sizeof(*lines));

    if (line == NULL || lines == NULL) {
        /* keep what was collected; one line less is all we can do */
        free(line);
        if (lines != NULL)
            errs->lines = lines;
        return;
    }
    errs->lines = lines;
    errs->lines[errs->count++] = line;
}

void
conf_err_raw(struct conf_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    char *line = NULL;

    va_start(ap, fmt);
    if (vasprintf(&line, fmt, ap) < 0)
        line = NULL;
    va_end(ap);
    add_line(ctx, line);
}

void
conf_err(struct conf_ctx *ctx, const char *path, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    conf_err_raw(ctx, "%s: %s: %s", ctx->file, path, msg != NULL ? msg : "out of memory");
    free(msg);
}

/* A path longer than the buffer ends in "..." rather than silently cut. */
static const char *
mark_cut(char *buf, int n)
{
    if (n < 0 || n >= CONF_PATH_MAX)
        memcpy(buf + CONF_PATH_MAX - 4, "...", 4);
    return buf;
}

const char *
conf_path(char *buf, const char *base, const char *key)
{
    if (base[0] == '\0')
        return mark_cut(buf, snprintf(buf, CONF_PATH_MAX, "%s", key));
    return mark_cut(buf, snprintf(buf, CONF_PATH_MAX, "%s.%s", base, key));
}

const char *
conf_path_index(char *buf, const char *base, size_t i)
{
    return mark_cut(buf, snprintf(buf, CONF_PATH_MAX, "%s[%zu]", base, i));
}

static bool
has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* key itself is listed, or it is the other unit of a listed duration */
static bool
key_allowed(const char *key, const char *const *keys)
{
    char other[128];
    size_t n = strlen(key);

    other[0] = '\0';
    if (has_suffix(key, "_ms") && n < sizeof(other))
        snprintf(other, sizeof(other), "%.*s_s", (int)(n - 3), key);
    else if (has_suffix(key, "_s") && n + 1 < sizeof(other))
        snprintf(other, sizeof(other), "%.*s_ms", (int)(n - 2), key);
    for (; *keys != NULL; keys++) {
        if (strcmp(key, *keys) == 0 || (other[0] != '\0' && strcmp(other, *keys) == 0))
            return true;
    }
    return false;
}

bool
conf_object(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *const *keys)
{
    const char *key;
    json_t *value;
    char p[CONF_PATH_MAX];

    if (!json_is_object(obj)) {
        conf_err(ctx, path, "expected an object");
        return false;
    }
    json_object_foreach((json_t *)obj, key, value) {
        if (!key_allowed(key, keys))
            conf_err(ctx, conf_path(p, path, key), "unknown key");
    }
    return true;
}

bool
conf_map(struct conf_ctx *ctx, const json_t *map, const char *path)
{
    if (json_is_object(map))
        return true;
    conf_err(ctx, path, "expected an object");
    return false;
}

static bool
int_in_range(struct conf_ctx *ctx, const char *path, int64_t v, int64_t lo, int64_t hi)
{
    if (v >= lo && v <= hi)
        return true;
    if (hi != INT64_MAX)
        conf_err(ctx, path, "must be between %" PRId64 " and %" PRId64, lo, hi);
    else if (lo == 0)
        conf_err(ctx, path, "must not be negative");
    else
        conf_err(ctx, path, "must be at least %" PRId64, lo);
    return false;
}

bool
conf_int(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
         int64_t lo, int64_t hi, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    char p[CONF_PATH_MAX];

    if (v == NULL)
        return false;
    conf_path(p, path, key);
    if (!json_is_integer(v)) {
        conf_err(ctx, p, "expected an integer");
        return false;
    }
    if (!int_in_range(ctx, p, json_integer_value(v), lo, hi))
        return false;
    *out = json_integer_value(v);
    return true;
}

bool
conf_int32(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
           int lo, int hi, int *out)
{
    int64_t v;

    if (!conf_int(ctx, obj, path, key, lo, hi, &v))
        return false;
    *out = (int)v;
    return true;
}

/* One of the two units of a duration: a non-negative integer, in ms. */
static bool
duration_value(struct conf_ctx *ctx, const json_t *v, const char *path, int64_t scale,
               int64_t *out)
{
    if (!json_is_integer(v)) {
        conf_err(ctx, path, "expected an integer");
        return false;
    }
    if (json_integer_value(v) < 0) {
        conf_err(ctx, path, "must not be negative");
        return false;
    }
    if (json_integer_value(v) > INT64_MAX / scale) {
        conf_err(ctx, path, "too large");
        return false;
    }
    *out = json_integer_value(v) * scale;
    return true;
}

bool
conf_duration(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key_ms,
              int64_t lo_ms, int64_t *out_ms)
{
    char key_s[128], p[CONF_PATH_MAX];
    const json_t *ms = json_object_get(obj, key_ms), *s;
    int64_t value;

    snprintf(key_s, sizeof(key_s), "%.*s_s", (int)(strlen(key_ms) - 3), key_ms);
    s = json_object_get(obj, key_s);
    if (ms != NULL && s != NULL) {
        conf_err(ctx, conf_path(p, path, key_s), "conflicts with %s (give one of them)", key_ms);
        return false;
    }
    if (ms == NULL && s == NULL)
        return false;
    conf_path(p, path, ms != NULL ? key_ms : key_s);
    if (!duration_value(ctx, ms != NULL ? ms : s, p, ms != NULL ? 1 : 1000, &value))
        return false;
    if (value < lo_ms) {
        conf_err(ctx, p, "must be at least %" PRId64 " ms", lo_ms);
        return false;
    }
    *out_ms = value;
    return true;
}

bool
conf_double(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
            double lo, double hi, bool lo_open, double *out)
{
    const json_t *v = json_object_get(obj, key);
    char p[CONF_PATH_MAX];
    double d;

    if (v == NULL)
        return false;
    conf_path(p, path, key);
    if (!json_is_number(v)) {
        conf_err(ctx, p, "expected a number");
        return false;
    }
    d = json_number_value(v);
    if ((lo_open ? d <= lo : d < lo) || d > hi) {
        if (isinf(hi))
            conf_err(ctx, p, "must be greater than %g", lo);
        else
            conf_err(ctx, p, "must be between %g and %g", lo, hi);
        return false;
    }
    *out = d;
    return true;
}

bool
conf_bool(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key, bool *out)
{
    const json_t *v = json_object_get(obj, key);
    char p[CONF_PATH_MAX];

    if (v == NULL)
        return false;
    if (!json_is_boolean(v)) {
        conf_err(ctx, conf_path(p, path, key), "expected a boolean");
        return false;
    }
    *out = json_is_true(v);
    return true;
}

const char *
conf_string(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    char p[CONF_PATH_MAX];

    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        conf_err(ctx, conf_path(p, path, key), "expected a string");
        return NULL;
    }
    return json_string_value(v);
}

bool
conf_strdup(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
            char **out)
{
    const char *s = conf_string(ctx, obj, path, key);
    char *copy;

    if (s == NULL || (copy = conf_dup(ctx, s)) == NULL)
        return false;
    free(*out);
    *out = copy;
    return true;
}

static void
enum_error(struct conf_ctx *ctx, const char *path, const char *value, const char *const *names)
{
    char list[256] = "";
    size_t used = 0;

    for (size_t i = 0; names[i] != NULL && used < sizeof(list); i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                 i > 0 ? ", " : "", names[i]);
    conf_err(ctx, path, "invalid value \"%s\" (expected one of %s)", value, list);
}

bool
conf_enum(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
          const char *const *names, int *out)
{
    const char *s = conf_string(ctx, obj, path, key);
    char p[CONF_PATH_MAX];

    if (s == NULL)
        return false;
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    enum_error(ctx, conf_path(p, path, key), s, names);
    return false;
}

bool
conf_required(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key)
{
    char p[CONF_PATH_MAX];

    if (json_object_get(obj, key) != NULL)
        return true;
    conf_err(ctx, conf_path(p, path, key), "is required");
    return false;
}

bool
conf_readable(struct conf_ctx *ctx, const char *path, const char *file)
{
    struct stat st;

    if (access(file, R_OK) != 0 || stat(file, &st) != 0) {
        conf_err(ctx, path, "cannot read \"%s\": %s", file, strerror(errno));
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        conf_err(ctx, path, "cannot read \"%s\": %s", file, strerror(EISDIR));
        return false;
    }
    return true;
}

bool
conf_addr(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
          struct sy_addr *out)
{
    const char *s = conf_string(ctx, obj, path, key);
    char err[256], p[CONF_PATH_MAX];

    if (s == NULL)
        return false;
    if (sy_addr_parse(s, out, err, sizeof(err)) < 0) {
        conf_err(ctx, conf_path(p, path, key), "%s", err);
        return false;
    }
    return true;
}

char *
conf_dup(struct conf_ctx *ctx, const char *s)
{
    char *copy = strdup(s);

    if (copy == NULL)
        conf_err_raw(ctx, "%s: out of memory", ctx->file);
    return copy;
}

void *
conf_calloc(struct conf_ctx *ctx, size_t n, size_t size)
{
    void *p = calloc(n > 0 ? n : 1, size);

    if (p == NULL)
        conf_err_raw(ctx, "%s: out of memory", ctx->file);
    return p;
}

/* RFC 9110 section 5.6.2: token = 1*tchar */
bool
conf_is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')
              || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return false;
    }
    return true;
}

bool
conf_is_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')
              || *s == '_' || *s == '.' || *s == '-'))
            return false;
    }
    return true;
}

bool
conf_name(struct conf_ctx *ctx, const char *path, const char *name)
{
    if (conf_is_name(name))
        return true;
    conf_err(ctx, path, "invalid name \"%s\" (allowed: letters, digits, '_', '.', '-')", name);
    return false;
}

size_t
conf_array(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
           json_t **out)
{
    json_t *v = json_object_get(obj, key);
    char p[CONF_PATH_MAX];

    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_array(v)) {
        conf_err(ctx, conf_path(p, path, key), "expected an array");
        return 0;
    }
    *out = v;
    return json_array_size(v);
}

bool
conf_strings(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
             char ***out, size_t *n)
{
    json_t *arr, *v;
    size_t count = conf_array(ctx, obj, path, key, &arr), i;
    char base[CONF_PATH_MAX], p[CONF_PATH_MAX];

    if (arr == NULL || (*out = conf_calloc(ctx, count, sizeof(**out))) == NULL)
        return false;
    conf_path(base, path, key);
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v))
            conf_err(ctx, conf_path_index(p, base, i), "expected a string");
        else if (((*out)[*n] = conf_dup(ctx, json_string_value(v))) != NULL)
            (*n)++;
    }
    return true;
}

bool
conf_cidrs(struct conf_ctx *ctx, const json_t *obj, const char *path, const char *key,
           struct sy_cidr **out, size_t *n)
{
    json_t *arr, *v;
    size_t count = conf_array(ctx, obj, path, key, &arr), i;
    char base[CONF_PATH_MAX], p[CONF_PATH_MAX], err[128];

    if (arr == NULL || (*out = conf_calloc(ctx, count, sizeof(**out))) == NULL)
        return false;
    conf_path(base, path, key);
    json_array_foreach(arr, i, v) {
        conf_path_index(p, base, i);
        if (!json_is_string(v))
            conf_err(ctx, p, "expected a string");
        else if (sy_cidr_parse(json_string_value(v), &(*out)[*n], err, sizeof(err)) < 0)
            conf_err(ctx, p, "%s", err);
        else
            (*n)++;
    }
    return true;
}
