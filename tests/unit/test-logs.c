/* Instance log files: line format, UTF-8 repair, size-based rotation, tail across the
 * rotated file, and followers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/utf8.h"
#include "init/protocol.h"
#include "node/logs.h"

static char dir[64];

static int setup(void **state) {
    strcpy(dir, "/tmp/seed-test-logs.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static char *path_of(const char *name) {
    static char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return p;
}

static void test_line_format(void **state) {
    seed_logfile *lf = NULL;
    assert_int_equal(seed_logfile_open(path_of("a.log"), 0, &lf, NULL), 0);
    /* 2026-11-21T10:00:00.000123Z */
    seed_logfile_append(lf, 1795255200000123ull, "httpd", SEED_STREAM_STDOUT, "hello", 5);
    seed_logfile_append(lf, 1795255200000123ull, "httpd", SEED_STREAM_STDERR, "oops", 4);
    seed_logfile_append(lf, 1795255200000123ull, "httpd", SEED_STREAM_INIT, "exited", 6);
    seed_logfile_append(lf, 1795255200000123ull, "seed", SEED_STREAM_INIT, "started", 7);
    seed_logfile_close(lf);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(seed_logfile_tail(path_of("a.log"), 0, &text, &len), 0);
    assert_string_equal(text, "2026-11-21T10:00:00.000123Z httpd: hello\n"
                              "2026-11-21T10:00:00.000123Z httpd (stderr): oops\n"
                              "2026-11-21T10:00:00.000123Z httpd (seed): exited\n"
                              "2026-11-21T10:00:00.000123Z seed: started\n");
    free(text);
}

static void test_invalid_utf8_is_replaced(void **state) {
    seed_logfile *lf = NULL;
    assert_int_equal(seed_logfile_open(path_of("u.log"), 0, &lf, NULL), 0);
    seed_logfile_append(lf, 0, "p", SEED_STREAM_STDOUT,
                        "a\xff"
                        "b\0c\xc3\xa9",
                        7);
    seed_logfile_close(lf);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(seed_logfile_tail(path_of("u.log"), 0, &text, &len), 0);
    assert_non_null(strstr(text, "p: a\xef\xbf\xbd"
                                 "b\xef\xbf\xbd"
                                 "c\xc3\xa9\n"));
    assert_true(seed_utf8_valid(text, len));
    free(text);
}

static void test_rotation_and_tail(void **state) {
    seed_logfile *lf = NULL;
    assert_int_equal(seed_logfile_open(path_of("r.log"), 400, &lf, NULL), 0);
    for (int i = 0; i < 40; i++) {
        char line[32];
        int n = snprintf(line, sizeof(line), "line %02d", i);
        seed_logfile_append(lf, 0, "p", SEED_STREAM_STDOUT, line, (size_t)n);
    }
    seed_logfile_close(lf);
    struct stat st;
    assert_int_equal(stat(path_of("r.log.1"), &st), 0);
    assert_true(st.st_size <= 400);
    assert_int_equal(stat(path_of("r.log"), &st), 0);
    assert_true(st.st_size <= 400);
    assert_int_equal(access(path_of("r.log.2"), F_OK), -1); /* one old file is kept */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(seed_logfile_tail(path_of("r.log"), 3, &text, &len), 0);
    assert_non_null(strstr(text, "line 37\n"));
    assert_non_null(strstr(text, "line 39\n"));
    assert_null(strstr(text, "line 36"));
    free(text);
    /* A tail longer than the current file reaches into the rotated one. */
    assert_int_equal(seed_logfile_tail(path_of("r.log"), 12, &text, &len), 0);
    assert_non_null(strstr(text, "line 28\n"));
    free(text);
}

static int calls;
static char last[256];

static void follower(void *userdata, const char *line, size_t len) {
    calls++;
    snprintf(last, sizeof(last), "%.*s", (int)len, line);
    if (userdata)
        seed_logfile_unfollow(userdata, userdata); /* unfollowing from the callback is allowed */
}

static void test_followers(void **state) {
    seed_logfile *lf = NULL;
    assert_int_equal(seed_logfile_open(path_of("f.log"), 0, &lf, NULL), 0);
    assert_int_equal(seed_logfile_follow(lf, follower, NULL), 0);
    seed_logfile_append(lf, 0, "p", SEED_STREAM_STDOUT, "one", 3);
    assert_int_equal(calls, 1);
    assert_non_null(strstr(last, "p: one\n"));
    seed_logfile_unfollow(lf, NULL);
    seed_logfile_append(lf, 0, "p", SEED_STREAM_STDOUT, "two", 3);
    assert_int_equal(calls, 1);
    assert_int_equal(seed_logfile_follow(lf, follower, lf), 0);
    seed_logfile_append(lf, 0, "p", SEED_STREAM_STDOUT, "three", 5);
    seed_logfile_append(lf, 0, "p", SEED_STREAM_STDOUT, "four", 4);
    assert_int_equal(calls, 2);
    seed_logfile_close(lf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_invalid_utf8_is_replaced),
        cmocka_unit_test(test_rotation_and_tail),
        cmocka_unit_test(test_followers),
    };
    return cmocka_run_group_tests_name("logs", tests, setup, teardown);
}
