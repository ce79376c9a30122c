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
/*
 * The largest version: 2^53 - 1, the largest integer Redis's Lua (doubles)
 * holds exactly, so that the store script and this gateway order versions
 * alike. A version above it (or not an integer) is garbage: version 0.
 */
#define SY_FLEET_VERSION_MAX 9007199254740991LL

/* A service's shared state, decoded. */
struct sy_fleet_doc {
    char service[256];
    int64_t version;                /* 1..SY_FLEET_VERSION_MAX */
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

/* What makes the state of doc, in sy_fleet_doc_core's form. Malloc'd, NULL when out of memory. */
char *sy_fleet_doc_core_of(const struct sy_fleet_doc *doc);

/*
 * Decodes a state document. 0, or -1 with the reason in err. *version gets
 * the document's "version" whenever it is a JSON object with a number
 * there that is a whole 1..SY_FLEET_VERSION_MAX (5.0 too), valid or not:
 * the rule the Redis store script orders writes by; else 0.
 */
int sy_fleet_doc_decode(const char *text, size_t len, struct sy_fleet_doc *out,
                        int64_t *version, char *err, size_t errlen);

/*
 * Whether svc can be in doc's state with this gateway's configuration: a
 * running, waiting or paused rollout must be at one of svc's steps
 * (applied, a step past them would promote at once). 0, or -1 with the
 * reason in err: then the document is garbage for svc.
 */
int sy_fleet_doc_fits(const struct sy_service *svc, const struct sy_fleet_doc *doc, char *err,
                      size_t errlen);

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
