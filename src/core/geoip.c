/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * geoip.c: country lookups in a memory-mapped MaxMind DB (libmaxminddb). At
 * open every search-tree node is checked and the country of every distinct
 * data record is decoded once into a small table keyed by the record's offset:
 * a corrupt file fails at start (or reload) rather than at a request, and a
 * lookup costs the tree walk plus one probe instead of decoding nested maps.
 * Nothing is written after open, so workers share it with no lock; the only
 * shared write is the reference count. The file's identity (device, inode,
 * size, mtime) is taken before it is mapped: if it is replaced in between,
 * sy_geoip_changed() sees a difference and the next reload maps it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netinet/in.h>

#include "sy_auto.h"
#include "geoip.h"

#if SY_HAVE_MAXMINDDB
#include <maxminddb.h>

/* One distinct data record: its offset in the data section and its country. */
struct country_slot {
    uint32_t offset;            /* SLOT_FREE: unused */
    char cc[2];                 /* upper case; cc[0] '\0': the record names no country */
};

#define SLOT_FREE UINT32_MAX
/* A Country database has a few thousand distinct records at most. A City one
 * can have far more: past this bound (1 MiB) the table is dropped and each
 * lookup decodes its record, so memory stays bounded whatever the file. */
#define SLOTS_MAX (1u << 17)
#define SLOTS_MIN 1024u
#endif

struct sy_geoip {
#if SY_HAVE_MAXMINDDB
    MMDB_s mmdb;
    struct country_slot *slots; /* NULL: decode per lookup (too many records) */
    uint32_t slot_mask;
#endif
    atomic_uint refs;
    dev_t dev;                  /* what the file was when it was opened */
    ino_t ino;
    off_t size;
    struct timespec mtime;
    char path[];
};

static bool
same_file(const struct sy_geoip *g, const struct stat *st)
{
    return g->dev == st->st_dev && g->ino == st->st_ino && g->size == st->st_size
           && g->mtime.tv_sec == st->st_mtim.tv_sec && g->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

bool
sy_geoip_changed(const struct sy_geoip *g, const char *path)
{
    struct stat st;

    if (g == NULL || strcmp(g->path, path) != 0 || stat(path, &st) != 0)
        return true;
    return !same_file(g, &st);
}

const char *
sy_geoip_path(const struct sy_geoip *g)
{
    return g->path;
}

void
sy_geoip_ref(struct sy_geoip *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

static void
geoip_free(struct sy_geoip *g)
{
#if SY_HAVE_MAXMINDDB
    MMDB_close(&g->mmdb);
    free(g->slots);
#endif
    free(g);
}

void
sy_geoip_unref(struct sy_geoip *g)
{
    if (g == NULL)
        return;
    /* acq_rel: every user's reads of the mapping happen before the unmap. */
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
        geoip_free(g);
}

#if SY_HAVE_MAXMINDDB

/* libmaxminddb says "invalid metadata" both for a file with no metadata marker
 * (the usual mistakes: the downloaded .tar.gz itself, a cut-off copy, another
 * format) and for metadata that does not decode; tell them apart. */
static const char *
metadata_reason(const char *path, off_t size)
{
    static const char marker[] = "\xab\xcd\xefMaxMind.com";
    const size_t tail_max = 128 * 1024;         /* the format's bound on metadata */
    size_t len = (size_t)size < tail_max ? (size_t)size : tail_max;
    unsigned char *tail = malloc(len);
    const char *reason = "not a MaxMind DB file (no metadata section: another format, "
                         "or a truncated copy)";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = -1;

    if (fd >= 0 && tail != NULL)
        n = pread(fd, tail, len, size - (off_t)len);
    if (n > 0 && memmem(tail, (size_t)n, marker, sizeof(marker) - 1) != NULL)
        reason = "corrupt MaxMind DB file (invalid metadata)";
    else if (fd >= 0 && tail != NULL && pread(fd, tail, 2, 0) == 2 && tail[0] == 0x1f
             && tail[1] == 0x8b)
        reason = "gzip data, not a MaxMind DB file (unpack the .mmdb from the download)";
    if (fd >= 0)
        close(fd);
    free(tail);
    return reason;
}

static void
open_error(const char *path, off_t size, int status, int saved_errno, char *err, size_t errlen)
{
    switch (status) {
    case MMDB_FILE_OPEN_ERROR:
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(saved_errno));
        break;
    case MMDB_IO_ERROR:
        snprintf(err, errlen, "%s: cannot read or map: %s", path,
                 saved_errno != 0 ? strerror(saved_errno) : "I/O error");
        break;
    case MMDB_INVALID_METADATA_ERROR:
        snprintf(err, errlen, "%s: %s", path, metadata_reason(path, size));
        break;
    case MMDB_UNKNOWN_DATABASE_FORMAT_ERROR:
        snprintf(err, errlen, "%s: unsupported MaxMind DB format version", path);
        break;
    case MMDB_OUT_OF_MEMORY_ERROR:
        snprintf(err, errlen, "%s: out of memory", path);
        break;
    case MMDB_CORRUPT_SEARCH_TREE_ERROR:
        snprintf(err, errlen, "%s: corrupt MaxMind DB file (search tree)", path);
        break;
    default:
        /* The metadata map is missing a key, or one that does not decode. */
        snprintf(err, errlen, "%s: corrupt MaxMind DB file (invalid metadata)", path);
        break;
    }
}

/* Two ASCII letters at path, upper-cased into cc, set *found; a missing key is
 * no error. The path is an array: MMDB_get_value() would calloc one per call. */
static int
iso_code(const MMDB_s *mmdb, uint32_t offset, const char *const *path, char cc[2], bool *found)
{
    MMDB_entry_s entry = {.mmdb = mmdb, .offset = offset};
    MMDB_entry_data_s data;
    int status = MMDB_aget_value(&entry, &data, path);

    *found = false;
    if (status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR)
        return MMDB_SUCCESS;                    /* no such key: no country */
    if (status != MMDB_SUCCESS)
        return status;
    if (!data.has_data || data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size != 2)
        return MMDB_SUCCESS;
    for (int i = 0; i < 2; i++) {
        unsigned char c = (unsigned char)data.utf8_string[i] & (unsigned char)~0x20;

        if (c < 'A' || c > 'Z')
            return MMDB_SUCCESS;
        cc[i] = (char)c;
    }
    *found = true;
    return MMDB_SUCCESS;
}

/* country.iso_code, else registered_country.iso_code, else cc[0] '\0'. A
 * status other than MMDB_SUCCESS means the record does not decode. */
static int
record_country(const MMDB_s *mmdb, uint32_t offset, char cc[2])
{
    static const char *const country[] = {"country", "iso_code", NULL};
    static const char *const registered[] = {"registered_country", "iso_code", NULL};
    bool found;
    int status = iso_code(mmdb, offset, country, cc, &found);

    if (status == MMDB_SUCCESS && !found)
        status = iso_code(mmdb, offset, registered, cc, &found);
    if (!found)
        cc[0] = cc[1] = '\0';
    return status;
}

static uint32_t
slot_hash(uint32_t offset, uint32_t mask)
{
    return (uint32_t)(((uint64_t)offset * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

static const struct country_slot *
slot_find(const struct sy_geoip *g, uint32_t offset)
{
    for (uint32_t i = slot_hash(offset, g->slot_mask);; i = (i + 1) & g->slot_mask) {
        if (g->slots[i].offset == offset)
            return &g->slots[i];
        if (g->slots[i].offset == SLOT_FREE)
            return NULL;
    }
}

static void
slot_put(struct country_slot *slots, uint32_t mask, uint32_t offset)
{
    uint32_t i = slot_hash(offset, mask);

    while (slots[i].offset != SLOT_FREE && slots[i].offset != offset)
        i = (i + 1) & mask;
    slots[i].offset = offset;
}

static struct country_slot *
slots_new(uint32_t n)
{
    struct country_slot *slots = malloc(n * sizeof(*slots));

    for (uint32_t i = 0; slots != NULL && i < n; i++)
        slots[i] = (struct country_slot){.offset = SLOT_FREE};
    return slots;
}

/* Adds offset to the table, doubling it at half full; past SLOTS_MAX (or out
 * of memory) drops it: lookups then decode. */
static void
slots_add(struct sy_geoip *g, uint32_t offset, uint32_t *used)
{
    if (g->slots == NULL || slot_find(g, offset) != NULL)
        return;
    if (2 * (*used + 1) > g->slot_mask + 1) {
        uint32_t n = 2 * (g->slot_mask + 1);
        struct country_slot *bigger = n <= SLOTS_MAX ? slots_new(n) : NULL;

        for (uint32_t i = 0; bigger != NULL && i <= g->slot_mask; i++)
            if (g->slots[i].offset != SLOT_FREE)
                slot_put(bigger, n - 1, g->slots[i].offset);
        free(g->slots);
        g->slots = bigger;
        g->slot_mask = n - 1;
        if (bigger == NULL)
            return;
    }
    slot_put(g->slots, g->slot_mask, offset);
    (*used)++;
}

/* Checks both records of every node (a record off the end of the file makes
 * lookups fail) and gathers the distinct data records. */
static int
scan_tree(struct sy_geoip *g, char *err, size_t errlen)
{
    uint32_t used = 0;

    for (uint32_t n = 0; n < g->mmdb.metadata.node_count; n++) {
        MMDB_search_node_s node;
        int status = MMDB_read_node(&g->mmdb, n, &node);

        if (status != MMDB_SUCCESS) {
            snprintf(err, errlen, "%s: corrupt MaxMind DB file: search tree node %u: %s",
                     g->path, n, MMDB_strerror(status));
            return -1;
        }
        const uint8_t types[2] = {node.left_record_type, node.right_record_type};
        const uint32_t offsets[2] = {node.left_record_entry.offset,
                                     node.right_record_entry.offset};

        for (int side = 0; side < 2; side++) {
            if (types[side] == MMDB_RECORD_TYPE_INVALID
                || (types[side] == MMDB_RECORD_TYPE_DATA
                    && offsets[side] >= g->mmdb.data_section_size)) {
                snprintf(err, errlen, "%s: corrupt MaxMind DB file: search tree node %u "
                         "points outside the file", g->path, n);
                return -1;
            }
            if (types[side] == MMDB_RECORD_TYPE_DATA)
                slots_add(g, offsets[side], &used);
        }
    }
    return 0;
}

/* The country of every record in the table; a record that does not decode
 * fails the open. */
static int
fill_slots(struct sy_geoip *g, char *err, size_t errlen)
{
    for (uint32_t i = 0; g->slots != NULL && i <= g->slot_mask; i++) {
        struct country_slot *s = &g->slots[i];
        int status;

        if (s->offset == SLOT_FREE)
            continue;
        status = record_country(&g->mmdb, s->offset, s->cc);
        if (status != MMDB_SUCCESS) {
            snprintf(err, errlen, "%s: corrupt MaxMind DB file: data record at offset %u: %s",
                     g->path, s->offset, MMDB_strerror(status));
            return -1;
        }
    }
    return 0;
}

struct sy_geoip *
sy_geoip_open(const char *path, char *err, size_t errlen)
{
    size_t pathlen = strlen(path);
    struct sy_geoip *g;
    struct stat st;
    int status;

    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    /* libmaxminddb would report a directory as an mmap failure. */
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return NULL;
    }
    if (st.st_size == 0) {
        snprintf(err, errlen, "%s: empty file, not a MaxMind DB", path);
        return NULL;
    }
    g = calloc(1, sizeof(*g) + pathlen + 1);
    if (g == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    memcpy(g->path, path, pathlen + 1);
    errno = 0;
    status = MMDB_open(path, MMDB_MODE_MMAP, &g->mmdb);
    if (status != MMDB_SUCCESS) {
        open_error(path, st.st_size, status, errno, err, errlen);
        free(g);
        return NULL;
    }
    atomic_init(&g->refs, 1);
    g->dev = st.st_dev;
    g->ino = st.st_ino;
    g->size = st.st_size;
    g->mtime = st.st_mtim;
    g->slots = slots_new(SLOTS_MIN);
    g->slot_mask = SLOTS_MIN - 1;
    if (scan_tree(g, err, errlen) != 0 || fill_slots(g, err, errlen) != 0) {
        geoip_free(g);
        return NULL;
    }
    return g;
}

void
sy_geoip_country(const struct sy_geoip *g, const struct sockaddr *sa, char out[3])
{
    struct sockaddr_in v4;
    MMDB_lookup_result_s result;
    const struct country_slot *slot;
    int mmdb_error;

    out[0] = '\0';
    if (g == NULL || sa == NULL)
        return;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        /* GeoLite2 aliases ::ffff:0:0/96 to the IPv4 tree, but a database
         * need not: look the IPv4 address up as what it is. */
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            memset(&v4, 0, sizeof(v4));
            v4.sin_family = AF_INET;
            memcpy(&v4.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
            sa = (const struct sockaddr *)&v4;
        }
    } else if (sa->sa_family != AF_INET) {
        return;
    }
    result = MMDB_lookup_sockaddr(&g->mmdb, sa, &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS || !result.found_entry)
        return;
    slot = g->slots != NULL ? slot_find(g, result.entry.offset) : NULL;
    if (slot != NULL) {
        memcpy(out, slot->cc, 2);
    } else if (record_country(&g->mmdb, result.entry.offset, out) != MMDB_SUCCESS) {
        out[0] = '\0';
        return;
    }
    out[2] = '\0';
}

#else /* !SY_HAVE_MAXMINDDB */

struct sy_geoip *
sy_geoip_open(const char *path, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: this build has no GeoIP support (configure found no "
             "libmaxminddb; install libmaxminddb-dev and re-run ./configure)", path);
    return NULL;
}

void
sy_geoip_country(const struct sy_geoip *g, const struct sockaddr *sa, char out[3])
{
    (void)g;
    (void)sa;
    out[0] = '\0';
}

#endif
