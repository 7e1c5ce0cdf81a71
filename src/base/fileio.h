/* Reading and writing files safely: bounded reads, lookups confined beneath a
 * directory (openat2 RESOLVE_BENEATH, with a fallback for older kernels), and
 * atomic replacement by rename. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Read all of fd into a NUL-terminated buffer. Fails with -EFBIG when the content
 * is longer than max bytes. */
int seed_read_fd(int fd, size_t max, char **ret, size_t *ret_len);

/* Open path relative to dirfd without leaving the tree below dirfd: absolute paths,
 * ".." above the top and symlinks pointing out fail with -EXDEV. flags are open(2)
 * flags; O_CLOEXEC is always added. */
int seed_open_beneath(int dirfd, const char *path, int flags, int *ret_fd);
/* The same check done without openat2(2), as on kernels before 5.6. Exposed so tests
 * can force this path. */
int seed_open_beneath_fallback(int dirfd, const char *path, int flags, int *ret_fd);

/* A memfd (close-on-exec) holding data, at offset 0, sealed against any change: for
 * handing a process read-only content. Returns the fd or a negative errno. */
int seed_memfd_sealed(const char *name, const void *data, size_t len);

/* The path an fd refers to (/proc/self/fd), NUL-terminated in buf. */
int seed_fd_path(int fd, char *buf, size_t size);
/* path is top or lies below it (component-wise: /a/bc is not under /a/b). */
bool seed_path_under(const char *path, const char *top);

/* Create a directory and its parents (like mkdir -p). */
int seed_mkdir_p(const char *path, mode_t mode);

/* Write a string to an existing file (sysfs, cgroupfs, /proc) in one write(2). */
int seed_write_string(const char *path, const char *value);
int seed_write_stringat(int dirfd, const char *path, const char *value);
