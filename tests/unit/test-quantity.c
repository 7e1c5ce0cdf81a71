/* Storage quantities in Kubernetes syntax: every suffix, fractions rounded up,
 * exponents, and each kind of malformed or out-of-range size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "spec/spec.h"

static void ok(const char *s, uint64_t want) {
    uint64_t got = 0;
    char *msg = NULL;
    int r = seed_parse_quantity(s, &got, &msg);
    if (r != 0)
        fail_msg("\"%s\": unexpected error %d: %s", s, r, msg ? msg : "");
    if (got != want)
        fail_msg("\"%s\": got %llu, want %llu", s, (unsigned long long)got, (unsigned long long)want);
    free(msg);
}

static void bad(const char *s, int code, const char *needle) {
    uint64_t got = 0;
    char *msg = NULL;
    int r = seed_parse_quantity(s, &got, &msg);
    if (r != -code)
        fail_msg("\"%s\": got %d (%llu), want %d", s, r, (unsigned long long)got, -code);
    assert_non_null(msg);
    if (!strstr(msg, needle))
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", s, msg, needle);
    free(msg);
}

static void test_binary_suffixes(void **state) {
    ok("1Ki", 1024);
    ok("500Mi", 500ull << 20);
    ok("1Gi", 1ull << 30);
    ok("2Ti", 2ull << 40);
    ok("1Pi", 1ull << 50);
    ok("7Ei", 7ull << 60);
}

static void test_decimal_suffixes(void **state) {
    ok("1k", 1000);
    ok("10G", 10000000000ull);
    ok("1M", 1000000);
    ok("3T", 3000000000000ull);
    ok("1P", 1000000000000000ull);
    ok("9E", 9000000000000000000ull);
}

static void test_plain_bytes(void **state) {
    ok("1073741824", 1073741824ull);
    ok("+42", 42);
    ok("007", 7);
}

static void test_fractions_round_up(void **state) {
    ok("1.5Gi", 1610612736ull);
    ok("0.5Ki", 512);
    ok(".5Ki", 512);
    ok("1.Mi", 1ull << 20);
    ok("0.001Ki", 2); /* 1.024 bytes rounds up */
    ok("1.1", 2);
    ok("0.05", 1);
}

static void test_exponents(void **state) {
    ok("1e9", 1000000000ull);
    ok("1E3", 1000);
    ok("15e-1", 2);
    ok("2.5e+3", 2500);
}

static void test_malformed(void **state) {
    bad("", EINVAL, "malformed");
    bad("Gi", EINVAL, "malformed");
    bad("1GB", EINVAL, "malformed");
    bad("1 Gi", EINVAL, "malformed");
    bad("1gi", EINVAL, "malformed");
    bad("1.2.3", EINVAL, "malformed");
    bad("1e", EINVAL, "malformed");
    bad("1e+", EINVAL, "malformed");
    bad("0x10", EINVAL, "malformed");
    bad("1Ki ", EINVAL, "malformed");
    bad("12QQ", EINVAL, "malformed");
    bad("1m", EINVAL, "thousandths");
}

static void test_zero_and_negative(void **state) {
    bad("0", EINVAL, "zero");
    bad("0Gi", EINVAL, "zero");
    bad("0.0", EINVAL, "zero");
    bad("-1Gi", EINVAL, "negative");
    bad("-0.5", EINVAL, "negative");
}

static void test_out_of_range(void **state) {
    bad("8Ei", ERANGE, "too large");
    bad("10E", ERANGE, "too large");
    bad("99999999999999999999", ERANGE, "too large");
    bad("1e99", ERANGE, "exponent");
    bad("1234567890123456789012345678901234567", ERANGE, "digits");
    ok("9223372036854775807", 9223372036854775807ull);
    bad("9223372036854775808", ERANGE, "too large");
}

static void test_tiny_positive_rounds_to_one_byte(void **state) {
    ok("1e-30", 1);
    ok("0.000000000000000000000000000000001Ei", 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_suffixes),
        cmocka_unit_test(test_decimal_suffixes),
        cmocka_unit_test(test_plain_bytes),
        cmocka_unit_test(test_fractions_round_up),
        cmocka_unit_test(test_exponents),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_zero_and_negative),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_tiny_positive_rounds_to_one_byte),
    };
    return cmocka_run_group_tests_name("quantity", tests, NULL, NULL);
}
