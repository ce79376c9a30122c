/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * main.c: the switchyard command line (SPEC.md, Programs). This is the
 * composition root: the only core file that names the protocol layer,
 * whose hooks it hands to the process.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/opensslv.h>

#include "sy_auto.h"
#include "core/conf.h"
#include "core/deploy.h"
#include "core/fleet.h"
#include "core/metrics.h"
#include "core/process.h"
#include "core/upgrade.h"
#include "admin/admin.h"
#include "http/conn.h"
#include "http/health.h"
#include "http/modules.h"

#define DEFAULT_PID_FILE "switchyard.pid"

extern char **environ;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: switchyard [-c FILE] [-e ENV] [-p PIDFILE]    run in the foreground\n"
            "       switchyard -t [-c FILE] [-e ENV]              test the configuration\n"
            "       switchyard -s reload|reopen|stop|upgrade [-p PIDFILE]\n"
            "                                                     signal the running gateway\n"
            "       switchyard -V                                 version and build options\n"
            "defaults: -c conf/switchyard.json, -p " DEFAULT_PID_FILE "\n");
}

static void print_version(void)
{
    printf("switchyard %s\n", SY_VERSION);
    printf("built with libevent %s, %s, jansson %s\n", event_get_version(),
           OPENSSL_VERSION_TEXT, JANSSON_VERSION);
    printf("optional: hiredis %s, libmaxminddb %s, nghttp2 %s\n",
           SY_HAVE_HIREDIS ? "yes" : "no", SY_HAVE_MAXMINDDB ? "yes" : "no",
           SY_HAVE_NGHTTP2 ? "yes" : "no");
    printf("configure arguments: %s\n", SY_CONFIGURE_ARGS);
}

static int send_signal(const char *name, const char *pid_file)
{
    static const struct { const char *name; int sig; } table[] = {
        {"reload", SIGHUP}, {"reopen", SIGUSR1}, {"stop", SIGTERM}, {"upgrade", SIGUSR2},
    };
    int sig = 0;
    long pid = 0;

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(name, table[i].name) == 0)
            sig = table[i].sig;
    if (!sig) {
        fprintf(stderr, "switchyard: -s takes reload, reopen, stop or upgrade, not \"%s\"\n",
                name);
        return 2;
    }
    FILE *f = fopen(pid_file, "r");
    if (!f) {
        fprintf(stderr, "switchyard: cannot read pid file %s: %s\n", pid_file, strerror(errno));
        return 1;
    }
    int ok = fscanf(f, "%ld", &pid) == 1 && pid > 0;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "switchyard: pid file %s holds no process id\n", pid_file);
        return 1;
    }
    if (kill((pid_t)pid, sig) < 0) {
        fprintf(stderr, "switchyard: cannot signal process %ld: %s\n", pid, strerror(errno));
        return 1;
    }
    return 0;
}

static int load(const struct sy_conf_source *src, struct sy_conf **conf)
{
    struct sy_conf_errors errs = {0};

    if (sy_conf_load(src, conf, &errs) == 0)
        return 0;
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "%s\n", errs.lines[i]);
    sy_conf_errors_free(&errs);
    return -1;
}

int main(int argc, char **argv)
{
    struct sy_process_options opts = {.source = {.file = "conf/switchyard.json"}};
    const char *signal_name = NULL, *pid_file = NULL;
    int test_only = 0, opt;

    /* Now, before anything could move the working directory: what an upgrade runs. */
    sy_upgrade_remember_command(argc, argv);
    while ((opt = getopt(argc, argv, "c:e:p:ts:Vh")) != -1) {
        switch (opt) {
        case 'c': opts.source.file = optarg; break;
        case 'e': opts.source.env_name = optarg; break;
        case 'p': pid_file = optarg; break;
        case 't': test_only = 1; break;
        case 's': signal_name = optarg; break;
        case 'V': print_version(); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (signal_name)
        return send_signal(signal_name, pid_file ? pid_file : DEFAULT_PID_FILE);

    opts.source.environ = environ;
    opts.pid_file = pid_file ? pid_file : DEFAULT_PID_FILE;
    struct sy_conf *conf;
    if (load(&opts.source, &conf) < 0)
        return 1;
    static const struct sy_main_service *const services[] = {
        &sy_metrics_service, &sy_deploy_service, &sy_fleet_service, &sy_modules_service,
        &sy_admin_service, &sy_health_service, NULL,
    };
    static const struct sy_process_hooks hooks = {
        .prepare_conf = sy_http_prepare_conf,
        .worker = &sy_http_worker_hooks,
        .services = services,
    };
    if (test_only) {
        /* What serving would build (TLS contexts: certificates and keys load) */
        char err[1024];
        int rc = hooks.prepare_conf(conf, 1, err, sizeof(err));
        if (rc < 0)
            fprintf(stderr, "%s\n", err);
        else
            printf("switchyard: configuration %s is valid\n", conf->file);
        sy_conf_unref(conf);
        return rc < 0 ? 1 : 0;
    }
    return sy_process_run(&opts, conf, &hooks);
}
