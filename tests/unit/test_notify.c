/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_notify.c: sd_notify without libsystemd (src/core/notify.c). A real
 * AF_UNIX datagram socket, bound to a path or to an abstract name, stands
 * in for the service manager and receives each state; an absent, wrong or
 * full socket is reported by the return value and never blocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "core/notify.h"

struct manager {
    int fd;
    char dir[64];
    char name[108];         /* what NOTIFY_SOCKET holds */
};

static uint64_t monotonic_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A receiving socket at a path under a fresh directory, or abstract ("@..."). */
static void manager_open(struct manager *m, int abstract)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    socklen_t len;

    memset(m, 0, sizeof(*m));
    m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(m->fd >= 0);
    if (abstract) {
        snprintf(m->name, sizeof(m->name), "@sy-test-notify-%ld-%lld", (long)getpid(),
                 (long long)monotonic_us());
        memcpy(addr.sun_path + 1, m->name + 1, strlen(m->name) - 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(m->name));
    } else {
        strcpy(m->dir, "/tmp/sy-notify-XXXXXX");
        assert_non_null(mkdtemp(m->dir));
        snprintf(m->name, sizeof(m->name), "%s/notify", m->dir);
        strcpy(addr.sun_path, m->name);
        len = sizeof(addr);
    }
    assert_int_equal(bind(m->fd, (struct sockaddr *)&addr, len), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", m->name, 1), 0);
}

static void manager_close(struct manager *m)
{
    close(m->fd);
    if (m->dir[0]) {
        unlink(m->name);
        rmdir(m->dir);
    }
    unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, as a string; fails the test if none is waiting. */
static void manager_recv(struct manager *m, char *buf, size_t size)
{
    ssize_t n = recv(m->fd, buf, size - 1, MSG_DONTWAIT);

    assert_true(n >= 0);
    buf[n] = '\0';
}

static void test_no_socket_is_a_noop(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sy_notify("READY=1"), 0);
    assert_int_equal(sy_notify_ready("serving"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(sy_notify_stopping("stopping"), 0);
    unsetenv("NOTIFY_SOCKET");
}

static void test_path_socket(void **state)
{
    struct manager m;
    char buf[2048];
    (void)state;

    manager_open(&m, 0);
    assert_int_equal(sy_notify_ready("serving"), 1);
    manager_recv(&m, buf, sizeof(buf));
    assert_string_equal(buf, "READY=1\nSTATUS=serving");
    assert_int_equal(sy_notify_stopping("graceful stop"), 1);
    manager_recv(&m, buf, sizeof(buf));
    assert_string_equal(buf, "STOPPING=1\nSTATUS=graceful stop");
    manager_close(&m);
}

static void test_abstract_socket(void **state)
{
    struct manager m;
    char buf[2048];
    (void)state;

    manager_open(&m, 1);
    assert_int_equal(sy_notify("READY=1"), 1);
    manager_recv(&m, buf, sizeof(buf));
    assert_string_equal(buf, "READY=1");
    manager_close(&m);
}

/* Type=notify-reload: MONOTONIC_USEC is CLOCK_MONOTONIC at the start of the reload. */
static void test_reloading_carries_monotonic_usec(void **state)
{
    struct manager m;
    char buf[2048];
    unsigned long long usec = 0;
    (void)state;

    manager_open(&m, 0);
    uint64_t before = monotonic_us();
    assert_int_equal(sy_notify_reloading("reloading"), 1);
    uint64_t after = monotonic_us();
    manager_recv(&m, buf, sizeof(buf));
    assert_int_equal(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27), 0);
    assert_int_equal(sscanf(buf + 27, "%llu", &usec), 1);
    assert_true(usec >= before && usec <= after);
    assert_non_null(strstr(buf, "\nSTATUS=reloading"));
    assert_null(strchr(strstr(buf, "STATUS="), '\n'));
    manager_close(&m);
}

/* A reason from a configuration error must stay one STATUS line. */
static void test_status_is_one_line_and_bounded(void **state)
{
    struct manager m;
    char buf[4096], big[3000];
    (void)state;

    manager_open(&m, 0);
    assert_int_equal(sy_notify_ready("bad\nWATCHDOG=trigger\r\nx"), 1);
    manager_recv(&m, buf, sizeof(buf));
    assert_string_equal(buf, "READY=1\nSTATUS=bad WATCHDOG=trigger  x");

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(sy_notify_stopping(big), 1);
    manager_recv(&m, buf, sizeof(buf));
    assert_int_equal(strncmp(buf, "STOPPING=1\nSTATUS=xxx", 21), 0);
    assert_true(strlen(buf) < 1024);

    assert_int_equal(sy_notifyf("STATUS=%s", big), -1);
    assert_int_equal(errno, EMSGSIZE);
    manager_close(&m);
}

static void test_bad_sockets_fail_softly(void **state)
{
    char longname[200];
    (void)state;

    setenv("NOTIFY_SOCKET", "/nonexistent/sy-notify/socket", 1);
    assert_int_equal(sy_notify("READY=1"), -1);
    assert_int_equal(errno, ENOENT);

    setenv("NOTIFY_SOCKET", "relative/socket", 1);
    assert_int_equal(sy_notify("READY=1"), -1);
    assert_int_equal(errno, EAFNOSUPPORT);

    setenv("NOTIFY_SOCKET", "@", 1);
    assert_int_equal(sy_notify("READY=1"), -1);

    memset(longname, 'a', sizeof(longname) - 1);
    longname[0] = '/';
    longname[sizeof(longname) - 1] = '\0';
    setenv("NOTIFY_SOCKET", longname, 1);
    assert_int_equal(sy_notify("READY=1"), -1);
    assert_int_equal(errno, EINVAL);

    /* A path that is not a datagram socket: a regular file. */
    char file[] = "/tmp/sy-notify-file-XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    close(fd);
    setenv("NOTIFY_SOCKET", file, 1);
    assert_int_equal(sy_notify("READY=1"), -1);
    unlink(file);
    unsetenv("NOTIFY_SOCKET");
}

/* A manager that stopped reading: sends fail with EAGAIN at once, never block. */
static void test_full_socket_never_blocks(void **state)
{
    struct manager m;
    int rc = 1, tries = 0;
    (void)state;

    manager_open(&m, 0);
    uint64_t start = monotonic_us();
    while (rc == 1 && tries++ < 200000)
        rc = sy_notify_ready("serving");
    assert_int_equal(rc, -1);
    assert_int_equal(errno, EAGAIN);
    assert_true(monotonic_us() - start < 10u * 1000000u);
    manager_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_socket_is_a_noop),
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_reloading_carries_monotonic_usec),
        cmocka_unit_test(test_status_is_one_line_and_bounded),
        cmocka_unit_test(test_bad_sockets_fail_softly),
        cmocka_unit_test(test_full_socket_never_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
