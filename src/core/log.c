/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log.c: per-thread single-producer rings drained by one writer thread.
 * The producer publishes whole lines only (head is stored after the copy,
 * with release order), so a file never holds half a line from one thread
 * interleaved with another's.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "jline.h"
#include "log.h"

#define RING_BYTES_ACCESS   (1u << 20)
#define RING_BYTES_OTHER    (1u << 18)
#define FLUSH_INTERVAL_NS   10000000L   /* 10 ms */
#define MAX_LINE            4096

struct ring {
    char *data;
    uint64_t size;              /* power of two */
    _Atomic uint64_t head;      /* written by the producer */
    _Atomic uint64_t tail;      /* written by the writer */
};

struct stream_file {
    char *path;                 /* NULL: off (errors: standard error); the writer's */
    _Atomic bool enabled;       /* path != NULL, for the other threads */
    int fd;
    _Atomic uint64_t dropped;   /* lines */
};

static struct {
    bool running;
    unsigned nsources;
    struct ring *rings;         /* nsources * SY_LOG_NSTREAMS */
    struct iovec *flush_iov;    /* writer's scratch: 2 per source */
    uint64_t *flush_heads;      /* writer's scratch: 1 per source */
    struct stream_file files[SY_LOG_NSTREAMS];
    _Atomic int level;
    _Atomic bool reopen;
    _Atomic bool stop;
    pthread_mutex_t paths_lock; /* main thread vs writer, never a worker */
    char *pending_paths[SY_LOG_NSTREAMS];
    _Atomic bool paths_changed;
    pthread_t writer;
} g = {
    .level = SY_LOG_INFO,
    .paths_lock = PTHREAD_MUTEX_INITIALIZER,
    .files = {{.fd = -1}, {.fd = -1}, {.fd = -1}},
};

static _Thread_local int my_source = -1;

static const char *const stream_names[SY_LOG_NSTREAMS] = {"access", "security", "error"};
static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *sy_log_stream_name(enum sy_log_stream stream)
{
    return stream_names[stream];
}

void sy_log_format_ts(char out[32], int64_t wall_ms)
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[24];
    time_t sec = (time_t)(wall_ms / 1000);

    if (sec != cached_sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = sec;
    }
    memcpy(out, cached, 19);
    int ms = (int)(wall_ms % 1000);
    out[19] = '.';
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static char *dup_path(const char *p)
{
    return (p && *p) ? strdup(p) : NULL;
}

static int open_all(const struct sy_log_conf *conf, int fds[SY_LOG_NSTREAMS], char *err,
                    size_t errlen)
{
    const char *paths[SY_LOG_NSTREAMS] = {conf->access, conf->security, conf->error};

    for (int i = 0; i < SY_LOG_NSTREAMS; i++) {
        fds[i] = -1;
        if (!paths[i] || !*paths[i])
            continue;
        fds[i] = open_log(paths[i]);
        if (fds[i] < 0) {
            snprintf(err, errlen, "cannot open %s log %s: %s", stream_names[i], paths[i],
                     strerror(errno));
            for (int j = 0; j < i; j++)
                if (fds[j] >= 0)
                    close(fds[j]);
            return -1;
        }
    }
    return 0;
}

/* Writes [tail, head) of every ring of one stream with one writev. */
static void flush_stream(int stream)
{
    struct stream_file *f = &g.files[stream];
    struct iovec *iov = g.flush_iov;
    uint64_t *heads = g.flush_heads;
    unsigned niov = 0, n = g.nsources;

    for (unsigned s = 0; s < n; s++) {
        struct ring *r = &g.rings[s * SY_LOG_NSTREAMS + stream];
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        heads[s] = head;
        if (head == tail)
            continue;
        uint64_t off = tail & (r->size - 1), len = head - tail;
        uint64_t first = len < r->size - off ? len : r->size - off;
        iov[niov++] = (struct iovec){r->data + off, first};
        if (len > first)
            iov[niov++] = (struct iovec){r->data, len - first};
    }
    if (niov == 0)
        return;
    int fd = f->fd >= 0 ? f->fd : (stream == SY_LOG_ERRORS ? STDERR_FILENO : -1);
    if (fd >= 0) {
        ssize_t total = 0, wrote = 0;
        for (unsigned i = 0; i < niov; i++)
            total += (ssize_t)iov[i].iov_len;
        wrote = writev(fd, iov, (int)niov);
        if (wrote < total) {
            /* Disk full or similar: the rest is lost; count its lines. */
            uint64_t lost = 0;
            ssize_t skip = wrote > 0 ? wrote : 0;
            for (unsigned i = 0; i < niov; i++) {
                const char *p = iov[i].iov_base;
                for (size_t k = 0; k < iov[i].iov_len; k++, skip--)
                    if (skip <= 0 && p[k] == '\n')
                        lost++;
            }
            atomic_fetch_add(&f->dropped, lost);
        }
    }
    for (unsigned s = 0; s < n; s++)
        atomic_store_explicit(&g.rings[s * SY_LOG_NSTREAMS + stream].tail, heads[s],
                              memory_order_release);
}

static void apply_reopen(void)
{
    pthread_mutex_lock(&g.paths_lock);
    if (atomic_exchange(&g.paths_changed, false)) {
        for (int i = 0; i < SY_LOG_NSTREAMS; i++) {
            free(g.files[i].path);
            g.files[i].path = g.pending_paths[i];
            g.pending_paths[i] = NULL;
            atomic_store(&g.files[i].enabled, g.files[i].path != NULL);
        }
    }
    for (int i = 0; i < SY_LOG_NSTREAMS; i++) {
        struct stream_file *f = &g.files[i];
        int fd = f->path ? open_log(f->path) : -1;
        if (f->path && fd < 0) {
            /* Keep the old file rather than lose lines; say why on stderr. */
            fprintf(stderr, "switchyard: cannot reopen %s: %s\n", f->path, strerror(errno));
            continue;
        }
        if (f->fd >= 0)
            close(f->fd);
        f->fd = fd;
    }
    pthread_mutex_unlock(&g.paths_lock);
}

static void *writer_main(void *arg)
{
    (void)arg;
    struct timespec pause = {0, FLUSH_INTERVAL_NS};

    /*
     * Lower priority than the workers: when the writer wakes on a worker's
     * core it should not delay requests (p99); it still gets its share.
     */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 10) < 0)
        fprintf(stderr, "switchyard: log writer priority: %s\n", strerror(errno));

    for (;;) {
        bool stopping = atomic_load(&g.stop);
        for (int s = 0; s < SY_LOG_NSTREAMS; s++)
            flush_stream(s);
        if (atomic_exchange(&g.reopen, false))
            apply_reopen();
        if (stopping)
            break;
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int sy_log_start(const struct sy_log_conf *conf, unsigned nsources, char *err, size_t errlen)
{
    int fds[SY_LOG_NSTREAMS];

    if (open_all(conf, fds, err, errlen) < 0)
        return -1;
    g.rings = calloc((size_t)nsources * SY_LOG_NSTREAMS, sizeof(*g.rings));
    g.flush_iov = calloc(2 * (size_t)nsources, sizeof(*g.flush_iov));
    g.flush_heads = calloc(nsources, sizeof(*g.flush_heads));
    if (!g.rings || !g.flush_iov || !g.flush_heads) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g.nsources = nsources;
    for (unsigned i = 0; i < nsources * SY_LOG_NSTREAMS; i++) {
        struct ring *r = &g.rings[i];
        r->size = (i % SY_LOG_NSTREAMS == SY_LOG_ACCESS) ? RING_BYTES_ACCESS : RING_BYTES_OTHER;
        r->data = malloc(r->size);
        if (!r->data) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    const char *paths[SY_LOG_NSTREAMS] = {conf->access, conf->security, conf->error};
    for (int i = 0; i < SY_LOG_NSTREAMS; i++) {
        g.files[i].fd = fds[i];
        g.files[i].path = dup_path(paths[i]);
        atomic_store(&g.files[i].enabled, g.files[i].path != NULL);
    }
    atomic_store(&g.level, conf->level);
    atomic_store(&g.stop, false);
    if (pthread_create(&g.writer, NULL, writer_main, NULL) != 0) {
        snprintf(err, errlen, "cannot start the log writer thread");
        return -1;
    }
    g.running = true;
    return 0;
}

void sy_log_stop(void)
{
    if (!g.running)
        return;
    atomic_store(&g.stop, true);
    pthread_join(g.writer, NULL);
    g.running = false;
    for (unsigned i = 0; i < g.nsources * SY_LOG_NSTREAMS; i++)
        free(g.rings[i].data);
    free(g.rings);
    free(g.flush_iov);
    free(g.flush_heads);
    g.rings = NULL;
    g.flush_iov = NULL;
    g.flush_heads = NULL;
    g.nsources = 0;
    for (int i = 0; i < SY_LOG_NSTREAMS; i++) {
        if (g.files[i].fd >= 0)
            close(g.files[i].fd);
        g.files[i].fd = -1;
        free(g.files[i].path);
        g.files[i].path = NULL;
        atomic_store(&g.files[i].enabled, false);
        free(g.pending_paths[i]);
        g.pending_paths[i] = NULL;
    }
}

void sy_log_attach(unsigned source)
{
    my_source = (int)source;
}

int sy_log_reconfigure(const struct sy_log_conf *conf, char *err, size_t errlen)
{
    const char *paths[SY_LOG_NSTREAMS] = {conf->access, conf->security, conf->error};

    /* Check that the new files can be opened before the writer switches. */
    for (int i = 0; i < SY_LOG_NSTREAMS; i++) {
        if (!paths[i] || !*paths[i])
            continue;
        int fd = open_log(paths[i]);
        if (fd < 0) {
            snprintf(err, errlen, "cannot open %s log %s: %s", stream_names[i], paths[i],
                     strerror(errno));
            return -1;
        }
        close(fd);
    }
    pthread_mutex_lock(&g.paths_lock);
    for (int i = 0; i < SY_LOG_NSTREAMS; i++) {
        free(g.pending_paths[i]);
        g.pending_paths[i] = dup_path(paths[i]);
    }
    atomic_store(&g.paths_changed, true);
    pthread_mutex_unlock(&g.paths_lock);
    atomic_store(&g.level, conf->level);
    sy_log_reopen();
    return 0;
}

void sy_log_reopen(void)
{
    atomic_store(&g.reopen, true);
}

int sy_log_enabled(enum sy_log_stream stream)
{
    return g.running && atomic_load_explicit(&g.files[stream].enabled, memory_order_relaxed);
}

void sy_log_line(enum sy_log_stream stream, const char *line, size_t len)
{
    if (!g.running || my_source < 0 || (unsigned)my_source >= g.nsources) {
        if (stream == SY_LOG_ERRORS && write(STDERR_FILENO, line, len) < 0)
            return;
        return;
    }
    struct ring *r = &g.rings[(unsigned)my_source * SY_LOG_NSTREAMS + stream];
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);

    if (r->size - (head - tail) < len) {
        atomic_fetch_add_explicit(&g.files[stream].dropped, 1, memory_order_relaxed);
        return;
    }
    uint64_t off = head & (r->size - 1);
    uint64_t first = len < r->size - off ? len : r->size - off;
    memcpy(r->data + off, line, first);
    if (len > first)
        memcpy(r->data, line + first, len - first);
    atomic_store_explicit(&r->head, head + len, memory_order_release);
}

void sy_log_error(enum sy_log_level level, const char *subsystem, const char *fmt, ...)
{
    char line[MAX_LINE], ts[32];
    va_list ap;

    if ((int)level > atomic_load_explicit(&g.level, memory_order_relaxed))
        return;
    sy_log_format_ts(ts, wall_now_ms());
    int n = snprintf(line, sizeof(line), "%s %s %s: ", ts, level_names[level], subsystem);
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + ((size_t)m < sizeof(line) - (size_t)n - 1
                                  ? (size_t)m : sizeof(line) - (size_t)n - 2);
    line[len++] = '\n';
    sy_log_line(SY_LOG_ERRORS, line, len);
}

uint64_t sy_log_dropped(enum sy_log_stream stream)
{
    return atomic_load(&g.files[stream].dropped);
}

/*
 * Under a flood (a scanner's bad requests, a token guesser) each thread
 * writes at most SECURITY_EVENTS_PER_S lines of one event a second; the
 * next line of that event written says how many were left out.
 */
#define SECURITY_EVENTS_PER_S 50

struct flood_window {
    const char *event;          /* a string literal: compared by content */
    int64_t second;
    unsigned written;
    uint64_t suppressed;
};

static _Thread_local struct flood_window flood_windows[8];

/* Whether to write this event now; *suppressed gets the count to report. */
static bool flood_admit(const char *event, int64_t now_ms, uint64_t *suppressed)
{
    struct flood_window *w = NULL;
    size_t n = sizeof(flood_windows) / sizeof(flood_windows[0]);

    for (size_t i = 0; i < n && !w; i++)
        if (!flood_windows[i].event || strcmp(flood_windows[i].event, event) == 0)
            w = &flood_windows[i];
    if (!w)
        w = &flood_windows[n - 1];  /* more kinds than slots: they share the last */
    if (w->event != event && (!w->event || strcmp(w->event, event) != 0))
        *w = (struct flood_window){.event = event};
    if (now_ms / 1000 != w->second) {
        w->second = now_ms / 1000;
        w->written = 0;
    }
    if (w->written >= SECURITY_EVENTS_PER_S) {
        w->suppressed++;
        return false;
    }
    w->written++;
    *suppressed = w->suppressed;
    w->suppressed = 0;
    return true;
}

/*
 * Only what clients can cause is summarised: health changes, admin actions
 * and rollout steps are few, and an operator needs every one of them.
 */
static bool client_triggered(const char *event)
{
    return strcmp(event, "health_change") != 0 && strcmp(event, "admin_action") != 0 &&
           strcmp(event, "rollout") != 0;
}

void sy_log_security(const char *event, const char *client_ip, const char *country,
                     const char *reason, const struct sy_log_field *fields, size_t nfields)
{
    char buf[2048], ts[32];
    struct sy_jline l = {buf, buf + sizeof(buf), false};
    int64_t now_ms = wall_now_ms();
    uint64_t suppressed = 0;

    if (!sy_log_enabled(SY_LOG_SECURITY) ||
        (client_triggered(event) && !flood_admit(event, now_ms, &suppressed)))
        return;
    sy_log_format_ts(ts, now_ms);
    SY_JL_LIT(&l, "{\"ts\":\"");
    sy_jl_put(&l, ts, strlen(ts));
    SY_JL_LIT(&l, "\",\"event\":");
    sy_jl_cstr(&l, event);
    SY_JL_LIT(&l, ",\"client_ip\":");
    sy_jl_cstr(&l, client_ip);
    SY_JL_LIT(&l, ",\"country\":");
    sy_jl_cstr(&l, country);
    SY_JL_LIT(&l, ",\"reason\":");
    sy_jl_cstr(&l, reason);
    for (size_t i = 0; i < nfields; i++) {
        SY_JL_LIT(&l, ",\"");
        sy_jl_escaped(&l, fields[i].name, strlen(fields[i].name));
        SY_JL_LIT(&l, "\":");
        if (fields[i].str) {
            sy_jl_cstr(&l, fields[i].str);
        } else if (fields[i].json) {
            sy_jl_put(&l, fields[i].json, strlen(fields[i].json));
        } else if (fields[i].num < 0) {
            SY_JL_LIT(&l, "-");
            sy_jl_uint(&l, (uint64_t)-(fields[i].num + 1) + 1);
        } else {
            sy_jl_uint(&l, (uint64_t)fields[i].num);
        }
    }
    if (suppressed) {
        SY_JL_LIT(&l, ",\"suppressed\":");
        sy_jl_uint(&l, suppressed);
    }
    SY_JL_LIT(&l, "}\n");
    if (l.overflow) {
        sy_log_error(SY_LOG_WARN, "log", "security event %s too long, dropped", event);
        return;
    }
    sy_log_line(SY_LOG_SECURITY, buf, (size_t)(l.p - buf));
}
