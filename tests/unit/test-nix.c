/* Nix closures for images (image/nix.c): nix-store --dump-db parsed strictly, the
 * popularity order of nixpkgs' layered images, store paths named outside a closure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image/nix.h"

#define H(c) "/nix/store/" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define BB H("b") "-busybox"
#define LIB H("l") "-libfoo"
#define APP H("a") "-app"
#define SYS H("s") "-system"

/* One entry of the dump: path, hash, NAR size, deriver, references. */
#define ENTRY(p, n, ...) p "\n0123abcd\n" #n "\n\n" __VA_ARGS__

static const char DUMP[] = ENTRY(SYS, 10, "3\n" APP "\n" BB "\n" SYS "\n") ENTRY(BB, 1000, "0\n")
    ENTRY(APP, 20, "2\n" LIB "\n" BB "\n") ENTRY(LIB, 300, "1\n" BB "\n");

static seed_nix_closure *parse_ok(const char *text) {
    seed_nix_closure *c = NULL;
    seed_error *err = NULL;
    int r = seed_nix_parse_registration(text, strlen(text), &c, &err);
    if (r < 0)
        fail_msg("%s", err ? err->msg : "?");
    return c;
}

static void parse_fails(const char *text, const char *needle) {
    seed_nix_closure *c = NULL;
    seed_error *err = NULL;
    assert_true(seed_nix_parse_registration(text, strlen(text), &c, &err) < 0);
    assert_null(c);
    assert_non_null(err);
    if (!strstr(err->msg, needle))
        fail_msg("\"%s\" lacks \"%s\"", err->msg, needle);
    seed_error_free(err);
}

static void test_parse(void **state) {
    seed_nix_closure *c = parse_ok(DUMP);
    assert_int_equal(c->n, 4);
    /* sorted by path: a, b, l, s */
    assert_string_equal(c->p[0].path, APP);
    assert_string_equal(c->p[1].path, BB);
    assert_string_equal(c->p[2].path, LIB);
    assert_string_equal(c->p[3].path, SYS);
    assert_int_equal(c->p[1].nar_size, 1000);
    /* the system's reference to itself is left out */
    assert_int_equal(c->p[3].n_refs, 2);
    assert_int_equal(c->p[0].n_refs, 2);
    assert_int_equal(c->p[0].refs[0], 2);
    assert_int_equal(c->p[0].refs[1], 1);
    assert_int_equal(seed_nix_find(c, LIB "/lib/foo"), 2);
    assert_int_equal(seed_nix_find(c, LIB), 2);
    assert_int_equal(seed_nix_find(c, LIB "x"), (size_t)-1);
    assert_int_equal(seed_nix_find(c, "/usr/lib"), (size_t)-1);
    seed_nix_closure_free(c);
}

static void test_rank(void **state) {
    seed_nix_closure *c = parse_ok(DUMP);
    size_t *rank = NULL;
    assert_int_equal(seed_nix_rank(c, &rank), 0);
    /* busybox is needed by all 4, libfoo by 3, app by 2, the system by itself */
    assert_string_equal(c->p[rank[0]].path, BB);
    assert_string_equal(c->p[rank[1]].path, LIB);
    assert_string_equal(c->p[rank[2]].path, APP);
    assert_string_equal(c->p[rank[3]].path, SYS);
    free(rank);
    seed_nix_closure_free(c);

    /* Ties go by path, whatever order the dump had. */
    c = parse_ok(ENTRY(SYS, 1, "0\n") ENTRY(APP, 1, "0\n"));
    assert_int_equal(seed_nix_rank(c, &rank), 0);
    assert_string_equal(c->p[rank[0]].path, APP);
    free(rank);
    seed_nix_closure_free(c);

    /* A cycle (a store cannot have one, a dump could) ends. */
    c = parse_ok(ENTRY(SYS, 1, "1\n" APP "\n") ENTRY(APP, 1, "1\n" SYS "\n"));
    assert_int_equal(seed_nix_rank(c, &rank), 0);
    free(rank);
    seed_nix_closure_free(c);
}

static void test_outside(void **state) {
    seed_nix_closure *c = parse_ok(DUMP);
    char *out = NULL;
    assert_int_equal(seed_nix_first_outside(c, "PATH=" APP "/bin:" BB "/bin", &out), 0);
    assert_null(out);
    assert_int_equal(seed_nix_first_outside(c, "x " APP "/bin " H("z") "-other/bin/y", &out), 0);
    assert_string_equal(out, H("z") "-other");
    free(out);
    /* not a store path: nothing to say */
    assert_int_equal(seed_nix_first_outside(c, "/nix/store/short-x /nix/store/", &out), 0);
    assert_null(out);
    seed_nix_closure_free(c);
}

static void test_bad_dumps(void **state) {
    parse_fails("", "no store path");
    parse_fails("/usr/bin\nx\n1\n\n0\n", "expected a store path");
    parse_fails(BB "\nx\n1\n", "cut short");
    parse_fails(BB "\nx\nbig\n\n0\n", "malformed");
    parse_fails(BB "\nx\n1\n\n-1\n", "malformed");
    parse_fails(BB "\nx\n1\n\n2\n" BB "\n", "names 2 references but ends after 1");
    parse_fails(BB "\nx\n1\n\n1\n/etc/passwd\n", "is not a store path");
    parse_fails(ENTRY(APP, 1, "1\n" BB "\n"), "not in the closure");
    parse_fails(ENTRY(BB, 1, "0\n") ENTRY(BB, 1, "0\n"), "twice");
    parse_fails(H("b") "\nx\n1\n\n0\n", "expected a store path");
    parse_fails("/nix/store/"
                "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbe-x\nx\n1\n\n0\n",
                "expected a store path");
}

static void test_store_path_syntax(void **state) {
    assert_true(seed_nix_is_store_path(BB));
    assert_true(seed_nix_is_store_path(H("0") "-a.b+c_d?=e"));
    assert_false(seed_nix_is_store_path(BB "/bin"));
    assert_false(seed_nix_is_store_path(H("b") "-"));
    assert_false(seed_nix_is_store_path(H("e") "-x")); /* 'e' is not nix-base32 */
    assert_false(seed_nix_is_store_path("/nix/store"));
    assert_false(seed_nix_is_store_path("nix/store/x"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_rank),
        cmocka_unit_test(test_outside),
        cmocka_unit_test(test_bad_dumps),
        cmocka_unit_test(test_store_path_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
