/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * upgrade.h: replacing the running binary without closing a listening
 * socket (SIGUSR2, `switchyard -s upgrade`), as nginx does. The old process
 * fork+execs the binary it was started from, with the same arguments, and
 * names its listening sockets and the write end of a readiness pipe in
 * SWITCHYARD_INHERIT; the new process adopts those sockets instead of
 * binding and writes one byte on the pipe once it serves. The sockets are
 * the same kernel objects in both processes, so a connection waiting in an
 * accept queue goes to whichever accepts first and is never reset.
 * process.c drives the old process's side; this file holds the mechanics.
 * Main thread only.
 */
#ifndef SY_UPGRADE_H
#define SY_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "addr.h"

#define SY_UPGRADE_ENV "SWITCHYARD_INHERIT"

/*
 * At start-up, before anything could change the working directory: the
 * binary's absolute path (argv[0], searched in PATH when it has no slash,
 * symbolic links kept, so an upgrade runs whatever the path names then;
 * /proc/self/exe would name the replaced file) and the arguments a new
 * process gets. argv must outlive the process. A path that cannot be
 * resolved is not an error here: an upgrade is refused later with the reason.
 */
void sy_upgrade_remember_command(int argc, char **argv);

/* ---- the new process ---------------------------------------------------- */

/*
 * Reads SWITCHYARD_INHERIT, when present, and removes it from the
 * environment; call before any thread starts. Each named descriptor must be
 * a listening stream socket. 0 (also when absent), or -1 with err.
 */
int sy_upgrade_adopt(char *err, size_t errlen);

/*
 * The pid of the process this one took over from while that one still
 * finishes its connections (it is our parent until it exits), else 0.
 */
pid_t sy_upgrade_old_process(void);

/*
 * Moves up to max inherited sockets of kind ("listen" or "admin") bound to
 * addr's address and port into fds; returns how many. Matching on the bound
 * address rather than on the text lets "0.0.0.0:80" and "*:80" agree.
 */
size_t sy_upgrade_take(const char *kind, const struct sy_addr *addr, int *fds, size_t max);

/*
 * Serving: closes the inherited sockets nothing took (the old process keeps
 * its copies until it stops), then tells the old process. Returns 1 when it
 * was told, 0 when this process was not started by an upgrade, -1 (errno)
 * when the pipe could not be written; *taken: how many sockets were taken.
 */
int sy_upgrade_serving(size_t *taken);

/* ---- the old process ---------------------------------------------------- */

struct sy_upgrade_socket {
    const char *kind;           /* "listen" or "admin" */
    const char *text;           /* the address as configured, for the reader of environ */
    int fd;
};

/*
 * Starts the new process with socks (sockets of one kind and text given
 * next to each other share an entry). On success returns its pid and sets
 * *ready_fd to the read end of the readiness pipe (non-blocking,
 * close-on-exec): one byte when the new process serves, end of file when it
 * died or closed it. -1 with err when nothing was started.
 */
pid_t sy_upgrade_spawn(const struct sy_upgrade_socket *socks, size_t n, int *ready_fd,
                       char *err, size_t errlen);

/* The path sy_upgrade_spawn runs, or NULL when it could not be resolved. */
const char *sy_upgrade_binary(void);

#endif
