/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * state.c: the state file (state.h). The format, one JSON object:
 *
 *   {"version": 1, "saved": "2026-11-23T10:00:00.000Z",
 *    "services": {"app": {"active": "green", "canary_weight": 25, "maintenance": false,
 *                         "rollout": {"state": "running", "step": 1,
 *                                     "canary": "green", "paused_from": "running",
 *                                     "started": "2026-11-23T09:58:00.000Z"}}}}
 *
 * A rollout that was running goes on at its step, whose interval starts
 * again: the histograms that judged it did not survive the restart.
 * "maintenance" is optional on restore: files written before it existed
 * leave the configuration's maintenance.enabled in force.
 *
 * With "redis" (fleet.h) each service also saves the shared state's
 * version it is at, whether a change made here is not stored in Redis
 * yet, and when the rollout's step started ("step_started" in "rollout"):
 *   "fleet": {"version": 7, "pending": false}
 * so that a restart goes on with the fleet's step rather than a new one,
 * and Redis's state wins over the file only when it is newer.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "fleet_doc.h"
#include "live.h"
#include "log.h"
#include "state.h"

#define STATE_VERSION 1

static const char *const slot_names[] = {"blue", "green"};

static struct {
    bool dirty;                 /* a change is not on disk yet */
    bool failing;               /* the last write failed (logged once) */
} state;

/* ---- saving ---- */

static json_t *timestamp(int64_t wall_ms)
{
    char ts[32];

    if (wall_ms <= 0)
        return json_null();
    sy_log_format_ts(ts, wall_ms);
    return json_string(ts);
}

static json_t *service_json(const struct sy_service *svc, bool fleet)
{
    const struct sy_rollout_live *ro = &svc->live->rollout;
    json_t *rollout = json_pack("{s:s,s:i,s:s,s:s,s:o}",
                                "state", sy_rollout_state_name(ro->state), "step", ro->step,
                                "canary", slot_names[ro->canary_slot],
                                "paused_from", sy_rollout_state_name(ro->paused_from),
                                "started", timestamp(ro->started_wall_ms));
    json_t *entry = json_pack("{s:s,s:i,s:b,s:o*}", "active", slot_names[sy_live_active(svc)],
                              "canary_weight", sy_live_canary_weight(svc),
                              "maintenance", sy_live_maintenance(svc), "rollout", rollout);

    if (entry && fleet &&
        (json_object_set_new(json_object_get(entry, "rollout"), "step_started",
                             timestamp(ro->step_started_wall_ms)) < 0 ||
         json_object_set_new(entry, "fleet", json_pack("{s:I,s:b}", "version",
                                                       (json_int_t)svc->live->fleet.version,
                                                       "pending", svc->live->fleet.pending)) < 0)) {
        json_decref(entry);
        return NULL;
    }
    return entry;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The directory entry of a rename is durable only once the directory is synced. */
static int sync_dir(const char *path)
{
    char copy[4096];

    snprintf(copy, sizeof(copy), "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* The file's directory, and those above it, when missing (mkdir -p). */
static int make_parent(const char *path)
{
    char dir[4096];

    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0755) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT || make_parent(dir) < 0)
        return -1;
    return mkdir(dir, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* Returns 0, or -1 with errno and what failed in *step. */
static int write_file(const char *path, const char *text, const char **step)
{
    char tmp[4096];
    int fd;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        *step = "naming the temporary file";
        return -1;
    }
    *step = "making the directory of";
    if (make_parent(path) < 0)
        return -1;
    *step = "creating";
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        return -1;
    *step = "writing";
    if (write_all(fd, text, strlen(text)) < 0 || (*step = "syncing", fsync(fd) < 0)) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    *step = "closing";
    if (close(fd) < 0 || (*step = "renaming", rename(tmp, path) < 0)) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    *step = "syncing the directory of";
    return sync_dir(path);
}

void sy_state_save(const struct sy_conf *conf)
{
    const char *step = "encoding";
    char *text = NULL;

    if (!conf->state_file)
        return;
    state.dirty = true;
    json_t *services = json_object();
    for (size_t i = 0; services && i < conf->nservices; i++)
        json_object_set_new(services, conf->services[i].name,
                            service_json(&conf->services[i], conf->redis.enabled));
    json_t *root = json_pack("{s:i,s:o,s:o*}", "version", STATE_VERSION,
                             "saved", timestamp(sy_clock_ms(CLOCK_REALTIME)),
                             "services", services);
    if (root)
        text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (!text)
        errno = ENOMEM;
    int rc = text ? write_file(conf->state_file, text, &step) : -1;
    int e = errno;
    free(text);
    if (rc < 0) {
        if (!state.failing)
            sy_log_error(SY_LOG_ERROR, "state", "state file %s: %s failed: %s; the change "
                         "holds in memory and the write is retried every second",
                         conf->state_file, step, strerror(e));
        state.failing = true;
        return;
    }
    if (state.failing)
        sy_log_error(SY_LOG_INFO, "state", "state file %s written again", conf->state_file);
    state.failing = false;
    state.dirty = false;
}

void sy_state_retry(const struct sy_conf *conf)
{
    if (state.dirty)
        sy_state_save(conf);
}

/* ---- restoring ---- */

static int slot_parse(const char *name)
{
    return strcmp(name, "blue") == 0 ? SY_SLOT_BLUE : strcmp(name, "green") == 0 ? SY_SLOT_GREEN
                                                                                 : -1;
}

struct restored {
    int active, weight;
    int maintenance;            /* -1: not in the file */
    struct sy_rollout_live rollout;
    struct sy_fleet_live fleet; /* zero when not in the file */
};

/* Wall-clock ms of "2026-11-23T10:00:00.000Z" as sy_log_format_ts writes it; 0 if not. */
static int64_t parse_ts(const char *text)
{
    struct tm tm = {0};
    int ms = 0;
    const char *end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);

    if (!end || sscanf(end, ".%3dZ", &ms) != 1)
        return 0;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* One service's entry; 0, or -1 with the JSON path and the fault in err. */
static int parse_service(const char *name, json_t *v, struct restored *out, char *err,
                         size_t errlen)
{
    const char *active = NULL, *st = "idle", *canary = "blue", *paused = "running";
    json_int_t weight = -1, step = 0, version = 0;
    json_t *rollout = NULL, *started = NULL, *step_started = NULL, *fleet = NULL;
    int pending = 0;
    json_error_t je;

    memset(out, 0, sizeof(*out));
    out->maintenance = -1;
    if (json_unpack_ex(v, &je, 0, "{s:s,s:I,s?b,s?o,s?o}", "active", &active,
                       "canary_weight", &weight, "maintenance", &out->maintenance,
                       "rollout", &rollout, "fleet", &fleet) < 0) {
        snprintf(err, errlen, "services.%s: %s", name, je.text);
        return -1;
    }
    if (rollout && json_unpack_ex(rollout, &je, 0, "{s:s,s:I,s:s,s?s,s?o,s?o}", "state", &st,
                                  "step", &step, "canary", &canary, "paused_from", &paused,
                                  "started", &started, "step_started", &step_started) < 0) {
        snprintf(err, errlen, "services.%s.rollout: %s", name, je.text);
        return -1;
    }
    if (fleet && (json_unpack_ex(fleet, &je, 0, "{s:I,s:b}", "version", &version, "pending",
                                 &pending) < 0 || version < 0)) {
        snprintf(err, errlen, "services.%s.fleet: %s", name, version < 0 ? "version below 0"
                 : je.text);
        return -1;
    }
    /*
     * A version no gateway orders by any more (above 2^53 - 1: saved before
     * they were bounded) starts over from 0: Redis's state wins, or ours is
     * written back as version 1.
     */
    out->fleet.version = version <= SY_FLEET_VERSION_MAX ? version : 0;
    out->fleet.pending = pending != 0;
    out->active = slot_parse(active);
    out->weight = (int)weight;
    int state_id = sy_rollout_state_parse(st), paused_id = sy_rollout_state_parse(paused);
    out->rollout.canary_slot = slot_parse(canary);
    if (out->active < 0 || weight < 0 || weight > 100 || state_id < 0 || paused_id < 0 ||
        out->rollout.canary_slot < 0 || step < 0 || step > 1000) {
        snprintf(err, errlen, "services.%s: a value out of range (active %s, canary_weight "
                 "%lld, rollout state %s, step %lld, canary %s)", name, active,
                 (long long)weight, st, (long long)step, canary);
        return -1;
    }
    if (state_id == SY_ROLLOUT_PAUSED && paused_id != SY_ROLLOUT_RUNNING &&
        paused_id != SY_ROLLOUT_WAITING) {
        snprintf(err, errlen, "services.%s.rollout.paused_from: %s is not a state a rollout "
                 "is paused from", name, paused);
        return -1;
    }
    out->rollout.state = (enum sy_rollout_state)state_id;
    out->rollout.paused_from = (enum sy_rollout_state)paused_id;
    out->rollout.step = (int)step;
    /* "started" is null for a rollout never started */
    out->rollout.started_wall_ms = json_is_string(started)
                                   ? parse_ts(json_string_value(started)) : 0;
    out->rollout.step_started_wall_ms = json_is_string(step_started)
                                        ? parse_ts(json_string_value(step_started)) : 0;
    return 0;
}

/* Keeps a file we could not read aside, for the post-mortem. */
static void set_aside(const char *path, const char *why)
{
    char aside[4200], stamp[32];
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(aside, sizeof(aside), "%s.corrupt-%s", path, stamp);
    if (rename(path, aside) == 0)
        sy_log_error(SY_LOG_ERROR, "state", "state file %s: %s; kept aside as %s, starting "
                     "from the configuration", path, why, aside);
    else
        sy_log_error(SY_LOG_ERROR, "state", "state file %s: %s; starting from the "
                     "configuration (could not keep it aside: %s)", path, why, strerror(errno));
}

/*
 * Alone, a restarted gateway starts its step's interval again: the figures
 * that judged it did not survive. In a fleet ("redis" configured: fleet)
 * the step goes on from when it started, as the other gateways and their
 * figures know it, and the entry keeps its place in the shared state.
 */
static void adopt(const struct sy_service *svc, const struct restored *r, int64_t now_mono_ms,
                  bool fleet)
{
    struct sy_rollout_live *ro = &svc->live->rollout;
    int64_t now_wall = sy_clock_ms(CLOCK_REALTIME);

    sy_live_service_set(svc->live, (enum sy_slot)r->active, r->weight, now_wall);
    *ro = r->rollout;
    ro->step_started_ms = now_mono_ms;
    if (fleet && ro->step_started_wall_ms > 0 && ro->step_started_wall_ms <= now_wall)
        ro->step_started_ms = now_mono_ms - (now_wall - ro->step_started_wall_ms);
    else
        ro->step_started_wall_ms = now_wall;
    if (fleet)
        svc->live->fleet = r->fleet;
    if (sy_rollout_active(ro->state) &&
        (ro->canary_slot == r->active || (size_t)ro->step >= svc->rollout.nsteps)) {
        /* Not a rollout this configuration can go on with: the canary's share goes. */
        ro->state = SY_ROLLOUT_ABORTED;
        sy_live_service_set(svc->live, (enum sy_slot)r->active, 0, sy_clock_ms(CLOCK_REALTIME));
        sy_log_error(SY_LOG_WARN, "state", "service %s: the saved rollout does not fit the "
                     "configuration (step %d of %zu): aborted, canary weight 0", svc->name,
                     ro->step + 1, svc->rollout.nsteps);
    }
    if (r->maintenance >= 0)
        atomic_store_explicit(&svc->live->maintenance, r->maintenance != 0,
                              memory_order_relaxed);
    sy_log_error(SY_LOG_INFO, "state", "service %s: restored active %s, canary weight %d, "
                 "rollout %s, maintenance %s", svc->name, slot_names[r->active],
                 sy_live_canary_weight(svc), sy_rollout_state_name(ro->state),
                 sy_live_maintenance(svc) ? "on" : "off");
}

int sy_state_restore(const struct sy_conf *conf, int64_t now_mono_ms, char *err,
                     size_t errlen)
{
    json_error_t je;
    json_t *root, *services = NULL;
    char why[512];
    int version = 0;

    if (!conf->state_file)
        return 0;
    FILE *f = fopen(conf->state_file, "r");
    if (!f && (errno == ENOENT || errno == ENOTDIR)) {
        sy_log_error(SY_LOG_INFO, "state", "state file %s does not exist yet: starting from "
                     "the configuration", conf->state_file);
        return 0;
    }
    if (!f) {
        /* Unreadable is not corrupt: starting from the file's active slot could flip traffic. */
        snprintf(err, errlen, "state file %s: %s (fix its permissions, or remove it to start "
                 "from the configuration)", conf->state_file, strerror(errno));
        return -1;
    }
    root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    bool read_failed = ferror(f);
    fclose(f);
    if (read_failed) {
        json_decref(root);
        snprintf(err, errlen, "state file %s: cannot read it", conf->state_file);
        return -1;
    }
    if (!root) {
        snprintf(why, sizeof(why), "line %d: %s", je.line, je.text);
        set_aside(conf->state_file, why);
        return 0;
    }
    if (json_unpack_ex(root, &je, 0, "{s:i,s:o}", "version", &version, "services",
                       &services) < 0 || !json_is_object(services) || version != STATE_VERSION) {
        snprintf(why, sizeof(why), "%s", version != STATE_VERSION && version
                 ? "an unknown version" : !json_is_object(services) ? "services: not an object"
                 : je.text);
        json_decref(root);
        set_aside(conf->state_file, why);
        return 0;
    }
    /* Every entry is checked before any is used: a file is taken whole or not at all. */
    struct restored *r = calloc(conf->nservices ? conf->nservices : 1, sizeof(*r));
    bool *found = calloc(conf->nservices ? conf->nservices : 1, sizeof(*found));
    const char *name;
    json_t *v;
    int rc = r && found ? 0 : -1;
    snprintf(why, sizeof(why), "out of memory");
    json_object_foreach(services, name, v) {
        struct restored one;
        if (rc < 0 || (rc = parse_service(name, v, &one, why, sizeof(why))) < 0)
            break;
        for (size_t i = 0; i < conf->nservices; i++)
            if (strcmp(conf->services[i].name, name) == 0) {
                r[i] = one;
                found[i] = true;
            }
    }
    if (rc == 0)
        for (size_t i = 0; i < conf->nservices; i++)
            if (found[i])
                adopt(&conf->services[i], &r[i], now_mono_ms, conf->redis.enabled);
    json_decref(root);
    free(r);
    free(found);
    if (rc < 0)
        set_aside(conf->state_file, why);
    return 0;
}
