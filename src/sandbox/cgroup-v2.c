/* cgroup v2: one directory in the unified hierarchy; controllers are enabled in the
 * parents' cgroup.subtree_control on the way down. */
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

#include "base/fileio.h"
#include "sandbox/cgroup.h"

struct seed_cgroup {
    char *path;
    int fd;
};

/* The cgroup2 mount: found once (the layout does not change under a running node). */
static const char *v2_root(void) {
    static const char *root;
    if (!root) {
        struct statfs fs;
        root = statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC
                   ? "/sys/fs/cgroup"
                   : "/sys/fs/cgroup/unified";
    }
    return root;
}

static void v2_free(seed_cgroup *cg) {
    if (!cg)
        return;
    if (cg->fd >= 0)
        close(cg->fd);
    free(cg->path);
    free(cg);
}

static int v2_open(const char *path, seed_cgroup **ret) {
    char full[4096];
    snprintf(full, sizeof(full), "%s%s", v2_root(), path);
    int fd = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    seed_cgroup *cg = calloc(1, sizeof(*cg));
    if (!cg || !(cg->path = strdup(path))) {
        free(cg);
        close(fd);
        return -ENOMEM;
    }
    cg->fd = fd;
    *ret = cg;
    return 0;
}

static int v2_create(const char *path, const seed_limits *lim, seed_cgroup **ret, seed_error **err) {
    const char *root = v2_root();
    char full[4096];
    snprintf(full, sizeof(full), "%s", root);
    /* Walk down: enable the controllers in each level's subtree_control, then mkdir. */
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchrnul(p, '/');
        char ctl[4200];
        snprintf(ctl, sizeof(ctl), "%s/cgroup.subtree_control", full);
        int r = seed_write_string(ctl, "+memory +cpu +pids");
        if (r < 0)
            return seed_error_setp(err, -r, "cgroup v2: enabling controllers in %s", full);
        size_t n = strlen(full);
        snprintf(full + n, sizeof(full) - n, "/%.*s", (int)(e - p), p);
        if (mkdir(full, 0755) < 0 && errno != EEXIST)
            return seed_error_setp(err, errno, "cgroup v2: creating %s", full);
        p = e;
    }
    seed_cgroup *cg = NULL;
    int r = v2_open(path, &cg);
    if (r < 0)
        return seed_error_setp(err, -r, "cgroup v2: opening %s", path);
    char buf[64];
    const char *step = "memory.max";
    if (lim->memory_bytes)
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)lim->memory_bytes);
    else
        snprintf(buf, sizeof(buf), "max");
    r = seed_write_stringat(cg->fd, "memory.max", buf);
    if (r >= 0 && faccessat(cg->fd, "memory.swap.max", F_OK, 0) == 0)
        r = seed_write_stringat(cg->fd, "memory.swap.max", lim->memory_bytes ? "0" : "max");
    if (r >= 0) {
        step = "cpu.max";
        if (lim->cpu_millis)
            snprintf(buf, sizeof(buf), "%u 100000", lim->cpu_millis * 100);
        else
            snprintf(buf, sizeof(buf), "max 100000");
        r = seed_write_stringat(cg->fd, "cpu.max", buf);
    }
    if (r >= 0) {
        step = "pids.max";
        if (lim->pids)
            snprintf(buf, sizeof(buf), "%u", lim->pids);
        else
            snprintf(buf, sizeof(buf), "max");
        r = seed_write_stringat(cg->fd, "pids.max", buf);
    }
    if (r < 0) {
        v2_free(cg);
        return seed_error_setp(err, -r, "cgroup v2: setting %s of %s", step, path);
    }
    *ret = cg;
    return 0;
}

static int v2_attach(seed_cgroup *cg, pid_t pid) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", (int)pid);
    return seed_write_stringat(cg->fd, "cgroup.procs", buf);
}

static int v2_procs_fds(seed_cgroup *cg, int *fds, size_t max) {
    if (max < 1)
        return -ENOBUFS;
    fds[0] = openat(cg->fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    return fds[0] < 0 ? negative_errno() : 1;
}

static int v2_clone_fd(seed_cgroup *cg) {
    return cg->fd;
}

static bool populated(seed_cgroup *cg) {
    uint64_t v = 1;
    if (seed_cgroup_read_u64(cg->fd, "cgroup.events", "populated", &v) < 0)
        return false;
    return v != 0;
}

static int v2_kill_all(seed_cgroup *cg) {
    bool have_kill = seed_write_stringat(cg->fd, "cgroup.kill", "1") >= 0; /* kernel >= 5.14 */
    for (int round = 0; round < 500 && populated(cg); round++) {
        size_t n;
        if (!have_kill)
            seed_cgroup_kill_listed(cg->fd, &n);
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return populated(cg) ? -EBUSY : 0;
}

static int v2_pids_current(seed_cgroup *cg, uint64_t *ret) {
    return seed_cgroup_read_u64(cg->fd, "pids.current", NULL, ret);
}

static int v2_oom_kills(seed_cgroup *cg, uint64_t *ret) {
    return seed_cgroup_read_u64(cg->fd, "memory.events", "oom_kill", ret);
}

static int v2_destroy(seed_cgroup *cg) {
    char full[4096];
    snprintf(full, sizeof(full), "%s%s", v2_root(), cg->path);
    return seed_cgroup_rmdir_wait(full);
}

static int v2_remove_if_empty(const char *path) {
    char full[4096];
    snprintf(full, sizeof(full), "%s%s", v2_root(), path);
    return rmdir(full) < 0 && errno != ENOENT ? negative_errno() : 0;
}

static int v2_list_children(const char *path, char ***ret) {
    char full[4096];
    snprintf(full, sizeof(full), "%s%s", v2_root(), path);
    return seed_cgroup_list_dirs(full, ret);
}

const seed_cgroup_ops seed_cgroup_v2 = {
    .name = "v2",
    .create = v2_create,
    .open = v2_open,
    .attach = v2_attach,
    .procs_fds = v2_procs_fds,
    .clone_fd = v2_clone_fd,
    .kill_all = v2_kill_all,
    .pids_current = v2_pids_current,
    .oom_kills = v2_oom_kills,
    .destroy = v2_destroy,
    .free = v2_free,
    .remove_if_empty = v2_remove_if_empty,
    .list_children = v2_list_children,
};
