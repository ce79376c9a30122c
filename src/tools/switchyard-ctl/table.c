/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * table.c: human output. A table is cells added row by row, printed with
 * each column as wide as its widest cell; colour codes are written around
 * the padded text so that they never count in a width. Also the readers
 * of the gateway's JSON that turn a missing field into "-".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

struct cell {
    char *text;
    enum ctl_color color;
};

/* Owned by the command that made it; ctl_table_free frees every cell. */
struct ctl_table {
    int ncols;
    size_t ncells, cap;
    struct cell *cells;
};

static const char *const color_codes[] = {
    [CTL_PLAIN] = "", [CTL_GREEN] = "\033[32m", [CTL_YELLOW] = "\033[33m",
    [CTL_RED] = "\033[31m", [CTL_BOLD] = "\033[1m",
};

struct ctl_table *ctl_table_new(int ncols)
{
    struct ctl_table *t = calloc(1, sizeof(*t));

    if (t)
        t->ncols = ncols;
    return t;
}

void ctl_table_add(struct ctl_table *t, enum ctl_color color, const char *fmt, ...)
{
    va_list ap;
    char *text = NULL;

    if (t == NULL)
        return;
    if (t->ncells == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        struct cell *cells = realloc(t->cells, cap * sizeof(*cells));

        if (cells == NULL)
            return;
        t->cells = cells;
        t->cap = cap;
    }
    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL;
    va_end(ap);
    t->cells[t->ncells++] = (struct cell){text ? text : strdup("?"), color};
}

void ctl_table_print(struct ctl_table *t, const struct ctl *ctl)
{
    size_t *width;

    if (t == NULL || (width = calloc((size_t)t->ncols, sizeof(*width))) == NULL)
        return;
    for (size_t i = 0; i < t->ncells; i++) {
        size_t len = t->cells[i].text ? strlen(t->cells[i].text) : 0;

        if (len > width[i % t->ncols])
            width[i % t->ncols] = len;
    }
    for (size_t i = 0; i < t->ncells; i++) {
        const struct cell *c = &t->cells[i];
        int col = (int)(i % t->ncols);
        int last = col == t->ncols - 1 || i + 1 == t->ncells;
        enum ctl_color color = i < (size_t)t->ncols ? CTL_BOLD : c->color;
        const char *text = c->text ? c->text : "";

        if (ctl->color && color != CTL_PLAIN)
            printf("%s%s\033[0m", color_codes[color], text);
        else
            fputs(text, stdout);
        if (last)
            putchar('\n');
        else
            printf("%*s", (int)(width[col] - strlen(text) + 2), "");
    }
    free(width);
}

void ctl_table_free(struct ctl_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i].text);
    free(t->cells);
    free(t);
}

const char *ctl_str(const json_t *obj, const char *key, const char *fallback)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : fallback;
}

long long ctl_int(const json_t *obj, const char *key, long long fallback)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_integer(v) ? (long long)json_integer_value(v) : fallback;
}

enum ctl_color ctl_state_color(const char *state)
{
    if (strcmp(state, "up") == 0)
        return CTL_GREEN;
    if (strcmp(state, "down") == 0)
        return CTL_RED;
    if (strcmp(state, "ejected") == 0 || strcmp(state, "drained") == 0 ||
        strcmp(state, "unknown") == 0)
        return CTL_YELLOW;
    return CTL_PLAIN;
}

/* "2024-05-01T12:00:00.123Z" (or without the fraction) as epoch ms. */
static int parse_rfc3339_ms(const char *s, long long *ms)
{
    struct tm tm = {0};
    int frac = 0, used = 0;
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);

    if (rest == NULL)
        return -1;
    if (rest[0] == '.') {
        int digits = 0;

        for (rest++; *rest >= '0' && *rest <= '9'; rest++, used++)
            if (digits < 3) {
                frac = frac * 10 + (*rest - '0');
                digits++;
            }
        if (used == 0)
            return -1;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0)
        return -1;
    *ms = (long long)timegm(&tm) * 1000 + frac;
    return 0;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void duration(long long s, char *buf, size_t n)
{
    if (s < 60)
        snprintf(buf, n, "%llds", s);
    else if (s < 3600)
        snprintf(buf, n, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, n, "%lldh%02lldm", s / 3600, s / 60 % 60);
    else
        snprintf(buf, n, "%lldd%02lldh", s / 86400, s / 3600 % 24);
}

void ctl_ago(const char *rfc3339, char *buf, size_t n)
{
    long long at;

    if (parse_rfc3339_ms(rfc3339, &at) < 0) {
        snprintf(buf, n, "%s", rfc3339);
        return;
    }
    long long s = (now_ms() - at) / 1000;

    /* a clock a little ahead of ours is "now", not "in 1s" */
    duration(s < 0 ? 0 : s, buf, n);
    snprintf(buf + strlen(buf), n - strlen(buf), " ago");
}

long long ctl_seconds_until(const char *rfc3339)
{
    long long at;

    if (parse_rfc3339_ms(rfc3339, &at) < 0)
        return 0;
    return (at - now_ms() + 999) / 1000;
}

void ctl_duration(long long seconds, char *buf, size_t n)
{
    duration(seconds, buf, n);
}
