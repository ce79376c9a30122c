/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log.c: per-thread single-producer rings drained by one writer thread.
 * The producer publishes whole lines only (head is stored after the copy,
 * with release order), so a file never holds half a line from one thread
 * interleaved with another's. The security log's flood control is per
 * thread too: a cap per event, and for keyed events a fixed table of keys.
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
#include "keyhash.h"
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

struct keyed_table;
static struct keyed_table *keyed_tables_new(unsigned n);

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
    struct keyed_table *keyed;  /* nsources: each thread's flood table (security log) */
    struct sy_sipkey keyed_key; /* so that a client cannot aim its keys at one set */
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

static _Atomic sy_log_clock_fn clock_hook;   /* tests only: NULL is CLOCK_REALTIME */

void sy_log_set_clock(sy_log_clock_fn wall_ms)
{
    atomic_store(&clock_hook, wall_ms);
}

static int64_t wall_now_ms(void)
{
    sy_log_clock_fn hook = atomic_load_explicit(&clock_hook, memory_order_relaxed);
    struct timespec ts;

    if (hook)
        return hook();
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
    g.keyed = keyed_tables_new(nsources);
    if (!g.rings || !g.flush_iov || !g.flush_heads || !g.keyed) {
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
    free(g.keyed);
    g.keyed = NULL;
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

/* --- The security log ------------------------------------------------------------------------ */

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

/* n, or less so that s[0..result) ends on a UTF-8 character boundary at most max bytes in. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return max;
}

static void put_name(struct sy_jline *l, const char *name, size_t n)
{
    SY_JL_LIT(l, ",\"");
    sy_jl_escaped(l, name, n);
    SY_JL_LIT(l, "\":");
}

static void put_num(struct sy_jline *l, int64_t num)
{
    if (num < 0) {
        SY_JL_LIT(l, "-");
        sy_jl_uint(l, (uint64_t)-(num + 1) + 1);
    } else {
        sy_jl_uint(l, (uint64_t)num);
    }
}

/* ,"name":value */
static void put_field(struct sy_jline *l, const struct sy_log_field *f)
{
    put_name(l, f->name, strlen(f->name));
    if (f->str)
        sy_jl_cstr(l, f->str);
    else if (f->json)
        sy_jl_put(l, f->json, strlen(f->json));
    else
        put_num(l, f->num);
}

/* What every security line begins with: ts, event, client_ip, country, reason. */
static void put_head(struct sy_jline *l, int64_t ms, const char *event, const char *client_ip,
                     size_t iplen, const char *country, size_t countrylen, const char *reason,
                     size_t reasonlen)
{
    char ts[32];

    sy_log_format_ts(ts, ms);
    SY_JL_LIT(l, "{\"ts\":\"");
    sy_jl_put(l, ts, strlen(ts));
    SY_JL_LIT(l, "\",\"event\":");
    sy_jl_cstr(l, event);
    SY_JL_LIT(l, ",\"client_ip\":");
    sy_jl_str(l, client_ip, iplen);
    SY_JL_LIT(l, ",\"country\":");
    sy_jl_str(l, country, countrylen);
    SY_JL_LIT(l, ",\"reason\":");
    sy_jl_str(l, reason, reasonlen);
}

/* Ends the line: many_keys and suppressed when set. Whether it all fitted. */
static bool put_tail(struct sy_jline *l, bool many_keys, uint64_t suppressed)
{
    if (many_keys)
        SY_JL_LIT(l, ",\"many_keys\":true");
    if (suppressed) {
        SY_JL_LIT(l, ",\"suppressed\":");
        sy_jl_uint(l, suppressed);
    }
    SY_JL_LIT(l, "}\n");
    return !l->overflow;
}

static size_t len_or_0(const char *s)
{
    return s ? strlen(s) : 0;
}

/* One event as the caller passed it, with "suppressed" when not 0; false: too long, not queued. */
static bool write_event(int64_t ms, const char *event, const char *client_ip,
                        const char *country, const char *reason,
                        const struct sy_log_field *fields, size_t nfields, uint64_t suppressed)
{
    char buf[2048];
    struct sy_jline l = {buf, buf + sizeof(buf), false};

    put_head(&l, ms, event, client_ip, len_or_0(client_ip), country, len_or_0(country), reason,
             len_or_0(reason));
    for (size_t i = 0; i < nfields; i++)
        put_field(&l, &fields[i]);
    if (!put_tail(&l, false, suppressed))
        return false;
    sy_log_line(SY_LOG_SECURITY, buf, (size_t)(l.p - buf));
    return true;
}

void sy_log_security(const char *event, const char *client_ip, const char *country,
                     const char *reason, const struct sy_log_field *fields, size_t nfields)
{
    int64_t now_ms = wall_now_ms();
    uint64_t suppressed = 0;

    if (!sy_log_enabled(SY_LOG_SECURITY) ||
        (client_triggered(event) && !flood_admit(event, now_ms, &suppressed)))
        return;
    if (!write_event(now_ms, event, client_ip, country, reason, fields, nfields, suppressed))
        sy_log_error(SY_LOG_WARN, "log", "security event %s too long, dropped", event);
}

/*
 * Keyed events (sy_log_security_keyed). Each thread has a fixed table of
 * KEYED_SETS x KEYED_WAYS keys, set-associative on a keyed hash, the
 * least-recently-seen way replaced. Every line written stands for one event,
 * and its "suppressed" for the others of its key (or, with "many_keys", of
 * its event) that no line shows, so lines + the sum of "suppressed" equals
 * the events logged. The line cap per event per second still holds over all
 * keys: a client that rotates keys fills only a per-event overflow count.
 */
#define KEYED_WAYS      8
#define KEYED_SETS      64          /* 512 keys a thread */
#define KEYED_KINDS     8           /* event names a thread keeps apart */
#define KEYED_KEY       96          /* bytes of a key kept; longer keys: + length and hash */
#define STORED_IP       46          /* INET6_ADDRSTRLEN */
#define STORED_COUNTRY  8
#define STORED_REASON   96
#define STORED_NAME     32          /* a field's name */
#define STORED_STR      96          /* a field's value */
#define STORED_FIELDS   256         /* kept fields; one that does not fit is left out */

/*
 * An event kept to be written later, its strings cut to fixed sizes. Fields
 * are kept as given, not as JSON: most kept events are overwritten by the
 * next of their key, so escaping waits until a line is written. A field's
 * record: its type ('s', 'j', 'n'), name length, name, then value length and
 * value, or for 'n' the 8 bytes of the number.
 */
struct stored_event {
    int64_t ms;
    uint8_t iplen, countrylen, reasonlen;
    uint16_t fieldslen;
    char ip[STORED_IP];
    char country[STORED_COUNTRY];
    char reason[STORED_REASON];
    char fields[STORED_FIELDS];
};

struct keyed_entry {
    const char *event;              /* NULL: free; lives as long as sy_log_security's */
    int64_t second;                 /* wall-clock second of the key's current window */
    uint64_t pending;               /* counted, not written; the latest is in last */
    size_t keylen;                  /* of the whole key */
    char key[KEYED_KEY];
    struct stored_event last;
};

/* A set's hashes share one cache line, so that a lookup reads one line and one entry. */
struct keyed_set {
    uint64_t hash[KEYED_WAYS];
    uint64_t seen[KEYED_WAYS];      /* table->seen when last seen: the least is replaced */
};

/* One event name: its line cap, and what went over it. */
struct keyed_kind {
    const char *event;
    int64_t second;
    unsigned written;
    uint64_t overflow;              /* counted past the cap; the latest is in last */
    int64_t overflow_second;
    struct stored_event last;
};

struct keyed_table {
    uint64_t seen;
    unsigned npending;              /* entries with pending > 0: a quiet tick reads nothing */
    struct keyed_kind kinds[KEYED_KINDS];
    struct keyed_set sets[KEYED_SETS];
    struct keyed_entry entries[KEYED_SETS * KEYED_WAYS];
};

/*
 * calloc: the kernel maps zero pages lazily, so a thread that never logs a
 * keyed event costs no memory; the table is never resized or freed while
 * the logger runs (no allocation after start).
 */
static struct keyed_table *keyed_tables_new(unsigned n)
{
    struct sy_sipkey key;

    if (sy_sipkey_random(&key) < 0) {
        /* No getrandom(): weaker, still not a constant a client could know. */
        key.k0 = (uint64_t)wall_now_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
        key.k1 = (uint64_t)(uintptr_t)&key ^ (uint64_t)clock();
    }
    g.keyed_key = key;
    return calloc(n, sizeof(struct keyed_table));
}

static struct keyed_table *my_table(void)
{
    if (!g.running || !g.keyed || my_source < 0 || (unsigned)my_source >= g.nsources)
        return NULL;
    return &g.keyed[my_source];
}

static bool same_event(const char *a, const char *b)
{
    return a == b || strcmp(a, b) == 0;
}

/* Whether a window of `second` is over at tick second now_s; a clock stepped back ends it too. */
static bool window_passed(int64_t second, int64_t now_s)
{
    return second < now_s || second > now_s + 1;
}

static uint8_t copy_cut(char *dst, size_t cap, const char *s)
{
    if (!s)
        return 0;
    size_t n = utf8_cut(s, strnlen(s, cap + 1), cap);
    memcpy(dst, s, n);
    return (uint8_t)n;
}

/* Keeps field f in p[0..room): the bytes used, 0 when it does not fit. */
static size_t keep_field(char *p, size_t room, const struct sy_log_field *f)
{
    size_t namelen = utf8_cut(f->name, strnlen(f->name, STORED_NAME + 1), STORED_NAME);
    const char *value = f->str ? f->str : f->json;
    size_t vlen = 0, need = 2 + namelen + 8;

    if (value) {
        vlen = strnlen(value, STORED_STR + 1);
        if (f->str)
            vlen = utf8_cut(value, vlen, STORED_STR);
        else if (vlen > STORED_STR)
            return 0;               /* a JSON number cut would not be one */
        need = 2 + namelen + 1 + vlen;
    }
    if (need > room)
        return 0;
    p[0] = f->str ? 's' : f->json ? 'j' : 'n';
    p[1] = (char)namelen;
    memcpy(p + 2, f->name, namelen);
    p += 2 + namelen;
    if (value) {
        p[0] = (char)vlen;
        memcpy(p + 1, value, vlen);
    } else {
        memcpy(p, &f->num, 8);
    }
    return need;
}

static void put_kept_fields(struct sy_jline *l, const struct stored_event *st)
{
    const char *p = st->fields, *end = st->fields + st->fieldslen;

    while (p < end) {
        char type = p[0];
        size_t namelen = (unsigned char)p[1];
        put_name(l, p + 2, namelen);
        p += 2 + namelen;
        if (type == 'n') {
            int64_t num;
            memcpy(&num, p, 8);
            put_num(l, num);
            p += 8;
            continue;
        }
        size_t vlen = (unsigned char)p[0];
        if (type == 's')
            sy_jl_str(l, p + 1, vlen);
        else
            sy_jl_put(l, p + 1, vlen);
        p += 1 + vlen;
    }
}

static void store_event(struct stored_event *st, int64_t ms, const char *client_ip,
                        const char *country, const char *reason,
                        const struct sy_log_field *fields, size_t nfields)
{
    size_t used = 0;

    st->ms = ms;
    st->iplen = copy_cut(st->ip, STORED_IP, client_ip);
    st->countrylen = copy_cut(st->country, STORED_COUNTRY, country);
    st->reasonlen = copy_cut(st->reason, STORED_REASON, reason);
    for (size_t i = 0; i < nfields; i++)
        used += keep_field(st->fields + used, STORED_FIELDS - used, &fields[i]);
    st->fieldslen = (uint16_t)used;
}

/*
 * A kept event's line. Its size is bounded (every string cut, escaping at
 * most 6 bytes a byte), so it always fits; without its fields if need be,
 * since the count it carries must not be lost.
 */
static void write_stored(const char *event, const struct stored_event *st, bool many_keys,
                         uint64_t suppressed)
{
    char buf[MAX_LINE];
    struct sy_jline l = {buf, buf + sizeof(buf), false};

    for (int with_fields = 1; with_fields >= 0; with_fields--) {
        l = (struct sy_jline){buf, buf + sizeof(buf), false};
        put_head(&l, st->ms, event, st->ip, st->iplen, st->country, st->countrylen, st->reason,
                 st->reasonlen);
        if (with_fields)
            put_kept_fields(&l, st);
        if (put_tail(&l, many_keys, suppressed)) {
            sy_log_line(SY_LOG_SECURITY, buf, (size_t)(l.p - buf));
            return;
        }
    }
    sy_log_error(SY_LOG_WARN, "log", "security event %s too long, dropped", event);
}

/* Takes one line of the event's cap for second `second`, or says there is none left. */
static bool kind_budget(struct keyed_kind *k, int64_t second)
{
    /* A tick's cached clock may lag a few ms: an older second counts in the current one. */
    if (second > k->second || second < k->second - 1) {
        k->second = second;
        k->written = 0;
    }
    if (k->written >= SECURITY_EVENTS_PER_S)
        return false;
    k->written++;
    return true;
}

static void kind_flush(struct keyed_kind *k)
{
    if (k->overflow) {
        write_stored(k->event, &k->last, true, k->overflow - 1);
        k->overflow = 0;
    }
}

static struct keyed_kind *kind_of(struct keyed_table *t, const char *event)
{
    struct keyed_kind *k = &t->kinds[KEYED_KINDS - 1];

    for (size_t i = 0; i < KEYED_KINDS; i++) {
        if (!t->kinds[i].event) {
            t->kinds[i].event = event;
            return &t->kinds[i];
        }
        if (same_event(t->kinds[i].event, event))
            return &t->kinds[i];
    }
    /*
     * More names than slots: they share the last slot and its cap; the count
     * of the name that had it is written first, not lost.
     */
    kind_flush(k);
    k->event = event;
    return k;
}

/* Adds n events, the latest of them st, to the event's overflow. */
static void kind_overflow(struct keyed_kind *k, const struct stored_event *st, uint64_t n,
                          int64_t second)
{
    if (k->overflow == 0 || st->ms >= k->last.ms)
        k->last = *st;
    k->overflow += n;
    if (second > k->overflow_second || k->overflow == n)
        k->overflow_second = second;
}

/* Writes an entry's pending count: as its latest event's line, or into the overflow. */
static void entry_spill(struct keyed_table *t, struct keyed_entry *e, int64_t now_s)
{
    if (!e->pending)
        return;
    struct keyed_kind *k = kind_of(t, e->event);
    if (kind_budget(k, now_s))
        write_stored(e->event, &e->last, false, e->pending - 1);
    else
        kind_overflow(k, &e->last, e->pending, e->second);
    e->pending = 0;
    t->npending--;
}

static struct keyed_entry *entry_find(struct keyed_table *t, uint64_t hash, const char *event,
                                      const char *key, size_t keylen)
{
    struct keyed_set *set = &t->sets[hash % KEYED_SETS];
    struct keyed_entry *row = &t->entries[hash % KEYED_SETS * KEYED_WAYS];
    size_t kept = keylen < KEYED_KEY ? keylen : KEYED_KEY;

    for (unsigned w = 0; w < KEYED_WAYS; w++) {
        struct keyed_entry *e = &row[w];
        if (set->hash[w] != hash || !e->event || e->keylen != keylen ||
            memcmp(e->key, key, kept) != 0 || !same_event(e->event, event))
            continue;
        set->seen[w] = ++t->seen;
        return e;
    }
    return NULL;
}

/* A way for a new key: a free one, else the least recently seen, its count written first. */
static struct keyed_entry *entry_new(struct keyed_table *t, uint64_t hash, const char *event,
                                     const char *key, size_t keylen, int64_t now_s)
{
    struct keyed_set *set = &t->sets[hash % KEYED_SETS];
    struct keyed_entry *row = &t->entries[hash % KEYED_SETS * KEYED_WAYS];
    unsigned victim = 0;

    for (unsigned w = 0; w < KEYED_WAYS; w++) {
        if (!row[w].event) {
            victim = w;
            break;
        }
        if (set->seen[w] < set->seen[victim])
            victim = w;
    }
    struct keyed_entry *e = &row[victim];
    if (e->event)
        entry_spill(t, e, now_s);
    set->hash[victim] = hash;
    set->seen[victim] = ++t->seen;
    e->event = event;
    e->second = now_s;
    e->pending = 0;
    e->keylen = keylen;
    memcpy(e->key, key, keylen < KEYED_KEY ? keylen : KEYED_KEY);
    return e;
}

/* Counts an event of e's current window: kept as the latest, written later. */
static void entry_count(struct keyed_table *t, struct keyed_entry *e, int64_t now_ms,
                        const char *client_ip, const char *country, const char *reason,
                        const struct sy_log_field *fields, size_t nfields)
{
    if (e->pending++ == 0)
        t->npending++;
    store_event(&e->last, now_ms, client_ip, country, reason, fields, nfields);
}

void sy_log_security_keyed(const char *event, const char *key, size_t keylen,
                           const char *client_ip, const char *country, const char *reason,
                           const struct sy_log_field *fields, size_t nfields)
{
    if (!sy_log_enabled(SY_LOG_SECURITY))
        return;
    struct keyed_table *t = my_table();
    if (!t) {
        /* A thread without a ring set of its own: the per-event cap alone. */
        sy_log_security(event, client_ip, country, reason, fields, nfields);
        return;
    }
    if (!key) {
        key = "";
        keylen = 0;
    }
    int64_t now_ms = wall_now_ms(), now_s = now_ms / 1000;
    uint64_t hash = sy_siphash13(&g.keyed_key, key, keylen);
    struct keyed_entry *e = entry_find(t, hash, event, key, keylen);

    if (e && e->second == now_s) {
        entry_count(t, e, now_ms, client_ip, country, reason, fields, nfields);
        return;
    }
    /* The key's first event this second: a line, if the event's cap has one left. */
    struct keyed_kind *k = kind_of(t, event);
    if (!kind_budget(k, now_s)) {
        if (e) {
            e->second = now_s;
            entry_count(t, e, now_ms, client_ip, country, reason, fields, nfields);
        } else {
            /* Not given a way: a rotating client must not flush the keys that stay. */
            if (k->overflow++ == 0 || now_s > k->overflow_second)
                k->overflow_second = now_s;
            store_event(&k->last, now_ms, client_ip, country, reason, fields, nfields);
        }
        return;
    }
    uint64_t carried = 0;
    if (e) {
        carried = e->pending;
        if (carried)
            t->npending--;
        e->pending = 0;
        e->second = now_s;
    } else {
        entry_new(t, hash, event, key, keylen, now_s);
    }
    if (!write_event(now_ms, event, client_ip, country, reason, fields, nfields, carried)) {
        /* Too long as given: written cut to the kept sizes, so that carried is not lost. */
        struct stored_event st;
        store_event(&st, now_ms, client_ip, country, reason, fields, nfields);
        write_stored(event, &st, false, carried);
    }
}

void sy_log_security_tick(int64_t now_ms)
{
    struct keyed_table *t = my_table();
    int64_t now_s = now_ms / 1000;

    if (!t)
        return;
    for (size_t i = 0; t->npending && i < KEYED_SETS * KEYED_WAYS; i++) {
        struct keyed_entry *e = &t->entries[i];
        if (e->pending && window_passed(e->second, now_s))
            entry_spill(t, e, now_s);
    }
    for (size_t i = 0; i < KEYED_KINDS; i++)
        if (t->kinds[i].overflow && window_passed(t->kinds[i].overflow_second, now_s))
            kind_flush(&t->kinds[i]);
}
