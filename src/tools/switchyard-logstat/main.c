/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * main.c: switchyard-logstat's command line: the options, the inputs read
 * in order (the last one followed with -f), and the outputs. Exit 0 done,
 * 1 no readable input, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sy_auto.h"
#include "logstat.h"
#include "html.h"

#define FOLLOW_POLL_MS 200

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *out)
{
    fputs("usage: " LS_NAME " [OPTIONS] [FILE...]\n"
          "Reads Switchyard access and security logs (plain or gzip; none or - is standard\n"
          "input) and reports on them.\n"
          "  -f, --follow           read the last FILE as it grows, across rotation; report\n"
          "                         on SIGINT or SIGTERM (and every --refresh seconds)\n"
          "      --refresh SECONDS  with -f, print the report this often\n"
          "  -r, --report LIST      sections: overview,services,timeline,top,rate_limiting,\n"
          "                         denials,admin,changes,suspects (default: all)\n"
          "      --json             one JSON document (docs/logstat.md)\n"
          "      --html FILE        also write a self-contained HTML page\n"
          "      --since TIME       RFC 3339, a date, or a duration before now (2h, 30m, 1d)\n"
          "      --until TIME       the same; lines before it are kept\n"
          "      --service NAME     only this service\n"
          "      --status LIST      only these statuses of access lines (404, 5xx, 429,5xx)\n"
          "      --client IP        only this client\n"
          "      --path-prefix P    only access lines whose path starts with P\n"
          "      --interval D       timeline step (default 1m)\n"
          "  -n, --top N            rows per top table (default 10)\n"
          "      --table-size N     distinct keys counted exactly per table (default 10000)\n"
          "      --events N         newest events kept per list (default 200)\n"
          "      --suspect-404 N    flag a client at N distinct 404 paths (default 20)\n"
          "      --suspect-429 N    ... at N rate-limited requests (default 50)\n"
          "      --suspect-bad N    ... at N bad requests (default 10)\n"
          "      --suspect-rps R    ... at R requests/s over its busiest 10 s (default 20)\n"
          "  -h, --help             this text\n"
          "  -V, --version          the version\n"
          "exit: 0 done, 1 no readable input, 2 usage\n", out);
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, LS_NAME ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '" LS_NAME " --help'.\n");
    return 2;
}

static bool parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;

    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_reports(const char *list, unsigned *out)
{
    *out = 0;
    for (const char *p = list;;) {
        size_t n = strcspn(p, ",");
        unsigned bit = ls_report_bit(p, n);
        if (!bit)
            return false;
        *out |= bit;
        if (!p[n])
            return true;
        p += n + 1;
    }
}

enum {
    OPT_REFRESH = 256, OPT_JSON, OPT_HTML, OPT_SINCE, OPT_UNTIL, OPT_SERVICE, OPT_STATUS,
    OPT_CLIENT, OPT_PATH_PREFIX, OPT_INTERVAL, OPT_TABLE_SIZE, OPT_EVENTS, OPT_S404, OPT_S429,
    OPT_SBAD, OPT_SRPS,
};

static const struct option long_options[] = {
    {"follow", no_argument, NULL, 'f'},
    {"refresh", required_argument, NULL, OPT_REFRESH},
    {"report", required_argument, NULL, 'r'},
    {"json", no_argument, NULL, OPT_JSON},
    {"html", required_argument, NULL, OPT_HTML},
    {"since", required_argument, NULL, OPT_SINCE},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"service", required_argument, NULL, OPT_SERVICE},
    {"status", required_argument, NULL, OPT_STATUS},
    {"client", required_argument, NULL, OPT_CLIENT},
    {"path-prefix", required_argument, NULL, OPT_PATH_PREFIX},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"top", required_argument, NULL, 'n'},
    {"table-size", required_argument, NULL, OPT_TABLE_SIZE},
    {"events", required_argument, NULL, OPT_EVENTS},
    {"suspect-404", required_argument, NULL, OPT_S404},
    {"suspect-429", required_argument, NULL, OPT_S429},
    {"suspect-bad", required_argument, NULL, OPT_SBAD},
    {"suspect-rps", required_argument, NULL, OPT_SRPS},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

struct run {
    struct ls_options opt;
    bool follow, json;
    const char *html;
    int64_t refresh_ms;
};

static int parse_args(int argc, char **argv, struct run *run)
{
    int64_t now = now_ms();
    uint64_t v;
    int c;

    ls_options_default(&run->opt);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":fr:n:hV", long_options, NULL)) != -1) {
        switch (c) {
        case 'f': run->follow = true; break;
        case OPT_REFRESH:
            if (!parse_count(optarg, 1, 86400, &v))
                return usage_error("--refresh: expected seconds (1 to 86400), got '%s'", optarg);
            run->refresh_ms = (int64_t)v * 1000;
            break;
        case 'r':
            if (!parse_reports(optarg, &run->opt.reports))
                return usage_error("--report: unknown section in '%s'", optarg);
            break;
        case OPT_JSON: run->json = true; break;
        case OPT_HTML: run->html = optarg; break;
        case OPT_SINCE:
        case OPT_UNTIL: {
            int64_t t = ls_parse_time_arg(optarg, now);
            if (t == LS_NO_TIME)
                return usage_error("expected RFC 3339 time, a date or a duration (2h), got '%s'",
                                   optarg);
            *(c == OPT_SINCE ? &run->opt.filter.since_ms : &run->opt.filter.until_ms) = t;
            break;
        }
        case OPT_SERVICE: run->opt.filter.service = optarg; break;
        case OPT_CLIENT: run->opt.filter.client = optarg; break;
        case OPT_PATH_PREFIX: run->opt.filter.path_prefix = optarg; break;
        case OPT_STATUS:
            if (ls_filter_set_status(&run->opt.filter, optarg) < 0)
                return usage_error("--status: expected statuses or classes like 404,5xx, got "
                                   "'%s'", optarg);
            break;
        case OPT_INTERVAL:
            run->opt.interval_ms = ls_parse_duration_ms(optarg);
            if (run->opt.interval_ms < 1000 || run->opt.interval_ms % 1000)
                return usage_error("--interval: expected whole seconds of at least 1s (30s, 1m, "
                                   "1h), got '%s'", optarg);
            break;
        case 'n':
            if (!parse_count(optarg, 1, 10000, &v))
                return usage_error("--top: expected 1 to 10000, got '%s'", optarg);
            run->opt.top_n = v;
            break;
        case OPT_TABLE_SIZE:
            if (!parse_count(optarg, 16, 10000000, &v))
                return usage_error("--table-size: expected 16 to 10000000, got '%s'", optarg);
            run->opt.table_size = v;
            break;
        case OPT_EVENTS:
            if (!parse_count(optarg, 0, 1000000, &v))
                return usage_error("--events: expected 0 to 1000000, got '%s'", optarg);
            run->opt.events_kept = v;
            break;
        case OPT_S404:
        case OPT_S429:
        case OPT_SBAD:
            if (!parse_count(optarg, 1, UINT32_MAX, &v))
                return usage_error("expected a count of at least 1, got '%s'", optarg);
            *(c == OPT_S404 ? &run->opt.suspect_404 : c == OPT_S429 ? &run->opt.suspect_429
                                                                    : &run->opt.suspect_bad) = v;
            break;
        case OPT_SRPS: {
            char *end;
            double r = strtod(optarg, &end);
            if (end == optarg || *end || !(r > 0) || r > 1e9)
                return usage_error("--suspect-rps: expected a rate above 0, got '%s'", optarg);
            run->opt.suspect_rps = r;
            break;
        }
        case 'h': usage(stdout); exit(0);
        case 'V': printf(LS_NAME " %s\n", SY_VERSION); exit(0);
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (run->follow && optind >= argc)
        return usage_error("%s", "-f needs a FILE to follow");
    if (run->follow && strcmp(argv[argc - 1], "-") == 0)
        return usage_error("%s", "-f follows a file, not standard input");
    return 0;
}

static int emit(const struct run *run, const struct ls_stats *stats)
{
    json_t *doc = ls_stats_report(stats, now_ms());
    int rc = 0;

    if (!doc) {
        fputs(LS_NAME ": out of memory\n", stderr);
        return -1;
    }
    if (run->html) {
        FILE *f = fopen(run->html, "w");
        int written = f ? ls_html_write(f, doc) : -1;
        int saved = errno;
        if (f && fclose(f) != 0 && written == 0)
            written = -1, saved = errno;
        if (written < 0) {
            fprintf(stderr, LS_NAME ": %s: %s\n", run->html, strerror(saved));
            rc = -1;
        }
    }
    int out = 0;
    if (run->json)
        out = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0
              || fputc('\n', stdout) == EOF ? -1 : 0;
    else
        out = ls_text_write(stdout, doc);
    if (fflush(stdout) != 0 || out < 0) {
        fprintf(stderr, LS_NAME ": standard output: %s\n", strerror(errno));
        rc = -1;
    }
    json_decref(doc);
    return rc;
}

/* Reads in until its end (for now); false when it failed. */
static bool drain(struct ls_stats *stats, struct ls_input *in)
{
    const char *line;
    size_t len;

    for (;;) {
        switch (ls_input_next(in, &line, &len)) {
        case LS_LINE_OK:
            ls_stats_line(stats, in->line_no, line, len);
            break;
        case LS_LINE_LONG:
            ls_stats_bad(stats, in->line_no, "line longer than 65536 bytes");
            break;
        case LS_LINE_END:
            return true;
        case LS_LINE_ERROR:
            ls_stats_input_error(stats, in->error);
            fprintf(stderr, LS_NAME ": %s (after line %llu)\n", in->error,
                    (unsigned long long)in->line_no);
            return false;
        }
    }
}

/* -f: the file as it grows; when it is rotated, the rest of the old one,
 * then the new one from its start. */
static void follow(const struct run *run, struct ls_stats *stats, struct ls_input *in)
{
    int64_t next_report = run->refresh_ms ? now_ms() + run->refresh_ms : INT64_MAX;

    while (!stop_requested) {
        if (!drain(stats, in))
            return;
        if (ls_input_rotated(in)) {
            in->follow = false;     /* the old file's last line, even without its newline */
            drain(stats, in);
            const char *name = in->name;
            ls_input_close(in);
            while (!stop_requested && ls_input_open(in, name, true) < 0) {
                struct timespec pause = {0, FOLLOW_POLL_MS * 1000000L};
                nanosleep(&pause, NULL);
            }
            if (stop_requested)
                return;
            continue;
        }
        if (now_ms() >= next_report) {
            emit(run, stats);
            next_report = now_ms() + run->refresh_ms;
        }
        struct timespec pause = {0, FOLLOW_POLL_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
    in->follow = false;
    drain(stats, in);
}

int main(int argc, char **argv)
{
    struct run run = {0};
    int rc = parse_args(argc, argv, &run);
    if (rc)
        return rc;

    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char *stdin_only[] = {"-"};
    char **files = optind < argc ? argv + optind : stdin_only;
    int nfiles = optind < argc ? argc - optind : 1;
    struct ls_stats *stats = ls_stats_new(&run.opt);
    int readable = 0;

    for (int i = 0; i < nfiles && !stop_requested; i++) {
        struct ls_input in;
        bool last = i == nfiles - 1;
        ls_stats_begin_input(stats, files[i]);
        if (ls_input_open(&in, files[i], run.follow && last) < 0) {
            fprintf(stderr, LS_NAME ": %s\n", in.error);
            ls_stats_input_error(stats, in.error);
            continue;
        }
        readable++;
        if (run.follow && last && in.gz) {
            fprintf(stderr, LS_NAME ": %s: compressed, read to its end, not followed\n",
                    files[i]);
            in.follow = false;
        }
        if (in.follow)
            follow(&run, stats, &in);
        else
            drain(stats, &in);
        ls_input_close(&in);
    }
    if (readable == 0) {
        fprintf(stderr, LS_NAME ": no readable input\n");
        ls_stats_free(stats);
        return 1;
    }
    rc = emit(&run, stats) < 0 ? 1 : 0;
    ls_stats_free(stats);
    return rc;
}
