/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * metrics.h: the Prometheus text exposition served on GET /metrics
 * (format 0.0.4): the request and latency families from the metrics
 * registry (core/metrics.h), the others from the snapshot, the instances'
 * live state and the process. Main thread only.
 */
#ifndef SY_ADMIN_METRICS_H
#define SY_ADMIN_METRICS_H

#include <stdint.h>

#include <event2/buffer.h>

#include "core/conf.h"

#define SY_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends every family to out; 0, or -1 when out of memory. */
int sy_admin_metrics_write(struct evbuffer *out, const struct sy_conf *conf, int64_t now_ms);

#endif
