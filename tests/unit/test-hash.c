/* Hashes and encodings: SHA-256, base32, the namespace formula (Seed's test
 * vectors) and the generation of an empty project. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/hash.h"
#include "spec/spec.h"

static void test_sha256_hex(void **state) {
    char hex[65];
    assert_int_equal(seed_sha256_hex("", 0, hex), 0);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(seed_sha256_hex("abc", 3, hex), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sha256_streaming_matches_oneshot(void **state) {
    seed_sha256 *h = seed_sha256_new();
    assert_non_null(h);
    seed_sha256_update(h, "a", 1);
    seed_sha256_update(h, "bc", 2);
    uint8_t d[32];
    seed_sha256_final(h, d);
    char a[65], b[65];
    seed_hex(d, 32, a);
    seed_sha256_hex("abc", 3, b);
    assert_string_equal(a, b);
}

static void test_base32_rfc4648_vectors(void **state) {
    /* RFC 4648 section 10, without padding. */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"", "MY", "MZXQ", "MZXW6", "MZXW6YQ", "MZXW6YTB", "MZXW6YTBOI"};
    for (size_t i = 0; i < 7; i++) {
        char buf[32];
        size_t n = seed_base32((const uint8_t *)in[i], strlen(in[i]), buf);
        assert_int_equal(n, strlen(out[i]));
        assert_string_equal(buf, out[i]);
    }
}

static void test_namespace_vectors(void **state) {
    char ns[16];
    assert_int_equal(seed_namespace_from_uri("github:loomtex/seed", ns), 0);
    assert_string_equal(ns, "s-gaydazldmnsg");
    assert_int_equal(seed_namespace_from_uri("github:example/infra", ns), 0);
    assert_string_equal(ns, "s-gjstmojyha4t");
}

static void test_namespace_shape(void **state) {
    char ns[16];
    assert_int_equal(seed_namespace_from_uri("path:/srv/project", ns), 0);
    assert_int_equal(strlen(ns), 14);
    assert_memory_equal(ns, "s-", 2);
    for (int i = 2; i < 14; i++)
        assert_true((ns[i] >= 'a' && ns[i] <= 'z') || (ns[i] >= '2' && ns[i] <= '7'));
}

static void test_generation_of_empty_project(void **state) {
    seed_project p = {0};
    char g[13];
    assert_int_equal(seed_project_generation(&p, g), 0);
    assert_string_equal(g, "e3b0c44298fc");
}

static void test_generation_is_over_sorted_lines(void **state) {
    seed_instance inst[2] = {{.name = "a"}, {.name = "b"}};
    strcpy(inst[0].identity, "111");
    strcpy(inst[1].identity, "222");
    seed_project p = {.instances = inst, .n_instances = 2};
    char g[13], want[65];
    assert_int_equal(seed_project_generation(&p, g), 0);
    const char *lines = "a=111\nb=222\n";
    seed_sha256_hex(lines, strlen(lines), want);
    want[12] = 0;
    assert_string_equal(g, want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_hex),
        cmocka_unit_test(test_sha256_streaming_matches_oneshot),
        cmocka_unit_test(test_base32_rfc4648_vectors),
        cmocka_unit_test(test_namespace_vectors),
        cmocka_unit_test(test_namespace_shape),
        cmocka_unit_test(test_generation_of_empty_project),
        cmocka_unit_test(test_generation_is_over_sorted_lines),
    };
    return cmocka_run_group_tests_name("hash", tests, NULL, NULL);
}
