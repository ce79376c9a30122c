/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * process.c: startup, signals, reload, upgrade and stop on the main thread.
 * A reload builds and validates a whole new snapshot before any worker
 * sees it; a failed reload leaves the running snapshot untouched. An
 * upgrade (SIGUSR2) hands the listening sockets to a new process and stops
 * this one only once that one serves; a failed one leaves this one serving.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "live.h"
#include "notify.h"
#include "process.h"

#define LISTEN_BACKLOG 4096
#define UPGRADE_TIMEOUT_MS 30000
#define UPGRADE_TIMEOUT_ENV "SWITCHYARD_UPGRADE_TIMEOUT_MS"

enum upgrade_state {
    UPGRADE_NONE,
    UPGRADE_STARTING,           /* a new process runs and does not serve yet */
    UPGRADE_FAILING,            /* it failed and was killed; this one serves; not reaped yet */
    UPGRADE_HANDED_OVER,        /* it serves; this one finishes its connections and exits */
};

static struct {
    const struct sy_process_options *opts;
    const struct sy_process_hooks *hooks;
    struct sy_conf *conf;
    struct event_base *base;
    struct sy_worker **workers;
    unsigned nworkers;
    struct event *stop_timer;
    bool stopping;
    struct sy_reload_counts reloads;
    struct {
        enum upgrade_state state;
        pid_t pid;              /* the new process, until reaped */
        int ready_fd;
        struct event *ready_event;
        int64_t timeout_ms;
        char failure[160];      /* why it failed, for the line logged once it is reaped */
    } upgrade;
} proc;

struct sy_reload_counts sy_process_reload_counts(void)
{
    return proc.reloads;
}

/* A socket on addr that shares its port with the other workers' (SO_REUSEPORT). */
static int open_listener(const struct sy_addr *addr, bool reuseport, char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr->text, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (addr->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0)
        goto fail;
    if (listen(fd, LISTEN_BACKLOG) < 0)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "cannot listen on %s: %s", addr->text, strerror(errno));
    close(fd);
    return -1;
}

/*
 * Opens nworkers sockets per listen address. A plain bind first proves the
 * port is free: SO_REUSEPORT alone would silently share it with another
 * running gateway. After an upgrade the old process's sockets come first,
 * one per worker (the port is ours already); a worker beyond them gets a
 * new socket that joins their SO_REUSEPORT group.
 */
static int **open_listeners(const struct sy_conf *conf, unsigned nworkers, char *err,
                            size_t errlen)
{
    int **fds = calloc(nworkers, sizeof(*fds));

    for (unsigned w = 0; fds && w < nworkers; w++) {
        fds[w] = malloc((conf->nlisten ? conf->nlisten : 1) * sizeof(int));
        if (!fds[w])
            goto fail;
        for (size_t i = 0; i < conf->nlisten; i++)
            fds[w][i] = -1;
    }
    if (!fds) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < conf->nlisten; i++) {
        const struct sy_addr *addr = &conf->listen[i].addr;
        unsigned adopted = 0;
        while (adopted < nworkers && sy_upgrade_take("listen", addr, &fds[adopted][i], 1) == 1)
            adopted++;
        if (adopted == 0) {
            int probe = open_listener(addr, false, err, errlen);
            if (probe < 0)
                goto fail;
            close(probe);
        }
        for (unsigned w = adopted; w < nworkers; w++) {
            fds[w][i] = open_listener(addr, true, err, errlen);
            if (fds[w][i] < 0)
                goto fail;
        }
    }
    return fds;
fail:
    for (unsigned w = 0; w < nworkers; w++) {
        for (size_t i = 0; fds[w] && i < conf->nlisten; i++)
            if (fds[w][i] >= 0)
                close(fds[w][i]);
        free(fds[w]);
    }
    free(fds);
    return NULL;
}

static bool same_listeners(const struct sy_conf *a, const struct sy_conf *b)
{
    if (a->nlisten != b->nlisten)
        return false;
    for (size_t i = 0; i < a->nlisten; i++)
        if (strcmp(a->listen[i].addr.text, b->listen[i].addr.text) != 0)
            return false;
    return true;
}

int sy_process_reload(char *err, size_t errlen)
{
    struct sy_conf *conf = NULL;
    struct sy_conf_errors errs = {0};

    if (proc.upgrade.state == UPGRADE_STARTING || proc.upgrade.state == UPGRADE_HANDED_OVER) {
        /* The new process reads the file itself; this one must not write the state file. */
        snprintf(err, errlen, "an upgrade to process %ld is under way: reload that one",
                 (long)proc.upgrade.pid);
        sy_log_error(SY_LOG_WARN, "reload", "reload refused: %s", err);
        return -1;
    }
    sy_notify_reloading("reloading the configuration");
    if (sy_conf_load(&proc.opts->source, &conf, &errs) < 0) {
        for (size_t i = 0; i < errs.count; i++)
            sy_log_error(SY_LOG_ERROR, "reload", "%s", errs.lines[i]);
        snprintf(err, errlen, "%s%s", errs.count ? errs.lines[0] : "invalid configuration",
                 errs.count > 1 ? " (and more, see the error log)" : "");
        sy_conf_errors_free(&errs);
        goto refused;
    }
    if (conf->workers != proc.conf->workers) {
        snprintf(err, errlen, "workers: changing the number of workers needs a restart");
        goto refused_conf;
    }
    if (!same_listeners(conf, proc.conf)) {
        snprintf(err, errlen, "listen: changing listen addresses needs a restart");
        goto refused_conf;
    }
    if (strcmp(conf->admin.listen.text, proc.conf->admin.listen.text) != 0) {
        snprintf(err, errlen, "admin.listen: changing the admin address needs a restart");
        goto refused_conf;
    }
    if (proc.hooks->prepare_conf(conf, proc.nworkers, err, errlen) < 0)
        goto refused_conf;
    if (sy_log_reconfigure(&conf->log, err, errlen) < 0)
        goto refused_conf;
    for (unsigned i = 0; i < proc.nworkers; i++)
        sy_worker_publish_conf(proc.workers[i], conf);
    sy_conf_unref(proc.conf);
    proc.conf = conf;
    sy_live_services_adopt(conf, sy_clock_ms(CLOCK_REALTIME));
    for (const struct sy_main_service *const *s = proc.hooks->services; s && *s; s++)
        (*s)->reconfigure(conf);
    proc.reloads.success++;
    sy_log_error(SY_LOG_INFO, "reload", "configuration %s reloaded", conf->file);
    sy_notify_ready("serving, configuration reloaded");
    return 0;
refused_conf:
    sy_conf_unref(conf);
refused:
    proc.reloads.failure++;
    sy_log_error(SY_LOG_ERROR, "reload", "reload refused, the old configuration keeps serving: %s",
                 err);
    sy_notify_ready(err);       /* the old configuration serves: ready again */
    return -1;
}

static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    for (unsigned i = 0; i < proc.nworkers; i++)
        if (!atomic_load(&proc.workers[i]->exited))
            return;
    event_base_loopbreak(proc.base);
}

static void command_all(enum sy_worker_command cmd)
{
    for (unsigned i = 0; i < proc.nworkers; i++)
        sy_worker_command(proc.workers[i], cmd);
}

static void watch_workers_exit(void)
{
    static const struct timeval tick = {0, 20000};

    if (proc.stop_timer)
        return;
    proc.stop_timer = event_new(proc.base, -1, EV_PERSIST, on_stop_timer, NULL);
    event_add(proc.stop_timer, &tick);
}

/* Written to a temporary name and renamed, so a reader never sees it empty. */
static int write_pid_file(const char *path)
{
    char tmp[4096];

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return -1;
    }
    return 0;
}

static void stop_services(void)
{
    for (const struct sy_main_service *const *s = proc.hooks->services; s && *s; s++)
        (*s)->stop();
}

/* After a hand-over the new process is the service manager's main pid: this one is silent. */
static void notify_stopping(const char *status)
{
    if (proc.upgrade.state != UPGRADE_HANDED_OVER)
        sy_notify_stopping(status);
}

static void stop_gracefully(void)
{
    proc.stopping = true;
    notify_stopping("graceful stop: finishing requests in flight");
    stop_services();
    sy_log_error(SY_LOG_INFO, "process", "graceful stop: finishing requests in flight "
                 "(at most %lld ms)", (long long)proc.conf->shutdown_timeout_ms);
    command_all(SY_WORKER_DRAIN);
    watch_workers_exit();
}

static void stop_now(void)
{
    sy_log_error(SY_LOG_INFO, "process", "stopping now");
    notify_stopping("stopping now");
    stop_services();
    command_all(SY_WORKER_STOP);
    watch_workers_exit();
}

/* ---- upgrade (SIGUSR2): the old process's side -------------------------- */

static void hold_services(bool held)
{
    for (const struct sy_main_service *const *s = proc.hooks->services; s && *s; s++)
        if ((*s)->hold)
            (*s)->hold(held);
}

/* Each worker's socket per listen address, one address's together, then the services'. */
static struct sy_upgrade_socket *upgrade_sockets(size_t *n)
{
    size_t cap = proc.nworkers * proc.conf->nlisten + 8, k = 0;
    struct sy_upgrade_socket *socks = calloc(cap, sizeof(*socks));

    for (size_t i = 0; socks && i < proc.conf->nlisten; i++)
        for (unsigned w = 0; w < proc.nworkers; w++)
            socks[k++] = (struct sy_upgrade_socket){"listen", proc.conf->listen[i].addr.text,
                                                     proc.workers[w]->listen_fds[i]};
    for (const struct sy_main_service *const *s = proc.hooks->services; socks && *s; s++)
        if ((*s)->listener && k < cap && (*s)->listener(&socks[k]) == 0)
            k++;
    *n = k;
    return socks;
}

static int64_t upgrade_timeout_ms(void)
{
    const char *v = getenv(UPGRADE_TIMEOUT_ENV);
    char *end;
    long long ms = v ? strtoll(v, &end, 10) : 0;

    return v && *v && !*end && ms > 0 ? ms : UPGRADE_TIMEOUT_MS;
}

static void close_ready_pipe(void)
{
    if (proc.upgrade.ready_event)
        event_free(proc.upgrade.ready_event);
    proc.upgrade.ready_event = NULL;
    if (proc.upgrade.ready_fd >= 0)
        close(proc.upgrade.ready_fd);
    proc.upgrade.ready_fd = -1;
}

/* The new process failed: it goes, this one serves on. One line says so once it is reaped. */
static void upgrade_fail(const char *why)
{
    close_ready_pipe();
    snprintf(proc.upgrade.failure, sizeof(proc.upgrade.failure), "%s", why);
    if (proc.upgrade.pid > 0)
        kill(proc.upgrade.pid, SIGKILL);    /* not reaped yet, so the pid is still its own */
    proc.upgrade.state = UPGRADE_FAILING;
    hold_services(false);
}

static void upgrade_hand_over(void)
{
    char status[96];
    long pid = (long)proc.upgrade.pid;

    close_ready_pipe();
    proc.upgrade.state = UPGRADE_HANDED_OVER;
    proc.stopping = true;
    sy_log_error(SY_LOG_INFO, "upgrade", "upgrade: new process %ld serves; this one (pid %ld) "
                 "stops accepting and finishes its connections (at most %lld ms)", pid,
                 (long)getpid(), (long long)proc.conf->shutdown_timeout_ms);
    /* MAINPID first: systemd (NotifyAccess=main) then follows the new process. */
    snprintf(status, sizeof(status), "serving: upgraded from pid %ld", (long)getpid());
    if (sy_notify_main_pid(pid, status) < 0)
        sy_log_error(SY_LOG_WARN, "upgrade", "cannot tell the service manager at %s that pid "
                     "%ld is the main process now: %s", getenv("NOTIFY_SOCKET"), pid,
                     strerror(errno));
    /* Closing our copies of the listening sockets resets nothing: the new process holds them. */
    stop_services();
    command_all(SY_WORKER_HAND_OVER);
    watch_workers_exit();
}

static void on_upgrade_ready(evutil_socket_t fd, short what, void *arg)
{
    char byte, why[96];
    (void)arg;

    if (what & EV_TIMEOUT) {
        snprintf(why, sizeof(why), "was not serving after %lld ms: killed",
                 (long long)proc.upgrade.timeout_ms);
        upgrade_fail(why);
        return;
    }
    ssize_t n = read(fd, &byte, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == 1)
        upgrade_hand_over();
    else
        upgrade_fail("ended before it served");
}

static void upgrade_begin(void)
{
    struct timeval tv;
    char err[512];
    size_t n = 0;
    pid_t old = sy_upgrade_old_process();

    if (proc.stopping)
        snprintf(err, sizeof(err), "this process is stopping");
    else if (proc.upgrade.state != UPGRADE_NONE)
        snprintf(err, sizeof(err), "an upgrade is already under way (new process %ld)",
                 (long)proc.upgrade.pid);
    else if (old)
        snprintf(err, sizeof(err), "this process took over from pid %ld, which still finishes "
                 "its connections", (long)old);
    else
        err[0] = '\0';
    if (err[0]) {
        sy_log_error(SY_LOG_WARN, "upgrade", "upgrade refused: %s", err);
        return;
    }
    struct sy_upgrade_socket *socks = upgrade_sockets(&n);
    if (!socks) {
        sy_log_error(SY_LOG_ERROR, "upgrade", "upgrade failed: out of memory");
        return;
    }
    hold_services(true);
    pid_t pid = sy_upgrade_spawn(socks, n, &proc.upgrade.ready_fd, err, sizeof(err));
    free(socks);
    if (pid < 0) {
        hold_services(false);
        sy_log_error(SY_LOG_ERROR, "upgrade", "upgrade failed: %s; this process keeps serving",
                     err);
        return;
    }
    proc.upgrade.state = UPGRADE_STARTING;
    proc.upgrade.pid = pid;
    proc.upgrade.timeout_ms = upgrade_timeout_ms();
    tv = (struct timeval){(time_t)(proc.upgrade.timeout_ms / 1000),
                          (suseconds_t)(proc.upgrade.timeout_ms % 1000 * 1000)};
    proc.upgrade.ready_event = event_new(proc.base, proc.upgrade.ready_fd, EV_READ | EV_PERSIST,
                                         on_upgrade_ready, NULL);
    if (!proc.upgrade.ready_event || event_add(proc.upgrade.ready_event, &tv) < 0) {
        upgrade_fail("could not be watched (out of memory): killed");
        return;
    }
    sy_log_error(SY_LOG_INFO, "upgrade", "upgrade: started %s as pid %ld with %zu listening "
                 "socket(s); waiting up to %lld ms for it to serve", sy_upgrade_binary(),
                 (long)pid, n, (long long)proc.upgrade.timeout_ms);
}

/* SIGCHLD: the only child we have is the new process of an upgrade. */
static void upgrade_reap(void)
{
    char how[64];
    int status;

    if (!proc.upgrade.pid || waitpid(proc.upgrade.pid, &status, WNOHANG) != proc.upgrade.pid)
        return;
    if (WIFEXITED(status))
        snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
    long pid = (long)proc.upgrade.pid;
    proc.upgrade.pid = 0;       /* reaped: from here on the number may be anyone's */
    if (proc.upgrade.state == UPGRADE_HANDED_OVER) {
        sy_log_error(SY_LOG_ERROR, "upgrade", "the new process %ld ended (%s) while this one "
                     "finishes its connections", pid, how);
        return;
    }
    if (proc.upgrade.state == UPGRADE_STARTING)
        upgrade_fail("ended before it served");
    proc.upgrade.state = UPGRADE_NONE;
    /* It may have written the pid file before it failed: the file names us again. */
    if (proc.opts->pid_file && write_pid_file(proc.opts->pid_file) < 0)
        sy_log_error(SY_LOG_ERROR, "upgrade", "cannot write pid file %s: %s",
                     proc.opts->pid_file, strerror(errno));
    sy_log_error(SY_LOG_ERROR, "upgrade", "upgrade failed: new process %ld (%s) %s (%s; its "
                 "own messages are on standard error); this process (pid %ld) %s", pid,
                 sy_upgrade_binary(), proc.upgrade.failure, how, (long)getpid(),
                 proc.stopping ? "goes on stopping" : "keeps serving");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    char err[512];
    (void)what, (void)arg;

    if (sig == SIGHUP) {
        sy_process_reload(err, sizeof(err));
    } else if (sig == SIGUSR1) {
        sy_log_error(SY_LOG_INFO, "process", "reopening log files");
        sy_log_reopen();
    } else if (sig == SIGUSR2) {
        upgrade_begin();
    } else if (sig == SIGCHLD) {
        upgrade_reap();
    } else {
        if (proc.upgrade.state == UPGRADE_STARTING)
            upgrade_fail("was abandoned: this process is stopping");
        if (sig == SIGTERM && !proc.stopping)
            stop_gracefully();
        else
            stop_now();         /* SIGINT, or a second SIGTERM */
    }
}

static void free_listener_fds(int **fds)
{
    for (unsigned w = 0; fds && w < proc.nworkers; w++) {
        for (size_t i = 0; fds[w] && i < proc.conf->nlisten; i++)
            if (fds[w][i] >= 0)
                close(fds[w][i]);
        free(fds[w]);
    }
    free(fds);
}

/* Each worker takes over its row of fds, even when it fails to start. */
static int start_workers(int **fds)
{
    sigset_t all, old;

    /* Signals are the main thread's: workers start with them blocked. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    proc.workers = calloc(proc.nworkers, sizeof(*proc.workers));
    int rc = proc.workers ? 0 : -1;
    for (unsigned i = 0; rc == 0 && i < proc.nworkers; i++) {
        proc.workers[i] = sy_worker_create(i, proc.conf, fds[i], proc.conf->nlisten,
                                           proc.hooks->worker);
        fds[i] = NULL;
        if (!proc.workers[i] || sy_worker_start(proc.workers[i]) < 0)
            rc = -1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void stop_and_join_workers(void)
{
    for (unsigned i = 0; proc.workers && i < proc.nworkers; i++)
        if (proc.workers[i])
            sy_worker_command(proc.workers[i], SY_WORKER_STOP);
    for (unsigned i = 0; proc.workers && i < proc.nworkers; i++)
        if (proc.workers[i])
            sy_worker_join_and_free(proc.workers[i]);
    free(proc.workers);
    proc.workers = NULL;
}

/*
 * Order matters: signal handlers exist before the pid file does (a script
 * may signal as soon as it sees the file), and the pid file is written
 * once the workers serve.
 */
int sy_process_run(const struct sy_process_options *opts, struct sy_conf *conf,
                   const struct sy_process_hooks *hooks)
{
    static const int signals[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGCHLD};
    enum { NSIGNALS = sizeof(signals) / sizeof(signals[0]) };
    struct event *sigev[NSIGNALS] = {NULL};
    char err[512];
    int status = 1, **fds = NULL;
    bool logging = false;

    proc.opts = opts;
    proc.hooks = hooks;
    proc.conf = conf;
    proc.nworkers = (unsigned)conf->workers;
    proc.upgrade.ready_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    /* Before any thread starts: it edits the environment. */
    if (sy_upgrade_adopt(err, sizeof(err)) < 0)
        goto fail;
    proc.base = event_base_new();
    for (int i = 0; proc.base && i < NSIGNALS; i++) {
        sigev[i] = evsignal_new(proc.base, signals[i], on_signal, NULL);
        event_add(sigev[i], NULL);
    }
    if (!proc.base) {
        snprintf(err, sizeof(err), "cannot create the main event loop");
        goto fail;
    }
    fds = open_listeners(conf, proc.nworkers, err, sizeof(err));
    if (!fds || hooks->prepare_conf(conf, proc.nworkers, err, sizeof(err)) < 0)
        goto fail;
    if (sy_log_start(&conf->log, proc.nworkers + 1, err, sizeof(err)) < 0)
        goto fail;
    logging = true;
    sy_log_attach(0);
    for (const struct sy_main_service *const *s = hooks->services; s && *s; s++)
        if ((*s)->prepare && (*s)->prepare(conf, err, sizeof(err)) < 0)
            goto fail;
    if (start_workers(fds) < 0) {
        snprintf(err, sizeof(err), "cannot start worker threads");
        goto fail;
    }
    for (const struct sy_main_service *const *s = hooks->services; s && *s; s++)
        if ((*s)->start(proc.base, conf, err, sizeof(err)) < 0)
            goto fail;
    if (opts->pid_file && write_pid_file(opts->pid_file) < 0) {
        snprintf(err, sizeof(err), "cannot write pid file %s: %s", opts->pid_file,
                 strerror(errno));
        goto fail;
    }
    sy_log_error(SY_LOG_INFO, "process", "switchyard %d worker(s) serving, configuration %s",
                 conf->workers, conf->file);
    pid_t old = sy_upgrade_old_process();
    /* After an upgrade the old process tells the service manager, which knows only it. */
    size_t taken;
    int told = sy_upgrade_serving(&taken);
    if (told > 0)
        sy_log_error(SY_LOG_INFO, "upgrade", "upgrade: took over %zu listening socket(s) from "
                     "pid %ld, which now stops", taken, (long)old);
    else if (told < 0)
        sy_log_error(SY_LOG_WARN, "upgrade", "cannot tell pid %ld that this process serves: "
                     "%s", (long)old, strerror(errno));
    else if (sy_notify_ready("serving") < 0)
        sy_log_error(SY_LOG_WARN, "process", "cannot notify the service manager at %s: %s",
                     getenv("NOTIFY_SOCKET"), strerror(errno));
    event_base_dispatch(proc.base);
    status = 0;
    /* After a hand-over the file names the new process. */
    if (opts->pid_file && proc.upgrade.state != UPGRADE_HANDED_OVER)
        unlink(opts->pid_file);
    goto done;
fail:
    fprintf(stderr, "switchyard: %s\n", err);
done:
    stop_services();
    stop_and_join_workers();
    free_listener_fds(fds);
    close_ready_pipe();
    for (int i = 0; i < NSIGNALS; i++)
        if (sigev[i])
            event_free(sigev[i]);
    if (proc.stop_timer)
        event_free(proc.stop_timer);
    if (proc.base)
        event_base_free(proc.base);
    if (logging) {
        sy_log_error(SY_LOG_INFO, "process", "stopped");
        sy_log_stop();
    }
    sy_conf_unref(proc.conf);
    return status;
}
