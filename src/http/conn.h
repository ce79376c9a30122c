/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conn.h: what the HTTP layer offers the process: the worker hooks that
 * accept and serve client connections, and the per-snapshot preparation.
 */
#ifndef SY_HTTP_CONN_H
#define SY_HTTP_CONN_H

#include <stddef.h>

#include "core/conf.h"
#include "core/worker.h"

extern const struct sy_worker_hooks sy_http_worker_hooks;

/* Completes a snapshot for nworkers workers (balancing state). */
int sy_http_prepare_conf(struct sy_conf *conf, unsigned nworkers, char *err, size_t errlen);

#endif
