/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * maintenance.c: the maintenance module, services.NAME.maintenance
 * (SPEC.md). While a service's live maintenance flag is on (core/live.h:
 * the admin API, the state file, or the file's "enabled"), every request
 * routed to it gets the configured status, Retry-After and the page. The
 * pages are read when a snapshot is prepared, never on the request path;
 * each snapshot holds its own, so a request answered from one stays valid
 * while the next snapshot comes in. Health checks do not go through routes
 * and keep running.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/live.h"
#include "core/sy_module.h"
#include "http/request.h"

/* A page is read whole into memory, once per snapshot: keep it small. */
#define PAGE_MAX_BYTES (1u << 20)

static const char builtin_page[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head><meta charset=\"utf-8\"><title>Down for maintenance</title></head>\n"
    "<body style=\"font-family: sans-serif; max-width: 36em; margin: 4em auto\">\n"
    "<h1>Down for maintenance</h1>\n"
    "<p>This service is under maintenance. Please try again later.</p>\n"
    "</body>\n"
    "</html>\n";

struct page {
    char *body;                 /* owned; NULL: builtin_page */
    size_t len;
    const char *content_type;
    int status;
    char headers[96];           /* Retry-After and Cache-Control lines */
};

struct maintenance_state {
    size_t npages;
    struct page pages[];        /* by service index */
};

static const char *content_type_of(const char *file)
{
    const char *dot = file ? strrchr(file, '.') : NULL;

    if (dot && strcmp(dot, ".json") == 0)
        return "application/json";
    if (dot && strcmp(dot, ".txt") == 0)
        return "text/plain; charset=utf-8";
    return "text/html; charset=utf-8";
}

/* The whole file into page; 0, or -1 with the reason in why. */
static int read_page(const char *file, struct page *page, char *why, size_t whylen)
{
    struct stat st;
    int fd = open(file, O_RDONLY | O_CLOEXEC);

    why[0] = '\0';
    if (fd < 0 || fstat(fd, &st) < 0)
        snprintf(why, whylen, "%s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, whylen, "not a regular file");
    else if (st.st_size > PAGE_MAX_BYTES)
        snprintf(why, whylen, "%lld bytes, more than the %u a page may have",
                 (long long)st.st_size, PAGE_MAX_BYTES);
    if (why[0]) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* one byte more than the size: a file that grew since fstat is caught */
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *body = malloc(cap);
    if (!body) {
        close(fd);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, body + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, whylen, "%s", strerror(errno));
            break;
        }
        if (n == 0 || (len += (size_t)n) == cap)
            break;
    }
    close(fd);
    if (!why[0] && len == cap)
        snprintf(why, whylen, "it grew while it was read");
    if (why[0]) {
        free(body);
        return -1;
    }
    page->body = body;
    page->len = len;
    return 0;
}

static void maintenance_release(void *state)
{
    struct maintenance_state *st = state;

    for (size_t i = 0; i < st->npages; i++)
        free(st->pages[i].body);
    free(st);
}

static int maintenance_prepare(const struct sy_conf *conf, void **state, char *err,
                               size_t errlen)
{
    struct maintenance_state *st;

    *state = NULL;
    if (conf->nservices == 0)
        return 0;
    st = calloc(1, sizeof(*st) + conf->nservices * sizeof(st->pages[0]));
    if (!st) {
        snprintf(err, errlen, "maintenance: out of memory");
        return -1;
    }
    st->npages = conf->nservices;
    for (size_t i = 0; i < conf->nservices; i++) {
        const struct sy_service *svc = &conf->services[i];
        const struct sy_maintenance_conf *m = &svc->maintenance;
        struct page *page = &st->pages[svc->index];
        char why[160];

        if (m->body_file && read_page(m->body_file, page, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "services.%s.maintenance.body_file: %s: %s", svc->name,
                     m->body_file, why);
            maintenance_release(st);
            return -1;
        }
        if (!m->body_file)
            page->len = sizeof(builtin_page) - 1;
        page->content_type = content_type_of(m->body_file);
        page->status = m->status;
        /* Retry-After is in whole seconds (RFC 9110 10.2.3): rounded up */
        snprintf(page->headers, sizeof(page->headers),
                 "Retry-After: %lld\r\nCache-Control: no-store\r\n",
                 (long long)((m->retry_after_ms + 999) / 1000));
    }
    *state = st;
    return 0;
}

static enum sy_phase_result maintenance_on_route(struct sy_request *req, void *state,
                                                 void *scratch)
{
    const struct maintenance_state *st = state;
    const struct sy_route *route = sy_req_route(req);

    (void)scratch;
    if (!st || !route || !route->service || !sy_live_maintenance(route->service))
        return SY_PHASE_CONTINUE;
    const struct page *page = &st->pages[route->service->index];
    sy_req_respond_body(req, page->status, page->content_type,
                        page->body ? page->body : builtin_page, page->len, page->headers);
    return SY_PHASE_DONE;
}

const struct sy_module sy_maintenance_module = {
    .name = "maintenance",
    .conf_prepare = maintenance_prepare,
    .conf_release = maintenance_release,
    .on_route = maintenance_on_route,
};
