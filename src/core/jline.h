/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * jline.h: writes one JSON line into a fixed buffer. A write that does not
 * fit sets overflow and writes nothing; the caller drops the line.
 */
#ifndef SY_JLINE_H
#define SY_JLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sy_jline {
    char *p;
    char *end;
    bool overflow;
};

void sy_jl_put(struct sy_jline *l, const char *s, size_t n);
#define SY_JL_LIT(l, lit) sy_jl_put((l), (lit), sizeof(lit) - 1)

/* JSON string contents (no quotes); bytes that are not valid UTF-8 become U+FFFD. */
void sy_jl_escaped(struct sy_jline *l, const char *s, size_t n);
/* A quoted, escaped string; NULL writes "". */
void sy_jl_str(struct sy_jline *l, const char *s, size_t n);
void sy_jl_cstr(struct sy_jline *l, const char *s);
void sy_jl_uint(struct sy_jline *l, uint64_t v);
/* Milliseconds with microsecond precision, as 12.345. */
void sy_jl_ms(struct sy_jline *l, int64_t us);

#endif
