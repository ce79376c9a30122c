/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctl.h: switchyard-ctl, the command-line client of the admin API (SPEC.md,
 * switchyard-ctl). Each command is one file that opens with its
 * `const struct ctl_cmd` (name, usage, argument count, exec); main.c holds
 * the table, the options and the exit codes, http.c the one HTTP exchange
 * a command makes, table.c the aligned human output.
 */
#ifndef SY_CTL_H
#define SY_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Exit codes (SPEC.md): scripts depend on these numbers. */
enum ctl_exit {
    CTL_OK = 0,
    CTL_REFUSED = 1,        /* the gateway answered 4xx/5xx (or nonsense) */
    CTL_USAGE = 2,          /* bad command line, token file or URL */
    CTL_UNREACHABLE = 3,    /* no answer: refused, timed out, unknown host */
};

#define CTL_NAME "switchyard-ctl"

/* Where and how to talk to the gateway; filled by main.c. */
struct ctl {
    char *host;             /* from the admin URL: name or address, no brackets */
    int port;
    char *base_path;        /* URL path prefix without a trailing '/', "" if none */
    const char *url;        /* the admin URL as given, for messages */
    char *token;            /* bearer token, NULL: send none */
    bool json;              /* --json: print the gateway's JSON */
    bool color;             /* stdout is a TTY and NO_COLOR is unset */
    bool force;             /* --force (switch only) */
};

/* One answer of the gateway. body is the parsed JSON (NULL when the body was
 * empty or not JSON); text is the raw body, NUL-terminated. */
struct ctl_response {
    int status;
    json_t *body;
    char *text;
    size_t len;
};

/* A command: argv[0] is its name, argc counts it. exec returns an exit code. */
typedef int (*ctl_exec_fn)(struct ctl *ctl, int argc, char **argv);

struct ctl_cmd {
    const char *name;
    const char *args;       /* usage after the name, e.g. "SERVICE WEIGHT" */
    const char *summary;    /* one line for --help */
    int min_args;           /* not counting the name */
    int max_args;
    bool takes_force;       /* accepts --force */
    ctl_exec_fn exec;
};

extern const struct ctl_cmd ctl_cmd_status, ctl_cmd_pools, ctl_cmd_switch, ctl_cmd_canary,
    ctl_cmd_rollout, ctl_cmd_drain, ctl_cmd_undrain, ctl_cmd_maintenance, ctl_cmd_reload;

/* main.c: a usage error: prints "switchyard-ctl: CMD: hint" and the usage
 * on stderr; returns CTL_USAGE. cmd may be NULL. */
int ctl_usage_error(const struct ctl_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* http.c: one request. path is appended to the admin URL's path and must be
 * percent-encoded already; body may be NULL (a POST then sends none).
 * Returns CTL_OK with resp filled (any HTTP status), or CTL_UNREACHABLE
 * after printing why on stderr. */
int ctl_http(struct ctl *ctl, const char *method, const char *path, json_t *body,
             struct ctl_response *resp);
void ctl_response_free(struct ctl_response *resp);

/* http.c: appends "/" and seg, percent-encoded (RFC 3986 pchar: unreserved
 * and ':' '@' stay), to buf of size n. Returns -1 when it does not fit. */
int ctl_path_append(char *buf, size_t n, const char *seg);

/* http.c: ctl_http with body (NULL or stolen: freed here), then the common
 * ending of a command. A 2xx JSON answer without --json: returns -1 and
 * *out holds it for the command to print and free. A 2xx with --json: the
 * body pretty-printed, CTL_OK. Any other answer: the gateway's "error" text
 * on stderr (and the body on stdout with --json), CTL_REFUSED. */
int ctl_call(struct ctl *ctl, const char *method, const char *path, json_t *body,
             struct ctl_response *out);

/* table.c: rows of cells printed with aligned columns; a cell may carry a
 * colour, written only when ctl->color. The first row is the header. */
enum ctl_color { CTL_PLAIN, CTL_GREEN, CTL_YELLOW, CTL_RED, CTL_BOLD };

struct ctl_table;
struct ctl_table *ctl_table_new(int ncols);
void ctl_table_add(struct ctl_table *t, enum ctl_color color, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ctl_table_print(struct ctl_table *t, const struct ctl *ctl);
void ctl_table_free(struct ctl_table *t);

/* table.c: small readers of the gateway's JSON that tolerate a missing
 * field ("-" on output). */
const char *ctl_str(const json_t *obj, const char *key, const char *fallback);
long long ctl_int(const json_t *obj, const char *key, long long fallback);
enum ctl_color ctl_state_color(const char *state);
/* "12s ago", "3m04s ago" from an RFC 3339 UTC time; the text as given when
 * it does not parse. */
void ctl_ago(const char *rfc3339, char *buf, size_t n);
/* Seconds from now until an RFC 3339 UTC time (negative if past); 0 when
 * it does not parse. */
long long ctl_seconds_until(const char *rfc3339);
/* "45s", "3m04s", "2h05m", "3d04h". */
void ctl_duration(long long seconds, char *buf, size_t n);

#endif
