/* seed_error: construction, context prefixes and release. */
#include "base/error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

static int set_va(seed_error **err, int code, bool with_strerror, const char *fmt, va_list ap) _printf_(4, 0);
static int set_va(seed_error **err, int code, bool with_strerror, const char *fmt, va_list ap) {
    if (code < 0)
        code = -code;
    if (code == 0)
        code = EIO;
    if (!err || *err)
        return -code;

    seed_error *e = calloc(1, sizeof(*e));
    if (!e)
        return -code;
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    if (msg && with_strerror) {
        char *full = NULL;
        if (asprintf(&full, "%s: %s", msg, strerror(code)) >= 0) {
            free(msg);
            msg = full;
        }
    }
    e->code = code;
    e->msg = msg ? msg : strdup("out of memory while reporting an error");
    *err = e;
    return -code;
}

int seed_error_set(seed_error **err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = set_va(err, code, false, fmt, ap);
    va_end(ap);
    return r;
}

int seed_error_setp(seed_error **err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = set_va(err, code, true, fmt, ap);
    va_end(ap);
    return r;
}

int seed_error_prefix(seed_error **err, const char *fmt, ...) {
    if (!err || !*err)
        return -EIO;
    seed_error *e = *err;
    char *prefix = NULL, *full = NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&prefix, fmt, ap);
    va_end(ap);
    if (r >= 0 && asprintf(&full, "%s%s", prefix, e->msg ? e->msg : "") >= 0) {
        free(e->msg);
        e->msg = full;
    }
    free(prefix);
    return -e->code;
}

void seed_error_free(seed_error *e) {
    if (!e)
        return;
    free(e->msg);
    free(e);
}
