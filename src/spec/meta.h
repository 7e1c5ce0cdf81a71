/* Instance meta as JSON (the `seed eval --json` contract). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "base/jsonw.h"
#include "spec/spec.h"

/* The members of one instance's meta object, into the object open in w, in the order
 * `seed eval --json` prints them. namespace may be NULL (left out); with_identity
 * adds the "identity" field. */
void seed_instance_meta_members(seed_jw *w, const seed_instance *inst, const char *namespace,
                                bool with_identity);
/* { "<name>": meta, ... } for every instance of the project, into w; then
 * seed_jw_finish(w). */
int seed_project_meta_write(seed_jw *w, const seed_project *p);

/* The meta object of one instance. namespace may be NULL (left out); with_identity
 * adds the "identity" field. Returns NULL when out of memory. */
json_t *seed_instance_meta(const seed_instance *inst, const char *namespace, bool with_identity);
/* { "<name>": meta, ... } for every instance of the project. */
json_t *seed_project_meta(const seed_project *p);
