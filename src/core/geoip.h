/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * geoip.h: the client's country from a MaxMind DB file (GeoLite2-Country or
 * -City shaped), memory-mapped with libmaxminddb. One open database is shared
 * read-only by every worker and counted by references: a reload opens the new
 * file beside the old one, and the old mapping goes when its last user lets go.
 * Replace the file by rename (as geoipupdate does), never rewrite it in place:
 * a worker reading the mapped old file would see the new bytes, or SIGBUS if it
 * shrank. In a build without libmaxminddb (SY_HAVE_MAXMINDDB 0) every open fails.
 */
#ifndef SY_GEOIP_H
#define SY_GEOIP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct sy_geoip;

/* Opens path with a reference count of 1; NULL with "PATH: reason" in err. */
struct sy_geoip *sy_geoip_open(const char *path, char *err, size_t errlen);
void sy_geoip_ref(struct sy_geoip *g);
/* Any thread; the last reference closes the database. NULL is ignored. */
void sy_geoip_unref(struct sy_geoip *g);

/* Whether path is not the file g was opened from: another name, another inode
 * or device, size or mtime, or it cannot be stat'ed (the reload that follows
 * then fails, keeps g and says why). */
bool sy_geoip_changed(const struct sy_geoip *g, const char *path);

/* The ISO 3166-1 alpha-2 country of sa, upper case, into out: country.iso_code,
 * else registered_country.iso_code, else "" (not found, no country in the
 * record, not two letters, g NULL, or not an AF_INET/AF_INET6 address).
 * ::ffff:a.b.c.d finds the IPv4 entry whatever the database's aliases.
 * Thread-safe, allocates nothing, never blocks. */
void sy_geoip_country(const struct sy_geoip *g, const struct sockaddr *sa, char out[3]);

const char *sy_geoip_path(const struct sy_geoip *g);

#endif
