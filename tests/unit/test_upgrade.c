/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_upgrade.c: the new process's side of an upgrade (src/core/upgrade.c):
 * SWITCHYARD_INHERIT is read once and removed, its descriptors are checked
 * (real listening sockets and a real pipe), taken by bound address, and the
 * ones nothing took are closed when the process says on the pipe that it
 * serves. The old process's side runs in tests/integration/test_upgrade.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "core/upgrade.h"

/* A listening socket on ip, port chosen by the kernel; *port gets it. */
static int listener(const char *ip, int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static void addr(const char *text, struct sy_addr *out)
{
    char err[256];

    assert_int_equal(sy_addr_parse(text, out, err, sizeof(err)), 0);
}

static bool is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void test_absent_is_nothing(void **state)
{
    char err[256];
    size_t taken = 99;
    int fd;
    struct sy_addr a;
    (void)state;

    unsetenv(SY_UPGRADE_ENV);
    assert_int_equal(sy_upgrade_adopt(err, sizeof(err)), 0);
    addr("127.0.0.1:80", &a);
    assert_int_equal(sy_upgrade_take("listen", &a, &fd, 1), 0);
    assert_int_equal(sy_upgrade_serving(&taken), 0);
    assert_int_equal(taken, 0);
}

static void test_adopt_take_and_serve(void **state)
{
    char env[256], text[64], err[256], byte = 0;
    int p1, p2, pa, pu, pipefd[2];
    size_t taken = 0;
    struct sy_addr a;
    int fds[4];
    (void)state;

    int l1 = listener("127.0.0.1", &p1);
    int l2 = listener("127.0.0.1", &p2);   /* nothing asks for it */
    int la = listener("127.0.0.1", &pa);
    int lu = listener("0.0.0.0", &pu);
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    snprintf(env, sizeof(env), "ready=%d;listen:127.0.0.1:%d=%d;listen:localhost:%d=%d;"
             "admin:127.0.0.1:%d=%d;listen:*:%d=%d", pipefd[1], p1, l1, p2, l2, pa, la, pu,
             lu);
    setenv(SY_UPGRADE_ENV, env, 1);

    assert_int_equal(sy_upgrade_adopt(err, sizeof(err)), 0);
    assert_null(getenv(SY_UPGRADE_ENV));
    assert_int_equal(sy_upgrade_old_process(), getppid());
    assert_true(fcntl(l1, F_GETFD) & FD_CLOEXEC);

    snprintf(text, sizeof(text), "127.0.0.1:%d", p1);
    addr(text, &a);
    assert_int_equal(sy_upgrade_take("admin", &a, fds, 4), 0);     /* a listen socket */
    assert_int_equal(sy_upgrade_take("listen", &a, fds, 4), 1);
    assert_int_equal(fds[0], l1);
    assert_int_equal(sy_upgrade_take("listen", &a, fds, 4), 0);     /* taken once only */
    snprintf(text, sizeof(text), "*:%d", pu);                       /* matched by address */
    addr(text, &a);
    assert_int_equal(sy_upgrade_take("listen", &a, fds, 4), 1);
    assert_int_equal(fds[0], lu);
    snprintf(text, sizeof(text), "127.0.0.1:%d", pa);
    addr(text, &a);
    assert_int_equal(sy_upgrade_take("admin", &a, fds, 1), 1);
    assert_int_equal(fds[0], la);

    assert_int_equal(sy_upgrade_serving(&taken), 1);
    assert_int_equal(taken, 3);
    assert_false(is_open(l2));              /* nothing took it */
    assert_true(is_open(l1) && is_open(lu) && is_open(la));
    assert_false(is_open(pipefd[1]));
    assert_int_equal(read(pipefd[0], &byte, 1), 1);
    assert_int_equal(byte, '1');
    close(pipefd[0]);
    close(l1);
    close(la);
    close(lu);
}

static void expect_refused(const char *value, const char *needle)
{
    char err[256] = "";

    setenv(SY_UPGRADE_ENV, value, 1);
    assert_int_equal(sy_upgrade_adopt(err, sizeof(err)), -1);
    if (!strstr(err, needle))
        fail_msg("\"%s\": \"%s\" not in \"%s\"", value, needle, err);
    assert_null(getenv(SY_UPGRADE_ENV));
}

static void test_bad_values_are_refused(void **state)
{
    char value[128];
    size_t taken;
    int sv[2];
    (void)state;

    expect_refused("listen:127.0.0.1:80", "has no descriptor");
    expect_refused("ready=x", "ready=x is not an open pipe");
    expect_refused("ready=0x", "is not an open pipe");
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    snprintf(value, sizeof(value), "ready=%d", sv[0]);
    expect_refused(value, "is not an open pipe");
    snprintf(value, sizeof(value), "listen:127.0.0.1:80=%d", sv[0]);
    expect_refused(value, "descriptor");
    expect_refused("listen:127.0.0.1:80=9999", "is not a listening socket");
    close(sv[0]);
    close(sv[1]);
    sy_upgrade_serving(&taken);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent_is_nothing),
        cmocka_unit_test(test_adopt_take_and_serve),
        cmocka_unit_test(test_bad_values_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
