/* Messages from inside a sandbox are input: the init channel parser accepts exactly
 * well-formed records and refuses short, overlong-name and overrunning ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "init/protocol.h"

static size_t build(char *buf, uint16_t name_len, const char *name, const char *data) {
    seed_init_hdr h = {.type = SEED_INIT_LOG, .stream = SEED_STREAM_STDOUT, .name_len = name_len};
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), name, strlen(name));
    memcpy(buf + sizeof(h) + strlen(name), data, strlen(data));
    return sizeof(h) + strlen(name) + strlen(data);
}

static void test_well_formed(void **state) {
    char buf[512], name[256];
    size_t n = build(buf, 5, "httpd", "hello");
    seed_init_hdr h;
    const char *data;
    size_t len;
    assert_int_equal(seed_init_msg_parse(buf, n, &h, name, &data, &len), 0);
    assert_string_equal(name, "httpd");
    assert_int_equal(len, 5);
    assert_memory_equal(data, "hello", 5);
    assert_int_equal(h.type, SEED_INIT_LOG);
}

static void test_empty_name_and_data(void **state) {
    char buf[64], name[256];
    size_t n = build(buf, 0, "", "");
    seed_init_hdr h;
    const char *data;
    size_t len;
    assert_int_equal(seed_init_msg_parse(buf, n, &h, name, &data, &len), 0);
    assert_string_equal(name, "");
    assert_int_equal(len, 0);
}

static void test_refused(void **state) {
    static char buf[SEED_INIT_MAX_MSG];
    char name[256];
    seed_init_hdr h;
    const char *data;
    size_t len;
    /* shorter than a header */
    assert_int_equal(seed_init_msg_parse(buf, sizeof(h) - 1, &h, name, &data, &len), -EBADMSG);
    /* a name longer than 255 bytes, even when the message is long enough for it */
    memset(buf, 'x', sizeof(buf));
    size_t n = build(buf, 16000, "", "");
    (void)n;
    assert_int_equal(seed_init_msg_parse(buf, sizeof(buf), &h, name, &data, &len), -EBADMSG);
    /* a name that runs past the end */
    n = build(buf, 200, "abc", "");
    assert_int_equal(seed_init_msg_parse(buf, n, &h, name, &data, &len), -EBADMSG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_formed),
        cmocka_unit_test(test_empty_name_and_data),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
