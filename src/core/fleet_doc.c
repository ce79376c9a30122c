/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fleet_doc.c: the fleet's documents (fleet_doc.h). A service's state:
 *
 *   {"service": "app", "version": 7, "by": "web1:4242:9f3a", "at": 1732350000123,
 *    "active": "blue", "canary_weight": 25, "maintenance": false,
 *    "rollout": {"state": "running", "step": 1, "canary": "green",
 *                "paused_from": "running", "started": 1732349990000,
 *                "step_started": 1732350000100},
 *    "analysis": {"at": ..., "step": 1, "weight": 25, "window_ms": 4000,
 *                 "verdict": "fail", "reason": "...", "p95_ratio": 1.2,
 *                 "canary": {"requests": 120, "errors": 30, "p95_ms": 12.5},
 *                 "baseline": {"requests": 360, "errors": 0, "p95_ms": 10.1}}}
 *
 * Times are wall-clock milliseconds. Keys a newer gateway may add are
 * ignored; a known key of the wrong type or out of range refuses the
 * whole document. A gateway's figures for a step:
 *
 *   {"from": 1732350000100, "at": 1732350004000,
 *    "blue": {"n": 360, "e": 0, "s": 3636000, "m": 10500, "b": [[612, 200], [615, 160]]},
 *    "green": {...}}
 *
 * n requests, e errors, s the sum and m the largest of the durations (us),
 * b the latency window's non-empty buckets as [bucket index, count]
 * (hist.h's layout, which every gateway of one version shares).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fleet_doc.h"
#include "live.h"

static const char *const slot_names[] = {"blue", "green"};

static int slot_parse(const char *name)
{
    return strcmp(name, "blue") == 0 ? SY_SLOT_BLUE : strcmp(name, "green") == 0 ? SY_SLOT_GREEN
                                                                                 : -1;
}

/* ---- a service's state ---- */

static json_t *rollout_json(const struct sy_rollout_live *ro)
{
    return json_pack("{s:s,s:i,s:s,s:s,s:I,s:I}", "state", sy_rollout_state_name(ro->state),
                     "step", ro->step, "canary", slot_names[ro->canary_slot & 1],
                     "paused_from", sy_rollout_state_name(ro->paused_from),
                     "started", (json_int_t)ro->started_wall_ms,
                     "step_started", (json_int_t)ro->step_started_wall_ms);
}

static json_t *side_json(const struct sy_rollout_side *side)
{
    return json_pack("{s:I,s:I,s:f}", "requests", (json_int_t)side->requests,
                     "errors", (json_int_t)side->errors, "p95_ms", side->p95_ms);
}

static json_t *analysis_json(const struct sy_rollout_analysis *a)
{
    return json_pack("{s:I,s:i,s:i,s:I,s:s,s:s,s:f,s:o,s:o}", "at", (json_int_t)a->at_ms,
                     "step", a->step, "weight", a->weight, "window_ms", (json_int_t)a->window_ms,
                     "verdict", a->verdict ? a->verdict : "hold", "reason", a->reason,
                     "p95_ratio", a->p95_ratio, "canary", side_json(&a->canary),
                     "baseline", side_json(&a->baseline));
}

/* The split, maintenance and rollout: the core both encodings share. */
static json_t *core_json_of(int active, int weight, bool maintenance,
                            const struct sy_rollout_live *ro)
{
    return json_pack("{s:s,s:i,s:b,s:o}", "active", slot_names[active & 1],
                     "canary_weight", weight, "maintenance", maintenance,
                     "rollout", rollout_json(ro));
}

static json_t *core_json(const struct sy_service *svc)
{
    return core_json_of(sy_live_active(svc), sy_live_canary_weight(svc),
                        sy_live_maintenance(svc), &svc->live->rollout);
}

static char *dump(json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

    json_decref(doc);
    return text;
}

char *sy_fleet_doc_core(const struct sy_service *svc)
{
    return dump(core_json(svc));
}

char *sy_fleet_doc_core_of(const struct sy_fleet_doc *doc)
{
    return dump(core_json_of(doc->active, doc->weight, doc->maintenance, &doc->rollout));
}

char *sy_fleet_doc_encode(const struct sy_service *svc, int64_t version, const char *by,
                          int64_t at_ms)
{
    const struct sy_rollout_analysis *a = &svc->live->rollout.last;
    json_t *doc = core_json(svc);

    if (doc && (json_object_set_new(doc, "service", json_string(svc->name)) < 0 ||
                json_object_set_new(doc, "version", json_integer(version)) < 0 ||
                json_object_set_new(doc, "by", json_string(by)) < 0 ||
                json_object_set_new(doc, "at", json_integer(at_ms)) < 0 ||
                (a->at_ms && json_object_set_new(doc, "analysis", analysis_json(a)) < 0))) {
        json_decref(doc);
        return NULL;
    }
    return dump(doc);
}

static int refuse(char *err, size_t errlen, const char *fmt, const char *what)
{
    snprintf(err, errlen, fmt, what);
    return -1;
}

static int decode_rollout(json_t *v, struct sy_rollout_live *ro, char *err, size_t errlen)
{
    const char *state, *canary, *paused;
    json_int_t step, started, step_started;
    json_error_t je;

    if (json_unpack_ex(v, &je, 0, "{s:s,s:I,s:s,s:s,s:I,s:I}", "state", &state, "step", &step,
                       "canary", &canary, "paused_from", &paused, "started", &started,
                       "step_started", &step_started) < 0)
        return refuse(err, errlen, "rollout: %s", je.text);
    int st = sy_rollout_state_parse(state), from = sy_rollout_state_parse(paused);
    int slot = slot_parse(canary);
    if (st < 0 || from < 0 || slot < 0)
        return refuse(err, errlen, "rollout: unknown state, paused_from or canary (%s)", state);
    if (step < 0 || step > 1000 || started < 0 || step_started < 0)
        return refuse(err, errlen, "rollout: %s out of range", "step, started or step_started");
    if (st == SY_ROLLOUT_PAUSED && from != SY_ROLLOUT_RUNNING && from != SY_ROLLOUT_WAITING)
        return refuse(err, errlen, "rollout.paused_from: %s is not a state a rollout is paused "
                      "from", paused);
    ro->state = (enum sy_rollout_state)st;
    ro->paused_from = (enum sy_rollout_state)from;
    ro->canary_slot = slot;
    ro->step = (int)step;
    ro->started_wall_ms = started;
    ro->step_started_wall_ms = step_started;
    return 0;
}

static int decode_side(json_t *v, struct sy_rollout_side *side)
{
    json_int_t requests, errors;

    if (json_unpack(v, "{s:I,s:I,s:F}", "requests", &requests, "errors", &errors,
                    "p95_ms", &side->p95_ms) < 0 || requests < 0 || errors < 0 ||
        errors > requests || side->p95_ms < 0)
        return -1;
    side->requests = (uint64_t)requests;
    side->errors = (uint64_t)errors;
    side->error_rate = requests ? (double)errors / (double)requests : 0;
    return 0;
}

/* The verdict's static string (deploy_state.h keeps pointers to them). */
static const char *verdict_parse(const char *text)
{
    static const char *const verdicts[] = {"pass", "hold", "fail"};

    for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++)
        if (strcmp(text, verdicts[i]) == 0)
            return verdicts[i];
    return NULL;
}

static int decode_analysis(json_t *v, struct sy_rollout_analysis *a, char *err, size_t errlen)
{
    json_int_t at, window;
    json_t *canary, *baseline;
    const char *verdict, *reason;
    json_error_t je;

    memset(a, 0, sizeof(*a));
    if (json_unpack_ex(v, &je, 0, "{s:I,s:i,s:i,s:I,s:s,s:s,s:F,s:o,s:o}", "at", &at,
                       "step", &a->step, "weight", &a->weight, "window_ms", &window,
                       "verdict", &verdict, "reason", &reason, "p95_ratio", &a->p95_ratio,
                       "canary", &canary, "baseline", &baseline) < 0)
        return refuse(err, errlen, "analysis: %s", je.text);
    if (at <= 0 || window < 0 || !(a->verdict = verdict_parse(verdict)) ||
        decode_side(canary, &a->canary) < 0 || decode_side(baseline, &a->baseline) < 0)
        return refuse(err, errlen, "analysis: %s", "a value out of range");
    a->at_ms = at;
    a->window_ms = window;
    snprintf(a->reason, sizeof(a->reason), "%s", reason);
    return 0;
}

/*
 * The version, as the Redis script reads it (cjson: every number a double):
 * a whole number 1..SY_FLEET_VERSION_MAX under "version", else 0.
 */
static int64_t doc_version(json_t *root)
{
    json_t *v = json_object_get(root, "version");

    if (json_is_integer(v))
        return json_integer_value(v) >= 1 && json_integer_value(v) <= SY_FLEET_VERSION_MAX
               ? json_integer_value(v) : 0;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* in range first: only then is the conversion defined */
        if (d >= 1 && d <= (double)SY_FLEET_VERSION_MAX && (double)(int64_t)d == d)
            return (int64_t)d;
    }
    return 0;
}

static int decode_root(json_t *root, struct sy_fleet_doc *out, char *err, size_t errlen)
{
    const char *service, *active, *by = "";
    json_int_t version, weight, at = 0;
    int maintenance;
    json_t *rollout, *analysis = NULL;
    json_error_t je;

    if (json_unpack_ex(root, &je, 0, "{s:s,s:I,s?s,s?I,s:s,s:I,s:b,s:o,s?o}",
                       "service", &service, "version", &version, "by", &by, "at", &at,
                       "active", &active, "canary_weight", &weight, "maintenance", &maintenance,
                       "rollout", &rollout, "analysis", &analysis) < 0)
        return refuse(err, errlen, "%s", je.text);
    if (version < 1 || version > SY_FLEET_VERSION_MAX || weight < 0 || weight > 100 || at < 0 ||
        (out->active = slot_parse(active)) < 0)
        return refuse(err, errlen, "%s out of range", "version, at, active or canary_weight");
    if (strlen(service) >= sizeof(out->service) || strlen(by) >= sizeof(out->by))
        return refuse(err, errlen, "%s too long", "service or by");
    if (decode_rollout(rollout, &out->rollout, err, errlen) < 0)
        return -1;
    if (analysis && !json_is_null(analysis)) {
        if (decode_analysis(analysis, &out->rollout.last, err, errlen) < 0)
            return -1;
        out->has_analysis = true;
    }
    snprintf(out->service, sizeof(out->service), "%s", service);
    snprintf(out->by, sizeof(out->by), "%s", by);
    out->version = version;
    out->at_ms = at;
    out->weight = (int)weight;
    out->maintenance = maintenance != 0;
    return 0;
}

/* What Redis holds or publishes, parsed within its bound; NULL with the reason in err. */
static json_t *load(const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root;

    if (len > SY_FLEET_DOC_MAX) {
        snprintf(err, errlen, "%zu bytes, more than %d", len, SY_FLEET_DOC_MAX);
        return NULL;
    }
    if (!(root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je)))
        snprintf(err, errlen, "not JSON: %s", je.text);
    return root;
}

int sy_fleet_doc_decode(const char *text, size_t len, struct sy_fleet_doc *out,
                        int64_t *version, char *err, size_t errlen)
{
    json_t *root;

    memset(out, 0, sizeof(*out));
    *version = 0;
    if (!(root = load(text, len, err, errlen)))
        return -1;
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(err, errlen, "not a JSON object");
        return -1;
    }
    *version = doc_version(root);
    int rc = decode_root(root, out, err, errlen);
    json_decref(root);
    return rc;
}

int sy_fleet_doc_fits(const struct sy_service *svc, const struct sy_fleet_doc *doc, char *err,
                      size_t errlen)
{
    if (sy_rollout_active(doc->rollout.state) && (size_t)doc->rollout.step >= svc->rollout.nsteps) {
        snprintf(err, errlen, "rollout.step %d is past the %zu step(s) service %.64s has here",
                 doc->rollout.step, svc->rollout.nsteps, svc->name);
        return -1;
    }
    return 0;
}

void sy_fleet_doc_apply(const struct sy_service *svc, const struct sy_fleet_doc *doc,
                        int64_t now_mono_ms, int64_t now_wall_ms)
{
    struct sy_rollout_live *ro = &svc->live->rollout;
    int64_t elapsed = now_wall_ms - doc->rollout.step_started_wall_ms;

    sy_live_service_set(svc->live, (enum sy_slot)doc->active, doc->weight, now_wall_ms);
    atomic_store_explicit(&svc->live->maintenance, doc->maintenance, memory_order_relaxed);
    /* the analysis too: the storing gateway's, or none when it had none (a new rollout) */
    *ro = doc->rollout;
    /* a step that started on another gateway's clock: elapsed as that clock tells */
    ro->step_started_ms = now_mono_ms - (elapsed > 0 ? elapsed : 0);
    svc->live->fleet.version = doc->version;
    svc->live->fleet.pending = false;
}

/* ---- a gateway's figures ---- */

static json_t *slot_figures_json(const struct sy_metrics_window *w)
{
    json_t *buckets = json_array();

    for (size_t i = 0; buckets && i < SY_HIST_BUCKETS; i++) {
        uint64_t c = atomic_load_explicit(&w->hist.buckets[i], memory_order_relaxed);
        if (c && json_array_append_new(buckets, json_pack("[I,I]", (json_int_t)i,
                                                          (json_int_t)c)) < 0) {
            json_decref(buckets);
            buckets = NULL;
        }
    }
    return json_pack("{s:I,s:I,s:I,s:I,s:o*}", "n", (json_int_t)w->requests,
                     "e", (json_int_t)w->errors, "s", (json_int_t)sy_hist_sum_us(&w->hist),
                     "m", (json_int_t)sy_hist_max(&w->hist), "b", buckets);
}

char *sy_fleet_figures_encode(const struct sy_metrics_window w[2], int64_t from_ms,
                              int64_t at_ms)
{
    return dump(json_pack("{s:I,s:I,s:o*,s:o*}", "from", (json_int_t)from_ms,
                          "at", (json_int_t)at_ms,
                          "blue", slot_figures_json(&w[SY_SLOT_BLUE]),
                          "green", slot_figures_json(&w[SY_SLOT_GREEN])));
}

static void hist_add(struct sy_hist *h, size_t bucket, uint64_t n)
{
    uint64_t b = atomic_load_explicit(&h->buckets[bucket], memory_order_relaxed);
    uint64_t c = atomic_load_explicit(&h->count, memory_order_relaxed);

    atomic_store_explicit(&h->buckets[bucket], b + n, memory_order_relaxed);
    atomic_store_explicit(&h->count, c + n, memory_order_relaxed);
}

static void hist_set_max(struct sy_hist *h, uint64_t max_us)
{
    if (max_us > sy_hist_max(h))
        atomic_store_explicit(&h->max_us, max_us, memory_order_relaxed);
}

static void hist_add_sum(struct sy_hist *h, uint64_t sum_us)
{
    atomic_store_explicit(&h->sum_us, sy_hist_sum_us(h) + sum_us, memory_order_relaxed);
}

/* One slot's figures into w; -1 when they are not right. */
static int decode_slot(json_t *v, struct sy_metrics_window *w)
{
    json_int_t n, e, sum, max;
    json_t *buckets, *pair;
    size_t i;

    if (json_unpack(v, "{s:I,s:I,s:I,s:I,s:o}", "n", &n, "e", &e, "s", &sum, "m", &max,
                    "b", &buckets) < 0 || n < 0 || e < 0 || e > n || sum < 0 || max < 0 ||
        !json_is_array(buckets))
        return -1;
    json_array_foreach(buckets, i, pair) {
        json_int_t bucket, count;
        if (json_unpack(pair, "[II!]", &bucket, &count) < 0 || bucket < 0 ||
            bucket >= SY_HIST_BUCKETS || count < 0)
            return -1;
        hist_add(&w->hist, (size_t)bucket, (uint64_t)count);
    }
    w->requests = (uint64_t)n;
    w->errors = (uint64_t)e;
    hist_add_sum(&w->hist, (uint64_t)sum);
    hist_set_max(&w->hist, (uint64_t)max);
    return 0;
}

int sy_fleet_figures_add(const char *text, size_t len, int64_t from_ms,
                         struct sy_metrics_window sum[2], char *err, size_t errlen)
{
    json_int_t from, at;
    json_t *root, *slots[2];
    json_error_t je;
    int rc = -1;

    if (!(root = load(text, len, err, errlen)))
        return -1;
    if (json_unpack_ex(root, &je, 0, "{s:I,s:I,s:o,s:o}", "from", &from, "at", &at,
                       "blue", &slots[SY_SLOT_BLUE], "green", &slots[SY_SLOT_GREEN]) < 0) {
        snprintf(err, errlen, "%s", je.text);
    } else if (from != from_ms) {
        rc = 0;
    } else {
        /* decoded aside first: a document is taken whole or not at all */
        struct sy_metrics_window *one = calloc(2, sizeof(*one));
        if (!one)
            snprintf(err, errlen, "out of memory");
        else if (decode_slot(slots[0], &one[0]) < 0 || decode_slot(slots[1], &one[1]) < 0)
            snprintf(err, errlen, "a slot's figures out of range");
        else
            rc = 1;
        for (int s = 0; rc == 1 && s < 2; s++)
            sy_fleet_window_add(&sum[s], &one[s]);
        free(one);
    }
    json_decref(root);
    return rc;
}

void sy_fleet_window_add(struct sy_metrics_window *dst, const struct sy_metrics_window *src)
{
    dst->requests += src->requests;
    dst->errors += src->errors;
    for (size_t i = 0; i < SY_HIST_BUCKETS; i++) {
        uint64_t n = atomic_load_explicit(&src->hist.buckets[i], memory_order_relaxed);
        if (n)
            hist_add(&dst->hist, i, n);
    }
    hist_add_sum(&dst->hist, sy_hist_sum_us(&src->hist));
    hist_set_max(&dst->hist, sy_hist_max(&src->hist));
}
