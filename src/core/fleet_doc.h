/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fleet_doc.h: the two documents gateways exchange through Redis (fleet.h),
 * as JSON text: a service's shared state (the split, maintenance and the
 * rollout, with the version that orders changes), and one gateway's
 * figures for a rollout's step (requests, errors and the latency window of
 * both slots). Decoding is strict: a document that is not exactly right is
 * refused whole, with the reason, and changes nothing. Main thread.
 */
#ifndef SY_FLEET_DOC_H
#define SY_FLEET_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "deploy_state.h"
#include "metrics.h"

/* Longest document accepted (either kind): more is not ours. */
#define SY_FLEET_DOC_MAX 65536

/* A service's shared state, decoded. */
struct sy_fleet_doc {
    char service[256];
    int64_t version;                /* >= 1 */
    char by[128];                   /* the gateway that stored it ("" when not said) */
    int64_t at_ms;                  /* wall clock it was stored at (0 when not said) */
    int active;                     /* enum sy_slot */
    int weight;                     /* 0..100 */
    bool maintenance;
    /* state, paused_from, step, canary_slot, started_wall_ms, step_started_wall_ms;
     * last when has_analysis */
    struct sy_rollout_live rollout;
    bool has_analysis;
};

/*
 * svc's state now as a document of version, stored by gateway by at at_ms,
 * with the rollout's last analysis when it has one. Malloc'd text, NULL
 * when out of memory.
 */
char *sy_fleet_doc_encode(const struct sy_service *svc, int64_t version, const char *by,
                          int64_t at_ms);
/*
 * What makes svc's split, in a canonical form (no version, author, time or
 * analysis): equal texts, equal states. Malloc'd, NULL when out of memory.
 */
char *sy_fleet_doc_core(const struct sy_service *svc);

/*
 * Decodes a state document. 0, or -1 with the reason in err. *version gets
 * the document's "version" whenever it is a JSON object with a positive
 * integer there, valid or not: the rule the Redis script orders writes by.
 */
int sy_fleet_doc_decode(const char *text, size_t len, struct sy_fleet_doc *out,
                        int64_t *version, char *err, size_t errlen);

/*
 * Makes doc svc's state: the split for new requests, maintenance, the
 * rollout (its step's start moved onto this gateway's monotonic clock) and
 * the version. Logs nothing, saves nothing.
 */
void sy_fleet_doc_apply(const struct sy_service *svc, const struct sy_fleet_doc *doc,
                        int64_t now_mono_ms, int64_t now_wall_ms);

/*
 * One gateway's figures for the step that started at from_ms (wall
 * clock), read at at_ms: w is indexed by enum sy_slot. Malloc'd text.
 */
char *sy_fleet_figures_encode(const struct sy_metrics_window w[2], int64_t from_ms,
                              int64_t at_ms);
/*
 * Adds the figures of text into sum (indexed by enum sy_slot) when they
 * are for the step that started at from_ms. 1 added, 0 another step's,
 * -1 refused (the reason in err; sum unchanged).
 */
int sy_fleet_figures_add(const char *text, size_t len, int64_t from_ms,
                         struct sy_metrics_window sum[2], char *err, size_t errlen);

/* dst += src: requests, errors and the histogram (max the larger). */
void sy_fleet_window_add(struct sy_metrics_window *dst, const struct sy_metrics_window *src);

#endif
