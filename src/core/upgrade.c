/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * upgrade.c: the mechanics of an upgrade (upgrade.h). SWITCHYARD_INHERIT
 * reads "ready=W;listen:ADDR=F1,F2;admin:ADDR=F3": W is the write end of
 * the readiness pipe, each F a listening socket left open across exec.
 * Between fork and exec only async-signal-safe calls run: the other
 * threads' locks (malloc's among them) are not the child's to take.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "upgrade.h"

#define MAX_INHERITED 4096      /* far above any workers x listeners */

extern char **environ;

struct inherited {
    char kind[8];
    int fd;                     /* -1 once taken or closed */
};

static struct {
    char path[PATH_MAX];        /* empty: not resolved, path_error says why */
    char path_error[160];
    char **argv;                /* argv[0] replaced by path; NULL-terminated */
    struct inherited *socks;
    size_t nsocks;
    size_t taken;
    int ready_fd;
    pid_t old_pid;
} up = {.ready_fd = -1};

/* ---- the command --------------------------------------------------------- */

static int make_absolute(const char *path, char *out, size_t outlen)
{
    char cwd[PATH_MAX];
    int n;

    if (path[0] == '/')
        n = snprintf(out, outlen, "%s", path);
    else if (getcwd(cwd, sizeof(cwd)))
        n = snprintf(out, outlen, "%s/%s", cwd, path);
    else
        return -1;
    if (n < 0 || (size_t)n >= outlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* As execvp(3) searches: a name with a slash as it is, else PATH's entries in order. */
static int resolve(const char *argv0, char *out, size_t outlen)
{
    char candidate[PATH_MAX];
    const char *p = getenv("PATH");

    if (!argv0 || !*argv0) {
        errno = ENOENT;
        return -1;
    }
    if (strchr(argv0, '/'))
        return make_absolute(argv0, out, outlen);
    if (!p)
        p = "/usr/local/bin:/usr/bin:/bin";
    for (;;) {
        size_t n = strcspn(p, ":");
        int len = snprintf(candidate, sizeof(candidate), "%.*s%s%s", (int)n, p, n ? "/" : "",
                           argv0);
        if (len > 0 && (size_t)len < sizeof(candidate) && access(candidate, X_OK) == 0)
            return make_absolute(candidate, out, outlen);
        if (!p[n])
            break;
        p += n + 1;
    }
    errno = ENOENT;
    return -1;
}

void sy_upgrade_remember_command(int argc, char **argv)
{
    if (resolve(argc > 0 ? argv[0] : NULL, up.path, sizeof(up.path)) < 0) {
        snprintf(up.path_error, sizeof(up.path_error), "cannot find the running binary "
                 "\"%s\" (%s)", argc > 0 ? argv[0] : "", strerror(errno));
        up.path[0] = '\0';
    }
    /* A copy: getopt may permute argv; argv[0] becomes the path, so every generation agrees. */
    up.argv = calloc((size_t)argc + 1, sizeof(*up.argv));
    if (!up.argv) {
        snprintf(up.path_error, sizeof(up.path_error), "out of memory");
        up.path[0] = '\0';
        return;
    }
    for (int i = 0; i < argc; i++)
        up.argv[i] = argv[i];
    if (argc > 0 && up.path[0])
        up.argv[0] = up.path;
}

const char *sy_upgrade_binary(void)
{
    return up.path[0] ? up.path : NULL;
}

/* ---- the new process ----------------------------------------------------- */

static int set_cloexec(int fd, bool on)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

static bool is_listening_stream(int fd)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof(type), len2 = sizeof(listening);

    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM &&
           getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len2) == 0 && listening;
}

/* A descriptor number from text; -1 when it is none. */
static int parse_fd(const char *text)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);

    if (errno || end == text || *end || v < 0 || v > INT_MAX)
        return -1;
    return (int)v;
}

static int add_socket(const char *kind, int fd, char *err, size_t errlen)
{
    if (up.nsocks == MAX_INHERITED) {
        snprintf(err, errlen, "%s: more than %d sockets", SY_UPGRADE_ENV, MAX_INHERITED);
        return -1;
    }
    if (!up.socks && !(up.socks = calloc(MAX_INHERITED, sizeof(*up.socks)))) {
        snprintf(err, errlen, "%s: out of memory", SY_UPGRADE_ENV);
        return -1;
    }
    snprintf(up.socks[up.nsocks].kind, sizeof(up.socks[up.nsocks].kind), "%s", kind);
    up.socks[up.nsocks++].fd = fd;
    return 0;
}

/* One "NAME=FD[,FD...]" entry; NAME is "ready" or "KIND:ADDR". */
static int parse_entry(char *entry, char *err, size_t errlen)
{
    char *eq = strrchr(entry, '='), *save = NULL, kind[8];
    struct stat st;

    if (!eq) {
        snprintf(err, errlen, "%s: \"%s\" has no descriptor", SY_UPGRADE_ENV, entry);
        return -1;
    }
    *eq = '\0';
    bool ready = strcmp(entry, "ready") == 0;
    snprintf(kind, sizeof(kind), "%.*s", (int)strcspn(entry, ":"), entry);
    for (char *tok = strtok_r(eq + 1, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int fd = parse_fd(tok);
        if (ready && (fd < 0 || fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))) {
            snprintf(err, errlen, "%s: ready=%s is not an open pipe", SY_UPGRADE_ENV, tok);
            return -1;
        }
        if (!ready && (fd < 0 || !is_listening_stream(fd))) {
            snprintf(err, errlen, "%s: %s: descriptor %s is not a listening socket",
                     SY_UPGRADE_ENV, entry, tok);
            return -1;
        }
        if (ready)
            up.ready_fd = fd;
        else if (add_socket(kind, fd, err, errlen) < 0)
            return -1;
        /* Ours now; the next upgrade clears it again for what it passes on. */
        set_cloexec(fd, true);
    }
    return 0;
}

int sy_upgrade_adopt(char *err, size_t errlen)
{
    const char *value = getenv(SY_UPGRADE_ENV);
    char *save = NULL;
    int rc = 0;

    if (!value)
        return 0;
    char *copy = strdup(value);
    unsetenv(SY_UPGRADE_ENV);
    if (!copy) {
        snprintf(err, errlen, "%s: out of memory", SY_UPGRADE_ENV);
        return -1;
    }
    up.old_pid = getppid();
    for (char *e = strtok_r(copy, ";", &save); rc == 0 && e; e = strtok_r(NULL, ";", &save))
        rc = parse_entry(e, err, errlen);
    free(copy);
    return rc;
}

pid_t sy_upgrade_old_process(void)
{
    /* The old process is our parent until it exits; then we are someone else's child. */
    if (up.old_pid && getppid() != up.old_pid)
        up.old_pid = 0;
    return up.old_pid;
}

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

size_t sy_upgrade_take(const char *kind, const struct sy_addr *addr, int *fds, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < up.nsocks && n < max; i++) {
        struct inherited *s = &up.socks[i];
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (s->fd < 0 || strcmp(s->kind, kind) != 0 ||
            getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0 || !same_address(&ss, &addr->ss))
            continue;
        fds[n++] = s->fd;
        s->fd = -1;
    }
    up.taken += n;
    return n;
}

int sy_upgrade_serving(size_t *taken)
{
    ssize_t n;

    *taken = up.taken;
    for (size_t i = 0; i < up.nsocks; i++)
        if (up.socks[i].fd >= 0)
            close(up.socks[i].fd);
    free(up.socks);
    up.socks = NULL;
    up.nsocks = 0;
    if (up.ready_fd < 0)
        return 0;
    do
        n = write(up.ready_fd, "1", 1);
    while (n < 0 && errno == EINTR);
    int saved = errno;
    close(up.ready_fd);
    up.ready_fd = -1;
    errno = saved;
    return n == 1 ? 1 : -1;
}

/* ---- the old process ----------------------------------------------------- */

/* "ready=W;listen:ADDR=F,F;admin:ADDR=F"; NULL when out of memory. */
static char *inherit_value(const struct sy_upgrade_socket *socks, size_t n, int ready_fd)
{
    size_t cap = 32;

    for (size_t i = 0; i < n; i++)
        cap += strlen(socks[i].kind) + strlen(socks[i].text) + 16;
    char *out = malloc(cap), *p = out;
    if (!out)
        return NULL;
    p += sprintf(p, "ready=%d", ready_fd);
    for (size_t i = 0; i < n; i++) {
        bool same = i > 0 && strcmp(socks[i].kind, socks[i - 1].kind) == 0 &&
                    strcmp(socks[i].text, socks[i - 1].text) == 0;
        if (same) {
            p += sprintf(p, ",%d", socks[i].fd);
            continue;
        }
        p += sprintf(p, ";%s:", socks[i].kind);
        /* The text is for a reader of /proc/PID/environ only: keep the separators out. */
        for (const char *t = socks[i].text; *t; t++)
            *p++ = (*t == ';' || *t == '=' || *t == ',') ? '_' : *t;
        p += sprintf(p, "=%d", socks[i].fd);
    }
    return out;
}

/* environ without an earlier SWITCHYARD_INHERIT, plus entry; NULL when out of memory. */
static char **child_environ(char *entry)
{
    static const char name[] = SY_UPGRADE_ENV "=";
    size_t n = 0, k = 0;

    while (environ && environ[n])
        n++;
    char **env = calloc(n + 2, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], name, sizeof(name) - 1) != 0)
            env[k++] = environ[i];
    env[k] = entry;
    return env;
}

/* In the forked child: async-signal-safe calls only, then exec. */
static void __attribute__((noreturn))
exec_child(const struct sy_upgrade_socket *socks, size_t n, int ready_fd, char **env,
           const sigset_t *unblocked)
{
    static const int caught[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGCHLD, SIGPIPE};
    struct sigaction dfl;

    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
#ifdef CLOSE_RANGE_CLOEXEC
    /* Nothing else of ours (a Redis connection, say) leaks into the new program. */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
#endif
    for (size_t i = 0; i < n; i++)
        set_cloexec(socks[i].fd, false);
    set_cloexec(ready_fd, false);
    /* Our handlers write to our event loop's socketpair: not the child's to run. */
    for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
        sigaction(caught[i], &dfl, NULL);
    sigprocmask(SIG_SETMASK, unblocked, NULL);
    execve(up.path, up.argv, env);
    _exit(127);
}

pid_t sy_upgrade_spawn(const struct sy_upgrade_socket *socks, size_t n, int *ready_fd,
                       char *err, size_t errlen)
{
    int pipefd[2];
    sigset_t all, old, none;

    if (!up.path[0] || !up.argv) {
        snprintf(err, errlen, "%s", up.path_error);
        return -1;
    }
    if (access(up.path, X_OK) < 0) {
        snprintf(err, errlen, "cannot execute %s: %s", up.path, strerror(errno));
        return -1;
    }
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "cannot create the readiness pipe: %s", strerror(errno));
        return -1;
    }
    char *value = inherit_value(socks, n, pipefd[1]);
    char *entry = NULL;
    if (value && asprintf(&entry, "%s=%s", SY_UPGRADE_ENV, value) < 0)
        entry = NULL;
    free(value);
    char **env = entry ? child_environ(entry) : NULL;
    if (!env) {
        free(entry);
        close(pipefd[0]);
        close(pipefd[1]);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* No handler of ours may run in the child before exec resets them. */
    sigfillset(&all);
    sigemptyset(&none);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        exec_child(socks, n, pipefd[1], env, &none);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(pipefd[1]);
    free(env);
    free(entry);
    if (pid < 0) {
        close(pipefd[0]);
        snprintf(err, errlen, "cannot fork: %s", strerror(saved));
        return -1;
    }
    fcntl(pipefd[0], F_SETFL, fcntl(pipefd[0], F_GETFL) | O_NONBLOCK);
    *ready_fd = pipefd[0];
    return pid;
}
