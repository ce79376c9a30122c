/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * modules.h: how the HTTP path runs the modules (modules.c): their state
 * per snapshot, their request phases, and their main-thread tick.
 */
#ifndef SY_MODULES_H
#define SY_MODULES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/conf.h"
#include "core/sy_module.h"

struct sy_request;
struct sy_main_service;

/* Headers the response to the client gets from the modules (proxy.c writes them). */
struct sy_header_out {
    struct sy_request *req;
    size_t tail;                /* bytes the head still needs after them (kept free) */
    bool failed;                /* out of memory: the response goes without them */
};

/* Builds (and frees) every module's state for a snapshot; -1 with err. */
int sy_modules_prepare(struct sy_conf *conf, char *err, size_t errlen);
void sy_modules_release(struct sy_conf *conf);

/*
 * The phases: SY_PHASE_DONE when a module answered the request;
 * sy_modules_route may also return SY_PHASE_WAIT (request.h, sy_req_resume).
 */
enum sy_phase_result sy_modules_client(struct sy_request *req);
enum sy_phase_result sy_modules_route(struct sy_request *req);
/* The request ends while a module waits on it (sy_proxy_abort): that module forgets it. */
void sy_modules_abandon(struct sy_request *req);
void sy_modules_response(struct sy_request *req, struct sy_header_out *out);

/* Runs the modules' tick once a second. */
extern const struct sy_main_service sy_modules_service;

#endif
