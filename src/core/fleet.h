/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fleet.h: many gateways on one Redis behave as one (docs/fleet.md). With
 * "redis" configured, the main thread keeps two more connections (commands
 * and a subscriber) and, every second:
 *
 *   - stores every change of a service's split or rollout made here, with a
 *     version (an older version never overwrites a newer one), publishes it,
 *     and applies what other gateways stored (the channel, and the hash read
 *     each second as the truth);
 *   - holds or renews a lease per service: the gateway that holds it runs
 *     that service's rollout controller, judging the whole fleet's figures,
 *     which every gateway publishes for the step under way;
 *   - counts the gateways that showed up (switchyard_fleet_gateways).
 *
 * Without "redis" none of this runs: the controller is this gateway's, and
 * its figures are its own. Main thread, except where said.
 */
#ifndef SY_FLEET_H
#define SY_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "metrics.h"

struct sy_main_service;

/*
 * After deploy's (in the services' table): at start it reads the shared
 * state (Redis wins over the state file when it is newer) before the
 * workers serve, then runs the fleet's second.
 */
extern const struct sy_main_service sy_fleet_service;

/* A lease lasts this long unless renewed; the holder renews it every second. */
#define SY_FLEET_LEASE_MS       3000
/* A gateway counts in switchyard_fleet_gateways this long after it last showed up. */
#define SY_FLEET_SEEN_MS        10000

/* Whether the fleet runs (redis configured and started). */
bool sy_fleet_enabled(void);
/* This gateway's name in the fleet ("host:pid:xxxx"); "" without a fleet. */
const char *sy_fleet_gateway_id(void);
/*
 * Gateways that showed up in the last SY_FLEET_SEEN_MS, this one included,
 * as Redis last told; 0 before it told (any thread).
 */
int64_t sy_fleet_gateways(void);
/* Gateways seen in the last minute, at least 1: on_failure local's divisor (any thread). */
int64_t sy_fleet_gateways_minute(void);

/* deploy.c, after it changed svc's split, maintenance or rollout: store and publish it. */
void sy_fleet_changed(const struct sy_service *svc);
/*
 * Whether this gateway runs svc's rollout controller now: always without a
 * fleet; with one, while it holds svc's lease (never while Redis is out of
 * reach for longer than the lease).
 */
bool sy_fleet_leads(const struct sy_service *svc);
/* The gateway that leads svc as Redis last told; NULL without a fleet or when unknown. */
const char *sy_fleet_leader(const struct sy_service *svc);

/*
 * slot's figures over the last span_ms as the rollout controller reads them:
 * this gateway's window (metrics.h), plus, while this gateway leads svc,
 * the figures the other gateways published for the step under way. Returns
 * the time covered, as sy_metrics_service_window.
 */
int64_t sy_fleet_service_window(const struct sy_service *svc, enum sy_slot slot,
                                int64_t span_ms, struct sy_metrics_window *out);

#endif
