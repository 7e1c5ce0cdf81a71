/* Bounded reads, confined opens, directories and small writes. */
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/macro.h"

int seed_read_fd(int fd, size_t max, char **ret, size_t *ret_len) {
    size_t cap = 4096, len = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size > max)
            return -EFBIG;
        /* procfs and cgroupfs files say 0: start at a page for them */
        cap = MIN(MAX((size_t)st.st_size + 1, (size_t)4096), max + 1);
    }
    _cleanup_free_ char *buf = malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (len == cap) {
            if (cap > max)
                return -EFBIG;
            size_t ncap = MIN(cap * 2, max + 1);
            char *n = realloc(buf, ncap + 1);
            if (!n)
                return -ENOMEM;
            buf = n;
            cap = ncap;
        }
        ssize_t k = read(fd, buf + len, cap - len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return negative_errno();
        }
        if (k == 0)
            break;
        len += (size_t)k;
        if (len > max)
            return -EFBIG;
    }
    buf[len] = 0;
    *ret = TAKE_PTR(buf);
    if (ret_len)
        *ret_len = len;
    return 0;
}

static int openat2_supported = -1;

int seed_open_beneath(int dirfd, const char *path, int flags, int *ret_fd) {
    if (openat2_supported != 0) {
        struct open_how how = {
            .flags = (uint64_t)(flags | O_CLOEXEC),
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        if (fd >= 0) {
            openat2_supported = 1;
            *ret_fd = fd;
            return 0;
        }
        /* ENOSYS: kernel before 5.6; EPERM: some seccomp profiles block openat2. */
        if (errno != ENOSYS && !(errno == EPERM && openat2_supported < 0))
            return negative_errno();
        openat2_supported = 0;
    }
    return seed_open_beneath_fallback(dirfd, path, flags, ret_fd);
}

bool seed_path_under(const char *path, const char *top) {
    size_t n = strlen(top);
    return strncmp(path, top, n) == 0 && (path[n] == 0 || path[n] == '/');
}

int seed_fd_path(int fd, char *buf, size_t size) {
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, buf, size - 1);
    if (n < 0)
        return negative_errno();
    if ((size_t)n >= size - 1)
        return -ENAMETOOLONG;
    buf[n] = 0;
    return 0;
}

int seed_open_beneath_fallback(int dirfd, const char *path, int flags, int *ret_fd) {
    if (path[0] == '/')
        return -EXDEV;
    /* Resolve with O_PATH first, then compare the resolved location with the top;
     * reopening through /proc/self/fd keeps the checked inode, so a concurrent rename
     * cannot swap in another file between the check and the open. */
    _cleanup_close_ int pfd = openat(dirfd, path, O_PATH | O_CLOEXEC | (flags & O_NOFOLLOW));
    if (pfd < 0)
        return negative_errno();
    char top[PATH_MAX], got[PATH_MAX];
    int r = seed_fd_path(dirfd, top, sizeof(top));
    if (r < 0)
        return r;
    r = seed_fd_path(pfd, got, sizeof(got));
    if (r < 0)
        return r;
    bool inside = streq(top, "/") || seed_path_under(got, top);
    if (!inside)
        return -EXDEV;
    if (flags & O_PATH) {
        *ret_fd = TAKE_FD(pfd);
        return 0;
    }
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
    int fd = open(proc, (flags | O_CLOEXEC) & ~O_NOFOLLOW);
    if (fd < 0)
        return negative_errno();
    *ret_fd = fd;
    return 0;
}

int seed_memfd_sealed(const char *name, const void *data, size_t len) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return negative_errno();
    for (const char *p = data; len > 0;) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int r = k < 0 ? negative_errno() : -EIO;
            close(fd);
            return r;
        }
        p += k;
        len -= (size_t)k;
    }
    if (lseek(fd, 0, SEEK_SET) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        int r = negative_errno();
        close(fd);
        return r;
    }
    return fd;
}

int seed_mkdir_p(const char *path, mode_t mode) {
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    /* Usually only the last component is missing (or none): try that first. */
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return negative_errno();
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return negative_errno();
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return negative_errno();
    return 0;
}

int seed_write_stringat(int dirfd, const char *path, const char *value) {
    _cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return negative_errno();
    size_t n = strlen(value);
    ssize_t k = write(fd, value, n);
    if (k < 0)
        return negative_errno();
    if ((size_t)k != n)
        return -EIO;
    return 0;
}

int seed_write_string(const char *path, const char *value) {
    return seed_write_stringat(AT_FDCWD, path, value);
}
