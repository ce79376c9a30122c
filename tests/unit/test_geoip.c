/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_geoip.c: sy_geoip on the databases tests/data/geoip/make-test-mmdb.pl
 * writes into build/test-data/geoip/ (make unit-tests does; SY_GEOIP_TEST_DIR
 * names another folder): IPv4, IPv6 and IPv4-mapped lookups, the
 * registered_country fallback, not found, change detection after a rewrite,
 * open errors and their messages (missing, not a file, empty, not an MMDB,
 * gzip, truncated, bad metadata, a corrupt search tree, a corrupt data record),
 * and references shared across threads. In a
 * build without libmaxminddb only the refusal to open is tested.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sy_auto.h"
#include "core/geoip.h"

static char data_dir[PATH_MAX];

struct fixture {
    char dir[64];               /* a mkdtemp folder for files the test writes */
    char path[PATH_MAX + 64];
};

/* build/test-data/geoip beside build/tests/, wherever the test is run from. */
static void
find_data_dir(void)
{
    const char *env = getenv("SY_GEOIP_TEST_DIR");
    char exe[PATH_MAX];
    ssize_t n;

    if (env != NULL && *env != '\0') {
        snprintf(data_dir, sizeof(data_dir), "%s", env);
        return;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        snprintf(data_dir, sizeof(data_dir), "build/test-data/geoip");
        return;
    }
    exe[n] = '\0';
    snprintf(data_dir, sizeof(data_dir), "%s/../test-data/geoip", dirname(exe));
}

static const char *
data_file(const char *name)
{
    static char path[PATH_MAX + 64];

    snprintf(path, sizeof(path), "%s/%s", data_dir, name);
    return path;
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sy-test-geoip.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static const char *
tmp_file(struct fixture *f, const char *name)
{
    snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name);
    return f->path;
}

static void
write_bytes(const char *path, const void *bytes, size_t len)
{
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void
copy_file(const char *from, const char *to)
{
    static char buf[1 << 20];
    FILE *in = fopen(from, "rb");
    size_t n;

    if (in == NULL)
        fail_msg("%s: missing", from);
    n = fread(buf, 1, sizeof(buf), in);
    fclose(in);
    assert_true(n > 0 && n < sizeof(buf));
    write_bytes(to, buf, n);
}

static void
open_err(const char *path, const char *expect)
{
    char err[512] = "";
    char want[1024];

    snprintf(want, sizeof(want), "%s: %s", path, expect);
    assert_null(sy_geoip_open(path, err, sizeof(err)));
    assert_string_equal(err, want);
}

#if SY_HAVE_MAXMINDDB
#include <maxminddb.h>

#define NO_METADATA "not a MaxMind DB file (no metadata section: another format, " \
                    "or a truncated copy)"

static struct sy_geoip *
open_ok(const char *path)
{
    char err[512] = "";
    struct sy_geoip *g = sy_geoip_open(path, err, sizeof(err));

    if (g == NULL)
        fail_msg("%s", err);
    return g;
}

/* The test databases are made by make; without the Perl writer they are not. */
static int
need_data(void **state)
{
    struct stat st;

    (void)state;
    if (stat(data_file("country.mmdb"), &st) != 0) {
        print_message("no %s: install libmaxmind-db-writer-perl (./configure --install-deps) "
                      "and run make unit-tests\n", data_file("country.mmdb"));
        skip();
    }
    return 0;
}

/* The country of the textual address ip; "?" when ip is not one. */
static const char *
country(const struct sy_geoip *g, const char *ip)
{
    static char out[3];
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};

    memcpy(out, "??", 3);
    if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1)
        sy_geoip_country(g, (struct sockaddr *)&sin, out);
    else if (inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1)
        sy_geoip_country(g, (struct sockaddr *)&sin6, out);
    else
        fail_msg("not an address: %s", ip);
    return out;
}

static void
test_lookup_v4(void **state)
{
    struct sy_geoip *g;

    need_data(state);
    g = open_ok(data_file("country.mmdb"));
    assert_string_equal(country(g, "10.1.2.3"), "DE");
    assert_string_equal(country(g, "10.1.255.255"), "DE");
    assert_string_equal(country(g, "10.1.200.9"), "AT");       /* longer prefix inside */
    assert_string_equal(country(g, "10.2.0.1"), "FR");
    assert_string_equal(country(g, "10.3.4.5"), "US");         /* registered_country only */
    assert_string_equal(country(g, "10.5.0.1"), "CH");         /* "ch" in the file */
    assert_string_equal(country(g, "127.0.0.1"), "ZZ");
    assert_string_equal(country(g, "127.255.0.2"), "ZZ");
    assert_string_equal(sy_geoip_path(g), data_file("country.mmdb"));
    sy_geoip_unref(g);
}

static void
test_lookup_v6(void **state)
{
    struct sy_geoip *g;

    need_data(state);
    g = open_ok(data_file("country.mmdb"));
    assert_string_equal(country(g, "2001:db8:1::5"), "JP");
    assert_string_equal(country(g, "2001:db8:1:ffff:ffff:ffff:ffff:ffff"), "JP");
    assert_string_equal(country(g, "2001:db8:2::5"), "KR");   /* registered_country only */
    assert_string_equal(country(g, "::1"), "ZZ");
    sy_geoip_unref(g);
}

/* The test database has no ::ffff:0:0/96 alias (GeoLite2 has): the lookup
 * itself must map the address back to IPv4. */
static void
test_lookup_mapped(void **state)
{
    struct sy_geoip *g;

    need_data(state);
    g = open_ok(data_file("country.mmdb"));
    assert_string_equal(country(g, "::ffff:10.1.2.3"), "DE");
    assert_string_equal(country(g, "::ffff:10.3.0.1"), "US");
    assert_string_equal(country(g, "::ffff:127.0.0.1"), "ZZ");
    assert_string_equal(country(g, "::ffff:10.9.0.1"), "");
    sy_geoip_unref(g);
}

static void
test_not_found(void **state)
{
    struct sy_geoip *g;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char out[3] = "XX";

    need_data(state);
    g = open_ok(data_file("country.mmdb"));
    assert_string_equal(country(g, "10.9.0.1"), "");
    assert_string_equal(country(g, "192.0.2.1"), "");
    assert_string_equal(country(g, "0.0.0.0"), "");
    assert_string_equal(country(g, "255.255.255.255"), "");
    assert_string_equal(country(g, "10.4.0.1"), "");          /* a record with no country */
    assert_string_equal(country(g, "2001:db8:3::1"), "");
    assert_string_equal(country(g, "ffff::1"), "");
    assert_string_equal(country(g, "::"), "");
    sy_geoip_country(g, (struct sockaddr *)&sun, out);
    assert_string_equal(out, "");
    memcpy(out, "XX", 3);
    sy_geoip_country(g, NULL, out);
    assert_string_equal(out, "");
    memcpy(out, "XX", 3);
    sy_geoip_country(NULL, (struct sockaddr *)&sun, out);
    assert_string_equal(out, "");
    sy_geoip_unref(g);
}

/* The reload variant: 10.1/16 is IT, 10.2/16 gone, 10.6/16 added. */
static void
test_second_database(void **state)
{
    struct sy_geoip *g;

    need_data(state);
    g = open_ok(data_file("country-v2.mmdb"));
    assert_string_equal(country(g, "10.1.2.3"), "IT");
    assert_string_equal(country(g, "10.1.200.1"), "AT");
    assert_string_equal(country(g, "10.2.0.1"), "");
    assert_string_equal(country(g, "10.6.1.1"), "GB");
    assert_string_equal(country(g, "2001:db8:1::5"), "JP");
    sy_geoip_unref(g);
}

static void
test_changed(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX + 64], other[PATH_MAX + 64];
    struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {0}};
    struct sy_geoip *g, *old;

    need_data(state);
    snprintf(path, sizeof(path), "%s", tmp_file(f, "db.mmdb"));
    snprintf(other, sizeof(other), "%s", tmp_file(f, "new.mmdb"));
    copy_file(data_file("country.mmdb"), path);
    g = open_ok(path);
    assert_false(sy_geoip_changed(g, path));
    assert_false(sy_geoip_changed(g, path));
    assert_true(sy_geoip_changed(g, data_file("country.mmdb")));   /* another name */

    /* Replaced by rename, as geoipupdate does: new inode. The old mapping
     * still answers from the old file. */
    copy_file(data_file("country-v2.mmdb"), other);
    assert_int_equal(rename(other, path), 0);
    assert_true(sy_geoip_changed(g, path));
    assert_string_equal(country(g, "10.1.2.3"), "DE");
    old = g;
    g = open_ok(path);
    sy_geoip_unref(old);
    assert_false(sy_geoip_changed(g, path));
    assert_string_equal(country(g, "10.1.2.3"), "IT");

    /* The same inode and size, another mtime. */
    clock_gettime(CLOCK_REALTIME, &times[1]);
    times[1].tv_sec -= 3600;
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
    assert_true(sy_geoip_changed(g, path));
    sy_geoip_unref(g);

    /* Gone: changed, and the reload that follows says why. */
    g = open_ok(path);
    assert_int_equal(unlink(path), 0);
    assert_true(sy_geoip_changed(g, path));
    assert_string_equal(country(g, "10.1.2.3"), "IT");         /* still mapped */
    open_err(path, "cannot open: No such file or directory");
    sy_geoip_unref(g);
}

static void
test_open_errors(void **state)
{
    struct fixture *f = *state;
    static const char text[] = "{\"not\": \"a database\"}\n";
    static const unsigned char gzip[] = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 3, 1, 2, 3};
    static const char marker_only[] = "\xab\xcd\xefMaxMind.com";

    open_err(tmp_file(f, "missing.mmdb"), "cannot open: No such file or directory");
    open_err(f->dir, "not a regular file");
    write_bytes(tmp_file(f, "empty.mmdb"), "", 0);
    open_err(f->path, "empty file, not a MaxMind DB");
    write_bytes(tmp_file(f, "text.mmdb"), text, sizeof(text) - 1);
    open_err(f->path, NO_METADATA);
    write_bytes(tmp_file(f, "GeoLite2-Country.tar.gz"), gzip, sizeof(gzip));
    open_err(f->path, "gzip data, not a MaxMind DB file (unpack the .mmdb from the download)");
    /* The metadata marker followed by nothing: metadata that does not decode. */
    write_bytes(tmp_file(f, "marker.mmdb"), marker_only, sizeof(marker_only) - 1);
    open_err(f->path, "corrupt MaxMind DB file (invalid metadata)");
    need_data(state);
    open_err(data_file("truncated.mmdb"), NO_METADATA);
}

/* A copy of country.mmdb with bytes [from, to) of it overwritten with byte;
 * negative offsets count from the data section's start. */
static const char *
damaged_copy(struct fixture *f, const char *name, long from, long to, int byte)
{
    static unsigned char buf[1 << 16];
    FILE *in = fopen(data_file("country.mmdb"), "rb");
    size_t n;

    assert_non_null(in);
    n = fread(buf, 1, sizeof(buf), in);
    fclose(in);
    assert_true(n > 0 && n < sizeof(buf) && to <= (long)n && from < to);
    memset(buf + from, byte, (size_t)(to - from));
    write_bytes(tmp_file(f, name), buf, n);
    return f->path;
}

/* Where the search tree ends, from the database's own metadata. */
static long
tree_bytes(void)
{
    MMDB_s mmdb;

    assert_int_equal(MMDB_open(data_file("country.mmdb"), MMDB_MODE_MMAP, &mmdb), MMDB_SUCCESS);
    long bytes = (long)mmdb.metadata.node_count * mmdb.full_record_byte_size;
    MMDB_close(&mmdb);
    return bytes;
}

/* Metadata intact, so libmaxminddb opens them; the open-time scan must not. */
static void
test_open_corrupt(void **state)
{
    struct fixture *f = *state;
    char err[512] = "", want[1024];
    const char *path;
    long tree, data;

    need_data(state);
    tree = tree_bytes();
    data = tree + 16;                           /* after the 16-byte separator */
    /* Records of all ones point past the end of the file. */
    path = damaged_copy(f, "tree.mmdb", 0, tree / 2, 0xff);
    open_err(path, "corrupt MaxMind DB file: search tree node 0 points outside the file");

    /* 0xee: a map of 14 entries whose keys are maps, not strings. */
    path = damaged_copy(f, "data.mmdb", data, data + 64, 0xee);
    assert_null(sy_geoip_open(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: corrupt MaxMind DB file: data record at offset ", path);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("\"%s\" does not start with \"%s\"", err, want);
}

/* A short error buffer truncates, never overflows. */
static void
test_open_error_short_buffer(void **state)
{
    struct fixture *f = *state;
    char err[8];

    memset(err, 'x', sizeof(err));
    assert_null(sy_geoip_open(tmp_file(f, "missing.mmdb"), err, sizeof(err)));
    assert_int_equal(err[sizeof(err) - 1], '\0');
    assert_null(sy_geoip_open(tmp_file(f, "missing.mmdb"), err, 0));
}

#define THREADS 4
#define LOOKUPS 20000

struct worker {
    struct sy_geoip *g;         /* the worker's own reference, dropped at the end */
    int mismatches;
};

static void *
lookup_worker(void *arg)
{
    struct worker *w = arg;
    const char *ips[] = {"10.1.2.3", "::ffff:10.2.0.1", "2001:db8:1::9", "10.9.0.1"};
    const char *want[] = {"DE", "FR", "JP", ""};

    for (int i = 0; i < LOOKUPS; i++) {
        struct sockaddr_storage ss = {0};
        const char *ip = ips[i % 4];
        char out[3];

        if (strchr(ip, ':') != NULL) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            inet_pton(AF_INET6, ip, &s6->sin6_addr);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            inet_pton(AF_INET, ip, &s4->sin_addr);
        }
        sy_geoip_country(w->g, (struct sockaddr *)&ss, out);
        if (strcmp(out, want[i % 4]) != 0)
            w->mismatches++;
    }
    sy_geoip_unref(w->g);
    return NULL;
}

/* Each thread holds a reference; the opener drops its own first, so the
 * last thread to finish closes the database (valgrind sees any early close). */
static void
test_refs_threads(void **state)
{
    struct fixture *f = *state;
    struct worker workers[THREADS];
    pthread_t threads[THREADS];
    struct sy_geoip *g;

    need_data(state);
    copy_file(data_file("country.mmdb"), tmp_file(f, "db.mmdb"));
    g = open_ok(f->path);
    sy_geoip_ref(g);
    sy_geoip_unref(g);
    for (int i = 0; i < THREADS; i++) {
        sy_geoip_ref(g);
        workers[i] = (struct worker){.g = g};
    }
    /* Unlinked while open: the mapping stays valid. */
    assert_int_equal(unlink(f->path), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, lookup_worker, &workers[i]), 0);
    sy_geoip_unref(g);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(workers[i].mismatches, 0);
    }
    sy_geoip_unref(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lookup_v4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_v6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_mapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_error_short_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refs_threads, setup, teardown),
    };

    find_data_dir();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !SY_HAVE_MAXMINDDB */

/* A build without libmaxminddb refuses every database, naming it. */
static void
test_no_maxminddb(void **state)
{
    struct fixture *f = *state;

    open_err(tmp_file(f, "GeoLite2-Country.mmdb"),
             "this build has no GeoIP support (configure found no libmaxminddb; "
             "install libmaxminddb-dev and re-run ./configure)");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_maxminddb, setup, teardown),
    };

    (void)write_bytes;
    (void)copy_file;
    (void)data_file;
    find_data_dir();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
