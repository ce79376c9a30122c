/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * access_log.c: one JSON line per request (SPEC.md, Logs), formatted on
 * the worker into a stack buffer with a small escaping writer - no JSON
 * library on the hot path - and handed to the log ring.
 */
#include <string.h>
#include <time.h>

#include "core/jline.h"
#include "core/log.h"
#include "http.h"

#define LINE_MAX_BYTES 8192

int64_t sy_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void put_span(struct sy_jline *l, const char *data, struct sy_span sp)
{
    sy_jl_str(l, data + sp.off, sp.len);
}

static void put_header(struct sy_jline *l, const struct sy_request *req, const char *data,
                       enum sy_header_id id)
{
    int i = sy_http_find(&req->head, id);
    if (i < 0)
        sy_jl_str(l, "", 0);
    else
        put_span(l, data, req->head.headers[i].value);
}

/* A route is named by its host and path prefix, as "*.example.com/api". */
static void put_route(struct sy_jline *l, const struct sy_route *route)
{
    SY_JL_LIT(l, "\"");
    if (route) {
        sy_jl_escaped(l, route->host, strlen(route->host));
        sy_jl_escaped(l, route->path, route->path_len);
    }
    SY_JL_LIT(l, "\"");
}

void sy_access_log(const struct sy_request *req)
{
    char buf[LINE_MAX_BYTES], ts[32];
    struct sy_jline l = {buf, buf + sizeof(buf) - 1, false};
    const char *data = req->in ? req->in->data : "";
    bool parsed = req->in && req->head.head_len > 0;
    int64_t end_us = sy_now_us();

    if (!sy_log_enabled(SY_LOG_ACCESS))
        return;
    sy_log_format_ts(ts, req->start_wall_ms);
    SY_JL_LIT(&l, "{\"ts\":\"");
    sy_jl_put(&l, ts, strlen(ts));
    SY_JL_LIT(&l, "\",\"request_id\":");
    sy_jl_cstr(&l, req->request_id);
    SY_JL_LIT(&l, ",\"client_ip\":");
    sy_jl_cstr(&l, req->client_ip[0] ? req->client_ip : req->peer_ip);
    SY_JL_LIT(&l, ",\"country\":");
    sy_jl_cstr(&l, req->country);
    SY_JL_LIT(&l, ",\"method\":");
    if (parsed)
        put_span(&l, data, req->head.method_text);
    else
        sy_jl_str(&l, "", 0);
    SY_JL_LIT(&l, ",\"host\":");
    if (parsed)
        put_span(&l, data, req->head.host);
    else
        sy_jl_str(&l, "", 0);
    SY_JL_LIT(&l, ",\"path\":");
    if (parsed)
        put_span(&l, data, req->head.path);
    else
        sy_jl_str(&l, "", 0);
    SY_JL_LIT(&l, ",\"status\":");
    sy_jl_uint(&l, (uint64_t)req->status);
    SY_JL_LIT(&l, ",\"bytes_in\":");
    sy_jl_uint(&l, req->head.head_len + req->req_relay.body_bytes + req->tunnel.to_app_bytes);
    SY_JL_LIT(&l, ",\"bytes_out\":");
    sy_jl_uint(&l, req->bytes_out + req->tunnel.to_client_bytes);
    SY_JL_LIT(&l, ",\"duration_ms\":");
    sy_jl_ms(&l, end_us - req->start_us);
    SY_JL_LIT(&l, ",\"upstream_ms\":");
    if (req->upstream_head_us)
        sy_jl_ms(&l, req->upstream_head_us - req->upstream_start_us);
    else
        SY_JL_LIT(&l, "null");
    SY_JL_LIT(&l, ",\"upstream\":");
    sy_jl_cstr(&l, req->instance ? req->instance->addr.text : "");
    SY_JL_LIT(&l, ",\"service\":");
    sy_jl_cstr(&l, req->service ? req->service->name : "");
    SY_JL_LIT(&l, ",\"slot\":");
    /* no slot for a request answered before the split (a 429, maintenance) */
    sy_jl_cstr(&l, req->service && req->pool ? (req->slot == SY_SLOT_BLUE ? "blue" : "green")
                                            : "");
    SY_JL_LIT(&l, ",\"pool\":");
    sy_jl_cstr(&l, req->pool ? req->pool->name : "");
    SY_JL_LIT(&l, ",\"route\":");
    put_route(&l, req->route);
    SY_JL_LIT(&l, ",\"user_agent\":");
    if (parsed)
        put_header(&l, req, data, SY_HDR_USER_AGENT);
    else
        sy_jl_str(&l, "", 0);
    if (req->client->io.tls)
        SY_JL_LIT(&l, ",\"tls\":true");
    else
        SY_JL_LIT(&l, ",\"tls\":false");
    SY_JL_LIT(&l, ",\"proto\":");
    if (req->websocket && req->status == 101)
        sy_jl_cstr(&l, "websocket");
    else if (req->ds->proto)
        sy_jl_cstr(&l, req->ds->proto);
    else
        sy_jl_cstr(&l, req->head.version_minor == 0 && parsed ? "http/1.0" : "http/1.1");
    SY_JL_LIT(&l, "}\n");
    if (l.overflow) {
        sy_log_error(SY_LOG_WARN, "access", "access log line of request %s too long, dropped",
                     req->request_id);
        return;
    }
    sy_log_line(SY_LOG_ACCESS, buf, (size_t)(l.p - buf));
}
