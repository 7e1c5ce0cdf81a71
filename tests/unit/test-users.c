/* The user resolver of seed-init and seed exec, over account databases an instance
 * controls: lookups by name and number, groups, root without an entry, and hostile
 * content (malformed lines, huge fields, no newline). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "init/users.h"

static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
                             "# a comment\n"
                             "app:x:1000:1000:app:/home/app:/bin/sh\n"
                             "broken line without fields\n"
                             "bad:x:notanumber:1:x:/x:/bin/sh\n"
                             "www-data:x:33:33:www:/var/www:/usr/sbin/nologin";
static const char group[] = "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nwww-data:x:33:\nbig:x:60:x,app";

static void test_by_name_and_number(void **state) {
    seed_user_ids id;
    char msg[256] = "";
    assert_int_equal(seed_users_lookup(passwd, group, "app", &id, msg, sizeof(msg)), 0);
    assert_int_equal(id.uid, 1000);
    assert_int_equal(id.gid, 1000);
    assert_string_equal(id.home, "/home/app");
    assert_int_equal(id.n_groups, 3); /* 1000, then staff and big */
    assert_int_equal(id.groups[0], 1000);
    assert_int_equal(id.groups[1], 50);
    assert_int_equal(id.groups[2], 60);
    assert_int_equal(seed_users_lookup(passwd, group, "33", &id, msg, sizeof(msg)), 0);
    assert_int_equal(id.uid, 33);
    assert_string_equal(id.home, "/var/www"); /* a last line without a newline */
    assert_int_equal(seed_users_lookup(passwd, group, "app:staff", &id, msg, sizeof(msg)), 0);
    assert_int_equal(id.gid, 50);
    assert_int_equal(seed_users_lookup(passwd, group, "4321:77", &id, msg, sizeof(msg)), 0);
    assert_int_equal(id.uid, 4321);
    assert_int_equal(id.gid, 77);
    assert_int_equal(id.n_groups, 1);
}

static void test_missing(void **state) {
    seed_user_ids id;
    char msg[256] = "";
    assert_int_equal(seed_users_lookup(passwd, group, "ghost", &id, msg, sizeof(msg)), -ENOENT);
    assert_non_null(strstr(msg, "user \"ghost\" does not exist"));
    assert_int_equal(seed_users_lookup(passwd, group, "app:nogroup", &id, msg, sizeof(msg)), -ENOENT);
    assert_non_null(strstr(msg, "group \"nogroup\" does not exist"));
    assert_int_equal(seed_users_lookup(passwd, group, "bad", &id, msg, sizeof(msg)), -ENOENT);
}

static void test_root_needs_no_entry(void **state) {
    seed_user_ids id;
    char msg[256] = "";
    assert_int_equal(seed_users_lookup(NULL, NULL, "root", &id, msg, sizeof(msg)), 0);
    assert_int_equal(id.uid, 0);
    assert_int_equal(id.gid, 0);
    assert_string_equal(id.home, "/root");
    assert_int_equal(seed_users_lookup("app:x:1000:1000::/h:/bin/sh\n", NULL, "0", &id, msg, sizeof(msg)), 0);
    assert_int_equal(id.uid, 0);
}

static void test_hostile_content(void **state) {
    /* one huge line, a huge name, many groups: linear and bounded */
    size_t n = 4u << 20;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'a', n);
    big[n] = 0;
    seed_user_ids id;
    char msg[256] = "";
    assert_int_equal(seed_users_lookup(big, big, "app", &id, msg, sizeof(msg)), -ENOENT);
    memcpy(big, "app:x:1:1::/h:/s\n", 17);
    for (size_t i = 17; i + 40 < n; i += 40)
        memcpy(big + i, "g:x:99:app,app,app,app,app,app,app,aa\n", 39), big[i + 39] = '\n';
    assert_int_equal(seed_users_lookup(big, big + 17, "app", &id, msg, sizeof(msg)), 0);
    assert_true(id.n_groups <= SEED_USER_MAX_GROUPS);
    free(big);
}

/* The spec's users appended to an image's databases: only those missing (by name),
 * after content that may lack its last newline; nothing at all from nothing. */
static void test_accounts_merge(void **state) {
    const seed_account a[] = {
        {.name = "app", .uid = 1000, .gid = 1000, .shell = "/bin/sh", .home = "/home/app"},
        {.name = "bob", .uid = 1001, .gid = 100, .shell = "/bin/bash", .home = "/srv/bob"}};
    char *out = NULL;
    size_t added;
    assert_int_equal(seed_accounts_merge(SEED_DB_PASSWD, "root:x:0:0::/root:/bin/sh\napp:x:7:7::/a:/bin/sh",
                                         a, 2, &out, &added),
                     0);
    assert_int_equal(added, 1);
    assert_string_equal(
        out, "root:x:0:0::/root:/bin/sh\napp:x:7:7::/a:/bin/sh\nbob:x:1001:100::/srv/bob:/bin/bash\n");
    free(out);
    assert_int_equal(seed_accounts_merge(SEED_DB_GROUP, "root:x:0:\n", a, 2, &out, &added), 0);
    assert_int_equal(added, 2);
    assert_string_equal(out, "root:x:0:\napp:x:1000:\nbob:x:100:\n");
    free(out);
    assert_int_equal(seed_accounts_merge(SEED_DB_SHADOW, NULL, a, 1, &out, &added), 0);
    assert_int_equal(added, 1);
    assert_string_equal(out, "app:*:19000:0:99999:7:::\n");
    free(out);
    /* "application" is not "app". */
    assert_int_equal(seed_accounts_merge(SEED_DB_SHADOW, "application:!:1::::::\n", a, 1, &out, &added), 0);
    assert_int_equal(added, 1);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accounts_merge),  cmocka_unit_test(test_by_name_and_number),
        cmocka_unit_test(test_missing),         cmocka_unit_test(test_root_needs_no_entry),
        cmocka_unit_test(test_hostile_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
