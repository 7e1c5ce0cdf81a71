/* Name and path validation: DNS labels, service names, mount points, env names,
 * users, and the connect variable name mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "spec/names.h"

static void test_dns_label(void **state) {
    assert_null(seed_check_dns_label("web", 58));
    assert_null(seed_check_dns_label("a", 58));
    assert_null(seed_check_dns_label("9lives", 58));
    assert_null(seed_check_dns_label("my-app-2", 58));
    assert_non_null(seed_check_dns_label("", 58));
    assert_non_null(seed_check_dns_label("Web", 58));
    assert_non_null(seed_check_dns_label("-web", 58));
    assert_non_null(seed_check_dns_label("web-", 58));
    assert_non_null(seed_check_dns_label("we_b", 58));
    assert_non_null(seed_check_dns_label("we.b", 58));
    char long_name[60];
    memset(long_name, 'a', 58);
    long_name[58] = 0;
    assert_null(seed_check_dns_label(long_name, 58));
    long_name[58] = 'a';
    long_name[59] = 0;
    assert_non_null(strstr(seed_check_dns_label(long_name, 58), "seed-<name>"));
}

static void test_hostname(void **state) {
    assert_null(seed_check_hostname("seed-db"));
    assert_null(seed_check_hostname("db.example.com"));
    assert_null(seed_check_hostname("10.0.0.1"));
    assert_non_null(seed_check_hostname(""));
    assert_non_null(seed_check_hostname("a..b"));
    assert_non_null(seed_check_hostname(".a"));
    assert_non_null(seed_check_hostname("a_b"));
    assert_non_null(seed_check_hostname("-a"));
    assert_non_null(seed_check_hostname("a b"));
}

static void mp_ok(const char *in, const char *want) {
    char *out = NULL;
    const char *why = seed_normalize_mount_point(in, &out);
    if (why)
        fail_msg("\"%s\": %s", in, why);
    assert_string_equal(out, want);
    free(out);
}

static void mp_bad(const char *in, const char *needle) {
    char *out = NULL;
    const char *why = seed_normalize_mount_point(in, &out);
    if (!why)
        fail_msg("\"%s\" accepted as \"%s\"", in, out);
    if (!strstr(why, needle))
        fail_msg("\"%s\": \"%s\" lacks \"%s\"", in, why, needle);
    assert_null(out);
}

static void test_mount_points(void **state) {
    mp_ok("/data", "/data");
    mp_ok("/data/", "/data");
    mp_ok("//var//lib///pg/", "/var/lib/pg");
    mp_ok("/tmp/cache", "/tmp/cache");
    mp_ok("/proceeds", "/proceeds");
    mp_ok("/seed/storage/data", "/seed/storage/data");
    mp_bad("data", "absolute");
    mp_bad("", "absolute");
    mp_bad("/a/../b", "..");
    mp_bad("/a/./b", "..");
    mp_bad("/..", "..");
    mp_bad("/", "reserved");
    mp_bad("//", "reserved");
    mp_bad("/proc", "reserved");
    mp_bad("/proc/sys", "reserved");
    mp_bad("/sys", "reserved");
    mp_bad("/dev", "reserved");
    mp_bad("/dev/shm", "reserved");
    mp_bad("/run/seed", "reserved");
    mp_bad("/etc/seed/connect", "reserved");
    mp_bad("/seed/bin", "reserved");
    mp_bad("/a\nb", "control");
}

static void test_env_names(void **state) {
    assert_null(seed_check_env_name("PATH"));
    assert_null(seed_check_env_name("_x1"));
    assert_null(seed_check_env_name("my.var"));
    assert_non_null(seed_check_env_name(""));
    assert_non_null(seed_check_env_name("1X"));
    assert_non_null(seed_check_env_name("A=B"));
    assert_non_null(seed_check_env_name("A B"));
    assert_non_null(strstr(seed_check_env_name("SEED_SHOOT_URL"), "reserved"));
}

static void test_users(void **state) {
    assert_null(seed_check_user("root"));
    assert_null(seed_check_user("www-data"));
    assert_null(seed_check_user("1000"));
    assert_null(seed_check_user("1000:1000"));
    assert_null(seed_check_user("app:staff"));
    assert_non_null(seed_check_user(""));
    assert_non_null(seed_check_user(":1"));
    assert_non_null(seed_check_user("1:"));
    assert_non_null(seed_check_user("Root"));
    assert_non_null(seed_check_user("a b"));
    assert_non_null(seed_check_user("4294967295"));
    assert_non_null(seed_check_user("1:2:3"));
}

static void test_process_and_connect_names(void **state) {
    assert_null(seed_check_process_name("httpd"));
    assert_null(seed_check_process_name("Worker_1.main"));
    assert_non_null(seed_check_process_name("-x"));
    assert_non_null(seed_check_process_name("a/b"));
    assert_null(seed_check_connect_name("db"));
    assert_null(seed_check_connect_name("my-redis"));
    assert_non_null(seed_check_connect_name("1db"));
    assert_non_null(seed_check_connect_name("d b"));
}

static void test_connect_env_name(void **state) {
    char *n = seed_connect_env_name("my-redis");
    assert_string_equal(n, "SEED_MY_REDIS_HOST");
    free(n);
    n = seed_connect_env_name("db");
    assert_string_equal(n, "SEED_DB_HOST");
    free(n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns_label),
        cmocka_unit_test(test_hostname),
        cmocka_unit_test(test_mount_points),
        cmocka_unit_test(test_env_names),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_process_and_connect_names),
        cmocka_unit_test(test_connect_env_name),
    };
    return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
