/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * logstat.h: switchyard-logstat's pieces. A line source (input.c) hands
 * out lines; the scanner (scan.c) turns one into a record, with jansson as
 * the fallback for any line the fast scanner cannot read; the statistics
 * (stats.c, over the top-K tables of sketch.c) take records one by one in
 * bounded memory and build the report document (the --json one) that the
 * text and HTML writers render. docs/logstat.md describes the document.
 */
#ifndef LS_LOGSTAT_H
#define LS_LOGSTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>
#include <zlib.h>

#include "core/hist.h"
#include "core/keyhash.h"

#define LS_NAME "switchyard-logstat"
/* A longer line is counted bad and skipped: no log line of ours comes near. */
#define LS_LINE_MAX (64 * 1024)
/* Keys kept in a table are cut here (paths and user agents can be long). */
#define LS_KEY_MAX 512

/* ---- time (scan.c) ---- */

#define LS_NO_TIME INT64_MIN
/* RFC 3339 (any fraction, Z or +-HH:MM) to ms since the epoch; LS_NO_TIME if invalid. */
int64_t ls_parse_rfc3339(const char *s, size_t n);
/* "2026-11-23T17:19:50.123Z" */
void ls_format_ts(char out[32], int64_t ms);
/* A --since/--until value: RFC 3339, or a duration before now_ms ("90s", "15m",
 * "2h", "1d", "1h30m"). LS_NO_TIME if neither. */
int64_t ls_parse_time_arg(const char *s, int64_t now_ms);
/* A duration ("30s", "1m", "1h"; a bare number is seconds) in ms; -1 if invalid. */
int64_t ls_parse_duration_ms(const char *s);

/* ---- records (scan.c) ---- */

struct ls_str {
    const char *p;
    uint32_t n;
};

enum ls_kind { LS_ACCESS, LS_SECURITY };

/* One log line's fields. Strings point into the line (fast scanner) or into
 * the jansson value that the fallback keeps until the next scan. */
struct ls_record {
    enum ls_kind kind;
    int64_t ts_ms;
    struct ls_str client_ip, country, route, service;
    /* access */
    struct ls_str method, host, path, user_agent, upstream, slot, pool, proto;
    int status;                         /* -1: absent */
    uint64_t bytes_in, bytes_out;
    int64_t duration_us, upstream_us;   /* -1: absent or null */
    /* security */
    struct ls_str event, reason, limit;
    uint64_t suppressed;
};

enum ls_scan_result {
    LS_SCAN_OK,
    LS_SCAN_FALLBACK,   /* valid JSON, perhaps, but not for the fast scanner */
    LS_SCAN_BAD,
};

/* The fast scanner: one flat JSON object of our own layout (any key order,
 * unknown keys skipped). Strings with escapes, nested values and numbers
 * with exponents are left to the fallback. */
enum ls_scan_result ls_scan_fast(const char *line, size_t len, struct ls_record *rec,
                                 const char **why);
/* The fallback, through jansson: *holder keeps the strings alive (the caller
 * decrefs it after using rec). */
enum ls_scan_result ls_scan_json(const char *line, size_t len, struct ls_record *rec,
                                 json_t **holder, const char **why);

/* ---- line sources (input.c) ---- */

enum ls_line_result {
    LS_LINE_END = 0,    /* end of input (for now, when following) */
    LS_LINE_OK = 1,
    LS_LINE_LONG = 2,   /* a line over LS_LINE_MAX, skipped */
    LS_LINE_ERROR = -1, /* read error or corrupt compressed data: in->error */
};

struct ls_input {
    const char *name;       /* as given; "-" is standard input */
    int fd;
    gzFile gz;              /* compressed files (and standard input) */
    char *buf;
    size_t start, end;      /* unread bytes: buf[start, end) */
    uint64_t line_no;
    uint64_t offset;        /* bytes read from fd (plain files) */
    bool eof;
    bool skipping;          /* inside a line over LS_LINE_MAX */
    bool follow;            /* keep a partial last line; see ls_input_rotated */
    dev_t dev;
    ino_t ino;
    char error[256];
};

/* Opens name (gzip found by its magic bytes). 0, or -1 with in->error. */
int ls_input_open(struct ls_input *in, const char *name, bool follow);
enum ls_line_result ls_input_next(struct ls_input *in, const char **line, size_t *len);
/* Following: after LS_LINE_END, whether name now is another file (rotated)
 * or was truncated (copytruncate); a truncated file is read again from 0. */
bool ls_input_rotated(struct ls_input *in);
void ls_input_close(struct ls_input *in);

/* ---- top-K tables (sketch.c) ---- */

#define LS_DISTINCT_BITS 1024

/* A key and what was seen with it while the table kept it. */
struct ls_entry {
    char *key;
    uint32_t keylen;
    uint32_t heap_pos;
    uint64_t hash;
    uint64_t weight;        /* Space-Saving count: what ranks the entry */
    uint64_t overcount;     /* most of weight that may belong to evicted keys */
    uint64_t requests, errors, lat_count, lat_sum_us, lat_max_us;
    /* clients only: the suspects' figures */
    uint64_t not_found, rate_limited_responses, rate_limited_events, bad_requests;
    int64_t win;            /* current 10 s window */
    uint64_t win_count, peak_win_count;
    uint64_t *distinct;     /* LS_DISTINCT_BITS bits of 404 path hashes, or NULL */
};

/*
 * Space-Saving (Metwally, Agrawal, El Abbadi, 2005): at most cap keys; a new
 * key past that takes the place of the key with the least weight and
 * inherits its weight as overcount. Every key whose true weight exceeds
 * total/cap is kept, and weight - overcount <= true <= weight. Until the
 * first eviction the figures are exact.
 */
struct ls_table {
    const struct sy_sipkey *hashkey;
    size_t cap, n, alloc;
    struct ls_entry *entries;   /* n of them; an evicted key's entry is reused */
    uint32_t *heap;             /* entry ids, a min-heap on weight once n == cap */
    uint64_t *slots;            /* open addressing, linear probing (sketch.c) */
    size_t nslots;
    uint64_t evictions;
    uint64_t total;             /* weight added */
};

void ls_table_init(struct ls_table *t, size_t cap, const struct sy_sipkey *hashkey);
void ls_table_free(struct ls_table *t);
uint64_t ls_table_hash(const struct ls_table *t, const char *key, size_t len);
/* Adds weight to key (hash from ls_table_hash) and returns its entry, valid
 * until the next ls_table_add. */
struct ls_entry *ls_table_add(struct ls_table *t, const char *key, size_t len, uint64_t hash,
                              uint64_t weight);
/* The entry of key, or NULL. */
struct ls_entry *ls_table_find(const struct ls_table *t, const char *key, size_t len,
                               uint64_t hash);
/* The entries sorted by cmp (a qsort comparator on const struct ls_entry *
 * pointers), as a new array of t->n pointers the caller frees. */
struct ls_entry **ls_table_sorted(const struct ls_table *t,
                                  int (*cmp)(const void *, const void *));
/* Distinct values seen (linear counting over the entry's bitmap). */
void ls_entry_mark_distinct(struct ls_entry *e, uint64_t hash);
uint64_t ls_entry_distinct(const struct ls_entry *e);

/* ---- statistics (stats.c) ---- */

enum ls_report {
    LS_R_OVERVIEW = 1 << 0,
    LS_R_SERVICES = 1 << 1,
    LS_R_TIMELINE = 1 << 2,
    LS_R_TOP = 1 << 3,
    LS_R_RATE_LIMITING = 1 << 4,
    LS_R_DENIALS = 1 << 5,
    LS_R_ADMIN = 1 << 6,
    LS_R_CHANGES = 1 << 7,
    LS_R_SUSPECTS = 1 << 8,
    LS_R_ALL = (1 << 9) - 1,
};
/* "overview" ... "suspects" (the document's keys); 0 if unknown. */
unsigned ls_report_bit(const char *name, size_t n);
const char *ls_report_name(unsigned bit);

struct ls_filter {
    int64_t since_ms, until_ms;     /* LS_NO_TIME: open */
    const char *service, *client, *path_prefix;
    const char *status_text;
    bool status[600];               /* with status_text: the statuses kept */
};
/* "404", "5xx", "429,5xx". 0, or -1 if the list is invalid. */
int ls_filter_set_status(struct ls_filter *f, const char *list);

struct ls_options {
    unsigned reports;
    int64_t interval_ms;
    size_t top_n, table_size, events_kept;
    uint64_t suspect_404, suspect_429, suspect_bad;
    double suspect_rps;
    struct ls_filter filter;
};
void ls_options_default(struct ls_options *o);

struct ls_stats;

struct ls_stats *ls_stats_new(const struct ls_options *opt);
void ls_stats_free(struct ls_stats *s);
/* Lines that follow belong to this input (a file name, "-"). */
void ls_stats_begin_input(struct ls_stats *s, const char *name);
/* The current input could not be opened or read on (corrupt, I/O error). */
void ls_stats_input_error(struct ls_stats *s, const char *error);
/* Line number no of the current input: scanned, filtered and counted. */
void ls_stats_line(struct ls_stats *s, uint64_t no, const char *line, size_t len);
/* A line that could not be read at all (over LS_LINE_MAX). */
void ls_stats_bad(struct ls_stats *s, uint64_t no, const char *why);
uint64_t ls_stats_lines_read(const struct ls_stats *s);
/* The report document; the caller owns it. */
json_t *ls_stats_report(const struct ls_stats *s, int64_t now_ms);

/* ---- writers ---- */

/* Aligned text tables (text.c), from the document. 0, or -1 on a write error. */
int ls_text_write(FILE *out, const json_t *report);

#endif
