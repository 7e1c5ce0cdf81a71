/* The JSON writer writes byte for byte what jansson writes for the same values, in
 * both styles: pretty (JSON_INDENT(2)) and canonical (compact, sorted keys, ASCII). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonw.h"

static const char *const tricky[] = {
    "",
    "plain",
    "caf\xc3\xa9 \xe2\x82\xac \xe2\x80\xa8 \xf0\x9f\x98\x80",
    "tab\there \x01\x1f\x7f \"quoted\" back\\slash /slash\nnew\rret\bbs\fff",
};

/* Write v (a tree from jansson) with the writer, in the order jansson iterates. */
static void write_tree(seed_jw *w, json_t *v) {
    const char *k;
    json_t *x;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        seed_jw_object_begin(w);
        json_object_foreach (v, k, x) {
            seed_jw_key(w, k);
            write_tree(w, x);
        }
        seed_jw_object_end(w);
        break;
    case JSON_ARRAY:
        seed_jw_array_begin(w);
        json_array_foreach (v, i, x)
            write_tree(w, x);
        seed_jw_array_end(w);
        break;
    case JSON_STRING:
        seed_jw_string(w, json_string_value(v));
        break;
    case JSON_INTEGER:
        seed_jw_int(w, json_integer_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        seed_jw_bool(w, json_is_true(v));
        break;
    default:
        seed_jw_null(w);
        break;
    }
}

static json_t *sample(void) {
    json_t *o = json_object();
    /* Keys out of order, prefixes of each other, non-ASCII: sorting must agree. */
    static const char *const keys[] = {"zeta", "a", "ab", "A", "a_b", "\xc3\xa9t\xc3\xa9", "aa", "b"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *inner = json_object();
        for (size_t j = 0; j < sizeof(tricky) / sizeof(tricky[0]); j++) {
            char key[8];
            snprintf(key, sizeof(key), "k%zu", (j * 7 + i) % 10);
            json_object_set_new(inner, key, json_string(tricky[j]));
        }
        json_object_set_new(inner, "empty", json_object());
        json_object_set_new(inner, "none", json_array());
        json_object_set_new(o, keys[i], inner);
    }
    json_t *arr = json_array();
    for (size_t j = 0; j < sizeof(tricky) / sizeof(tricky[0]); j++)
        json_array_append_new(arr, json_string(tricky[j]));
    json_array_append_new(arr, json_integer(0));
    json_array_append_new(arr, json_integer(-42));
    json_array_append_new(arr, json_integer(INT64_MAX));
    json_array_append_new(arr, json_integer(INT64_MIN));
    json_array_append_new(arr, json_true());
    json_array_append_new(arr, json_false());
    json_array_append_new(arr, json_null());
    json_array_append_new(arr, json_pack("[[{}], {s:[]}]", "x"));
    json_object_set_new(o, "list", arr);
    json_object_set_new(o, "n", json_pack("{s:{s:{s:i}}}", "y", "x", "w", 1));
    return o;
}

static void check_style(json_t *v, seed_jw_style style, size_t flags) {
    seed_jw w = {.style = style};
    write_tree(&w, v);
    assert_int_equal(seed_jw_finish(&w), 0);
    char *want = json_dumps(v, flags);
    assert_non_null(want);
    assert_string_equal(w.buf, want);
    assert_int_equal(w.len, strlen(want));
    free(want);
    /* A reused writer writes the same again. */
    seed_jw_reset(&w, style);
    write_tree(&w, v);
    assert_int_equal(seed_jw_finish(&w), 0);
    want = json_dumps(v, flags);
    assert_string_equal(w.buf, want);
    free(want);
    seed_jw_free(&w);
}

static void test_same_text_as_jansson(void **state) {
    json_t *v = sample();
    check_style(v, SEED_JW_PRETTY, JSON_INDENT(2));
    check_style(v, SEED_JW_CANONICAL, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(v);
    json_t *empty = json_object();
    check_style(empty, SEED_JW_PRETTY, JSON_INDENT(2));
    check_style(empty, SEED_JW_CANONICAL, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(empty);
}

static void test_invalid_use_is_an_error(void **state) {
    seed_jw w = {.style = SEED_JW_PRETTY};
    seed_jw_object_begin(&w);
    seed_jw_string(&w, "a value without a key");
    seed_jw_object_end(&w);
    assert_int_equal(seed_jw_finish(&w), -EINVAL);

    seed_jw_reset(&w, SEED_JW_CANONICAL);
    seed_jw_object_begin(&w);
    seed_jw_key(&w, "k");
    seed_jw_string(&w, "\xff invalid UTF-8");
    seed_jw_object_end(&w);
    assert_int_equal(seed_jw_finish(&w), -EINVAL);

    seed_jw_reset(&w, SEED_JW_PRETTY);
    seed_jw_array_begin(&w); /* never closed */
    assert_int_equal(seed_jw_finish(&w), -EINVAL);
    seed_jw_free(&w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_text_as_jansson),
        cmocka_unit_test(test_invalid_use_is_an_error),
    };
    return cmocka_run_group_tests_name("jsonw", tests, NULL, NULL);
}
