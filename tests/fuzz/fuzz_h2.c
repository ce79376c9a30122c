/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_h2.c: libFuzzer target for the HTTP/2 server side (h2.c) with its
 * real nghttp2 callbacks. The input is what a client sends after the
 * connection preface: frames, valid or not, in any order. It goes through
 * a socketpair to a connection of a real worker (its own event base, run
 * here, on this thread), handed to sy_h2_start as ALPN "h2" would hand it,
 * in plain text. The configuration routes nothing, so every request that
 * parses is answered locally (404, 413, 431, ...): heads and their
 * translation, bodies and trailers, resets, floods, flow control, GOAWAY
 * and the streams' lives are all reached; no upstream is. Checks: the
 * sanitizers; the connection goes quiet within a bounded number of loop
 * turns; closing it leaves no client, request or buffer behind
 * (LeakSanitizer at exit sees what the worker would leak).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "core/conf.h"
#include "core/worker.h"
#include "http/conn.h"
#include "http/h2.h"
#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LOOP_TURNS 64

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* A small configuration: one plain listener, nothing routed, tight limits. */
static const char CONF[] =
    "{\"workers\": 1, \"listen\": [{\"addr\": \"127.0.0.1:1\"}],\n"
    " \"limits\": {\"max_header_bytes\": 4096, \"max_headers\": 20,\n"
    "            \"http2_max_concurrent_streams\": 8, \"max_body_bytes\": 100000}}\n";

static struct sy_worker *worker;

static void
setup(void)
{
    char path[] = "/tmp/sy-fuzz-h2-XXXXXX";
    char err[512];
    struct sy_conf *conf = NULL;
    int fd = mkstemp(path);

    if (fd < 0 || write(fd, CONF, sizeof(CONF) - 1) != (ssize_t)sizeof(CONF) - 1)
        abort();
    close(fd);
    struct sy_conf_source src = {.file = path, .env_name = "", .environ = NULL};
    struct sy_conf_errors errs = {0};
    if (sy_conf_load(&src, &conf, &errs) < 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "%s\n", errs.lines[i]);
        abort();
    }
    unlink(path);
    if (sy_http_prepare_conf(conf, 1, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    worker = sy_worker_create(0, conf, NULL, 0, &sy_http_worker_hooks);
    if (!worker || sy_http_worker_hooks.init(worker) < 0)
        abort();
    sy_conf_unref(conf);        /* the worker holds its own reference */
}

/* Reads what the gateway wrote, so that its writes never block for long. */
static void
drain(int fd)
{
    char buf[65536];

    while (read(fd, buf, sizeof(buf)) > 0)
        continue;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sy_http_worker *hw;
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    int fds[2];

    if (!worker)
        setup();
    hw = worker->http;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) < 0)
        abort();
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* the preface and the input wait in the socket before the session starts */
    if (write(fds[1], PREFACE, sizeof(PREFACE) - 1) != (ssize_t)sizeof(PREFACE) - 1 ||
        (size && write(fds[1], data, size) != (ssize_t)size))
        abort();
    /* (the worker's admission counts go below zero as these close: nothing reads them here) */
    sy_http_worker_hooks.accept(worker, fds[0], (struct sockaddr *)&peer, sizeof(peer), 0);
    struct sy_client *c = hw->clients.next;
    if (c == &hw->clients)
        abort();
    c->head_deadline_ms = sy_worker_now_ms(worker) + 10000;
    sy_h2_start(c);             /* may close it */
    for (int i = 0; i < LOOP_TURNS && hw->nclients; i++) {
        drain(fds[1]);
        event_base_loop(worker->base, EVLOOP_NONBLOCK);
    }
    while (hw->clients.next != &hw->clients)
        sy_client_close(hw->clients.next);
    drain(fds[1]);
    close(fds[1]);
    /* the timers of closed connections and streams are gone: nothing is pending */
    event_base_loop(worker->base, EVLOOP_NONBLOCK);
    return 0;
}
