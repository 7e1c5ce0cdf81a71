/* Internal to the spec component: the state shared by the project loader and the
 * instance parser while they walk the JSON. */
#pragma once

#include <jansson.h>
#include <sys/types.h>

#include "spec/diag.h"
#include "spec/spec.h"

typedef struct root_cache_entry {
    dev_t dev;
    ino_t ino;
    char digest[65];
    char *error; /* NULL when the digest was computed */
} root_cache_entry;

typedef struct parse_ctx {
    seed_diags *diags;
    const char *file; /* file being read, relative to the project */
    seed_jpath path;
    int dirfd;       /* project directory, or -1 */
    const char *dir; /* absolute project directory, or NULL */
    root_cache_entry *roots;
    size_t n_roots;
} parse_ctx;

void parse_error(parse_ctx *c, const char *fmt, ...) _printf_(2, 3);

/* Fill inst from an instance object; inst->name and inst->file are already set. */
void parse_instance(parse_ctx *c, json_t *obj, seed_instance *inst);

void seed_instance_clear(seed_instance *inst);
