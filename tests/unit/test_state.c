/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_state.c: the state file (core/state.c): what is saved is what is
 * restored; a file that cannot be understood (broken JSON, a value out of
 * range, an unknown version) is set aside whole and nothing of it is
 * used; a saved rollout that no longer fits the configuration is aborted;
 * a write that fails is retried until it succeeds. Also the split setter's
 * slot_lost_ms bookkeeping (core/live.c), which the tunnels rely on, and
 * how a reload adopts the file's maintenance.enabled (live.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <glob.h>

#include "core/live.h"
#include "core/state.h"

static char err[256];

struct fixture {
    char dir[64];
    char path[128];
    int steps[3];
    struct sy_service svc;
    struct sy_conf conf;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/sy-state-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    /* a subdirectory that does not exist yet: saving makes it */
    snprintf(f->path, sizeof(f->path), "%s/sub/state.json", f->dir);
    f->steps[0] = 10, f->steps[1] = 50, f->steps[2] = 100;
    f->svc.name = "app";
    f->svc.rollout.steps = f->steps;
    f->svc.rollout.nsteps = 3;
    f->svc.live = sy_live_service_get("app", SY_SLOT_BLUE, 0);
    assert_non_null(f->svc.live);
    f->conf.services = &f->svc;
    f->conf.nservices = 1;
    f->conf.state_file = f->path;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];

    sy_live_service_put(f->svc.live);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static size_t count_aside(const struct fixture *f)
{
    char pattern[160];
    glob_t g;

    snprintf(pattern, sizeof(pattern), "%s.corrupt-*", f->path);
    if (glob(pattern, 0, NULL, &g) != 0)
        return 0;
    size_t n = g.gl_pathc;
    globfree(&g);
    return n;
}

static void reset_live(struct sy_service_live *l)
{
    sy_live_service_set(l, SY_SLOT_BLUE, 0, 1);
    memset(&l->rollout, 0, sizeof(l->rollout));
    atomic_store(&l->maintenance, false);
}

static void test_saved_state_comes_back(void **state)
{
    struct fixture *f = *state;
    struct sy_service_live *l = f->svc.live;

    sy_live_service_set(l, SY_SLOT_GREEN, 50, 1000);
    l->rollout.state = SY_ROLLOUT_PAUSED;
    l->rollout.paused_from = SY_ROLLOUT_WAITING;
    l->rollout.step = 1;
    l->rollout.canary_slot = SY_SLOT_BLUE;
    l->rollout.started_wall_ms = 1700000000000;
    sy_state_save(&f->conf);
    assert_int_equal(access(f->path, R_OK), 0);

    reset_live(l);
    assert_int_equal(sy_state_restore(&f->conf, 4242, err, sizeof(err)), 0);
    assert_int_equal(sy_live_active(&f->svc), SY_SLOT_GREEN);
    assert_int_equal(sy_live_canary_weight(&f->svc), 50);
    assert_int_equal(l->rollout.state, SY_ROLLOUT_PAUSED);
    assert_int_equal(l->rollout.paused_from, SY_ROLLOUT_WAITING);
    assert_int_equal(l->rollout.step, 1);
    assert_int_equal(l->rollout.canary_slot, SY_SLOT_BLUE);
    /* the step's interval starts again at restore */
    assert_int_equal(l->rollout.step_started_ms, 4242);
    assert_int_equal(l->rollout.started_wall_ms, 1700000000000);
    assert_false(sy_live_maintenance(&f->svc));
    assert_int_equal(count_aside(f), 0);
}

static void test_maintenance_comes_back(void **state)
{
    struct fixture *f = *state;
    struct sy_service_live *l = f->svc.live;

    reset_live(l);
    atomic_store(&l->maintenance, true);
    sy_state_save(&f->conf);
    reset_live(l);
    assert_int_equal(sy_state_restore(&f->conf, 1, err, sizeof(err)), 0);
    assert_true(sy_live_maintenance(&f->svc));
    /* and off comes back off */
    atomic_store(&l->maintenance, false);
    sy_state_save(&f->conf);
    atomic_store(&l->maintenance, true);
    assert_int_equal(sy_state_restore(&f->conf, 1, err, sizeof(err)), 0);
    assert_false(sy_live_maintenance(&f->svc));
}

/* A file written before "maintenance" existed leaves the configuration's value alone. */
static void test_a_file_without_maintenance_keeps_it(void **state)
{
    struct fixture *f = *state;
    char dir[160];

    snprintf(dir, sizeof(dir), "%s/sub", f->dir);
    (void)mkdir(dir, 0755);
    reset_live(f->svc.live);
    atomic_store(&f->svc.live->maintenance, true);
    write_text(f->path, "{\"version\": 1, \"services\": {\"app\": {\"active\": \"green\", "
               "\"canary_weight\": 0}}}");
    assert_int_equal(sy_state_restore(&f->conf, 1, err, sizeof(err)), 0);
    assert_int_equal(sy_live_active(&f->svc), SY_SLOT_GREEN);
    assert_true(sy_live_maintenance(&f->svc));
    assert_int_equal(count_aside(f), 0);
    /* a value that is not a boolean: the file is set aside whole */
    reset_live(f->svc.live);
    write_text(f->path, "{\"version\": 1, \"services\": {\"app\": {\"active\": \"green\", "
               "\"canary_weight\": 0, \"maintenance\": \"yes\"}}}");
    assert_int_equal(sy_state_restore(&f->conf, 1, err, sizeof(err)), 0);
    assert_int_equal(sy_live_active(&f->svc), SY_SLOT_BLUE);
    assert_false(sy_live_maintenance(&f->svc));
    assert_int_equal(count_aside(f), 1);
}

/* A reload: the file's maintenance.enabled wins only when the file's own value changed. */
static void test_reload_adopts_maintenance_only_when_the_file_changed(void **state)
{
    struct fixture *f = *state;
    struct sy_service_live *l = f->svc.live;

    reset_live(l);
    l->conf_maintenance = false;
    f->svc.maintenance.enabled = true;                 /* the file turns it on */
    sy_live_services_adopt(&f->conf, 1);
    assert_true(sy_live_maintenance(&f->svc));
    atomic_store(&l->maintenance, false);              /* the admin API turns it off */
    sy_live_services_adopt(&f->conf, 2);               /* a reload of the same file */
    assert_false(sy_live_maintenance(&f->svc));
    f->svc.maintenance.enabled = false;                /* the file turns it off */
    sy_live_services_adopt(&f->conf, 3);
    assert_false(sy_live_maintenance(&f->svc));
    atomic_store(&l->maintenance, true);               /* on at run time */
    sy_live_services_adopt(&f->conf, 4);               /* the same file again */
    assert_true(sy_live_maintenance(&f->svc));
    /* the split is left alone throughout */
    assert_int_equal(sy_live_active(&f->svc), SY_SLOT_BLUE);
    assert_int_equal(sy_live_canary_weight(&f->svc), 0);
}

static void test_no_file_keeps_the_configuration(void **state)
{
    struct fixture *f = *state;

    reset_live(f->svc.live);
    assert_int_equal(sy_state_restore(&f->conf, 1, err, sizeof(err)), 0);
    assert_int_equal(sy_live_active(&f->svc), SY_SLOT_BLUE);
    assert_int_equal(count_aside(f), 0);
}

/* Each of these is set aside whole, and nothing of it is used. */
static void test_a_bad_file_is_set_aside(void **state)
{
    static const char *const bad[] = {
        "{\"version\": 1, \"services\": {\"app\": {\"active\": \"gre",
        "",
        "[1, 2]",
        "{\"version\": 2, \"services\": {}}",
        "{\"version\": 1, \"services\": []}",
        "{\"version\": 1, \"services\": {\"app\": {\"active\": \"purple\", \"canary_weight\": 5}}}",
        "{\"version\": 1, \"services\": {\"app\": {\"active\": \"green\", \"canary_weight\": 101}}}",
        "{\"version\": 1, \"services\": {\"app\": {\"active\": \"green\"}}}",
        "{\"version\": 1, \"services\": {\"app\": {\"active\": \"green\", \"canary_weight\": 5, "
        "\"rollout\": {\"state\": \"dancing\", \"step\": 0, \"canary\": \"blue\"}}}}",
        "{\"version\": 1, \"services\": {\"app\": {\"active\": \"green\", \"canary_weight\": 5, "
        "\"rollout\": {\"state\": \"paused\", \"step\": 0, \"canary\": \"blue\", "
        "\"paused_from\": \"promoted\"}}}}",
        /* a good entry before a bad one: still nothing is used */
        "{\"version\": 1, \"services\": {\"app\": {\"active\": \"green\", \"canary_weight\": 5}, "
        "\"other\": {\"active\": \"blue\", \"canary_weight\": -1}}}",
    };
    struct fixture *f = *state;
    char dir[160];

    snprintf(dir, sizeof(dir), "%s/sub", f->dir);
    (void)mkdir(dir, 0755);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reset_live(f->svc.live);
        write_text(f->path, bad[i]);
        assert_int_equal(sy_state_restore(&f->conf, 1, err, sizeof(err)), 0);
        assert_int_equal(sy_live_active(&f->svc), SY_SLOT_BLUE);
        assert_int_equal(sy_live_canary_weight(&f->svc), 0);
        assert_int_equal(f->svc.live->rollout.state, SY_ROLLOUT_IDLE);
        assert_int_equal(access(f->path, F_OK), -1);
        assert_int_equal(count_aside(f), 1);
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -f %s.corrupt-*", f->path);
        assert_int_equal(system(cmd), 0);
    }
}

static void test_unknown_services_are_ignored_and_unfit_rollouts_aborted(void **state)
{
    struct fixture *f = *state;
    char dir[160];

    snprintf(dir, sizeof(dir), "%s/sub", f->dir);
    (void)mkdir(dir, 0755);
    reset_live(f->svc.live);
    write_text(f->path, "{\"version\": 1, \"services\": {"
               "\"gone\": {\"active\": \"green\", \"canary_weight\": 7},"
               "\"app\": {\"active\": \"blue\", \"canary_weight\": 30, \"rollout\": "
               "{\"state\": \"running\", \"step\": 5, \"canary\": \"green\"}}}}");
    assert_int_equal(sy_state_restore(&f->conf, 1, err, sizeof(err)), 0);
    /* the rollout (step 6 of 3) cannot go on: aborted, and the canary's share goes */
    assert_int_equal(sy_live_canary_weight(&f->svc), 0);
    assert_int_equal(f->svc.live->rollout.state, SY_ROLLOUT_ABORTED);
    assert_int_equal(count_aside(f), 0);
}

/* A file that exists but cannot be read is not corrupt: the start stops, nothing moves. */
static void test_an_unreadable_file_stops_the_start(void **state)
{
    struct fixture *f = *state;
    char sub[160];

    snprintf(sub, sizeof(sub), "%s/sub", f->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(mkdir(f->path, 0755), 0);     /* a directory where the file should be */
    reset_live(f->svc.live);
    assert_int_equal(sy_state_restore(&f->conf, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, f->path));
    assert_int_equal(access(f->path, F_OK), 0);
    assert_int_equal(count_aside(f), 0);
    assert_int_equal(rmdir(f->path), 0);
}

static void test_a_failed_write_is_retried(void **state)
{
    struct fixture *f = *state;
    char blocker[160];

    /* a file where the directory should be */
    snprintf(blocker, sizeof(blocker), "%s/sub", f->dir);
    write_text(blocker, "not a directory\n");
    sy_live_service_set(f->svc.live, SY_SLOT_GREEN, 0, 1);
    sy_state_save(&f->conf);
    assert_int_equal(access(f->path, F_OK), -1);
    sy_state_retry(&f->conf);
    assert_int_equal(access(f->path, F_OK), -1);
    assert_int_equal(unlink(blocker), 0);
    sy_state_retry(&f->conf);
    assert_int_equal(access(f->path, R_OK), 0);
    reset_live(f->svc.live);
    assert_int_equal(sy_state_restore(&f->conf, 1, err, sizeof(err)), 0);
    assert_int_equal(sy_live_active(&f->svc), SY_SLOT_GREEN);
}

/* slot_lost_ms: set when a slot loses all its traffic, cleared when it gets some back. */
static void test_slot_lost_marks(void **state)
{
    struct fixture *f = *state;
    struct sy_service_live *l = f->svc.live;

    reset_live(l);
    atomic_store(&l->slot_lost_ms[SY_SLOT_GREEN], 0);
    sy_live_service_set(l, SY_SLOT_BLUE, 20, 100);         /* green gets a canary share */
    assert_int_equal(atomic_load(&l->slot_lost_ms[SY_SLOT_GREEN]), 0);
    sy_live_service_set(l, SY_SLOT_BLUE, 0, 200);          /* rolled back */
    assert_int_equal(atomic_load(&l->slot_lost_ms[SY_SLOT_GREEN]), 200);
    sy_live_service_set(l, SY_SLOT_BLUE, 0, 300);          /* no change: the mark stays */
    assert_int_equal(atomic_load(&l->slot_lost_ms[SY_SLOT_GREEN]), 200);
    sy_live_service_set(l, SY_SLOT_GREEN, 0, 400);         /* switch to green */
    assert_int_equal(atomic_load(&l->slot_lost_ms[SY_SLOT_GREEN]), 0);
    assert_int_equal(atomic_load(&l->slot_lost_ms[SY_SLOT_BLUE]), 400);
    sy_live_service_set(l, SY_SLOT_GREEN, 100, 500);       /* all of it to blue, the canary */
    assert_int_equal(atomic_load(&l->slot_lost_ms[SY_SLOT_BLUE]), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_saved_state_comes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maintenance_comes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_file_without_maintenance_keeps_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_reload_adopts_maintenance_only_when_the_file_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_file_keeps_the_configuration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_file_is_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_unknown_services_are_ignored_and_unfit_rollouts_aborted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_unreadable_file_stops_the_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_write_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_lost_marks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
