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

/*
 * A client-triggered security event that may come in floods, collapsed per
 * key. The first event of a key in a wall-clock second is written at once,
 * with "suppressed": N when N earlier ones of that key were left out; the
 * others of that second are counted, not written, and the latest of them is
 * kept (strings cut to fixed sizes at a character boundary: client_ip 46
 * bytes, country 8, reason 96, a field's name 32 and value 96, all fields 256;
 * a field that does not fit, or a JSON value over 96, is left out). A key
 * whose flood stopped gets one last line at the next
 * sy_log_security_tick: that latest event, with "suppressed": N for the
 * others. So every line stands for one event, and the lines plus the sum of
 * "suppressed" equal the events logged.
 *
 * key: what makes two events "the same" (e.g. "rate_limited" + limit + client
 * key), compared with event too; its first 96 bytes are kept, a longer key is
 * told apart by its length and a 64-bit keyed hash. event: a string that
 * lives as long as the logger (a literal), as for sy_log_security.
 *
 * Each thread keeps 512 keys (set-associative, the least recently seen
 * replaced: its pending count is written first). The cap of 50 lines a second
 * per event per thread still holds over all keys (keyed lines have their own
 * cap, apart from sy_log_security's): a new key past it is not given a slot,
 * and its events, like counts that a tick or an eviction cannot write under
 * the cap, go to the event's overflow, written at the next tick as the latest
 * such event with "many_keys": true and "suppressed": N. 8 event names a
 * thread have caps of their own; more share one. A line too long as given is
 * written cut to the sizes above rather than dropped. A thread not attached
 * (sy_log_attach) falls back to sy_log_security. Never blocks; allocates
 * nothing (the tables are made by sy_log_start).
 */
void sy_log_security_keyed(const char *event, const char *key, size_t keylen,
                           const char *client_ip, const char *country, const char *reason,
                           const struct sy_log_field *fields, size_t nfields);

/*
 * Each thread that logs keyed events calls this about once a second (its
 * event loop's timer), with the wall clock in ms: writes the pending counts
 * of keys whose second has passed, and the overflows. A thread that stops
 * calls it with INT64_MAX to write everything pending.
 */
void sy_log_security_tick(int64_t now_ms);

/* Tests only: the wall clock (ms) the logs read; NULL: CLOCK_REALTIME. */
typedef int64_t (*sy_log_clock_fn)(void);
void sy_log_set_clock(sy_log_clock_fn wall_ms);

uint64_t sy_log_dropped(enum sy_log_stream stream);
const char *sy_log_stream_name(enum sy_log_stream stream);

/* "2026-11-23T07:00:00.123Z" (24 bytes, NUL-terminated) for wall-clock ms. */
void sy_log_format_ts(char out[32], int64_t wall_ms);

#endif
