/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * process.h: the main thread's life: listening sockets, worker threads,
 * signals, reload and graceful stop. It owns the current configuration
 * snapshot and hands references to the workers.
 */
#ifndef SY_PROCESS_H
#define SY_PROCESS_H

#include <stdint.h>

#include <event2/event.h>

#include "conf.h"
#include "upgrade.h"
#include "worker.h"

/*
 * A service of the main thread (admin listener, health checks). start runs
 * once the workers serve and before the pid file is written (an error
 * stops the gateway); reconfigure after each reload; stop when a graceful
 * or fast stop begins, and again (harmlessly) at exit.
 */
struct sy_main_service {
    /* optional: before the workers start, for state their first request must see */
    int (*prepare)(struct sy_conf *conf, char *err, size_t errlen);
    int (*start)(struct event_base *base, struct sy_conf *conf, char *err, size_t errlen);
    void (*reconfigure)(struct sy_conf *conf);
    void (*stop)(void);
    /*
     * Optional, for an upgrade (SIGUSR2, upgrade.h). listener: the service's
     * listening socket, handed to the new process (0, or -1 when it has
     * none). hold(true) as the new process starts: stop the changes it
     * could miss, since it restores the state file as it finds it then;
     * hold(false) when it failed and this process serves on.
     */
    int (*listener)(struct sy_upgrade_socket *out);
    void (*hold)(bool held);
};

struct sy_process_hooks {
    /* Completes a freshly loaded snapshot (per-worker state); 0 or -1 with err. */
    int (*prepare_conf)(struct sy_conf *conf, unsigned nworkers, char *err, size_t errlen);
    const struct sy_worker_hooks *worker;
    const struct sy_main_service *const *services;     /* NULL-terminated */
};

struct sy_process_options {
    struct sy_conf_source source;
    const char *pid_file;       /* NULL: none */
};

/* Runs the gateway until it stops; returns the process exit status. */
int sy_process_run(const struct sy_process_options *opts, struct sy_conf *conf,
                   const struct sy_process_hooks *hooks);

/* Reloads the configuration now (SIGHUP); 0, or -1 with the reason in err. */
int sy_process_reload(char *err, size_t errlen);

/* Reload outcomes since start, for switchyard_config_reloads_total. */
struct sy_reload_counts {
    uint64_t success;
    uint64_t failure;
};
struct sy_reload_counts sy_process_reload_counts(void);

#endif
