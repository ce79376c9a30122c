/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * deploy_state.h: a service's rollout progress and scaling signal as the
 * main thread keeps them (in the service's live entry, live.h); the state
 * file saves the rollout. The controller that moves them is deploy.h.
 */
#ifndef SY_DEPLOY_STATE_H
#define SY_DEPLOY_STATE_H

#include <stdbool.h>
#include <stdint.h>

/* SPEC.md's states, as switchyard_rollout_state{state} names them. */
enum sy_rollout_state {
    SY_ROLLOUT_IDLE,                /* never started */
    SY_ROLLOUT_RUNNING,             /* walking the steps */
    SY_ROLLOUT_WAITING,             /* "waiting_for_traffic": a step lacks min_requests */
    SY_ROLLOUT_PAUSED,              /* held by hand; the safety limits still apply */
    SY_ROLLOUT_PROMOTED,
    SY_ROLLOUT_ROLLED_BACK,         /* by the controller, on a limit */
    SY_ROLLOUT_ABORTED,             /* by hand */
    SY_ROLLOUT_NSTATES,
};

/* The figures one judgement read: the canary slot against the active one. */
struct sy_rollout_side {
    uint64_t requests, errors;
    double error_rate;              /* errors / requests; 0 without requests */
    double p95_ms;                  /* 0 without requests */
};

struct sy_rollout_analysis {
    int64_t at_ms;                  /* wall clock; 0: none yet */
    int step;                       /* index into steps */
    int weight;
    int64_t window_ms;              /* the span both sides were read over */
    struct sy_rollout_side canary, baseline;
    double p95_ratio;               /* canary / baseline p95; 0 when not judged */
    const char *verdict;            /* "pass", "hold", "fail" (static strings) */
    char reason[192];               /* what decided it, in words */
};

struct sy_rollout_live {
    enum sy_rollout_state state;
    enum sy_rollout_state paused_from;  /* RUNNING or WAITING, to resume into */
    int step;                       /* index into the service's steps */
    int canary_slot;                /* enum sy_slot the rollout moves traffic to */
    int64_t step_started_ms;        /* monotonic; the step's interval starts here */
    /* the same instant by the wall clock: what the fleet shares (fleet.h), so
     * that the gateway that leads next goes on with the step, not a new one */
    int64_t step_started_wall_ms;
    int64_t started_wall_ms;        /* wall clock of start, for the status */
    struct sy_rollout_analysis last;
};

/* The scaling signal (SPEC.md) and the figures behind it, judged every second. */
struct sy_scaling_figures {
    int recommendation;             /* +1 add instances, -1 remove, 0 hold */
    double p95_ms;                  /* the active slot's, over the last minute */
    double error_rate;              /* the active slot's, over the last minute */
    uint64_t requests;              /* the active slot's, over the last minute */
    int queue;                      /* requests waiting for an upstream connection now */
    char reason[128];               /* which figure decided it */
};

/*
 * A service's place in the state the fleet shares through Redis (fleet.h);
 * the state file keeps it. Without "redis" it stays zero.
 */
struct sy_fleet_live {
    int64_t version;                /* of the shared state the split is, or was changed
                                     * from; 0: never shared */
    bool pending;                   /* changed here since, not stored in Redis yet */
};

/* "idle", "running", "waiting_for_traffic", ... ; NULL past the last. */
const char *sy_rollout_state_name(enum sy_rollout_state state);
/* The state named so, or -1. */
int sy_rollout_state_parse(const char *name);
/* Whether the rollout owns the split now (running, waiting or paused). */
static inline bool sy_rollout_active(enum sy_rollout_state state)
{
    return state == SY_ROLLOUT_RUNNING || state == SY_ROLLOUT_WAITING ||
           state == SY_ROLLOUT_PAUSED;
}

#endif
