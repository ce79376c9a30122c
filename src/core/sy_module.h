/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sy_module.h: what a module is. A module (modules/NAME.c) is one
 * const struct sy_module: its name and the hooks it needs. The core runs
 * them in the order of the table in src/http/modules.c; no module is
 * special-cased anywhere else. A module keeps its state private and
 * reaches the request only through the request API (src/http/request.h).
 *
 * State a module builds from a configuration snapshot (a compiled CIDR
 * table, an open database) hangs on the snapshot: conf_prepare returns it,
 * conf_release frees it with the snapshot, and every request hook gets the
 * state of the snapshot its request started on. A module's per-request
 * scratch (request_bytes, zeroed when a request starts) carries what an
 * early phase decided to a later one.
 */
#ifndef SY_MODULE_H
#define SY_MODULE_H

#include <stddef.h>

#include "conf.h"

struct sy_request;      /* the request API: src/http/request.h */
struct sy_header_out;   /* response headers a module adds */

/* Bytes of per-request scratch all modules together may ask for. */
#define SY_MODULE_SCRATCH_MAX 96

enum sy_phase_result {
    SY_PHASE_CONTINUE,  /* the next module, then the next phase */
    SY_PHASE_DONE,      /* the module answered the request (sy_req_respond) */
    /*
     * on_route only: the module waits for something (a Redis reply) and
     * will, later and on the request's worker, either answer the request
     * (sy_req_respond) or let it go on (sy_req_resume). Meanwhile the
     * request may end (its client closed): then on_abandon runs instead,
     * and the module must call neither.
     */
    SY_PHASE_WAIT,
};

struct sy_module {
    const char *name;
    size_t request_bytes;

    /*
     * Main thread, when a snapshot is prepared for serving (at start, at
     * each reload, and by switchyard -t): checks what the parser could
     * not and builds the module's state for it (*state, NULL for none).
     * Returns 0, or -1 with "JSON.PATH: message" in err (the snapshot is
     * refused; at a reload the old one keeps serving).
     */
    int (*conf_prepare)(const struct sy_conf *conf, void **state, char *err, size_t errlen);
    /* Frees the state when the snapshot goes (any thread: the last reference). */
    void (*conf_release)(void *state);

    /* Before routing: who the client is, and whether it may come in. */
    enum sy_phase_result (*on_client)(struct sy_request *req, void *state, void *scratch);
    /* After routing, before the split: the route's own policies. */
    enum sy_phase_result (*on_route)(struct sy_request *req, void *state, void *scratch);
    /* A request this module waits on (SY_PHASE_WAIT) ended: forget it. */
    void (*on_abandon)(struct sy_request *req, void *state, void *scratch);
    /* The app's response head goes to the client: headers to add. */
    void (*on_response)(struct sy_request *req, void *state, void *scratch,
                        struct sy_header_out *out);

    /* Main thread, once a second, with the snapshot serving now. */
    void (*tick)(const struct sy_conf *conf, void *state);
};

#endif
