/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * html_svg.h: the --html page's charts (html_svg.c), each an inline <svg> in a <figure>, for
 * html.c's sections. Both tolerate any shape of their part of the document.
 */
#ifndef LS_HTML_SVG_H
#define LS_HTML_SVG_H

#include <jansson.h>

#include "html_page.h"

/* overview.duration_buckets: one bar per bucket. */
void lsh_chart_buckets(struct lsh_page *pg, const json_t *buckets);
/* The timeline section: its meta line, then the counts chart and the p95 chart. On a failed
 * allocation, pg->err is ENOMEM. */
void lsh_render_timeline(struct lsh_page *pg, const json_t *timeline);

#endif
