/* Root filesystem assembly, run inside the sandbox's fresh user and mount
 * namespaces before pivot_root. The steps, in order:
 *   1. make every mount private, so nothing we do propagates back to the node;
 *   2. a tmpfs on the scratch directory: the root itself ("host") or the scaffold of
 *      mount points and generated files laid over a directory payload with a
 *      read-only overlayfs ("dir");
 *   3. payload: the host's /usr read-only with the merged-usr links and a minimal
 *      /etc (never /etc/shadow, /root, /home, /var), or the overlay;
 *   4. tmpfs /tmp and /run, sized;
 *   5. volumes and other binds at their mount points (after 4, so that a volume
 *      under /tmp or /run lies on top of the tmpfs, not hidden beneath it);
 *   6. fresh /proc (with the Docker-style masks), read-only /sys, a minimal /dev;
 * The pieces a shoot redoes on top of its template's root are exported
 * (seed_sandbox_mount_proc, _dev_private, _scratch).
 *   7. pivot_root(".", ".") and detach the old root (bubblewrap's sequence);
 *   8. remount the root read-only.
 * /proc must be mounted while the old root's /proc is still visible: the kernel only
 * allows a new proc instance where an unobstructed one is already mounted. */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fileio.h"
#include "sandbox/sandbox.h"

/* Fail the current step: record what, return -errno. */
#define CHECK(expr, ...)                           \
    do {                                           \
        if ((expr) < 0) {                          \
            int _e = errno ? errno : EIO;          \
            snprintf(what, what_len, __VA_ARGS__); \
            return -_e;                            \
        }                                          \
    } while (0)

static int path_join(char *out, size_t size, const char *a, const char *b) {
    int n = snprintf(out, size, "%s/%s", a, b[0] == '/' ? b + 1 : b);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* mkdir -p below root for an absolute in-sandbox path (the last component too). */
static int mkdir_in(const char *root, const char *path, mode_t mode) {
    char full[4096];
    if (path_join(full, sizeof(full), root, path) < 0)
        return -1;
    int r = seed_mkdir_p(full, mode);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return 0;
}

/* The directories above an absolute path (0755). */
static int make_parent(char *full) {
    char *slash = strrchr(full, '/');
    *slash = 0;
    int r = seed_mkdir_p(full, 0755);
    *slash = '/';
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return 0;
}

/* Create an empty file (and its parents) to bind something onto. */
static int touch_in(const char *root, const char *path, mode_t mode) {
    char full[4096];
    if (path_join(full, sizeof(full), root, path) < 0)
        return -1;
    if (make_parent(full) < 0)
        return -1;
    int fd = open(full, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    close(fd);
    return 0;
}

/* A file below root with content and mode (its parents made): one open, one write. */
static int create_in(const char *root, const char *path, const void *data, size_t len, mode_t mode) {
    char full[4096];
    if (path_join(full, sizeof(full), root, path) < 0)
        return -1;
    if (make_parent(full) < 0)
        return -1;
    _cleanup_close_ int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, data, len);
    if (w != (ssize_t)len) {
        if (w >= 0)
            errno = EIO;
        return -1;
    }
    return fchmod(fd, mode & 07777); /* the umask does not decide */
}

static int write_in(const char *root, const char *path, const char *content, mode_t mode) {
    return create_in(root, path, content, strlen(content), mode);
}

/* Bind src onto dst, nosuid and nodev (and read-only when asked), keeping the flags
 * the kernel locks on mounts inherited from a more privileged namespace (noexec and
 * the atime flags); dropping one of those would make the remount fail. */
/* Remount a bind at dst with nosuid, nodev, readonly as asked, and the flags of its
 * source it must keep (a bind remount that drops a locked flag is refused). */
static int bind_remount(const char *dst, bool readonly) {
    struct statvfs sv;
    if (statvfs(dst, &sv) < 0)
        return -1;
    unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (readonly ? MS_RDONLY : 0);
    if (sv.f_flag & ST_NOEXEC)
        flags |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME)
        flags |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME)
        flags |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME)
        flags |= MS_RELATIME;
    return mount(NULL, dst, NULL, flags, NULL);
}

static int bind_mount(const char *src, const char *dst, bool recursive, bool readonly) {
    if (mount(src, dst, NULL, MS_BIND | (recursive ? MS_REC : 0), NULL) < 0)
        return -1;
    return bind_remount(dst, readonly);
}

int seed_sandbox_open_mount_point(const char *root, const char *target, bool file, char *what,
                                  size_t what_len) {
    /* One component at a time, never following a symbolic link: the path may lead
     * through volumes mounted before, whose content the instance controls. */
    char path[4096];
    snprintf(path, sizeof(path), "%s", target);
    int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(fd, "opening the root to mount %s", target);
    char *save = NULL;
    for (char *c = strtok_r(path, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        bool last = save == NULL || *save == 0;
        int flags = O_PATH | O_NOFOLLOW | O_CLOEXEC | (last && file ? 0 : O_DIRECTORY);
        int next = openat(fd, c, flags);
        if (next < 0 && errno == ENOENT) {
            if (last && file) {
                int w = openat(fd, c, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (w >= 0)
                    close(w);
            } else {
                mkdirat(fd, c, 0755);
            }
            next = openat(fd, c, flags);
        }
        struct stat st = {0};
        if (next >= 0 && last && file && (fstat(next, &st) < 0 || !S_ISREG(st.st_mode))) {
            close(next);
            errno = S_ISLNK(st.st_mode) ? ELOOP : EEXIST;
            next = -1;
        }
        if (next < 0)
            goto fail;
        close(fd);
        fd = next;
    }
    return fd;
fail : {
    int e = errno == ENOTDIR ? ELOOP : errno;
    close(fd);
    snprintf(what, what_len, "creating the mount point %s (no component may be a symbolic link)", target);
    return -e;
}
}

/* The host's /etc entries a program needs and that say nothing private: the loader
 * cache, alternatives links, TLS roots, time zone, service and protocol tables. */
static const char *const host_etc[] = {
    "alternatives",   "bash.bashrc", "ca-certificates", "ca-certificates.conf",
    "debian_version", "environment", "gai.conf",        "host.conf",
    "inputrc",        "ld.so.cache", "ld.so.conf",      "ld.so.conf.d",
    "localtime",      "login.defs",  "magic",           "mime.types",
    "os-release",     "profile",     "protocols",       "services",
    "shells",         "ssl",         "timezone",        "xattr.conf",
};

/* Copy a small host file into the root's tmpfs. A copy instead of a bind: one mount
 * less for every sandbox and every shoot to copy and tear down. */
static int copy_file_in(const char *root, const char *host, mode_t mode) {
    _cleanup_close_ int src = open(host, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (src < 0)
        return -1;
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = seed_read_fd(src, 1u << 20, &data, &len);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return create_in(root, host, data, len, mode);
}

/* Reproduce a host path in the root: a symlink as the same link, a directory as a
 * read-only bind, a regular file as a copy (bound if large). Absent paths are fine. */
static int mirror_host_path(const char *root, const char *host, char *what, size_t what_len) {
    struct stat st;
    if (lstat(host, &st) < 0)
        return 0;
    char dst[4096], target[4096];
    CHECK(path_join(dst, sizeof(dst), root, host), "path");
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(host, target, sizeof(target) - 1);
        CHECK(n, "reading the link %s", host);
        target[n] = 0;
        CHECK(symlink(target, dst), "linking %s", host);
    } else if (S_ISDIR(st.st_mode)) {
        CHECK(mkdir(dst, 0755), "creating %s", host);
        CHECK(bind_mount(host, dst, true, true), "binding the host's %s read-only", host);
    } else if (S_ISREG(st.st_mode) && st.st_size <= (1 << 20)) {
        CHECK(copy_file_in(root, host, st.st_mode & 0777), "copying the host's %s", host);
    } else if (S_ISREG(st.st_mode)) {
        CHECK(touch_in(root, host, 0644), "creating %s", host);
        CHECK(bind_mount(host, dst, false, true), "binding the host's %s read-only", host);
    }
    return 0;
}

static int setup_host_payload(const char *root, char *what, size_t what_len) {
    char dst[4096];
    CHECK(mkdir_in(root, "/usr", 0755), "creating /usr");
    CHECK(path_join(dst, sizeof(dst), root, "/usr"), "path");
    CHECK(bind_mount("/usr", dst, true, true), "binding the host's /usr read-only");

    /* Merged-usr hosts have /bin -> usr/bin and friends; older hosts have real
     * directories, bound read-only like /usr. */
    static const char *const top[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
    for (size_t i = 0; i < ELEMENTSOF(top); i++) {
        int r = mirror_host_path(root, top[i], what, what_len);
        if (r < 0)
            return r;
    }
    CHECK(mkdir_in(root, "/etc", 0755), "creating /etc");
    for (size_t i = 0; i < ELEMENTSOF(host_etc); i++) {
        char host[128];
        snprintf(host, sizeof(host), "/etc/%s", host_etc[i]);
        int r = mirror_host_path(root, host, what, what_len);
        if (r < 0)
            return r;
    }
    return 0;
}

/* A Nix closure as the whole store: each path bound read-only at its own place under
 * /nix/store, nothing else of the host's store; then / links to the top-level entries
 * of the root path (bin, lib, share, ...), and /etc holds links to its etc/ entries, as
 * a container image made from a buildEnv has them. Files the node writes (c->files),
 * the directories above them, and the sandbox's own directories are not linked over. */
static bool at_or_above(const char *p, const char *path, size_t n) {
    return strncmp(p, path, n) == 0 && (p[n] == 0 || p[n] == '/');
}

static bool node_file(const seed_sandbox_config *c, const char *path) {
    size_t n = strlen(path);
    for (size_t i = 0; i < c->n_files; i++)
        if (at_or_above(c->files[i].path, path, n))
            return true;
    for (size_t i = 0; i < c->n_binds; i++) /* /etc/hosts, volumes */
        if (at_or_above(c->binds[i].target, path, n))
            return true;
    return false;
}

static int link_entries(const seed_sandbox_config *c, const char *root, const char *from, const char *to,
                        char *what, size_t what_len) {
    static const char *const own[] = {"nix", "proc", "sys", "dev", "tmp", "run", "seed", "etc"};
    DIR *d = opendir(from);
    if (!d)
        return errno == ENOTDIR || errno == ENOENT ? 0
                                                   : (snprintf(what, what_len, "reading %s", from), -errno);
    int r = 0;
    for (struct dirent *e; r == 0 && (e = readdir(d));) {
        if (streq(e->d_name, ".") || streq(e->d_name, ".."))
            continue;
        bool skip = false;
        for (size_t i = 0; !streq(to, "/etc") && i < ELEMENTSOF(own); i++)
            skip = skip || streq(e->d_name, own[i]);
        char at[4096], target[4096], dst[8300];
        snprintf(at, sizeof(at), "%s/%s", streq(to, "/") ? "" : to, e->d_name);
        if (skip || node_file(c, at))
            continue;
        snprintf(target, sizeof(target), "%s/%s", from, e->d_name);
        if (path_join(dst, sizeof(dst), root, at) < 0 || symlink(target, dst) < 0) {
            snprintf(what, what_len, "linking %s to %s", at, target);
            r = -errno;
        }
    }
    closedir(d);
    return r;
}

/* Each store path at its place under root's /nix/store, read-only. The mount points are
 * opened without following links (under a /nix of the instance's own, the instance
 * controls what is there). */
static int bind_store_paths(const seed_sandbox_config *c, const char *root, char *what, size_t what_len) {
    char p[64];
    for (size_t i = 0; i < c->n_store_paths; i++) {
        const char *sp = c->store_paths[i];
        struct stat st;
        CHECK(lstat(sp, &st), "reading the store path %s", sp);
        if (S_ISLNK(st.st_mode)) {
            char target[4096], dst[8300];
            ssize_t n = readlink(sp, target, sizeof(target) - 1);
            CHECK(n, "reading the link %s", sp);
            target[n] = 0;
            CHECK(path_join(dst, sizeof(dst), root, sp), "path");
            if (symlink(target, dst) < 0 && errno != EEXIST)
                CHECK(-1, "linking %s", sp);
            continue;
        }
        bool file = !S_ISDIR(st.st_mode);
        int fd = seed_sandbox_open_mount_point(root, sp, file, what, what_len);
        if (fd < 0)
            return fd;
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        int r = mount(sp, p, NULL, MS_BIND | MS_REC, NULL);
        int e = errno;
        close(fd);
        errno = e;
        CHECK(r, "binding the store path %s", sp);
        if ((fd = seed_sandbox_open_mount_point(root, sp, file, what, what_len)) < 0)
            return fd;
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        r = bind_remount(p, true);
        e = errno;
        close(fd);
        errno = e;
        CHECK(r, "making the store path %s read-only", sp);
    }
    return 0;
}

static int setup_store_payload(const seed_sandbox_config *c, const char *root, char *what, size_t what_len) {
    CHECK(mkdir_in(root, "/nix/store", 0755), "creating /nix/store");
    int r = c->store_after_binds ? 0 : bind_store_paths(c, root, what, what_len);
    if (r < 0)
        return r;
    r = link_entries(c, root, c->root_dir, "/", what, what_len);
    if (r < 0)
        return r;
    char etc[4096];
    snprintf(etc, sizeof(etc), "%s/etc", c->root_dir);
    CHECK(mkdir_in(root, "/etc", 0755), "creating /etc");
    return link_entries(c, root, etc, "/etc", what, what_len);
}

/* overlayfs separates lower layers with ':' and options with ','; escape both. */
static int overlay_escape(const char *in, char *out, size_t size) {
    size_t o = 0;
    for (const char *c = in; *c; c++) {
        if (o + 3 >= size) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (*c == ':' || *c == ',' || *c == '\\')
            out[o++] = '\\';
        out[o++] = *c;
    }
    out[o] = 0;
    return 0;
}

/* Mount points and generated files; they go into the root itself ("host") or into
 * the scaffold that the overlay lays over the payload ("dir"). */
static int setup_skeleton(const seed_sandbox_config *c, const char *base, char *what, size_t what_len) {
    static const char *const dirs[] = {"/proc", "/sys", "/dev", "/tmp", "/run", "/etc"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
        CHECK(mkdir_in(base, dirs[i], 0755), "creating %s", dirs[i]);
    for (size_t i = 0; i < c->n_binds; i++) {
        /* Mount points on /tmp and /run are made in their tmpfs, once it is mounted;
         * a template mounts none (its shoots do), so it makes them all here. */
        if (!c->template && seed_sandbox_on_scratch(c->binds[i].target))
            continue;
        if (c->binds[i].file)
            CHECK(touch_in(base, c->binds[i].target, 0644), "creating the mount point %s",
                  c->binds[i].target);
        else
            CHECK(mkdir_in(base, c->binds[i].target, 0755), "creating the mount point %s",
                  c->binds[i].target);
    }
    for (size_t i = 0; i < c->n_files; i++)
        CHECK(write_in(base, c->files[i].path, c->files[i].content, c->files[i].mode), "writing %s",
              c->files[i].path);
    return 0;
}

int seed_sandbox_mount_proc(const char *root, bool masked, char *what, size_t what_len) {
    char dst[4096];
    CHECK(path_join(dst, sizeof(dst), root, "/proc"), "path");
    CHECK(mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "mounting /proc");
    if (!masked)
        return 0;
    /* Docker's masks: files that leak host information or kernel state are hidden
     * behind /dev/null, directories behind an empty read-only tmpfs, and the kernel's
     * knobs are read-only. Entries this kernel lacks are skipped: the mount itself
     * finds out (ENOENT), which saves a lookup per entry on every sandbox start. */
    static const char *const hidden_files[] = {"kcore",      "keys",        "latency_stats",
                                               "timer_list", "timer_stats", "sched_debug"};
    static const char *const hidden_dirs[] = {"acpi", "scsi", "asound"};
    static const char *const readonly[] = {"sys", "sysrq-trigger", "irq", "bus", "fs"};
    char p[4200];
    for (size_t i = 0; i < ELEMENTSOF(hidden_files); i++) {
        snprintf(p, sizeof(p), "%s/%s", dst, hidden_files[i]);
        if (mount("/dev/null", p, NULL, MS_BIND, NULL) < 0 && errno != ENOENT)
            CHECK(-1, "masking /proc/%s", hidden_files[i]);
    }
    for (size_t i = 0; i < ELEMENTSOF(hidden_dirs); i++) {
        snprintf(p, sizeof(p), "%s/%s", dst, hidden_dirs[i]);
        if (mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0") < 0 &&
            errno != ENOENT)
            CHECK(-1, "masking /proc/%s", hidden_dirs[i]);
    }
    for (size_t i = 0; i < ELEMENTSOF(readonly); i++) {
        snprintf(p, sizeof(p), "%s/%s", dst, readonly[i]);
        int r = bind_mount(p, p, true, true);
        if (r < 0 && errno != ENOENT)
            CHECK(-1, "making /proc/%s read-only", readonly[i]);
    }
    return 0;
}

static int setup_sys(const char *root, char *what, size_t what_len) {
    char dst[4096];
    CHECK(path_join(dst, sizeof(dst), root, "/sys"), "path");
    /* A sysfs instance of our own network namespace; without one (no netns of our
     * own) fall back to a read-only bind of the node's. */
    if (mount("sysfs", dst, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        CHECK(bind_mount("/sys", dst, true, true), "mounting /sys");
    char p[4200];
    snprintf(p, sizeof(p), "%s/firmware", dst);
    if (access(p, F_OK) == 0)
        CHECK(mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0"),
              "masking /sys/firmware");
    return 0;
}

/* Per-sandbox parts of /dev: a new devpts instance, POSIX shared memory and message
 * queues of the sandbox's own IPC namespace. */
int seed_sandbox_mount_dev_private(const char *root, char *what, size_t what_len) {
    char p[4200];
    CHECK(path_join(p, sizeof(p), root, "/dev/pts"), "path");
    CHECK(mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"),
          "mounting /dev/pts");
    CHECK(path_join(p, sizeof(p), root, "/dev/shm"), "path");
    CHECK(mount("shm", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=67108864"),
          "mounting /dev/shm");
    CHECK(path_join(p, sizeof(p), root, "/dev/mqueue"), "path");
    CHECK(mount("mqueue", p, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "mounting /dev/mqueue");
    return 0;
}

bool seed_sandbox_on_scratch(const char *path) {
    return seed_path_under(path, "/tmp") || seed_path_under(path, "/run");
}

int seed_sandbox_mount_scratch(const char *root, uint64_t tmp_bytes, uint64_t run_bytes, char *what,
                               size_t what_len) {
    char p[4200], opts[64];
    /* Sized, so that filling one cannot take the instance's whole memory (tmpfs pages
     * are charged to its cgroup) and wedge it until a restart. */
    CHECK(path_join(p, sizeof(p), root, "/tmp"), "path");
    snprintf(opts, sizeof(opts), tmp_bytes ? "mode=1777,size=%llu" : "mode=1777",
             (unsigned long long)tmp_bytes);
    CHECK(mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, opts), "mounting /tmp");
    CHECK(path_join(p, sizeof(p), root, "/run"), "path");
    snprintf(opts, sizeof(opts), run_bytes ? "mode=755,size=%llu" : "mode=755",
             (unsigned long long)run_bytes);
    CHECK(mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, opts), "mounting /run");
    return 0;
}

static int setup_dev(const char *root, bool private_parts, char *what, size_t what_len) {
    char dev[4096], p[4200];
    CHECK(path_join(dev, sizeof(dev), root, "/dev"), "path");
    CHECK(mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536"), "mounting /dev");
    /* No mknod in a user namespace: bind the host's nodes onto empty files. */
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
        char host[32];
        snprintf(host, sizeof(host), "/dev/%s", nodes[i]);
        snprintf(p, sizeof(p), "%s/%s", dev, nodes[i]);
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        CHECK(fd, "creating /dev/%s", nodes[i]);
        close(fd);
        CHECK(mount(host, p, NULL, MS_BIND, NULL), "binding /dev/%s", nodes[i]);
    }
    static const char *const dirs[] = {"pts", "shm", "mqueue"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        snprintf(p, sizeof(p), "%s/%s", dev, dirs[i]);
        CHECK(mkdir(p, 0755), "creating /dev/%s", dirs[i]);
    }
    snprintf(p, sizeof(p), "%s/ptmx", dev);
    CHECK(symlink("pts/ptmx", p), "linking /dev/ptmx");
    static const char *const links[][2] = {{"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"},
                                           {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"}};
    for (size_t i = 0; i < ELEMENTSOF(links); i++) {
        snprintf(p, sizeof(p), "%s/%s", dev, links[i][0]);
        CHECK(symlink(links[i][1], p), "linking /dev/%s", links[i][0]);
    }
    return private_parts ? seed_sandbox_mount_dev_private(root, what, what_len) : 0;
}

int seed_sandbox_setup_rootfs(const seed_sandbox_config *c, char *what, size_t what_len) {
    char root[4096], p[4200];

    /* 1. Nothing mounted below propagates anywhere. */
    CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "making mounts private");

    /* 2. + 3. The root: tmpfs for "host", an overlay over the payload for "dir". */
    const char *S = c->scratch_dir;
    CHECK(mount("tmpfs", S, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=16777216"),
          "mounting the root tmpfs");
    if (c->root == SEED_SANDBOX_ROOT_HOST || c->root == SEED_SANDBOX_ROOT_STORE) {
        snprintf(root, sizeof(root), "%s", S);
        int r = c->root == SEED_SANDBOX_ROOT_HOST ? setup_host_payload(root, what, what_len)
                                                  : setup_store_payload(c, root, what, what_len);
        if (r < 0)
            return r;
        r = setup_skeleton(c, root, what, what_len);
        if (r < 0)
            return r;
    } else {
        char scaffold[4096], esc_scaffold[8300], esc_payload[8300], opts[17000];
        CHECK(path_join(scaffold, sizeof(scaffold), S, "scaffold"), "path");
        CHECK(path_join(root, sizeof(root), S, "root"), "path");
        CHECK(mkdir(scaffold, 0755), "creating the scaffold");
        CHECK(mkdir(root, 0755), "creating the root");
        int r = setup_skeleton(c, scaffold, what, what_len);
        if (r < 0)
            return r;
        CHECK(overlay_escape(scaffold, esc_scaffold, sizeof(esc_scaffold)), "path");
        CHECK(overlay_escape(c->root_dir, esc_payload, sizeof(esc_payload)), "root path");
        snprintf(opts, sizeof(opts), "lowerdir=%s:%s", esc_scaffold, esc_payload);
        /* Only lower layers: the overlay is read-only by construction. */
        CHECK(mount("overlay", root, "overlay", MS_NOSUID | MS_NODEV, opts),
              "mounting the root directory %s read-only (overlayfs)", c->root_dir);
    }

    /* 4. Scratch space: before the binds, which may lie on it. A template leaves it to
     * its shoots, which mount their own. */
    int r;
    if (!c->template &&
        (r = seed_sandbox_mount_scratch(root, c->tmp_bytes, c->run_bytes, what, what_len)) < 0)
        return r;

    /* 5. Volumes and other binds, each onto its mount point as opened without
     * following symbolic links (made where missing: on /tmp and /run, or inside a
     * volume mounted before, when volumes nest; the caller orders them parents
     * first). */
    for (size_t i = 0; i < c->n_binds; i++) {
        const seed_bind *b = &c->binds[i];
        int fd = seed_sandbox_open_mount_point(root, b->target, b->file, what, what_len);
        if (fd < 0)
            return fd;
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        r = mount(b->source, p, NULL, MS_BIND, NULL);
        int e = errno;
        close(fd);
        errno = e;
        CHECK(r, "binding %s at %s", b->source, b->target);
        /* The fd names the directory beneath; opened again, the path ends on the bind. */
        if ((fd = seed_sandbox_open_mount_point(root, b->target, b->file, what, what_len)) < 0)
            return fd;
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        r = bind_remount(p, b->readonly);
        e = errno;
        close(fd);
        errno = e;
        CHECK(r, "making %s at %s nosuid, nodev%s", b->source, b->target, b->readonly ? ", read-only" : "");
    }

    /* 5b. A store root's closure over a /nix of the instance's own (nix.enable). */
    if (c->root == SEED_SANDBOX_ROOT_STORE && c->store_after_binds &&
        (r = bind_store_paths(c, root, what, what_len)) < 0)
        return r;

    /* 6. Kernel filesystems. A shoot template keeps its /proc unmasked: each shoot
     * mounts a proc of its own over it, which the kernel allows only where an
     * unobstructed proc is visible, and masks that one. */
    r = seed_sandbox_mount_proc(root, !c->template, what, what_len);
    if (r < 0)
        return r;
    r = setup_sys(root, what, what_len);
    if (r < 0)
        return r;
    /* A template leaves /dev/pts, /dev/shm and /dev/mqueue to its shoots, which mount
     * their own: fewer mounts for each shoot to copy and tear down. */
    r = setup_dev(root, !c->template, what, what_len);
    if (r < 0)
        return r;

    /* 7. Enter the new root; the old one is detached, not unmounted piecemeal. */
    CHECK(chdir(root), "entering the new root");
    CHECK(syscall(SYS_pivot_root, ".", "."), "pivot_root");
    CHECK(umount2(".", MNT_DETACH), "detaching the old root");
    CHECK(chdir("/"), "chdir /");

    /* 8. The root itself is read-only (volumes, /tmp, /run and /dev stay writable). */
    CHECK(mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL),
          "remounting the root read-only");
    /* Shoots share the template's /dev superblock: read-only, so no shoot can leave a
     * file there for the next (each gets its own pts, shm and mqueue on top). */
    if (c->template)
        CHECK(mount(NULL, "/dev", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL),
              "remounting /dev read-only");
    return 0;
}
