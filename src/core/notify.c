/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * notify.c: sd_notify(3) without libsystemd. $NOTIFY_SOCKET is a file
 * system path ("/run/systemd/notify") or an abstract name ("@..."); each
 * state goes as one non-blocking datagram on a fresh socket, so a manager
 * that stopped reading can never stall the main thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

#define STATE_MAX 1024

/* addr from name; returns the address length to pass to sendto(), or 0 (errno set). */
static socklen_t notify_address(const char *name, struct sockaddr_un *addr)
{
    size_t len = strlen(name);

    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (name[0] != '/' && name[0] != '@') {
        errno = EAFNOSUPPORT;   /* e.g. systemd's "vsock:" form, not ours to speak */
        return 0;
    }
    if (len < 2 || len >= sizeof(addr->sun_path)) {
        errno = EINVAL;
        return 0;
    }
    memcpy(addr->sun_path, name, len);
    if (name[0] == '@') {
        /* Abstract: a leading NUL and exactly len bytes, no terminator counted. */
        addr->sun_path[0] = '\0';
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

int sy_notify(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    struct sockaddr_un addr;

    if (!name || !*name)
        return 0;
    socklen_t addrlen = notify_address(name, &addr);
    if (addrlen == 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    size_t len = strlen(state);
    ssize_t sent = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addrlen);
    int saved = errno;
    close(fd);
    if (sent < 0) {
        errno = saved;
        return -1;
    }
    if ((size_t)sent != len) {
        errno = EMSGSIZE;
        return -1;
    }
    return 1;
}

int sy_notifyf(const char *fmt, ...)
{
    char state[STATE_MAX];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(state, sizeof(state), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(state)) {
        errno = EMSGSIZE;
        return -1;
    }
    return sy_notify(state);
}

/*
 * head, then "STATUS=" and status with its newlines made spaces: a reason
 * taken from a configuration error must not smuggle in a second key.
 */
static int notify_with_status(const char *head, const char *status)
{
    char state[STATE_MAX];
    int n = snprintf(state, sizeof(state), "%s\nSTATUS=", head);

    if (n < 0 || (size_t)n >= sizeof(state)) {
        errno = EMSGSIZE;
        return -1;
    }
    /* A status too long is cut, not dropped: the state keys before it matter more. */
    for (size_t i = (size_t)n; *status && i + 1 < sizeof(state); i++, status++) {
        state[i] = (*status == '\n' || *status == '\r') ? ' ' : *status;
        state[i + 1] = '\0';
    }
    return sy_notify(state);
}

int sy_notify_ready(const char *status)
{
    return notify_with_status("READY=1", status);
}

int sy_notify_reloading(const char *status)
{
    char head[64];
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    snprintf(head, sizeof(head), "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)now_us);
    return notify_with_status(head, status);
}

int sy_notify_stopping(const char *status)
{
    return notify_with_status("STOPPING=1", status);
}

int sy_notify_main_pid(long pid, const char *status)
{
    char head[64];

    snprintf(head, sizeof(head), "MAINPID=%ld\nREADY=1", pid);
    return notify_with_status(head, status);
}
