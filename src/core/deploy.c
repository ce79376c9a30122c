/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * deploy.c: the switch, the canary weight and the rollout controller
 * (deploy.h). Everything here runs on the main thread: the split lives in
 * the services' live entries (live.h), which workers read with relaxed
 * loads, so a change reaches every worker's next request at once.
 *
 * The judgement compares the canary slot with the active slot over the
 * same window (a concurrent baseline): from the start of the step to now,
 * read from the metrics registry's windows. It runs every second, so a
 * breach with enough samples rolls back at once (fast fail); at the end
 * of a step's interval the step advances, or waits for traffic when the
 * canary has fewer than min_requests samples: missing data never passes.
 *
 * In a fleet (fleet.h) every change here is also stored in Redis for the
 * other gateways, only the gateway that holds a service's lease runs its
 * controller, and that one judges the fleet's figures: its own window
 * plus what the others published for the step. The judgement is the same.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "clock.h"
#include "deploy.h"
#include "fleet.h"
#include "live.h"
#include "log.h"
#include "metrics.h"
#include "process.h"
#include "state.h"

/* The scaling signal's window. */
#define SCALING_WINDOW_MS 60000

static const char *const slot_names[] = {"blue", "green"};

static struct {
    struct event *timer;
    const struct sy_conf *conf;     /* the snapshot the timer judges */
} deploy;

static const char *const state_names[SY_ROLLOUT_NSTATES] = {
    [SY_ROLLOUT_IDLE] = "idle",
    [SY_ROLLOUT_RUNNING] = "running",
    [SY_ROLLOUT_WAITING] = "waiting_for_traffic",
    [SY_ROLLOUT_PAUSED] = "paused",
    [SY_ROLLOUT_PROMOTED] = "promoted",
    [SY_ROLLOUT_ROLLED_BACK] = "rolled_back",
    [SY_ROLLOUT_ABORTED] = "aborted",
};

const char *sy_rollout_state_name(enum sy_rollout_state state)
{
    return state < SY_ROLLOUT_NSTATES ? state_names[state] : NULL;
}

int sy_rollout_state_parse(const char *name)
{
    for (int i = 0; i < SY_ROLLOUT_NSTATES; i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

int sy_rollout_action_parse(const char *name)
{
    static const char *const names[] = {
        [SY_ROLLOUT_START] = "start", [SY_ROLLOUT_PAUSE] = "pause",
        [SY_ROLLOUT_RESUME] = "resume", [SY_ROLLOUT_ABORT] = "abort",
        [SY_ROLLOUT_PROMOTE] = "promote",
    };
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

static enum sy_slot other_slot(int slot)
{
    return slot == SY_SLOT_BLUE ? SY_SLOT_GREEN : SY_SLOT_BLUE;
}

static int64_t wall_ms(void)
{
    return sy_clock_ms(CLOCK_REALTIME);
}

static int64_t mono_ms(void)
{
    return sy_clock_ms(CLOCK_MONOTONIC);
}

/* svc's state changed: the fleet learns of it (when there is one), and the state file. */
static void keep(const struct sy_conf *conf, const struct sy_service *svc)
{
    sy_fleet_changed(svc);
    sy_state_save(conf);
}

/* The new split takes effect, and the state file (and the fleet) follow. */
static void apply(const struct sy_conf *conf, const struct sy_service *svc, enum sy_slot active,
                  int weight)
{
    sy_live_service_set(svc->live, active, weight, wall_ms());
    keep(conf, svc);
}

/* The step's interval starts now, on both clocks (the wall clock's is the fleet's). */
static void step_starts(struct sy_rollout_live *ro, int64_t now_mono)
{
    ro->step_started_ms = now_mono;
    ro->step_started_wall_ms = wall_ms();
}

/* ---- the security log's rollout events ---- */

static void format_number(char *out, size_t len, double v)
{
    snprintf(out, len, "%.4g", v);
}

/*
 * One rollout event: the transition (action), who made it (by), and the
 * analysis figures that decided it.
 */
static void log_rollout(const struct sy_service *svc, const char *action, const char *by,
                        const char *reason)
{
    const struct sy_rollout_live *ro = &svc->live->rollout;
    const struct sy_rollout_analysis *a = &ro->last;
    char cer[24], cp95[24], ber[24], bp95[24], ratio[24];

    format_number(cer, sizeof(cer), a->canary.error_rate);
    format_number(cp95, sizeof(cp95), a->canary.p95_ms);
    format_number(ber, sizeof(ber), a->baseline.error_rate);
    format_number(bp95, sizeof(bp95), a->baseline.p95_ms);
    format_number(ratio, sizeof(ratio), a->p95_ratio);
    const struct sy_log_field fields[] = {
        {.name = "action", .str = action},
        {.name = "by", .str = by},
        {.name = "service", .str = svc->name},
        {.name = "state", .str = sy_rollout_state_name(ro->state)},
        {.name = "from", .str = slot_names[other_slot(ro->canary_slot)]},
        {.name = "to", .str = slot_names[ro->canary_slot]},
        {.name = "step", .num = ro->step},
        {.name = "weight", .num = sy_live_canary_weight(svc)},
        {.name = "window_ms", .num = a->window_ms},
        {.name = "canary_requests", .num = (int64_t)a->canary.requests},
        {.name = "canary_error_rate", .json = cer},
        {.name = "canary_p95_ms", .json = cp95},
        {.name = "baseline_requests", .num = (int64_t)a->baseline.requests},
        {.name = "baseline_error_rate", .json = ber},
        {.name = "baseline_p95_ms", .json = bp95},
        {.name = "p95_ratio", .json = ratio},
    };
    sy_log_security("rollout", NULL, NULL, reason, fields, sizeof(fields) / sizeof(fields[0]));
    sy_log_error(SY_LOG_INFO, "rollout", "service %s: %s (%s): %s", svc->name, action, by,
                 reason && *reason ? reason : sy_rollout_state_name(ro->state));
}

/* ---- judging ---- */

static void side_of(const struct sy_metrics_window *w, struct sy_rollout_side *side)
{
    side->requests = w->requests;
    side->errors = w->errors;
    side->error_rate = w->requests ? (double)w->errors / (double)w->requests : 0;
    side->p95_ms = w->requests ? (double)sy_hist_quantile(&w->hist, 0.95) / 1000.0 : 0;
}

/* This gateway's figures; returns the time they cover (the windows reach back 5 min at most). */
static int64_t read_side(uint32_t series, int64_t span_ms, struct sy_rollout_side *side)
{
    struct sy_metrics_window w;
    int64_t covered = sy_metrics_service_window(series, span_ms, &w);

    side_of(&w, side);
    return covered;
}

/* The figures a rollout is judged on: this gateway's, or in a fleet the whole fleet's. */
static int64_t read_rollout_side(const struct sy_service *svc, int slot, int64_t span_ms,
                                 struct sy_rollout_side *side)
{
    struct sy_metrics_window w;
    int64_t covered = sy_fleet_service_window(svc, (enum sy_slot)slot, span_ms, &w);

    side_of(&w, side);
    return covered;
}

/*
 * Compares the canary with the baseline since the step began. Returns
 * true on a breach (verdict "fail"), with the reason in a->reason.
 */
static bool judge(const struct sy_service *svc, int64_t now_mono, struct sy_rollout_analysis *a)
{
    const struct sy_rollout_live *ro = &svc->live->rollout;
    const struct sy_rollout_conf *rc = &svc->rollout;
    /* missing data never passes: at least one request, whatever the file says */
    uint64_t min = rc->min_requests > 1 ? (uint64_t)rc->min_requests : 1;
    int64_t span = now_mono - ro->step_started_ms;

    memset(a, 0, sizeof(*a));
    a->at_ms = wall_ms();
    a->step = ro->step;
    a->weight = sy_live_canary_weight(svc);
    span = span < 1000 ? 1000 : span;
    a->window_ms = read_rollout_side(svc, ro->canary_slot, span, &a->canary);
    read_rollout_side(svc, other_slot(ro->canary_slot), span, &a->baseline);
    if (a->baseline.p95_ms > 0)
        a->p95_ratio = a->canary.p95_ms / a->baseline.p95_ms;
    if (a->canary.requests < min) {
        a->verdict = "hold";
        snprintf(a->reason, sizeof(a->reason), "canary has %llu of the %llu requests needed",
                 (unsigned long long)a->canary.requests, (unsigned long long)min);
        return false;
    }
    a->verdict = "fail";
    if (a->canary.error_rate > rc->max_error_rate) {
        snprintf(a->reason, sizeof(a->reason), "canary error rate %.4g above max_error_rate "
                 "%.4g (%llu of %llu requests)", a->canary.error_rate, rc->max_error_rate,
                 (unsigned long long)a->canary.errors, (unsigned long long)a->canary.requests);
        return true;
    }
    if (a->canary.p95_ms > (double)rc->max_p95_ms) {
        snprintf(a->reason, sizeof(a->reason), "canary p95 %.4g ms above max_p95_ms %lld",
                 a->canary.p95_ms, (long long)rc->max_p95_ms);
        return true;
    }
    if (a->baseline.requests >= min && a->canary.p95_ms >= SY_ROLLOUT_RATIO_FLOOR_MS &&
        a->p95_ratio > rc->max_p95_ratio) {
        snprintf(a->reason, sizeof(a->reason), "canary p95 %.4g ms is %.3g x the active slot's "
                 "%.4g ms, above max_p95_ratio %.4g", a->canary.p95_ms, a->p95_ratio,
                 a->baseline.p95_ms, rc->max_p95_ratio);
        return true;
    }
    a->verdict = "pass";
    snprintf(a->reason, sizeof(a->reason), "within limits");
    return false;
}

static void promote(const struct sy_conf *conf, const struct sy_service *svc, const char *by,
                    const char *reason)
{
    struct sy_rollout_live *ro = &svc->live->rollout;

    ro->state = SY_ROLLOUT_PROMOTED;
    apply(conf, svc, (enum sy_slot)ro->canary_slot, 0);
    log_rollout(svc, "promote", by, reason);
}

/* The canary's weight goes to 0: rolled back by the controller, or aborted by hand. */
static void withdraw(const struct sy_conf *conf, const struct sy_service *svc,
                     enum sy_rollout_state state, const char *by, const char *reason)
{
    struct sy_rollout_live *ro = &svc->live->rollout;

    ro->state = state;
    apply(conf, svc, other_slot(ro->canary_slot), 0);
    log_rollout(svc, state == SY_ROLLOUT_ROLLED_BACK ? "rollback" : "abort", by, reason);
}

/* Steps onto ro->step (or promotes past the last one). */
static void enter_step(const struct sy_conf *conf, const struct sy_service *svc, int64_t now_mono,
                       const char *by)
{
    struct sy_rollout_live *ro = &svc->live->rollout;

    if ((size_t)ro->step >= svc->rollout.nsteps) {
        promote(conf, svc, by, "the last step passed");
        return;
    }
    step_starts(ro, now_mono);
    ro->state = SY_ROLLOUT_RUNNING;
    apply(conf, svc, other_slot(ro->canary_slot), svc->rollout.steps[ro->step]);
}

static void rollout_tick(const struct sy_conf *conf, const struct sy_service *svc,
                         int64_t now_mono)
{
    struct sy_rollout_live *ro = &svc->live->rollout;

    /* in a fleet, one gateway runs the controller; the others follow what it stores */
    if (!sy_rollout_active(ro->state) || !sy_fleet_leads(svc))
        return;
    if (sy_live_active(svc) == (enum sy_slot)ro->canary_slot) {
        /* The active slot changed under the rollout: it has no canary left. */
        ro->state = SY_ROLLOUT_ABORTED;
        apply(conf, svc, sy_live_active(svc), 0);
        log_rollout(svc, "abort", "controller", "the active slot changed under the rollout");
        return;
    }
    if (judge(svc, now_mono, &ro->last)) {
        withdraw(conf, svc, SY_ROLLOUT_ROLLED_BACK, "controller", ro->last.reason);
        return;
    }
    if ((size_t)ro->step >= svc->rollout.nsteps) {
        enter_step(conf, svc, now_mono, "controller");      /* a reload removed steps */
        return;
    }
    if (ro->state == SY_ROLLOUT_PAUSED ||
        now_mono - ro->step_started_ms < svc->rollout.step_interval_ms)
        return;
    if (strcmp(ro->last.verdict, "hold") == 0) {
        if (ro->state != SY_ROLLOUT_WAITING) {
            ro->state = SY_ROLLOUT_WAITING;
            keep(conf, svc);
            log_rollout(svc, "wait", "controller", ro->last.reason);
        }
        return;
    }
    ro->step++;
    enter_step(conf, svc, now_mono, "controller");
    if (ro->state == SY_ROLLOUT_RUNNING)
        log_rollout(svc, "advance", "controller", "the step passed");
}

/* ---- the scaling signal ---- */

static void scaling_tick(const struct sy_service *svc)
{
    struct sy_scaling_figures *f = &svc->live->scaling, was = *f;
    const struct sy_scaling_conf *sc = &svc->scaling;
    uint64_t min = svc->rollout.min_requests > 0 ? (uint64_t)svc->rollout.min_requests : 0;
    enum sy_slot active = sy_live_active(svc);
    struct sy_rollout_side side;

    read_side(svc->metric_id[active], SCALING_WINDOW_MS, &side);
    f->p95_ms = side.p95_ms;
    f->error_rate = side.error_rate;
    f->requests = side.requests;
    f->queue = atomic_load_explicit(&svc->live->connecting[active], memory_order_relaxed);
    /* a latency or an error rate of a handful of requests decides nothing */
    bool judged = side.requests >= min;
    if (judged && f->p95_ms > (double)sc->max_p95_ms) {
        f->recommendation = 1;
        snprintf(f->reason, sizeof(f->reason), "p95 %.4g ms above max_p95_ms %lld", f->p95_ms,
                 (long long)sc->max_p95_ms);
    } else if (f->queue > sc->max_queue) {
        f->recommendation = 1;
        snprintf(f->reason, sizeof(f->reason), "%d requests wait for a connection, above "
                 "max_queue %lld", f->queue, (long long)sc->max_queue);
    } else if (judged && f->error_rate > sc->max_error_rate) {
        f->recommendation = 1;
        snprintf(f->reason, sizeof(f->reason), "error rate %.4g above max_error_rate %.4g",
                 f->error_rate, sc->max_error_rate);
    } else if (f->p95_ms < (double)sc->max_p95_ms / 4 && f->queue * 4 < sc->max_queue &&
               f->error_rate < sc->max_error_rate / 4) {
        f->recommendation = -1;
        snprintf(f->reason, sizeof(f->reason), "p95, queue and error rate all under a quarter "
                 "of their limits");
    } else {
        f->recommendation = 0;
        snprintf(f->reason, sizeof(f->reason), "within limits");
    }
    if (f->recommendation != was.recommendation)
        sy_log_error(SY_LOG_INFO, "scaling", "service %s: scale recommendation %+d: %s",
                     svc->name, f->recommendation, f->reason);
}

void sy_deploy_tick(const struct sy_conf *conf)
{
    int64_t now = mono_ms();

    for (size_t i = 0; i < conf->nservices; i++) {
        rollout_tick(conf, &conf->services[i], now);
        scaling_tick(&conf->services[i]);
    }
    sy_state_retry(conf);
}

/* ---- the operator's changes ---- */

static int refuse(char *err, size_t errlen, int status, const char *fmt, const char *a,
                  const char *b)
{
    snprintf(err, errlen, fmt, a, b);
    return status;
}

static int owned_by_rollout(const struct sy_service *svc, char *err, size_t errlen)
{
    enum sy_rollout_state st = svc->live->rollout.state;

    if (!sy_rollout_active(st))
        return 0;
    return refuse(err, errlen, 409, "service %s has a rollout %s: abort or promote it first",
                  svc->name, sy_rollout_state_name(st));
}

static int unhealthy(const struct sy_service *svc, enum sy_slot slot, char *err, size_t errlen)
{
    if (sy_pool_healthy(svc->slot_pool[slot], wall_ms()))
        return 0;
    snprintf(err, errlen, "pool \"%s\" of slot %s has no healthy instance (\"force\": true "
             "overrides)", svc->slot_pool[slot]->name, slot_names[slot]);
    return 409;
}

int sy_deploy_switch(const struct sy_conf *conf, const struct sy_service *svc, enum sy_slot to,
                     bool force, char *err, size_t errlen)
{
    int rc = owned_by_rollout(svc, err, errlen);

    if (rc || (!force && (rc = unhealthy(svc, to, err, errlen)) != 0))
        return rc;
    enum sy_slot from = sy_live_active(svc);
    apply(conf, svc, to, 0);
    sy_log_error(SY_LOG_INFO, "deploy", "service %s switched from %s to %s%s", svc->name,
                 slot_names[from], slot_names[to], force ? " (forced)" : "");
    return 0;
}

int sy_deploy_set_weight(const struct sy_conf *conf, const struct sy_service *svc, int weight,
                         char *err, size_t errlen)
{
    int rc = owned_by_rollout(svc, err, errlen);

    if (rc)
        return rc;
    apply(conf, svc, sy_live_active(svc), weight);
    return 0;
}

void sy_deploy_set_maintenance(const struct sy_conf *conf, const struct sy_service *svc,
                               bool on)
{
    atomic_store_explicit(&svc->live->maintenance, on, memory_order_relaxed);
    keep(conf, svc);
    sy_log_error(SY_LOG_INFO, "deploy", "service %s: maintenance %s", svc->name,
                 on ? "on" : "off");
}

static int start(const struct sy_conf *conf, const struct sy_service *svc, bool force,
                 char *err, size_t errlen)
{
    struct sy_rollout_live *ro = &svc->live->rollout;
    enum sy_slot canary = other_slot(sy_live_active(svc));
    int rc;

    if (!force && (rc = unhealthy(svc, canary, err, errlen)) != 0)
        return rc;
    memset(&ro->last, 0, sizeof(ro->last));
    ro->canary_slot = canary;
    ro->step = 0;
    ro->started_wall_ms = wall_ms();
    enter_step(conf, svc, mono_ms(), "operator");
    log_rollout(svc, "start", "operator", NULL);
    return 0;
}

int sy_deploy_rollout(const struct sy_conf *conf, const struct sy_service *svc,
                      enum sy_rollout_action action, bool force, char *err, size_t errlen)
{
    struct sy_rollout_live *ro = &svc->live->rollout;
    const char *state = sy_rollout_state_name(ro->state);
    bool active = sy_rollout_active(ro->state);

    switch (action) {
    case SY_ROLLOUT_START:
        if (active)
            return refuse(err, errlen, 409, "service %s: a rollout is already %s", svc->name,
                          state);
        return start(conf, svc, force, err, errlen);
    case SY_ROLLOUT_PAUSE:
        if (!active || ro->state == SY_ROLLOUT_PAUSED)
            break;
        ro->paused_from = ro->state;
        ro->state = SY_ROLLOUT_PAUSED;
        keep(conf, svc);
        log_rollout(svc, "pause", "operator", NULL);
        return 0;
    case SY_ROLLOUT_RESUME:
        if (ro->state != SY_ROLLOUT_PAUSED)
            break;
        /* The step's interval starts again: what came before the pause was judged then. */
        ro->state = ro->paused_from;
        step_starts(ro, mono_ms());
        keep(conf, svc);
        log_rollout(svc, "resume", "operator", NULL);
        return 0;
    case SY_ROLLOUT_ABORT:
        if (!active)
            break;
        withdraw(conf, svc, SY_ROLLOUT_ABORTED, "operator", NULL);
        return 0;
    case SY_ROLLOUT_PROMOTE:
        if (!active)
            break;
        if (!force) {
            int rc = unhealthy(svc, (enum sy_slot)ro->canary_slot, err, errlen);
            if (rc)
                return rc;
        }
        promote(conf, svc, "operator", NULL);
        return 0;
    }
    return refuse(err, errlen, 409, "service %s: the rollout is %s, the action does not apply",
                  svc->name, state);
}

/* ---- the main-thread service ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    sy_deploy_tick(deploy.conf);
}

static int deploy_prepare(struct sy_conf *conf, char *err, size_t errlen)
{
    /* The entries are new: this takes the file's maintenance.enabled (the split
     * they have already), then the state file overrides what it saved. */
    sy_live_services_adopt(conf, wall_ms());
    return sy_state_restore(conf, mono_ms(), err, errlen);
}

static int deploy_start(struct event_base *base, struct sy_conf *conf, char *err, size_t errlen)
{
    static const struct timeval second = {1, 0};

    deploy.conf = conf;
    deploy.timer = event_new(base, -1, EV_PERSIST, on_timer, NULL);
    if (!deploy.timer || event_add(deploy.timer, &second) < 0) {
        snprintf(err, errlen, "cannot start the rollout controller's timer");
        return -1;
    }
    return 0;
}

/*
 * After a reload: a rollout goes on with the new file's steps, at the same
 * step (its weight follows them); one whose step is past the new last one
 * promotes at the next tick. Then the state file learns of any change.
 */
static void deploy_reconfigure(struct sy_conf *conf)
{
    deploy.conf = conf;
    for (size_t i = 0; i < conf->nservices; i++) {
        const struct sy_service *svc = &conf->services[i];
        const struct sy_rollout_live *ro = &svc->live->rollout;
        if (!sy_rollout_active(ro->state) || (size_t)ro->step >= svc->rollout.nsteps ||
            sy_live_canary_weight(svc) == svc->rollout.steps[ro->step])
            continue;
        sy_live_service_set(svc->live, sy_live_active(svc), svc->rollout.steps[ro->step],
                            wall_ms());
        sy_fleet_changed(svc);
        sy_log_error(SY_LOG_INFO, "rollout", "service %s: the reload's steps put step %d at "
                     "weight %d", svc->name, ro->step + 1, svc->rollout.steps[ro->step]);
    }
    sy_state_save(conf);
}

/*
 * An upgrade starts: the new process restores the state file as it is now,
 * so the state is saved and the controller waits (a step may come a few
 * seconds late); it goes on here if the upgrade fails.
 */
static void deploy_hold(bool held)
{
    static const struct timeval second = {1, 0};

    if (!deploy.timer)
        return;
    if (held) {
        event_del(deploy.timer);
        sy_state_save(deploy.conf);
    } else {
        event_add(deploy.timer, &second);
    }
}

static void deploy_stop(void)
{
    if (deploy.timer) {
        event_free(deploy.timer);
        deploy.timer = NULL;
    }
}

const struct sy_main_service sy_deploy_service = {
    .prepare = deploy_prepare,
    .start = deploy_start,
    .reconfigure = deploy_reconfigure,
    .stop = deploy_stop,
    .hold = deploy_hold,
};
