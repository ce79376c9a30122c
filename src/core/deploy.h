/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * deploy.h: every change to a service's traffic split goes through here,
 * on the main thread: the blue-green switch, the canary weight, and the
 * rollout controller that walks the weight through the configured steps
 * and promotes or rolls back by itself from the in-process histograms
 * (SPEC.md, Rollout). Once a second it also judges each service's scaling
 * signal. Each change is logged and saved to the state file (state.h).
 */
#ifndef SY_DEPLOY_H
#define SY_DEPLOY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct sy_main_service;

/* Restores the state file before the workers start; judges once a second. */
extern const struct sy_main_service sy_deploy_service;

/*
 * Below this canary p95 the ratio to the baseline is not judged: at a few
 * milliseconds it measures scheduler noise, not the release (it is also
 * SPEC.md's first latency bucket). max_p95_ms and the error rate still are.
 */
#define SY_ROLLOUT_RATIO_FLOOR_MS 5.0

enum sy_rollout_action {
    SY_ROLLOUT_START,
    SY_ROLLOUT_PAUSE,
    SY_ROLLOUT_RESUME,
    SY_ROLLOUT_ABORT,
    SY_ROLLOUT_PROMOTE,
};

/* The action named so ("start", ...), or -1. */
int sy_rollout_action_parse(const char *name);

/*
 * The operator's changes. Each returns 0, or an HTTP status (404, 409)
 * with the reason in err and nothing changed: 409 while a rollout owns
 * the split (switch, canary), for an action the rollout's state does not
 * allow, or when the target pool has no healthy instance and force is
 * false (switch, start, promote).
 */
int sy_deploy_switch(const struct sy_conf *conf, const struct sy_service *svc, enum sy_slot to,
                     bool force, char *err, size_t errlen);
int sy_deploy_set_weight(const struct sy_conf *conf, const struct sy_service *svc, int weight,
                         char *err, size_t errlen);
int sy_deploy_rollout(const struct sy_conf *conf, const struct sy_service *svc,
                      enum sy_rollout_action action, bool force, char *err, size_t errlen);

/*
 * The maintenance page on or off for the service's next requests
 * (modules/maintenance.c). Never refused: a rollout goes on measuring
 * nothing while the page is served, and health checks keep running.
 */
void sy_deploy_set_maintenance(const struct sy_conf *conf, const struct sy_service *svc,
                               bool on);

/* One round of judgements now (the service's timer; tests may call it). */
void sy_deploy_tick(const struct sy_conf *conf);

#endif
