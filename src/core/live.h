/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * live.h: the state of each instance that changes without a reload:
 * health (active checks, main thread), drain (admin API, main thread) and
 * ejection (passive health, workers). Entries live in a registry keyed by
 * pool name and instance address, so a reload that keeps an instance keeps
 * its state; snapshots hold references (sy_live_get/sy_live_put).
 * Workers read everything with relaxed atomics: no lock on the request path.
 */
#ifndef SY_LIVE_H
#define SY_LIVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "deploy_state.h"

enum sy_health_state {
    SY_HEALTH_UNKNOWN,          /* checks configured, none finished yet */
    SY_HEALTH_UP,
    SY_HEALTH_DOWN,
};

/* What the active checker last saw (main thread only; for the admin API). */
struct sy_check_status {
    int64_t last_ms;            /* wall clock of the last finished check; 0: none */
    int64_t changed_ms;         /* wall clock of the last health change; 0: none */
    int last_status;            /* HTTP status of the last check; 0: no answer */
    int successes, failures;    /* in a row, toward rise and fall */
    uint64_t total_ok, total_failed;    /* switchyard_upstream_health_checks_total */
    char last_error[128];       /* why the last check failed; "" after a success */
};

struct sy_instance_live {
    _Atomic int health;                 /* enum sy_health_state */
    _Atomic bool drained;
    _Atomic int64_t ejected_until_ms;   /* wall clock; ejected while now < this */
    _Atomic int fails;                  /* upstream-origin failures in a row (passive) */
    _Atomic int ejections;              /* ejections in a row, for the back-off */
    struct sy_check_status check;

    /* registry (under its lock) */
    char *pool, *addr;
    unsigned refs;
    struct sy_instance_live *next;
};

/*
 * A service's traffic split as it stands now: the active slot and the
 * canary weight, changed by the admin API without a reload. The main
 * thread writes; workers read with relaxed atomics.
 */
struct sy_service_live {
    /* the active slot (enum sy_slot) + 2 x the canary weight (0..100: percent to the
     * other slot), one word so that a worker never reads one without the other */
    _Atomic int split;
    /*
     * Wall-clock ms at which each slot lost its traffic (a switch away, a
     * rollback or a weight set to 0); 0 while it has traffic. WebSocket
     * tunnels opened on the slot before then close tunnel_drain_ms later.
     */
    _Atomic int64_t slot_lost_ms[2];
    /* per slot, gauges kept by workers (atomic add; not per request on a
     * kept-alive upstream connection): requests waiting for an upstream
     * connection (connect or TLS handshake under way), the scaling
     * signal's queue; and open WebSocket tunnels */
    _Atomic int connecting[2];
    _Atomic int tunnels[2];
    /* the maintenance page answers every request (modules/maintenance.c); the
     * main thread writes it (admin API, state file, reload) */
    _Atomic bool maintenance;
    /* main thread: what the configuration said when last adopted */
    int conf_active, conf_weight;
    bool conf_maintenance;
    /* main thread: the rollout's progress and the scaling signal (deploy.h) */
    struct sy_rollout_live rollout;
    struct sy_scaling_figures scaling;
    struct sy_fleet_live fleet;

    /* registry (under its lock) */
    char *name;
    unsigned refs;
    struct sy_service_live *next;
};

/*
 * The entry for a service, created on first use with the configuration's
 * active slot and canary weight. Takes a reference; NULL when out of memory.
 */
struct sy_service_live *sy_live_service_get(const char *name, int conf_active, int conf_weight);
void sy_live_service_put(struct sy_service_live *live);

/*
 * After conf is published (main thread): where the configuration's active
 * slot, canary weight or maintenance.enabled differs from what the
 * previous one said, the operator edited the file, and the file wins;
 * otherwise a change made at run time (the admin API) stays. At start an
 * entry knows no file yet (maintenance off): the first adoption takes
 * maintenance.enabled from it.
 */
void sy_live_services_adopt(const struct sy_conf *conf, int64_t now_wall_ms);

/*
 * Main thread: sets the split (active slot, canary weight) for new
 * requests, and marks a slot that lost all its traffic (slot_lost_ms).
 */
void sy_live_service_set(struct sy_service_live *live, enum sy_slot active, int weight,
                         int64_t now_wall_ms);

/* The service's active slot and canary weight now, read together. */
static inline void sy_live_split(const struct sy_service *svc, enum sy_slot *active, int *weight)
{
    int split = atomic_load_explicit(&svc->live->split, memory_order_relaxed);

    *active = (enum sy_slot)(split & 1);
    *weight = split >> 1;
}

/* Whether the service answers every request with its maintenance page now. */
static inline bool sy_live_maintenance(const struct sy_service *svc)
{
    return atomic_load_explicit(&svc->live->maintenance, memory_order_relaxed);
}

static inline enum sy_slot sy_live_active(const struct sy_service *svc)
{
    return (enum sy_slot)(atomic_load_explicit(&svc->live->split, memory_order_relaxed) & 1);
}

static inline int sy_live_canary_weight(const struct sy_service *svc)
{
    return atomic_load_explicit(&svc->live->split, memory_order_relaxed) >> 1;
}

/*
 * The entry for (pool, addr), created on first use: UNKNOWN when the pool
 * runs active checks, else UP. Takes a reference. NULL when out of memory.
 */
struct sy_instance_live *sy_live_get(const char *pool, const char *addr, bool checked);
/* Drops a reference (any thread); the last one frees the entry. */
void sy_live_put(struct sy_instance_live *live);

/* "unknown", "up", "down". */
const char *sy_health_name(int health);
/* The one word an operator reads about an instance: drained > ejected > its health. */
const char *sy_live_state(const struct sy_instance_live *live, int64_t now_ms);

/* Whether an instance may take new requests now: not down, drained or ejected. */
bool sy_live_usable(const struct sy_instance_live *live, int64_t now_ms);
/* Usable and known to be up: what /ready and a blue-green switch ask for. */
bool sy_live_healthy(const struct sy_instance_live *live, int64_t now_ms);
/* Whether some instance of the pool is healthy. */
bool sy_pool_healthy(const struct sy_pool *pool, int64_t now_ms);

/*
 * Passive health, from workers. A failure is upstream-origin only (connect
 * error, reset, timeout, 502/503/504 from the app). After max_fails in a
 * row the instance is ejected for eject_ms x ejections in a row (at most
 * 300 s), unless that would exceed max_eject_percent of the pool (at least
 * one instance may always go) or leave the pool without a usable
 * instance. Returns the ejection's length in ms when this call ejected it
 * (the caller logs it), else 0.
 */
int64_t sy_live_failure(const struct sy_pool *pool, const struct sy_instance *inst,
                        int64_t now_ms);
void sy_live_success(const struct sy_instance *inst, int64_t now_ms);

#endif
