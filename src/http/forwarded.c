/* SPDX-License-Identifier: BSD-2-Clause */
/* forwarded.c: the client behind trusted proxies (forwarded.h). */
#include <string.h>

#include "forwarded.h"

bool sy_forwarded_walk(const char *v, size_t len, const struct sy_cidr *trusted,
                       size_t ntrusted, struct sy_client_id *id)
{
    size_t end = len;

    while (end > 0) {
        size_t start = end;
        while (start > 0 && v[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        struct sockaddr_storage ss;
        if (b - a >= sizeof(id->ip) || sy_cidr_ip_from_text(v + a, b - a, &ss) < 0)
            return false;
        memcpy(id->ip, v + a, b - a);
        id->ip[b - a] = '\0';
        id->addr = ss;
        if (ntrusted == 0 || sy_cidr_list_match(trusted, ntrusted, (struct sockaddr *)&ss) < 0)
            return false;
        end = start ? start - 1 : 0;
    }
    return true;
}
