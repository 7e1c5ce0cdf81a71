/* Flakes as seed projects (see flake.c). */
#pragma once

#include <stddef.h>

#include "spec/diag.h"

/* Evaluate the seeds of flake ref (a flake reference: path:/dir, git+file:..., github:...)
 * into seeds.json text in *ret. dir: the project directory the flake's source came
 * from, for messages and roots, or NULL. 1 with *ret set; 0 when the problem is in
 * diags; a negative errno for an internal failure. */
int seed_flake_eval(const char *ref, const char *dir, char **ret, size_t *ret_len, seed_diags *diags);
