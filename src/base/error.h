/* The error object of the error contract (docs/errors.md): an errno code plus a
 * human message, handed upward through `seed_error **err` out-parameters. */
#pragma once

#include "base/macro.h"

typedef struct seed_error {
    int code;  /* positive errno */
    char *msg; /* never NULL once set */
} seed_error;

/* Set *err (if err is not NULL and *err is unset) and return -code. */
int seed_error_set(seed_error **err, int code, const char *fmt, ...) _printf_(3, 4);
/* Same, with strerror(code) appended after ": ". */
int seed_error_setp(seed_error **err, int code, const char *fmt, ...) _printf_(3, 4);
/* Prepend context ("loading x: ") to an existing error; returns -code. */
int seed_error_prefix(seed_error **err, const char *fmt, ...) _printf_(2, 3);
void seed_error_free(seed_error *e);
DEFINE_CLEANUP_FUNC(seed_error, seed_error_free)
#define _cleanup_error_ _cleanup_(seed_error_freep)
