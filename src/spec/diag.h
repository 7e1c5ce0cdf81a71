/* Spec diagnostics: every problem found in a project, each with the file, the full
 * option path (`web.expose.http.port`) and a message saying what was found and what
 * was expected. Collected, never returned one at a time (docs/errors.md rule 3). */
#pragma once

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/macro.h"

#define SEED_DIAGS_MAX 1000 /* beyond this, only count */

typedef struct seed_diag {
    char *file; /* may be NULL */
    char *path; /* may be empty for file-level problems */
    char *message;
} seed_diag;

typedef struct seed_diags {
    seed_diag *items;
    size_t n, cap;
    size_t dropped; /* problems beyond SEED_DIAGS_MAX */
} seed_diags;

void seed_diags_add(seed_diags *d, const char *file, const char *path, const char *fmt, ...) _printf_(4, 5);
void seed_diags_vadd(seed_diags *d, const char *file, const char *path, const char *fmt, va_list ap)
    _printf_(4, 0);
void seed_diags_clear(seed_diags *d);
/* Sort by file then path so output is stable whatever order checks ran in. */
void seed_diags_sort(seed_diags *d);
static inline size_t seed_diags_count(const seed_diags *d) {
    return d->n + d->dropped;
}

/* A JSON path under construction: "web", "web.expose", "web.expose.http.port",
 * "web.processes.app.command[0]". Keys that are not plain identifiers are quoted. */
#define SEED_JPATH_MAX 512
typedef struct seed_jpath {
    char buf[SEED_JPATH_MAX];
    size_t len;
} seed_jpath;

/* Push returns the previous length, to be restored with seed_jpath_pop(). */
size_t seed_jpath_push_key(seed_jpath *p, const char *key);
size_t seed_jpath_push_index(seed_jpath *p, size_t index);
static inline void seed_jpath_pop(seed_jpath *p, size_t len) {
    p->len = len;
    p->buf[len] = 0;
}

/* A short description of a JSON value for "found ..." in messages: `70000`,
 * `"abc"`, `an object`, `an array`, `null`, `true`. Truncates long strings. */
void seed_json_describe(const json_t *v, char *buf, size_t size);

/* The candidate nearest to word if it is close enough to be a likely typo. */
const char *seed_nearest(const char *word, const char *const *candidates, size_t n);
