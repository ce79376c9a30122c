/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_logstat_input.c: the line reader over real files: lines split
 * across reads, a last line without its newline, a line over LS_LINE_MAX
 * skipped and counted with the lines around it intact, gzip found by its
 * magic, corrupt and truncated gzip reported as errors after the good
 * lines, an empty file, a missing one, and following a file that grows,
 * is truncated and is replaced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tools/switchyard-logstat/logstat.h"

static char dir[] = "/tmp/test_logstat_input.XXXXXX";

static const char *path(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

static void write_file(const char *name, const char *data, size_t n)
{
    FILE *f = fopen(path(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_gz(const char *name, const char *data, size_t n)
{
    gzFile g = gzopen(path(name), "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, data, (unsigned)n), (int)n);
    gzclose(g);
}

/* Every result of reading name to its end, as "L<len>" for a line, "LONG",
 * "ERR"; the lines' text goes to texts. */
static void read_all(const char *name, char *out, size_t outlen, char *texts, size_t textlen)
{
    struct ls_input in;
    const char *line;
    size_t len;

    out[0] = texts[0] = '\0';
    if (ls_input_open(&in, path(name), false) < 0) {
        snprintf(out, outlen, "OPEN");
        return;
    }
    for (;;) {
        enum ls_line_result r = ls_input_next(&in, &line, &len);
        char one[64];
        if (r == LS_LINE_END)
            break;
        if (r == LS_LINE_OK) {
            snprintf(one, sizeof(one), "L%zu@%llu ", len, (unsigned long long)in.line_no);
            if (len < 32)
                snprintf(texts + strlen(texts), textlen - strlen(texts), "%.*s|", (int)len, line);
        } else if (r == LS_LINE_LONG) {
            snprintf(one, sizeof(one), "LONG@%llu ", (unsigned long long)in.line_no);
        } else {
            snprintf(one, sizeof(one), "ERR ");
            strncat(out, one, outlen - strlen(out) - 1);
            break;
        }
        strncat(out, one, outlen - strlen(out) - 1);
    }
    ls_input_close(&in);
}

static void test_plain_lines(void **state)
{
    (void)state;
    char out[512], texts[512];

    write_file("a.log", "one\ntwo\r\n\nlast", 14);
    read_all("a.log", out, sizeof(out), texts, sizeof(texts));
    assert_string_equal(out, "L3@1 L4@2 L0@3 L4@4 ");
    assert_string_equal(texts, "one|two\r||last|");

    write_file("empty.log", "", 0);
    read_all("empty.log", out, sizeof(out), texts, sizeof(texts));
    assert_string_equal(out, "");

    read_all("missing.log", out, sizeof(out), texts, sizeof(texts));
    assert_string_equal(out, "OPEN");
    read_all("", out, sizeof(out), texts, sizeof(texts));    /* the directory itself */
    assert_string_equal(out, "OPEN");
}

/* Lines that straddle the reader's 1 MiB reads come out whole. */
static void test_lines_across_reads(void **state)
{
    (void)state;
    size_t n = 3 << 20;
    char *data = malloc(n);
    size_t lines = 0, at = 0;

    while (at + 1000 < n) {
        size_t len = 1 + (at * 7919) % 997;
        memset(data + at, 'x', len);
        data[at + len] = '\n';
        at += len + 1;
        lines++;
    }
    write_file("big.log", data, at);
    struct ls_input in;
    const char *line;
    size_t len, seen = 0, bytes = 0;
    assert_int_equal(ls_input_open(&in, path("big.log"), false), 0);
    while (ls_input_next(&in, &line, &len) == LS_LINE_OK) {
        assert_int_equal(len, 1 + (bytes * 7919) % 997);
        assert_null(memchr(line, '\n', len));
        bytes += len + 1;
        seen++;
    }
    assert_int_equal(seen, lines);
    ls_input_close(&in);
    free(data);
}

static void test_long_line_skipped(void **state)
{
    (void)state;
    size_t big = LS_LINE_MAX + 5000;
    char *data = malloc(2 * LS_LINE_MAX + 64);
    char out[512], texts[512];

    strcpy(data, "before\n");
    memset(data + 7, 'y', big);
    strcpy(data + 7 + big, "\nafter\n");
    write_file("long.log", data, 7 + big + 7);
    read_all("long.log", out, sizeof(out), texts, sizeof(texts));
    assert_string_equal(out, "L6@1 LONG@2 L5@3 ");

    /* exactly LS_LINE_MAX is still a line; one more is not */
    memset(data, 'z', LS_LINE_MAX);
    data[LS_LINE_MAX] = '\n';
    memset(data + LS_LINE_MAX + 1, 'z', LS_LINE_MAX + 1);
    data[2 * LS_LINE_MAX + 2] = '\n';
    write_file("edge.log", data, 2 * LS_LINE_MAX + 3);
    read_all("edge.log", out, sizeof(out), texts, sizeof(texts));
    char want[64];
    snprintf(want, sizeof(want), "L%d@1 LONG@2 ", LS_LINE_MAX);
    assert_string_equal(out, want);

    /* a long last line without its newline */
    write_file("tail.log", data, LS_LINE_MAX + 1 + LS_LINE_MAX + 1);
    read_all("tail.log", out, sizeof(out), texts, sizeof(texts));
    assert_string_equal(out, want);
    free(data);
}

static void test_gzip(void **state)
{
    (void)state;
    char out[512], texts[512];
    static const char body[] = "{\"a\":1}\n{\"b\":2}\nthird";

    write_gz("rotated.log.1.gz", body, sizeof(body) - 1);
    read_all("rotated.log.1.gz", out, sizeof(out), texts, sizeof(texts));
    assert_string_equal(out, "L7@1 L7@2 L5@3 ");
    assert_string_equal(texts, "{\"a\":1}|{\"b\":2}|third|");

    /* corrupt: the deflate stream damaged in the middle */
    size_t n = 200000;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (i % 80 == 79) ? '\n' : (char)('a' + (i * 31 + i / 7) % 26);
    write_gz("corrupt.gz", data, n);
    FILE *f = fopen(path("corrupt.gz"), "r+b");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size / 2, SEEK_SET);
    fwrite("\xff\xff\xff\xff\xff\xff\xff\xff", 1, 8, f);
    fclose(f);
    read_all("corrupt.gz", out, sizeof(out), texts, sizeof(texts));
    assert_non_null(strstr(out, "ERR"));

    /* truncated: the good lines, then an error */
    f = fopen(path("corrupt.gz"), "wb");
    fclose(f);
    write_gz("whole.gz", data, n);
    f = fopen(path("whole.gz"), "rb");
    char *gz = malloc((size_t)size + 1000);
    size_t got = fread(gz, 1, (size_t)size + 1000, f);
    fclose(f);
    write_file("truncated.gz", gz, got * 2 / 3);
    struct ls_input in;
    const char *line;
    size_t len;
    int lines = 0;
    enum ls_line_result r;
    assert_int_equal(ls_input_open(&in, path("truncated.gz"), false), 0);
    while ((r = ls_input_next(&in, &line, &len)) == LS_LINE_OK)
        lines++;
    assert_int_equal(r, LS_LINE_ERROR);
    assert_true(lines > 100);
    assert_non_null(strstr(in.error, "truncated.gz"));
    ls_input_close(&in);
    free(gz);
    free(data);
}

static void test_follow(void **state)
{
    (void)state;
    struct ls_input in;
    const char *line;
    size_t len;

    write_file("live.log", "a\npart", 6);
    assert_int_equal(ls_input_open(&in, path("live.log"), true), 0);
    assert_int_equal(ls_input_next(&in, &line, &len), LS_LINE_OK);
    assert_int_equal(ls_input_next(&in, &line, &len), LS_LINE_END);    /* "part" waits */
    assert_false(ls_input_rotated(&in));

    FILE *f = fopen(path("live.log"), "ab");
    fputs("ial\nb\n", f);
    fclose(f);
    assert_int_equal(ls_input_next(&in, &line, &len), LS_LINE_OK);
    assert_int_equal(len, 7);
    assert_memory_equal(line, "partial", 7);
    assert_int_equal(ls_input_next(&in, &line, &len), LS_LINE_OK);
    assert_int_equal(ls_input_next(&in, &line, &len), LS_LINE_END);

    /* copytruncate: read again from the start */
    write_file("live.log", "c\n", 2);
    assert_false(ls_input_rotated(&in));
    assert_int_equal(ls_input_next(&in, &line, &len), LS_LINE_OK);
    assert_memory_equal(line, "c", 1);

    /* moved away and recreated: rotated */
    char old[256];
    snprintf(old, sizeof(old), "%s", path("live.log"));
    assert_int_equal(rename(old, path("live.log.1")), 0);
    assert_false(ls_input_rotated(&in));   /* no new file yet */
    write_file("live.log", "d\n", 2);
    assert_true(ls_input_rotated(&in));
    ls_input_close(&in);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_lines),
        cmocka_unit_test(test_lines_across_reads),
        cmocka_unit_test(test_long_line_skipped),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_follow),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
