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

/* One field of one account set: replaced, kept when not empty (when_empty), or the
 * fallback line appended when the account has no line. */
static void test_db_set_field(void **state) {
    char *out = NULL;
    bool changed;
    const char *shadow = "daemon:*:1::::::\nroot::19000:0:99999:7:::\nrooty:x:1::::::";
    assert_int_equal(seed_db_set_field(shadow, "root", 1, "$y$abc", false, NULL, &out, &changed), 0);
    assert_true(changed);
    assert_string_equal(out, "daemon:*:1::::::\nroot:$y$abc:19000:0:99999:7:::\nrooty:x:1::::::\n");
    free(out);
    /* only an empty field */
    assert_int_equal(seed_db_set_field("root:!:1::::::\n", "root", 1, "*", true, NULL, &out, &changed), 0);
    assert_false(changed);
    assert_string_equal(out, "root:!:1::::::\n");
    free(out);
    assert_int_equal(
        seed_db_set_field("root::0:0::/root:/bin/sh\n", "root", 1, "*", true, NULL, &out, &changed), 0);
    assert_true(changed);
    assert_string_equal(out, "root:*:0:0::/root:/bin/sh\n");
    free(out);
    /* no line: the fallback, or nothing */
    assert_int_equal(seed_db_set_field(NULL, "root", 1, "h", false, "root:h:1::::::", &out, &changed), 0);
    assert_true(changed);
    assert_string_equal(out, "root:h:1::::::\n");
    free(out);
    assert_int_equal(seed_db_set_field("rooty:x\n", "root", 1, "h", false, NULL, &out, &changed), 0);
    assert_false(changed);
    free(out);
    /* the last field */
    assert_int_equal(seed_db_set_field("a:b:c", "a", 2, "Z", false, NULL, &out, &changed), 0);
    assert_string_equal(out, "a:b:Z\n");
    free(out);
}

static void test_ssh_keys_split(void **state) {
    char *keys[4];
    size_t n =
        seed_ssh_keys_split(" ssh-ed25519 AAA a@b ,ssh-rsa BBB\r\n\n# comment\n,, ecdsa CCC\n x y", keys, 4);
    assert_int_equal(n, 4);
    assert_string_equal(keys[0], "ssh-ed25519 AAA a@b");
    assert_string_equal(keys[1], "ssh-rsa BBB");
    assert_string_equal(keys[2], "ecdsa CCC");
    assert_string_equal(keys[3], "x y");
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    assert_int_equal(seed_ssh_keys_split(" ,\n\t", keys, 4), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accounts_merge),  cmocka_unit_test(test_db_set_field),
        cmocka_unit_test(test_ssh_keys_split),  cmocka_unit_test(test_by_name_and_number),
        cmocka_unit_test(test_missing),         cmocka_unit_test(test_root_needs_no_entry),
        cmocka_unit_test(test_hostile_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
