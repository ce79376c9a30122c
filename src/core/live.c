/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * live.c: the registry of instances' live state, and passive health.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "live.h"
#include "log.h"

/* Envoy's cap on a back-off ejection. */
#define EJECT_MAX_MS 300000

/*
 * A list under a mutex: entries are looked up when a snapshot is loaded
 * and dropped when one is freed, never on the request path.
 */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sy_instance_live *registry;

struct sy_instance_live *sy_live_get(const char *pool, const char *addr, bool checked)
{
    struct sy_instance_live *l;

    pthread_mutex_lock(&registry_lock);
    for (l = registry; l; l = l->next)
        if (strcmp(l->pool, pool) == 0 && strcmp(l->addr, addr) == 0)
            break;
    if (!l && (l = calloc(1, sizeof(*l))) != NULL) {
        l->pool = strdup(pool);
        l->addr = strdup(addr);
        if (!l->pool || !l->addr) {
            free(l->pool);
            free(l->addr);
            free(l);
            l = NULL;
        } else {
            atomic_init(&l->health, checked ? SY_HEALTH_UNKNOWN : SY_HEALTH_UP);
            l->next = registry;
            registry = l;
        }
    }
    if (l)
        l->refs++;
    pthread_mutex_unlock(&registry_lock);
    return l;
}

void sy_live_put(struct sy_instance_live *live)
{
    if (!live)
        return;
    pthread_mutex_lock(&registry_lock);
    if (--live->refs == 0) {
        struct sy_instance_live **pp = &registry;
        while (*pp != live)
            pp = &(*pp)->next;
        *pp = live->next;
        free(live->pool);
        free(live->addr);
        free(live);
    }
    pthread_mutex_unlock(&registry_lock);
}

static struct sy_service_live *service_registry;

struct sy_service_live *sy_live_service_get(const char *name, int conf_active, int conf_weight)
{
    struct sy_service_live *l;

    pthread_mutex_lock(&registry_lock);
    for (l = service_registry; l; l = l->next)
        if (strcmp(l->name, name) == 0)
            break;
    if (!l && (l = calloc(1, sizeof(*l))) != NULL) {
        if (!(l->name = strdup(name))) {
            free(l);
            l = NULL;
        } else {
            atomic_init(&l->split, conf_active | conf_weight << 1);
            l->conf_active = conf_active;
            l->conf_weight = conf_weight;
            l->next = service_registry;
            service_registry = l;
        }
    }
    if (l)
        l->refs++;
    pthread_mutex_unlock(&registry_lock);
    return l;
}

void sy_live_service_put(struct sy_service_live *live)
{
    if (!live)
        return;
    pthread_mutex_lock(&registry_lock);
    if (--live->refs == 0) {
        struct sy_service_live **pp = &service_registry;
        while (*pp != live)
            pp = &(*pp)->next;
        *pp = live->next;
        free(live->name);
        free(live);
    }
    pthread_mutex_unlock(&registry_lock);
}

void sy_live_service_set(struct sy_service_live *live, enum sy_slot active, int weight,
                         int64_t now_wall_ms)
{
    enum sy_slot other = active == SY_SLOT_BLUE ? SY_SLOT_GREEN : SY_SLOT_BLUE;
    int was = atomic_load(&live->split);
    bool other_had = (enum sy_slot)(was & 1) == other || was >> 1 > 0;

    atomic_store_explicit(&live->split, (int)active | weight << 1, memory_order_relaxed);
    atomic_store_explicit(&live->slot_lost_ms[active], 0, memory_order_relaxed);
    if (weight > 0)
        atomic_store_explicit(&live->slot_lost_ms[other], 0, memory_order_relaxed);
    else if (other_had)
        atomic_store_explicit(&live->slot_lost_ms[other], now_wall_ms, memory_order_relaxed);
}

void sy_live_services_adopt(const struct sy_conf *conf, int64_t now_wall_ms)
{
    for (size_t i = 0; i < conf->nservices; i++) {
        const struct sy_service *svc = &conf->services[i];
        struct sy_service_live *l = svc->live;
        bool rolling = sy_rollout_active(l->rollout.state);
        enum sy_slot active, was_active;
        int weight, was_weight;

        sy_live_split(svc, &was_active, &was_weight);
        active = was_active;
        weight = was_weight;
        if (svc->canary.weight != l->conf_weight) {
            if (rolling)
                sy_log_error(SY_LOG_WARN, "reload", "service %s: canary.weight %d in the file "
                             "is ignored: a rollout owns the split", svc->name,
                             svc->canary.weight);
            else
                weight = svc->canary.weight;
            l->conf_weight = svc->canary.weight;
        }
        if (svc->active != (enum sy_slot)l->conf_active) {
            active = svc->active;
            l->conf_active = svc->active;
            if (rolling) {
                /* The operator moved the traffic by hand: the rollout has nothing left to do. */
                l->rollout.state = SY_ROLLOUT_ABORTED;
                weight = svc->canary.weight;
                sy_log_error(SY_LOG_WARN, "reload", "service %s: the file's active slot changed "
                             "to %s: the rollout is aborted", svc->name,
                             active == SY_SLOT_BLUE ? "blue" : "green");
            }
        }
        if (active != was_active || weight != was_weight)
            sy_live_service_set(l, active, weight, now_wall_ms);
        if (svc->maintenance.enabled != l->conf_maintenance) {
            atomic_store_explicit(&l->maintenance, svc->maintenance.enabled,
                                  memory_order_relaxed);
            l->conf_maintenance = svc->maintenance.enabled;
        }
    }
}

static bool ejected(const struct sy_instance_live *live, int64_t now_ms)
{
    return atomic_load_explicit(&live->ejected_until_ms, memory_order_relaxed) > now_ms;
}

const char *sy_health_name(int health)
{
    static const char *const names[] = {
        [SY_HEALTH_UNKNOWN] = "unknown", [SY_HEALTH_UP] = "up", [SY_HEALTH_DOWN] = "down",
    };
    return health >= 0 && health <= SY_HEALTH_DOWN ? names[health] : "unknown";
}

const char *sy_live_state(const struct sy_instance_live *live, int64_t now_ms)
{
    if (atomic_load_explicit(&live->drained, memory_order_relaxed))
        return "drained";
    if (ejected(live, now_ms))
        return "ejected";
    return sy_health_name(atomic_load_explicit(&live->health, memory_order_relaxed));
}

bool sy_live_usable(const struct sy_instance_live *live, int64_t now_ms)
{
    /* UNKNOWN takes traffic: at start every instance is unknown. */
    return atomic_load_explicit(&live->health, memory_order_relaxed) != SY_HEALTH_DOWN &&
           !atomic_load_explicit(&live->drained, memory_order_relaxed) && !ejected(live, now_ms);
}

bool sy_live_healthy(const struct sy_instance_live *live, int64_t now_ms)
{
    return atomic_load_explicit(&live->health, memory_order_relaxed) == SY_HEALTH_UP &&
           sy_live_usable(live, now_ms);
}

bool sy_pool_healthy(const struct sy_pool *pool, int64_t now_ms)
{
    for (size_t i = 0; i < pool->ninstances; i++)
        if (sy_live_healthy(pool->instances[i].live, now_ms))
            return true;
    return false;
}

/* Whether ejecting inst now would break a pool-wide bound. */
static bool may_eject(const struct sy_pool *pool, const struct sy_instance *inst, int64_t now_ms)
{
    size_t nejected = 0, others_usable = 0;
    int pct = pool->passive.max_eject_percent;

    for (size_t i = 0; i < pool->ninstances; i++) {
        const struct sy_instance_live *l = pool->instances[i].live;
        if (ejected(l, now_ms))
            nejected++;
        else if (&pool->instances[i] != inst && sy_live_usable(l, now_ms))
            others_usable++;
    }
    size_t max = pool->ninstances * (size_t)pct / 100;
    if (max < 1)
        max = 1;
    return others_usable > 0 && nejected < max;
}

int64_t sy_live_failure(const struct sy_pool *pool, const struct sy_instance *inst, int64_t now_ms)
{
    struct sy_instance_live *live = inst->live;
    int max_fails = pool->passive.max_fails;

    if (max_fails <= 0)
        return 0;
    int fails = atomic_fetch_add_explicit(&live->fails, 1, memory_order_relaxed) + 1;
    if (fails < max_fails || ejected(live, now_ms) || !may_eject(pool, inst, now_ms))
        return 0;
    int64_t until = atomic_load_explicit(&live->ejected_until_ms, memory_order_relaxed);
    int streak = atomic_load_explicit(&live->ejections, memory_order_relaxed) + 1;
    int64_t ms = pool->passive.eject_ms * streak;
    int64_t cap = pool->passive.eject_ms > EJECT_MAX_MS ? pool->passive.eject_ms : EJECT_MAX_MS;
    if (ms > cap || ms / streak != pool->passive.eject_ms)
        ms = cap;
    /* Several workers may see the max_fails-th failure: one of them ejects. */
    if (!atomic_compare_exchange_strong_explicit(&live->ejected_until_ms, &until, now_ms + ms,
                                                 memory_order_relaxed, memory_order_relaxed))
        return 0;
    atomic_store_explicit(&live->ejections, streak, memory_order_relaxed);
    atomic_store_explicit(&live->fails, 0, memory_order_relaxed);
    return ms;
}

void sy_live_success(const struct sy_instance *inst, int64_t now_ms)
{
    struct sy_instance_live *live = inst->live;

    /* Loads first: the common case writes nothing shared. */
    if (atomic_load_explicit(&live->fails, memory_order_relaxed) != 0)
        atomic_store_explicit(&live->fails, 0, memory_order_relaxed);
    if (atomic_load_explicit(&live->ejections, memory_order_relaxed) != 0 && !ejected(live, now_ms))
        atomic_store_explicit(&live->ejections, 0, memory_order_relaxed);
}
