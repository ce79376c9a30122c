/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * upstream.c: connections to app instances and the worker's idle
 * keep-alive pool per instance address. Pools are keyed by address, not by
 * configuration, so a reload keeps warm connections. The pool is LIFO: the
 * most recently used connection is the one least likely to be stale.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "http.h"

/* How long an idle upstream connection is kept; below common app servers' 5 s. */
#define IDLE_TIMEOUT_MS 4000

static uint64_t addr_hash(const struct sockaddr *sa, socklen_t len)
{
    const unsigned char *p = (const unsigned char *)sa;
    uint64_t h = 1469598103934665603ULL;
    for (socklen_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static int peers_grow(struct sy_http_worker *hw)
{
    size_t cap = hw->peers_cap ? hw->peers_cap * 2 : 64;
    struct sy_peer **np = calloc(cap, sizeof(*np));
    if (!np)
        return -1;
    for (size_t i = 0; i < hw->peers_cap; i++) {
        struct sy_peer *p = hw->peers[i];
        if (!p)
            continue;
        size_t j = addr_hash((struct sockaddr *)&p->addr, p->addrlen) & (cap - 1);
        while (np[j])
            j = (j + 1) & (cap - 1);
        np[j] = p;
    }
    free(hw->peers);
    hw->peers = np;
    hw->peers_cap = cap;
    return 0;
}

/*
 * The peer entry for an address. Entries are never removed before the
 * worker ends (one per instance address ever configured), so connections
 * may keep pointers to them.
 */
struct sy_peer *sy_peer_get(struct sy_http_worker *hw, const struct sockaddr *sa, socklen_t len,
                            const char *tls_name)
{
    if ((hw->npeers + 1) * 2 > hw->peers_cap && peers_grow(hw) < 0)
        return NULL;
    size_t i = addr_hash(sa, len) & (hw->peers_cap - 1);
    for (;; i = (i + 1) & (hw->peers_cap - 1)) {
        struct sy_peer *p = hw->peers[i];
        if (!p) {
            p = calloc(1, sizeof(*p));
            if (!p || (tls_name && !(p->tls_name = strdup(tls_name)))) {
                free(p);
                return NULL;
            }
            memcpy(&p->addr, sa, len);
            p->addrlen = len;
            hw->peers[i] = p;
            hw->npeers++;
            return p;
        }
        if (p->addrlen == len && memcmp(&p->addr, sa, len) == 0 &&
            (tls_name ? p->tls_name && strcmp(p->tls_name, tls_name) == 0 : !p->tls_name))
            return p;
    }
}

static void unlink_idle(struct sy_upstream *up)
{
    struct sy_upstream **pp = &up->peer->idle;
    while (*pp && *pp != up)
        pp = &(*pp)->next_idle;
    if (*pp) {
        *pp = up->next_idle;
        up->peer->nidle--;
    }
    up->next_idle = NULL;
}

void sy_upstream_close(struct sy_upstream *up)
{
    if (!up->req)
        unlink_idle(up);
    event_del(&up->rev);
    event_del(&up->wev);
    sy_io_close(&up->io);
    sy_buf_put(&up->hw->w->bufs, up->in);
    free(up);
}

struct sy_upstream *sy_upstream_take_idle(struct sy_peer *peer)
{
    struct sy_upstream *up = peer->idle;
    if (!up)
        return NULL;
    peer->idle = up->next_idle;
    peer->nidle--;
    up->next_idle = NULL;
    event_remove_timer(&up->rev);   /* still registered; only the idle timeout goes */
    return up;
}

struct sy_upstream *sy_upstream_connect(struct sy_http_worker *hw, struct sy_peer *peer)
{
    int one = 1;
    int fd = socket(peer->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&peer->addr, peer->addrlen) < 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    struct sy_upstream *up = calloc(1, sizeof(*up));
    if (!up) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    up->io.fd = fd;
    up->hw = hw;
    up->peer = peer;
    return up;
}

void sy_upstream_release(struct sy_upstream *up, bool reusable, unsigned keepalive)
{
    static const struct timeval idle_tv = {IDLE_TIMEOUT_MS / 1000, IDLE_TIMEOUT_MS % 1000 * 1000};

    up->req = NULL;
    sy_buf_put(&up->hw->w->bufs, up->in);
    up->in = NULL;
    if (!reusable || up->peer->nidle >= keepalive || up->hw->draining) {
        event_del(&up->rev);
        event_del(&up->wev);
        sy_io_close(&up->io);
        free(up);
        return;
    }
    sy_io_forget(&up->io, &up->wev);
    sy_io_forget(&up->io, &up->rev);
    event_del(&up->wev);
    up->next_idle = up->peer->idle;
    up->peer->idle = up;
    up->peer->nidle++;
    /* The persistent read event now watches for the app closing it. */
    event_add(&up->rev, &idle_tv);
}

void sy_upstream_close_all_idle(struct sy_http_worker *hw)
{
    for (size_t i = 0; i < hw->peers_cap; i++)
        while (hw->peers[i] && hw->peers[i]->idle)
            sy_upstream_close(hw->peers[i]->idle);
}

void sy_upstream_free_peers(struct sy_http_worker *hw)
{
    sy_upstream_close_all_idle(hw);
    for (size_t i = 0; i < hw->peers_cap; i++) {
        if (hw->peers[i])
            free(hw->peers[i]->tls_name);
        free(hw->peers[i]);
    }
    free(hw->peers);
    hw->peers = NULL;
    hw->peers_cap = hw->npeers = 0;
}
