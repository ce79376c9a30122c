/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * main.c: switchyard-ctl's command line: options, the command table, the
 * admin URL and the token file. Options may come before or after the
 * command; every mistake here is exit 2 with a one-line hint, before any
 * byte goes to the gateway.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/http.h>

#include "sy_auto.h"
#include "ctl.h"

#define DEFAULT_ADMIN "http://127.0.0.1:9901"
#define DEFAULT_TOKEN_FILE "conf/admin.token"
#define TOKEN_FILE_MAX (1 << 20)    /* as the gateway: a bigger file is a mistake */

static const struct ctl_cmd *const commands[] = {
    &ctl_cmd_status, &ctl_cmd_pools, &ctl_cmd_switch, &ctl_cmd_canary, &ctl_cmd_rollout,
    &ctl_cmd_drain, &ctl_cmd_undrain, &ctl_cmd_maintenance, &ctl_cmd_reload,
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

#define USAGE_LINE "usage: " CTL_NAME " [--admin URL] [--token-file F] [--json] COMMAND ...\n"

static void usage(FILE *out)
{
    fprintf(out, USAGE_LINE "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char line[96];

        snprintf(line, sizeof(line), "%s %s", commands[i]->name, commands[i]->args);
        if (strlen(line) > 36)      /* rollout's actions: the summary goes below */
            fprintf(out, "  %s\n  %-36s %s\n", line, "", commands[i]->summary);
        else
            fprintf(out, "  %-36s %s\n", line, commands[i]->summary);
    }
    fprintf(out, "options:\n"
                 "  --admin URL       admin API, default $SWITCHYARD_ADMIN or " DEFAULT_ADMIN "\n"
                 "  --token-file F    bearer token file, default $SWITCHYARD_TOKEN_FILE or "
                 DEFAULT_TOKEN_FILE "\n"
                 "  --json            print the gateway's JSON answer\n"
                 "  -h, --help        this text\n"
                 "  --version         the version\n"
                 "exit: 0 done, 1 refused by the gateway, 2 usage, 3 gateway unreachable\n");
}

int ctl_usage_error(const struct ctl_cmd *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, CTL_NAME ": ");
    if (cmd)
        fprintf(stderr, "%s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cmd)
        fprintf(stderr, "usage: " CTL_NAME " [options] %s %s\n", cmd->name, cmd->args);
    else
        fprintf(stderr, USAGE_LINE "(" CTL_NAME " --help lists the commands and options)\n");
    return CTL_USAGE;
}

/* No command (name NULL), or one we do not know: the hint, then every command. */
static int command_error(const char *name)
{
    if (name)
        fprintf(stderr, CTL_NAME ": unknown command \"%s\"\n", name);
    else
        fprintf(stderr, CTL_NAME ": which command?\n");
    usage(stderr);
    return CTL_USAGE;
}

static const struct ctl_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);

    return v && v[0] ? v : fallback;
}

/*
 * The token is the first line that is neither blank nor a '#' comment,
 * trimmed: the gateway reads its token_file the same way, so one file
 * serves both. explicit: named by --token-file or the environment, where a
 * missing file is a mistake; the default file may be absent (open admin).
 */
static int read_token(struct ctl *ctl, const char *path, int explicit)
{
    struct stat st;
    char *line = NULL;
    size_t cap = 0;
    FILE *fp;

    if (stat(path, &st) < 0) {
        if (errno == ENOENT && !explicit)
            return 0;
        return ctl_usage_error(NULL, "cannot read token file %s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode) || st.st_size > TOKEN_FILE_MAX)
        return ctl_usage_error(NULL, "token file %s is %s", path,
                               S_ISREG(st.st_mode) ? "larger than 1 MiB" : "not a regular file");
    if ((fp = fopen(path, "r")) == NULL)
        return ctl_usage_error(NULL, "cannot read token file %s: %s", path, strerror(errno));
    while (ctl->token == NULL && getline(&line, &cap, fp) != -1) {
        char *s = line, *end;

        while (isspace((unsigned char)*s))
            s++;
        end = s + strlen(s);
        while (end > s && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (s[0] != '\0' && s[0] != '#' && (ctl->token = strdup(s)) == NULL)
            break;
    }
    if (line)
        explicit_bzero(line, cap);
    free(line);
    fclose(fp);
    if (ctl->token == NULL)
        return ctl_usage_error(NULL, "token file %s holds no token", path);
    /* A control character would end the Authorization header early. */
    for (const char *p = ctl->token; *p; p++)
        if (iscntrl((unsigned char)*p))
            return ctl_usage_error(NULL, "token file %s: the token holds a control character",
                                   path);
    return 0;
}

/* http://HOST[:PORT][/PREFIX] into ctl; anything else is a usage error. */
static int parse_admin_url(struct ctl *ctl, const char *url)
{
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(url, 0);
    const char *scheme, *host, *path;
    int rc = 0;

    if (uri == NULL || (scheme = evhttp_uri_get_scheme(uri)) == NULL) {
        rc = ctl_usage_error(NULL, "admin URL %s: not a URL (http://HOST:PORT)", url);
        goto out;
    }
    if (strcasecmp(scheme, "https") == 0) {
        rc = ctl_usage_error(NULL, "admin URL %s: https is not supported; the admin API "
                             "speaks plain http on a loopback or private address", url);
        goto out;
    }
    host = evhttp_uri_get_host(uri);
    if (strcasecmp(scheme, "http") != 0 || host == NULL || host[0] == '\0') {
        rc = ctl_usage_error(NULL, "admin URL %s: not an http://HOST:PORT URL", url);
        goto out;
    }
    if (evhttp_uri_get_query(uri) || evhttp_uri_get_fragment(uri) ||
        evhttp_uri_get_userinfo(uri)) {
        rc = ctl_usage_error(NULL, "admin URL %s: a user, query or fragment has no meaning here",
                             url);
        goto out;
    }
    /* evhttp keeps the brackets of an IPv6 literal; the resolver wants none. */
    if (host[0] == '[')
        ctl->host = strndup(host + 1, strlen(host) - 2);
    else
        ctl->host = strdup(host);
    ctl->port = evhttp_uri_get_port(uri) < 0 ? 80 : evhttp_uri_get_port(uri);
    path = evhttp_uri_get_path(uri);
    ctl->base_path = strdup(path ? path : "");
    if (ctl->host == NULL || ctl->base_path == NULL) {
        fprintf(stderr, CTL_NAME ": out of memory\n");
        rc = CTL_USAGE;
        goto out;
    }
    for (size_t n = strlen(ctl->base_path); n > 0 && ctl->base_path[n - 1] == '/'; n--)
        ctl->base_path[n - 1] = '\0';
    if (ctl->port == 0) {
        rc = ctl_usage_error(NULL, "admin URL %s: port 0 is not a port", url);
        goto out;
    }
    ctl->url = url;
out:
    if (uri)
        evhttp_uri_free(uri);
    return rc;
}

/* "-5" is a (bad) WEIGHT, not an option. */
static int is_option(const char *arg)
{
    return arg[0] == '-' && arg[1] != '\0' && !isdigit((unsigned char)arg[1]);
}

struct options {
    const char *admin, *token_file;
    int help, version;
    char **args;            /* the command and its arguments */
    int nargs;
};

/* Options anywhere on the line ("--" ends them); the rest in o->args. */
static int parse_options(struct ctl *ctl, int argc, char **argv, struct options *o)
{
    int no_more = 0;

    if ((o->args = calloc((size_t)argc + 1, sizeof(char *))) == NULL) {
        fprintf(stderr, CTL_NAME ": out of memory\n");
        return CTL_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
        const char **value = NULL;

        if (no_more || !is_option(a)) {
            o->args[o->nargs++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0)
            no_more = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            o->help = 1;
        else if (strcmp(a, "--version") == 0)
            o->version = 1;
        else if (strcmp(a, "--json") == 0)
            ctl->json = true;
        else if (strcmp(a, "--force") == 0)
            ctl->force = true;
        else if (name_len == 7 && strncmp(a, "--admin", 7) == 0)
            value = &o->admin;
        else if (name_len == 12 && strncmp(a, "--token-file", 12) == 0)
            value = &o->token_file;
        else
            return ctl_usage_error(NULL, "unknown option %s", a);
        if (value && eq)
            *value = eq + 1;
        else if (value && i + 1 < argc)
            *value = argv[++i];
        else if (value)
            return ctl_usage_error(NULL, "%.*s needs a value", (int)name_len, a);
        if (value && (*value)[0] == '\0')
            return ctl_usage_error(NULL, "%.*s needs a value", (int)name_len, a);
    }
    return 0;
}

static int run(struct ctl *ctl, int argc, char **argv)
{
    struct options o = {0};
    const struct ctl_cmd *cmd;
    const char *token_file;
    int rc;

    if ((rc = parse_options(ctl, argc, argv, &o)) != 0)
        goto out;
    if (o.help || o.version) {
        if (o.version)
            printf(CTL_NAME " %s\n", SY_VERSION);
        else
            usage(stdout);
        goto out;
    }
    if (o.nargs == 0) {
        rc = command_error(NULL);
        goto out;
    }
    if ((cmd = find_command(o.args[0])) == NULL) {
        rc = command_error(o.args[0]);
        goto out;
    }
    if (o.nargs - 1 < cmd->min_args || o.nargs - 1 > cmd->max_args) {
        rc = ctl_usage_error(cmd, "%s arguments", o.nargs - 1 < cmd->min_args ? "missing"
                                                                             : "too many");
        goto out;
    }
    if (ctl->force && !cmd->takes_force) {
        rc = ctl_usage_error(cmd, "--force belongs to switch only");
        goto out;
    }
    for (int i = 1; i < o.nargs; i++)
        if (o.args[i][0] == '\0') {
            rc = ctl_usage_error(cmd, "argument %d is empty", i);
            goto out;
        }
    if ((rc = parse_admin_url(ctl, o.admin ? o.admin
                                           : env_or("SWITCHYARD_ADMIN", DEFAULT_ADMIN))) != 0)
        goto out;
    token_file = o.token_file ? o.token_file : env_or("SWITCHYARD_TOKEN_FILE", NULL);
    if ((rc = read_token(ctl, token_file ? token_file : DEFAULT_TOKEN_FILE,
                         token_file != NULL)) != 0)
        goto out;
    rc = cmd->exec(ctl, o.nargs, o.args);
out:
    free(o.args);
    return rc;
}

int main(int argc, char **argv)
{
    struct ctl ctl = {0};
    int rc;

    /* Colour only for a person at a terminal (https://no-color.org). */
    const char *term = getenv("TERM");

    ctl.color = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL &&
                !(term && strcmp(term, "dumb") == 0);
    rc = run(&ctl, argc, argv);
    free(ctl.host);
    free(ctl.base_path);
    if (ctl.token) {
        explicit_bzero(ctl.token, strlen(ctl.token));
        free(ctl.token);
    }
    if (fflush(stdout) != 0 && rc == CTL_OK) {
        fprintf(stderr, CTL_NAME ": cannot write the output: %s\n", strerror(errno));
        rc = CTL_REFUSED;
    }
    return rc;
}
