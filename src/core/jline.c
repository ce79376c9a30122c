/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * jline.c: a small writer of one JSON line into a caller's buffer, for
 * the logs: no JSON library and no allocation on the request path.
 */
#include <string.h>

#include "jline.h"

void sy_jl_put(struct sy_jline *l, const char *s, size_t n)
{
    if ((size_t)(l->end - l->p) < n) {
        l->overflow = true;
        return;
    }
    memcpy(l->p, s, n);
    l->p += n;
}

/* Length of a valid UTF-8 sequence at s (RFC 3629), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] >= 0xc2 && s[0] <= 0xdf && n >= 2 && (s[1] & 0xc0) == 0x80)
        return 2;
    if (s[0] >= 0xe0 && s[0] <= 0xef && n >= 3 && (s[1] & 0xc0) == 0x80 &&
        (s[2] & 0xc0) == 0x80) {
        unsigned cp = (s[0] & 0x0fu) << 12 | (s[1] & 0x3fu) << 6 | (s[2] & 0x3fu);
        return cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff) ? 3 : 0;
    }
    if (s[0] >= 0xf0 && s[0] <= 0xf4 && n >= 4 && (s[1] & 0xc0) == 0x80 &&
        (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80) {
        unsigned cp = (s[0] & 0x07u) << 18 | (s[1] & 0x3fu) << 12 | (s[2] & 0x3fu) << 6 |
                      (s[3] & 0x3fu);
        return cp >= 0x10000 && cp <= 0x10ffff ? 4 : 0;
    }
    return 0;
}

/* JSON string contents (no quotes); bytes that are not valid UTF-8 become U+FFFD. */
void sy_jl_escaped(struct sy_jline *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;

    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '"' && u[run] != '\\')
            run++;
        sy_jl_put(l, s + i, run - i);
        if (run == n)
            break;
        i = run;
        if (u[i] == '"' || u[i] == '\\') {
            char esc[2] = {'\\', (char)u[i]};
            sy_jl_put(l, esc, 2);
            i++;
        } else if (u[i] < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[u[i] >> 4], hex[u[i] & 15]};
            sy_jl_put(l, esc, 6);
            i++;
        } else {
            size_t k = utf8_len(u + i, n - i);
            if (k) {
                sy_jl_put(l, s + i, k);
                i += k;
            } else {
                SY_JL_LIT(l, "\\ufffd");
                i++;
            }
        }
    }
}

void sy_jl_str(struct sy_jline *l, const char *s, size_t n)
{
    SY_JL_LIT(l, "\"");
    sy_jl_escaped(l, s, n);
    SY_JL_LIT(l, "\"");
}

void sy_jl_cstr(struct sy_jline *l, const char *s)
{
    sy_jl_str(l, s ? s : "", s ? strlen(s) : 0);
}

/* Decimal digits by hand: snprintf costs more than the rest of the line. */
void sy_jl_uint(struct sy_jline *l, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sy_jl_put(l, tmp + i, sizeof(tmp) - i);
}

/* Milliseconds with microsecond precision, as "12.345". */
void sy_jl_ms(struct sy_jline *l, int64_t us)
{
    if (us < 0)
        us = 0;
    sy_jl_uint(l, (uint64_t)us / 1000);
    char frac[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                    (char)('0' + us % 10)};
    sy_jl_put(l, frac, 4);
}
