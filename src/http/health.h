/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * health.h: active health checks (SPEC.md pools.*.health), run on the
 * main thread: an HTTP GET of health.path on every instance of every pool
 * that has a "health" object, each on its own connection, results written
 * to the instance's live state (core/live.h).
 *
 * Each instance is checked at a fixed phase (a random point of its first
 * interval, then every interval_ms), the whole check - connect, TLS,
 * response head - within timeout_ms. Every state change is a health_change
 * security-log event and an error-log line. reconfigure() rebuilds the
 * list from the new snapshot, cancelling checks in flight; an instance
 * kept at the same interval keeps its phase. stop() is idempotent.
 */
#ifndef SY_HTTP_HEALTH_H
#define SY_HTTP_HEALTH_H

#include "core/process.h"

extern const struct sy_main_service sy_health_service;

#endif
