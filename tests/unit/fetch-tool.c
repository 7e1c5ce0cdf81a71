/* A test driver of src/source/fetch.c for tests/e2e/test_fetch.py:
 *   fetch-tool [--timeout S] URL REF|- CACHE_DIR   fetch; prints the result as JSON
 *   fetch-tool --prune CACHE_DIR [COMMIT...]       prune trees but these; prints the count
 *   fetch-tool --cancel URL REF|- CACHE_DIR        start, cancel at once; prints "cancelled"
 * Exit status: 0 on success, 1 on failure (the JSON says why). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/fetch.h"

static void never(void *userdata, const seed_fetch_result *r) {
    abort();
}

int main(int argc, char **argv) {
    unsigned timeout = 0;
    if (argc >= 3 && strcmp(argv[1], "--prune") == 0) {
        int r = seed_fetch_prune_trees(argv[2], (const char *const *)argv + 3, (size_t)argc - 3);
        printf("%d\n", r);
        return r < 0;
    }
    bool cancel = argc >= 2 && strcmp(argv[1], "--cancel") == 0;
    if (cancel)
        argv++, argc--;
    if (argc >= 3 && strcmp(argv[1], "--timeout") == 0) {
        timeout = (unsigned)atoi(argv[2]);
        argv += 2;
        argc -= 2;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: fetch-tool [--cancel] [--timeout S] URL REF|- CACHE_DIR\n");
        return 2;
    }
    seed_error *err = NULL;
    seed_fetch_url u = {0};
    json_t *out = json_object();
    int r = seed_fetch_url_parse(argv[1], strcmp(argv[2], "-") ? argv[2] : NULL, &u, &err);
    if (r >= 0) {
        json_object_set_new(out, "kind", json_string(u.kind == SEED_FETCH_GIT ? "git" : "dir"));
        json_object_set_new(out, "url", json_string(u.url));
        json_object_set_new(out, "uri", json_string(u.uri));
    }
    if (r >= 0 && cancel) {
        seed_loop *loop = NULL;
        seed_fetch *f = NULL;
        if (seed_loop_new(&loop) < 0 ||
            seed_fetch_start(loop, &u, argv[3], timeout, never, NULL, &f, &err) < 0)
            return 1;
        seed_fetch_cancel(f);
        seed_loop_run_once(loop, 100);
        seed_loop_free(loop);
        seed_fetch_url_clear(&u);
        json_decref(out);
        printf("cancelled\n");
        return 0;
    }
    char commit[41] = "", *tree = NULL, *warning = NULL;
    if (r >= 0)
        r = seed_fetch_run(&u, argv[3], timeout, commit, &tree, &warning, &err);
    if (r < 0) {
        json_object_set_new(out, "error", json_integer(err->code));
        json_object_set_new(out, "message", json_string(err->msg));
    } else {
        json_object_set_new(out, "commit", json_string(commit));
        json_object_set_new(out, "tree", json_string(tree));
        json_object_set_new(out, "warning", warning ? json_string(warning) : json_null());
    }
    char *s = json_dumps(out, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    free(tree);
    free(warning);
    json_decref(out);
    seed_fetch_url_clear(&u);
    seed_error_free(err);
    return r < 0;
}
