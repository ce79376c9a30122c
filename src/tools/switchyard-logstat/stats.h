/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * stats.h: what the statistics keep (stats.c counts, report.c turns it
 * into the document). Memory is bounded whatever the input: the tables
 * hold at most table_size keys, the timeline at most LS_MAX_POINTS points
 * (its interval doubles past that), the event lists events_kept each.
 */
#ifndef LS_STATS_H
#define LS_STATS_H

#include "logstat.h"

#define LS_MAX_POINTS 1500          /* a day at one minute fits */
#define LS_MAX_SERVICE_SLOTS 256    /* then "(other)" */
#define LS_SUSPECT_WINDOW_S 10      /* peak_rps: the busiest 10 s */

struct ls_service_slot {
    char *service, *slot;
    uint64_t requests, errors;
    struct sy_hist duration;
};

struct ls_point {
    uint64_t requests, errors, rate_limited;
    struct sy_hist *duration;       /* allocated with its first sample */
};

/* The newest `cap` events of a kind, oldest first once unrolled. */
struct ls_event_list {
    json_t **ring;
    size_t cap, n, head;
    uint64_t total;
};

struct ls_input_stat {
    char *name;
    uint64_t lines, bad;
    char *error;
};

struct ls_stats {
    struct ls_options opt;
    struct sy_sipkey hashkey;

    uint64_t lines, access, security, bad, filtered, fallback;
    char *first_bad_file;
    uint64_t first_bad_line;
    const char *first_bad_reason;
    struct ls_input_stat *inputs;
    size_t ninputs;
    int64_t first_ts, last_ts;

    /* overview */
    uint64_t requests, bytes_in, bytes_out, status_class[6];
    struct sy_hist duration, upstream;

    struct ls_service_slot *services;
    size_t nservices, last_service;

    int64_t interval_ms, base;      /* point i covers [(base + i) x interval, +interval) */
    struct ls_point *points;
    size_t npoints;

    struct ls_table paths, clients, countries, agents, upstreams;

    uint64_t rl_responses, rl_events;
    struct ls_table rl_resp_client, rl_resp_route, rl_ev_client, rl_ev_route, rl_ev_limit;

    uint64_t denied, bad_requests;
    struct ls_table denied_reason, bad_reason;

    struct ls_event_list auth_failures, admin_actions, rollouts, health_changes;
};

#endif
