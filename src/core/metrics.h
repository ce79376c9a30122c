/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * metrics.h: counters and latency histograms that outlive configuration
 * snapshots (SPEC.md, Metrics: they reset only when the process restarts).
 *
 * Series are named by their labels and interned once, on the main thread,
 * when a snapshot is prepared: a series keeps its id for the life of the
 * process, so a reload that keeps a service, route or instance keeps its
 * counts. Each worker records into its own storage (no lock, no atomic
 * read-modify-write); the main thread merges the workers' storage when it
 * scrapes or analyses, as Envoy does. Sliding windows ("p95 over the last
 * minute") are kept by the main thread from periodic snapshots of the
 * merged cumulative histograms, so they cost the workers nothing.
 *
 * Worker storage. Per kind of series, a two-level directory of pointers
 * (SY_METRICS_MAX_SERIES ids: 1,024 pages of 256) whose pages and entries
 * the worker allocates the first time it records into an id, and publishes
 * with release stores; the main thread reads them with acquire loads and
 * never sees memory move. Nothing else allocates on the request path.
 *
 * Memory. A worker: 32 KiB of directories, a 2 KiB page per 256 ids in
 * use, 10,336 bytes per histogram series it recorded into (a struct
 * sy_hist and two counters), 96 bytes per route for each 8 status codes it
 * saw there. The main thread: 48 bytes and the label strings per series;
 * per histogram series with samples, 2,736 bytes (the merged cumulative
 * histogram) and, while it had samples in the last 320 s, its window ring:
 * 46 snapshots of 1,400 bytes, 64,472 bytes in all. So a busy service slot
 * or instance costs 10.1 KiB per worker and 65.6 KiB on the main thread;
 * one idle for 5 minutes, 2.7 KiB; a route, 96 bytes per worker.
 */
#ifndef SY_METRICS_H
#define SY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

struct sy_main_service;

/* Ids per kind of series; past it, interning answers SY_METRICS_NONE. */
#define SY_METRICS_MAX_SERIES   (1u << 18)
/* An id that records nothing: a request with no service, a full registry. */
#define SY_METRICS_NONE         UINT32_MAX
/* The route series of requests that matched no route (service, slot and route ""). */
#define SY_METRICS_UNROUTED     0u
/* Worker storages that can exist at once. */
#define SY_METRICS_MAX_WORKERS  1024
/* Status codes a route's counters tell apart: 0..999 (others count as 0). */
#define SY_METRICS_MAX_STATUS   999

enum sy_metrics_kind {
    SY_METRICS_SERVICE_SLOT,    /* labels service, slot: duration histogram */
    SY_METRICS_ROUTE,           /* service, slot, route: requests by status */
    SY_METRICS_UPSTREAM,        /* pool, instance: response-head histogram */
    SY_METRICS_COUNTER,         /* family, label, label: a plain counter (modules' events) */
    SY_METRICS_NKINDS,
};

/*
 * Interned series (main thread). Ids are dense per kind, start at 0, and
 * are never reused; the same labels give the same id for the life of the
 * process. A route without a service is interned with service and slot "".
 */
uint32_t sy_metrics_service_slot(const char *service, const char *slot);
uint32_t sy_metrics_route(const char *service, const char *slot, const char *route);
uint32_t sy_metrics_upstream(const char *pool, const char *instance);

/*
 * A plain counter of a family whose series the exposition writes by name
 * (switchyard_rate_limited_total{limit,route}): labels a and b are the
 * family's label values ("" when it has fewer). Interned like the others.
 */
uint32_t sy_metrics_counter(const char *family, const char *a, const char *b);

/* A worker's storage; created and recorded into on the worker thread. NULL
 * when out of memory or SY_METRICS_MAX_WORKERS exist. */
struct sy_worker_metrics;
struct sy_worker_metrics *sy_metrics_worker_new(void);
/* After the worker has stopped (the main thread no longer reads it). Its
 * counts leave the totals: only at exit. */
void sy_metrics_worker_free(struct sy_worker_metrics *wm);

/*
 * One finished request: switchyard_http_requests_total{service,slot,route,
 * status} and switchyard_http_request_duration_seconds{service,slot}.
 * error: a 5xx or a proxy failure (for error rates). A 101 (a WebSocket
 * tunnel, whose duration is the tunnel's life) is counted but not timed.
 * SY_METRICS_NONE skips that part; wm NULL records nothing.
 */
void sy_metrics_record_request(struct sy_worker_metrics *wm, uint32_t service_slot,
                               uint32_t route, int status, uint64_t duration_us, bool error);
/* Adds n to a counter series (worker thread). */
void sy_metrics_count_event(struct sy_worker_metrics *wm, uint32_t counter, uint64_t n);

/* The app's response head arrived: switchyard_upstream_response_seconds{pool,
 * instance}. error: a 5xx response (for the window's error count). */
void sy_metrics_record_upstream(struct sy_worker_metrics *wm, uint32_t upstream,
                                uint64_t response_us, bool error);

/*
 * Main thread: a series' figures over the last span_ms (clamped to 0..5 min),
 * merged over every worker and read fresh: the histogram of durations,
 * requests and errors (for an upstream: responses and 5xx responses). The
 * window starts at a snapshot taken at or before now - span_ms: 1 s apart
 * for the last 15 s, 5 s apart to 1 min, 20 s apart to 5 min. Returns the
 * time covered in ms, for rates: at least span_ms, less only shortly after
 * start. out->hist has the window buckets' values (SY_HIST_SLOT_GROUP
 * histogram buckets wide: quantiles within 5 %), and as max the upper edge
 * of the highest bucket with a sample. An unknown id reads empty.
 */
struct sy_metrics_window {
    uint64_t requests;
    uint64_t errors;
    struct sy_hist hist;
};
int64_t sy_metrics_service_window(uint32_t service_slot, int64_t span_ms,
                                  struct sy_metrics_window *out);
int64_t sy_metrics_upstream_window(uint32_t upstream, int64_t span_ms,
                                   struct sy_metrics_window *out);

/* The main-thread service: snapshots for the windows every second. */
extern const struct sy_main_service sy_metrics_service;
/* One snapshot round now (the service's timer; tests call it directly). */
void sy_metrics_tick(void);
/* Monotonic milliseconds for the windows; tests inject a clock (NULL: the real one). */
typedef int64_t (*sy_metrics_clock_fn)(void);
void sy_metrics_set_clock(sy_metrics_clock_fn clock);

/* ---- reading for the exposition (main thread) ---- */

/* SPEC.md's default latency buckets, in microseconds (each a bucket edge). */
#define SY_METRICS_NBOUNDS 13
extern const uint64_t sy_metrics_bounds_us[SY_METRICS_NBOUNDS];

/* Series of a kind interned so far, and a series' label values (2 or 3). */
uint32_t sy_metrics_count(enum sy_metrics_kind kind);
const char *const *sy_metrics_labels(enum sy_metrics_kind kind, uint32_t id);

/* A histogram series now: cumulative counts at each bound, then the total. */
struct sy_metrics_buckets {
    uint64_t le[SY_METRICS_NBOUNDS + 1];    /* le[SY_METRICS_NBOUNDS]: +Inf, the count */
    uint64_t sum_us;
};
void sy_metrics_histogram(enum sy_metrics_kind kind, uint32_t id, struct sy_metrics_buckets *out);

/* A counter series now, summed over the workers (main thread). */
uint64_t sy_metrics_counter_value(uint32_t counter);

/* A route's requests by status, ascending; returns how many statuses. */
struct sy_metrics_status {
    int status;
    uint64_t count;
};
size_t sy_metrics_statuses(uint32_t route, struct sy_metrics_status out[SY_METRICS_MAX_STATUS + 1]);

#endif
