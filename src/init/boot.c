/* Image mode's boot tasks: see boot.h. */
#include "init/boot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/fileio.h"

void seed_boot_log(const char *task, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char line[1200];
    int n = snprintf(line, sizeof(line), "seed-init: %s: %s\n", task, msg);
    if (n < 0)
        return;
    ssize_t w;
    do
        w = write(STDERR_FILENO, line, MIN((size_t)n, sizeof(line) - 1));
    while (w < 0 && errno == EINTR);
}

#define MAX_DB (4u << 20)

/* The content of a regular file (NULL: absent or not regular), at most 4 MiB. */
static char *read_small(const char *path) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || seed_read_fd(fd, MAX_DB, &buf, NULL) < 0)
        return NULL;
    return buf;
}

static int write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write content to path through a temporary file renamed over it, keeping the owner
 * and mode of the file there (mode when there is none). */
static int replace_file(const char *path, const char *content, mode_t mode) {
    struct stat st;
    uid_t uid = 0;
    gid_t gid = 0;
    if (stat(path, &st) == 0) {
        mode = st.st_mode & 07777;
        uid = st.st_uid;
        gid = st.st_gid;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.seed-new", path);
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, content, strlen(content));
    if (r == 0 && (fchmod(fd, mode) < 0 || (fchown(fd, uid, gid) < 0 && errno != EPERM)))
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

/* Where /etc cannot be written (a read-only image or `--read-only`), the new file goes
 * to /run/seed/etc and is bind-mounted over the image's (which must exist for that). */
static int replace_or_overlay(const char *path, const char *content, mode_t mode) {
    int r = replace_file(path, content, mode);
    if (r == 0 || (r != -EROFS && r != -EACCES && r != -EPERM))
        return r;
    const char *base = strrchr(path, '/') + 1;
    char alt[256];
    snprintf(alt, sizeof(alt), "/run/seed/etc/%s", base);
    if (seed_mkdir_p("/run/seed/etc", 0755) < 0 || replace_file(alt, content, mode) < 0)
        return r;
    if (mount(alt, path, NULL, MS_BIND, NULL) < 0)
        return r; /* the original error says more than the mount's */
    return 0;
}

static const struct {
    enum seed_account_db db;
    const char *path;
    mode_t mode;
} dbs[] = {
    {SEED_DB_PASSWD, "/etc/passwd", 0644},
    {SEED_DB_GROUP, "/etc/group", 0644},
    {SEED_DB_SHADOW, "/etc/shadow", 0600},
};

static void make_home(const seed_account *a) {
    struct stat st;
    if (streq(a->home, "/") || stat(a->home, &st) == 0)
        return;
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s", a->home);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        seed_mkdir_p(parent, 0755);
    }
    if (mkdir(a->home, 0700) < 0 || chown(a->home, a->uid, a->gid) < 0)
        seed_boot_log("users", "warning: cannot create the home directory %s of %s: %s", a->home, a->name,
                      strerror(errno));
}

void seed_boot_accounts(const seed_account *a, size_t n) {
    if (n == 0)
        return;
    size_t added_total = 0;
    for (size_t i = 0; i < ELEMENTSOF(dbs); i++) {
        _cleanup_free_ char *old = read_small(dbs[i].path), *merged = NULL;
        size_t added = 0;
        /* The root account first where the image has no passwd (or group) at all. */
        if (!old && dbs[i].db != SEED_DB_SHADOW)
            old = strdup(dbs[i].db == SEED_DB_PASSWD ? "root:x:0:0:root:/root:/bin/sh\n" : "root:x:0:\n");
        if (seed_accounts_merge(dbs[i].db, old, a, n, &merged, &added) < 0) {
            seed_boot_log("users", "warning: out of memory");
            return;
        }
        if (added == 0)
            continue;
        int r = replace_or_overlay(dbs[i].path, merged, dbs[i].mode);
        if (r < 0)
            seed_boot_log("users", "warning: cannot write %s: %s", dbs[i].path, strerror(-r));
        else if (dbs[i].db == SEED_DB_PASSWD)
            added_total = added;
    }
    for (size_t i = 0; i < n; i++)
        make_home(&a[i]);
    char names[512];
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof(names); i++)
        o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "", a[i].name);
    seed_boot_log("users", "%zu of %zu accounts added to /etc/passwd (%s)", added_total, n, names);
}
