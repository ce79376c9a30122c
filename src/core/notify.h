/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * notify.h: the service manager's readiness protocol (sd_notify(3)) in a
 * few lines of our own: one datagram to the AF_UNIX socket named by
 * $NOTIFY_SOCKET. Without that variable every call is a no-op; a broken
 * socket is reported by the return value and never fails the gateway.
 */
#ifndef SY_NOTIFY_H
#define SY_NOTIFY_H

/*
 * Send state (newline-separated "KEY=value" lines, e.g. "READY=1") to
 * $NOTIFY_SOCKET without blocking. Returns 1 when sent, 0 when no socket
 * is configured, -1 with errno set when it could not be sent.
 */
int sy_notify(const char *state);

/* sy_notify() of a printf-formatted state; a state too long is not sent (-1, EMSGSIZE). */
int sy_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The three states the gateway reports, each with a "STATUS=" line that
 * `systemctl status` shows (newlines in status become spaces, a status
 * too long is cut). READY=1: serving, after start and after each reload,
 * refused or not. RELOADING=1 carries the MONOTONIC_USEC= that
 * Type=notify-reload (systemd 253+) wants. STOPPING=1: a stop has begun.
 */
int sy_notify_ready(const char *status);
int sy_notify_reloading(const char *status);
int sy_notify_stopping(const char *status);

/*
 * After an upgrade, from the old process (still the main pid): "MAINPID=pid"
 * then "READY=1" in one datagram, so that the manager follows the new
 * process (NotifyAccess=main then accepts only its messages).
 */
int sy_notify_main_pid(long pid, const char *status);

#endif
