/* Instance meta as JSON (the `seed eval --json` contract). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "spec/spec.h"

/* The meta object of one instance. namespace may be NULL (left out); with_identity
 * adds the "identity" field. Returns NULL when out of memory. */
json_t *seed_instance_meta(const seed_instance *inst, const char *namespace, bool with_identity);
/* { "<name>": meta, ... } for every instance of the project. */
json_t *seed_project_meta(const seed_project *p);
