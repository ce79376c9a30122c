/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * addr.c: parses "host:port", "[v6]:port" and "*:port" into a socket
 * address. Numeric hosts are tried before getaddrinfo(), which may block:
 * call this on the main thread only (configuration load).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

#define HOST_MAX 256

/* Port text to number: digits only, 1..65535. */
static int
parse_port(const char *text, int *port, char *err, size_t errlen)
{
    long value = 0;

    if (*text == '\0') {
        snprintf(err, errlen, "missing port");
        return -1;
    }
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            snprintf(err, errlen, "invalid port \"%s\"", text);
            return -1;
        }
        if (value <= 65535)
            value = value * 10 + (*p - '0');
    }
    if (value < 1 || value > 65535) {
        snprintf(err, errlen, "invalid port %s", text);
        return -1;
    }
    *port = (int)value;
    return 0;
}

/* Numeric forms first so that an address never waits on DNS. */
static int
resolve(const char *host, bool bracketed, int port, struct sy_addr *out, char *err,
        size_t errlen)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;

    if (!bracketed && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->len = sizeof(*sin);
        return 0;
    }
    hints.ai_family = bracketed ? AF_INET6 : AF_UNSPEC;
    hints.ai_flags = bracketed ? AI_NUMERICHOST : 0;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
        if (bracketed)
            snprintf(err, errlen, "invalid IPv6 address \"%s\"", host);
        else
            snprintf(err, errlen, "cannot resolve host \"%s\"", host);
        return -1;
    }
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    if (out->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)port);
    else
        sin->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

/* Splits text into host and port text; the host loses its brackets. */
static int
split(const char *text, char *host, const char **port, bool *bracketed, char *err,
      size_t errlen)
{
    const char *colon, *end = text;

    *bracketed = text[0] == '[';
    if (*bracketed) {
        end = strchr(text, ']');
        if (end == NULL || (end[1] != ':' && end[1] != '\0')) {
            snprintf(err, errlen, "invalid address \"%s\"", text);
            return -1;
        }
        colon = end[1] == ':' ? end + 1 : NULL;
        text++;
    } else {
        colon = strrchr(text, ':');
        end = colon;
        if (colon != NULL && memchr(text, ':', (size_t)(colon - text)) != NULL) {
            snprintf(err, errlen, "IPv6 address needs brackets: \"[addr]:port\"");
            return -1;
        }
    }
    if (colon == NULL) {
        snprintf(err, errlen, "missing port");
        return -1;
    }
    if (end == text || (size_t)(end - text) >= HOST_MAX) {
        snprintf(err, errlen, end == text ? "missing host" : "host name too long");
        return -1;
    }
    memcpy(host, text, (size_t)(end - text));
    host[end - text] = '\0';
    *port = colon + 1;
    return 0;
}

int
sy_addr_parse(const char *text, struct sy_addr *out, char *err, size_t errlen)
{
    char host[HOST_MAX];
    const char *port_text;
    bool bracketed;
    int port;

    memset(out, 0, sizeof(*out));
    if (strlen(text) >= sizeof(out->text)) {
        snprintf(err, errlen, "address too long");
        return -1;
    }
    if (split(text, host, &port_text, &bracketed, err, errlen) < 0
        || parse_port(port_text, &port, err, errlen) < 0)
        return -1;
    if (!bracketed && strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    if (resolve(host, bracketed, port, out, err, errlen) < 0)
        return -1;
    strcpy(out->text, text);
    return 0;
}

size_t
sy_addr_ip_text(const struct sockaddr *sa, char *out, size_t outlen)
{
    const void *ip;

    if (outlen == 0)
        return 0;
    out[0] = '\0';
    if (sa->sa_family == AF_INET)
        ip = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        ip = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    else
        return 0;
    if (inet_ntop(sa->sa_family, ip, out, (socklen_t)outlen) == NULL) {
        out[0] = '\0';
        return 0;
    }
    return strlen(out);
}

bool
sy_addr_is_hostname(const char *s)
{
    size_t label = 0, total = strlen(s);

    if (total == 0 || total > 253)
        return false;
    for (const char *p = s; ; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > 63 || p[-1] == '-')
                return false;
            if (*p == '\0')
                return true;
            label = 0;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                   || (*p >= '0' && *p <= '9') || (*p == '-' && label > 0)) {
            label++;
        } else {
            return false;
        }
    }
}
