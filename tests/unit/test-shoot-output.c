/* A shoot's output is encoded as it arrives and bounded as encoded: text is the same
 * however it was split into reads (and what the JSON library would write for the
 * repaired text), no stream passes its cap in either encoding, and the answer is
 * valid JSON of exactly the announced size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "shoot/request.h"

/* Mixed text: ASCII, escapes, 2-4 byte characters, and broken sequences. */
static const char mixed[] =
    "plain \"quoted\" back\\slash\n\ttab\x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"
    " bad:\xff\xfe \xc3 \xe2\x82 \xf0\x9f\x98 overlong:\xc0\xaf \xe0\x80\x80 surrogate:"
    "\xed\xa0\x80 nul:\0: end\xe2";

static char *encode_split(const char *data, size_t n, size_t max, bool base64, size_t step, size_t *len,
                          bool *truncated) {
    seed_shoot_stream st;
    seed_shoot_stream_init(&st, max, base64);
    for (size_t o = 0; o < n; o += step)
        seed_shoot_stream_add(&st, data + o, o + step <= n ? step : n - o);
    seed_shoot_stream_end(&st);
    char *out = malloc(st.len + 1);
    memcpy(out, st.data ? st.data : "", st.len);
    out[st.len] = 0;
    *len = st.len;
    *truncated = st.truncated;
    seed_shoot_stream_clear(&st);
    return out;
}

/* What jansson writes for the repaired text, without the quotes. */
static char *reference(const char *data, size_t n) {
    char *clean = malloc(3 * n + 1);
    size_t k = seed_utf8_sanitize(data, n, clean);
    json_t *s = json_stringn(clean, k);
    char *dump = json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(s);
    free(clean);
    size_t l = strlen(dump);
    memmove(dump, dump + 1, l - 2);
    dump[l - 2] = 0;
    return dump;
}

static void test_text_independent_of_reads(void **state) {
    size_t n = sizeof(mixed) - 1;
    char *want = reference(mixed, n);
    for (size_t step = 1; step <= n; step++) {
        size_t len;
        bool tr;
        char *got = encode_split(mixed, n, 1 << 20, false, step, &len, &tr);
        assert_false(tr);
        assert_string_equal(got, want);
        free(got);
    }
    free(want);
}

static void test_text_cap_counts_encoded_bytes(void **state) {
    /* NUL becomes U+FFFD (3 bytes), a control character \u00XX (6): the cap holds. */
    size_t n = 1 << 20;
    char *zeros = calloc(1, n), *ctl = malloc(n);
    memset(ctl, 1, n);
    for (size_t max = 1000; max < 1010; max++) {
        size_t len;
        bool tr;
        char *got = encode_split(zeros, n, max, false, 65536, &len, &tr);
        assert_true(tr);
        assert_true(len <= max && len > max - 3);
        assert_int_equal(len % 3, 0);
        free(got);
        got = encode_split(ctl, n, max, false, 4096, &len, &tr);
        assert_true(tr && len <= max && len > max - 6);
        free(got);
    }
    /* ASCII runs are cut exactly at the cap; a cut is never followed by more text */
    size_t len;
    bool tr;
    char *got = encode_split("aaaa\nbbbb", 9, 5, false, 9, &len, &tr);
    assert_true(tr);
    assert_string_equal(got, "aaaa");
    free(got);
    free(zeros);
    free(ctl);
}

static void test_base64_cap(void **state) {
    size_t n = 100000;
    unsigned char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    for (size_t max = 998; max < 1003; max++) {
        size_t len;
        bool tr;
        char *got = encode_split((char *)data, n, max, true, 7, &len, &tr);
        assert_true(tr && len <= max && len > max - 4 && len % 4 == 0);
        char *dec;
        size_t dlen;
        assert_int_equal(seed_base64_decode(got, len, &dec, &dlen), 0);
        assert_int_equal(dlen, max / 4 * 3);
        assert_memory_equal(dec, data, dlen);
        free(dec);
        free(got);
    }
    /* Uncut, any split, with padding at the end */
    for (size_t total = 0; total < 8; total++) {
        for (size_t step = 1; step <= 3; step++) {
            size_t len;
            bool tr;
            char *got = encode_split((char *)data, total, 64, true, step, &len, &tr);
            size_t wl;
            char *want = seed_base64_encode(data, total, &wl);
            assert_false(tr);
            assert_string_equal(got, want);
            free(want);
            free(got);
        }
    }
    free(data);
}

static void test_reply_is_json_of_its_size(void **state) {
    for (int b64 = 0; b64 < 2; b64++) {
        seed_shoot_output o = {
            .exit_code = 137, .signal = 9, .timed_out = true, .duration_ms = 42, .base64 = b64};
        seed_shoot_stream_init(&o.out, 64, b64);
        seed_shoot_stream_init(&o.err, 64, b64);
        seed_shoot_stream_add(&o.out, mixed, sizeof(mixed) - 1);
        seed_shoot_stream_add(&o.err, "oops\n", 5);
        seed_shoot_stream_end(&o.out);
        seed_shoot_stream_end(&o.err);
        seed_shoot_reply *r = seed_shoot_reply_new(&o);
        assert_non_null(r);
        assert_null(o.out.data);
        size_t size = seed_shoot_reply_size(r);
        assert_true(size <= 2 * 64 + SEED_SHOOT_REPLY_OVERHEAD);
        char *buf = malloc(size + 10);
        size_t got = 0;
        for (size_t k; (k = seed_shoot_reply_read(r, got, buf + got, 5)) > 0;)
            got += k;
        assert_int_equal(got, size);
        json_error_t e;
        json_t *j = json_loadb(buf, size, 0, &e);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "exitCode")), 137);
        assert_string_equal(json_string_value(json_object_get(j, "signal")), "SIGKILL");
        assert_true(json_is_true(json_object_get(j, "timedOut")));
        assert_true(json_is_true(json_object_get(j, "truncated")));
        assert_int_equal(json_integer_value(json_object_get(j, "durationMs")), 42);
        assert_string_equal(json_string_value(json_object_get(j, "stderr")), b64 ? "b29wcwo=" : "oops\n");
        assert_int_equal(json_object_get(j, "encoding") != NULL, b64);
        json_decref(j);
        free(buf);
        seed_shoot_reply_free(r);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_independent_of_reads),
        cmocka_unit_test(test_text_cap_counts_encoded_bytes),
        cmocka_unit_test(test_base64_cap),
        cmocka_unit_test(test_reply_is_json_of_its_size),
    };
    return cmocka_run_group_tests_name("shoot-output", tests, NULL, NULL);
}
