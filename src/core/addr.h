/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * addr.h: socket addresses as written in the configuration ("host:port",
 * "[v6]:port", "*:port"). Names are resolved once, when the configuration
 * is loaded on the main thread, never on a worker.
 */
#ifndef SY_ADDR_H
#define SY_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct sy_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[80];              /* as given in the configuration */
};

/* Parses and resolves text; on error returns -1 and a reason in err. */
int sy_addr_parse(const char *text, struct sy_addr *out, char *err, size_t errlen);

/* Whether s is an RFC 1123 host name: dot-separated labels of letters, digits and inner '-'. */
bool sy_addr_is_hostname(const char *s);

/* Writes the numeric address of sa (no port) into out; returns its length. */
size_t sy_addr_ip_text(const struct sockaddr *sa, char *out, size_t outlen);

#endif
