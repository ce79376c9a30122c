/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log.h: the access, security and error logs. Threads never write files:
 * each thread appends whole lines to its own lock-free ring, and one writer
 * thread flushes the rings in large writes and reopens files on request.
 * A full ring drops the line and counts it (switchyard_log_dropped_total).
 */
#ifndef SY_LOG_H
#define SY_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

enum sy_log_stream {
    SY_LOG_ACCESS,
    SY_LOG_SECURITY,
    SY_LOG_ERRORS,
    SY_LOG_NSTREAMS,
};

/*
 * Opens the files of conf and starts the writer with nsources rings per
 * stream (one per worker, plus one for the main thread). Before this, and
 * after sy_log_stop(), error lines go straight to standard error.
 */
int sy_log_start(const struct sy_log_conf *conf, unsigned nsources, char *err, size_t errlen);
void sy_log_stop(void);

/* Binds the calling thread to ring set `source` (0..nsources-1). */
void sy_log_attach(unsigned source);

/* New file paths and level after a reload; files are reopened by the writer. */
int sy_log_reconfigure(const struct sy_log_conf *conf, char *err, size_t errlen);
/* Reopens every file (SIGUSR1, after rotation). */
void sy_log_reopen(void);

/* Appends one complete line (ending in '\n') to the calling thread's ring. */
void sy_log_line(enum sy_log_stream stream, const char *line, size_t len);
int sy_log_enabled(enum sy_log_stream stream);

void sy_log_error(enum sy_log_level level, const char *subsystem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A field of a security-log event beyond the common ones. */
struct sy_log_field {
    const char *name;
    const char *str;            /* a string value; NULL: json, else num, is the value */
    const char *json;           /* a JSON number already formatted ("0.125") */
    int64_t num;
};

/*
 * One security-log line (SPEC.md, Logs): ts, event, client_ip, country,
 * reason, then fields in order. NULL strings are written as "". Under a
 * flood of an event clients can cause (bad_request, auth_failed, denied,
 * rate_limited), at most 50 lines of it a second per thread are written;
 * the next one written carries "suppressed": N (the lines left out).
 */
void sy_log_security(const char *event, const char *client_ip, const char *country,
                     const char *reason, const struct sy_log_field *fields, size_t nfields);

uint64_t sy_log_dropped(enum sy_log_stream stream);
const char *sy_log_stream_name(enum sy_log_stream stream);

/* "2026-11-23T07:00:00.123Z" (24 bytes, NUL-terminated) for wall-clock ms. */
void sy_log_format_ts(char out[32], int64_t wall_ms);

#endif
