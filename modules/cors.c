/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cors.c: the cors module, routes[].cors (SPEC.md, route policies). The
 * gateway answers a route's CORS preflights itself (OPTIONS with Origin
 * and Access-Control-Request-Method): 204, and for a listed origin asking
 * a listed method, the allow headers and Access-Control-Max-Age. Other
 * requests from a listed origin get Access-Control-Allow-Origin on their
 * response; every response of the route gets Vary: Origin, since it
 * depends on it. An unlisted origin gets no CORS header at all, and the
 * browser then blocks the page's request: nothing leaks by default.
 * Origins match exactly (scheme, host and port, as browsers send them);
 * "*" in the list allows any origin.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/sy_module.h"
#include "http/request.h"

/* What on_route saw, for on_response: the request's Origin when it is listed. */
struct cors_scratch {
    const char *origin;         /* in the request head, which outlives the response */
    size_t origin_len;
    bool route;                 /* the route has CORS: Vary: Origin */
};

static bool listed(char *const *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], "*") == 0 || (strlen(list[i]) == len && memcmp(list[i], s, len) == 0))
            return true;
    return false;
}

static bool method_listed(const struct sy_cors *c, const char *m, size_t len)
{
    for (size_t i = 0; i < c->nmethods; i++)
        if (strlen(c->methods[i]) == len && strncasecmp(c->methods[i], m, len) == 0)
            return true;
    return false;
}

/* A header value a preflight answer may echo: visible ASCII, commas and spaces. */
static bool echo_safe(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
            return false;
    return len < 1024;
}

static enum sy_phase_result preflight(struct sy_request *req, const struct sy_cors *c,
                                      const char *origin, size_t origin_len,
                                      const char *method, size_t method_len)
{
    /* sized for the worst case: both echoed values are under 1024 bytes (echo_safe) */
    char headers[4096], methods[512];
    size_t n = 0, asked_len = 0, m = 0;
    const char *asked = sy_req_header(req, "Access-Control-Request-Headers", &asked_len);

    n += (size_t)snprintf(headers, sizeof(headers), "Vary: Origin\r\n");
    if (listed(c->origins, c->norigins, origin, origin_len) &&
        method_listed(c, method, method_len) && echo_safe(origin, origin_len)) {
        methods[0] = '\0';
        for (size_t i = 0; i < c->nmethods; i++) {
            int w = snprintf(methods + m, sizeof(methods) - m, "%s%s", i ? ", " : "",
                             c->methods[i]);
            if (w < 0 || (size_t)w >= sizeof(methods) - m) {
                methods[m] = '\0';     /* a method that does not fit is left out whole */
                break;
            }
            m += (size_t)w;
        }
        n += (size_t)snprintf(headers + n, sizeof(headers) - n,
                              "Access-Control-Allow-Origin: %.*s\r\n"
                              "Access-Control-Allow-Methods: %s\r\n"
                              "Access-Control-Max-Age: %lld\r\n",
                              (int)origin_len, origin, methods,
                              (long long)(c->max_age_ms / 1000));
        if (asked && asked_len && echo_safe(asked, asked_len) &&
            n + asked_len + 34 < sizeof(headers))
            snprintf(headers + n, sizeof(headers) - n,
                     "Access-Control-Allow-Headers: %.*s\r\n", (int)asked_len, asked);
    }
    sy_req_respond_body(req, 204, NULL, NULL, 0, headers);
    return SY_PHASE_DONE;
}

static enum sy_phase_result cors_on_route(struct sy_request *req, void *state, void *scratch)
{
    const struct sy_route *route = sy_req_route(req);
    const struct sy_cors *c = &route->cors;
    struct cors_scratch *sc = scratch;
    size_t origin_len, method_len, m_len;

    (void)state;
    if (!c->enabled)
        return SY_PHASE_CONTINUE;
    sc->route = true;
    const char *origin = sy_req_header(req, "Origin", &origin_len);
    if (!origin)
        return SY_PHASE_CONTINUE;
    const char *method = sy_req_method(req, &m_len);
    const char *asked = sy_req_header(req, "Access-Control-Request-Method", &method_len);
    if (asked && m_len == 7 && memcmp(method, "OPTIONS", 7) == 0)
        return preflight(req, c, origin, origin_len, asked, method_len);
    if (listed(c->origins, c->norigins, origin, origin_len) && echo_safe(origin, origin_len)) {
        sc->origin = origin;
        sc->origin_len = origin_len;
    }
    return SY_PHASE_CONTINUE;
}

static void cors_on_response(struct sy_request *req, void *state, void *scratch,
                             struct sy_header_out *out)
{
    const struct cors_scratch *sc = scratch;
    char origin[1024];

    (void)req, (void)state;
    if (!sc->route)
        return;
    sy_header_out_add(out, "Vary", "Origin");
    if (!sc->origin)
        return;
    snprintf(origin, sizeof(origin), "%.*s", (int)sc->origin_len, sc->origin);
    sy_header_out_add(out, "Access-Control-Allow-Origin", origin);
}

const struct sy_module sy_cors_module = {
    .name = "cors",
    .request_bytes = sizeof(struct cors_scratch),
    .on_route = cors_on_route,
    .on_response = cors_on_response,
};
