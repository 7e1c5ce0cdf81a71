/* Small macros every file uses: cleanup attributes, ownership transfer, array sizes.
 * The cleanup helpers follow the systemd pattern: a variable declared with
 * _cleanup_free_ is freed when it leaves scope; TAKE_PTR/TAKE_FD hand ownership on. */
#pragma once

#include <stddef.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Move a pointer out of a cleanup-managed variable, leaving NULL behind. */
#define TAKE_PTR(p)                \
    ({                             \
        __typeof__(p) *_pp = &(p); \
        __typeof__(p) _tmp = *_pp; \
        *_pp = NULL;               \
        _tmp;                      \
    })

/* Same for file descriptors, leaving -1 behind. */
#define TAKE_FD(fd)        \
    ({                     \
        int *_pfd = &(fd); \
        int _tmp = *_pfd;  \
        *_pfd = -1;        \
        _tmp;              \
    })

static inline void freep(void *p) {
    free(*(void **)p);
}

static inline void closep(int *fd) {
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void fclosep(FILE **f) {
    if (*f)
        fclose(*f);
}

/* Free a NULL-terminated array of strings. */
static inline void strv_free(char **v) {
    if (!v)
        return;
    for (char **i = v; *i; i++)
        free(*i);
    free(v);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Define a cleanup function name##p for a type with a destructor taking T*. */
#define DEFINE_CLEANUP_FUNC(type, func)    \
    static inline void func##p(type **p) { \
        if (*p)                            \
            func(*p);                      \
    }

/* Return -errno from a libc call that sets errno, never 0 for a failure. */
static inline int negative_errno(void) {
    return errno > 0 ? -errno : -EIO;
}

#define streq(a, b) (strcmp((a), (b)) == 0)
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
