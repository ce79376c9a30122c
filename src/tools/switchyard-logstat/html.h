/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * html.h: switchyard-logstat's --html output: the report document (the one
 * --json prints, docs/logstat.md) as one self-contained HTML page, with the
 * timeline and the latency distribution drawn as inline SVG.
 */
#ifndef LS_HTML_H
#define LS_HTML_H

#include <stdio.h>

#include <jansson.h>

/* Writes the report document as one self-contained HTML page: no script and
 * no external resource. Sections absent from the document are left out; a
 * missing or mistyped field shows as a dash. Returns 0, or -1 with errno set
 * when writing failed (the page is then incomplete). */
int ls_html_write(FILE *out, const json_t *report);

#endif
