/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * html_page.h: what html.c (the sections) and html_svg.c (the charts) share to write the
 * --html page: its output, the escaper every string from the document goes through, reads of
 * the document that tolerate any shape, and figures as text. A figure's text is already HTML.
 */
#ifndef LS_HTML_PAGE_H
#define LS_HTML_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define LSH_FMT 64                  /* size of a formatted figure */

/* The page being written, on ls_html_write's stack; out is the caller's. */
struct lsh_page {
    FILE *out;
    int err;                        /* errno of the first failed write; later output skipped */
};

/* ---- output and escaping ---- */

/* Our own markup, written as it is: never a string from the document. */
void lsh_put(struct lsh_page *pg, const char *s);
__attribute__((format(printf, 2, 3)))
void lsh_putf(struct lsh_page *pg, const char *fmt, ...);
/* A string from the document, as text or as an attribute value quoted either way. */
void lsh_esc(struct lsh_page *pg, const char *s);
/* The same, cut to at most max of its n bytes (at a UTF-8 boundary), then an ellipsis. */
void lsh_esc_cut(struct lsh_page *pg, const char *s, size_t n, size_t max);
size_t lsh_utf8_cut(const char *s, size_t n, size_t max);
/* A paragraph of ours saying that there is nothing to show. */
void lsh_none(struct lsh_page *pg, const char *what);

/* ---- reading the document: NULL, false or dflt for whatever is missing or mistyped ---- */

const json_t *lsh_get(const json_t *o, const char *key);
const char *lsh_str(const json_t *o, const char *key);
bool lsh_num(const json_t *o, const char *key, double *v);
double lsh_num_or(const json_t *o, const char *key, double dflt);
bool lsh_present(const json_t *v);
bool lsh_parse_ts(const char *s, double *ms);

/* ---- figures: into buf, LSH_FMT bytes, as HTML ("&lt;0.01%"); each returns buf ---- */

enum lsh_unit { LSH_COUNT, LSH_MS, LSH_RATE, LSH_BYTES, LSH_RPS };

const char *lsh_fmt_count(char *buf, double v);
const char *lsh_fmt_rate(char *buf, double r);
const char *lsh_fmt_unit(char *buf, enum lsh_unit unit, double v);

#endif
