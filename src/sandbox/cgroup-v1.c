/* cgroup v1: one directory per controller (memory, cpu, pids), each in its own
 * hierarchy, found through /proc/self/mountinfo. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/fileio.h"
#include "sandbox/cgroup.h"

enum { C_MEMORY, C_CPU, C_PIDS, N_CTRL };
static const char *const ctrl_names[N_CTRL] = {"memory", "cpu", "pids"};

struct seed_cgroup {
    char *path;
    int fd[N_CTRL];
};

static char *mounts[N_CTRL];

/* Mount point of each controller's hierarchy: the cgroup mount whose super options
 * name it ("rw,cpu" or "rw,cpu,cpuacct"). */
static int find_mounts(void) {
    if (mounts[C_MEMORY] && mounts[C_CPU] && mounts[C_PIDS])
        return 0;
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return negative_errno();
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        /* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
        char *sep = strstr(line, " - ");
        if (!sep)
            continue;
        char fstype[32], source[256], superopts[1024];
        if (sscanf(sep + 3, "%31s %255s %1023s", fstype, source, superopts) != 3 || !streq(fstype, "cgroup"))
            continue;
        char mp[1024];
        if (sscanf(line, "%*s %*s %*s %*s %1023s", mp) != 1)
            continue;
        for (int c = 0; c < N_CTRL; c++) {
            if (mounts[c])
                continue;
            char *save = NULL, opts[1024];
            snprintf(opts, sizeof(opts), "%s", superopts);
            for (char *t = strtok_r(opts, ",", &save); t; t = strtok_r(NULL, ",", &save))
                if (streq(t, ctrl_names[c])) {
                    mounts[c] = strdup(mp);
                    break;
                }
        }
    }
    for (int c = 0; c < N_CTRL; c++)
        if (!mounts[c])
            return -ENOENT;
    return 0;
}

static void v1_free(seed_cgroup *cg) {
    if (!cg)
        return;
    for (int c = 0; c < N_CTRL; c++)
        if (cg->fd[c] >= 0)
            close(cg->fd[c]);
    free(cg->path);
    free(cg);
}

static int v1_open_dirs(const char *path, bool create, seed_cgroup **ret) {
    int r = find_mounts();
    if (r < 0)
        return r;
    seed_cgroup *cg = calloc(1, sizeof(*cg));
    if (!cg)
        return -ENOMEM;
    for (int c = 0; c < N_CTRL; c++)
        cg->fd[c] = -1;
    cg->path = strdup(path);
    if (!cg->path) {
        v1_free(cg);
        return -ENOMEM;
    }
    for (int c = 0; c < N_CTRL; c++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s%s", mounts[c], path);
        if (create && (r = seed_mkdir_p(full, 0755)) < 0) {
            v1_free(cg);
            return r;
        }
        cg->fd[c] = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cg->fd[c] < 0) {
            r = negative_errno();
            v1_free(cg);
            return r;
        }
    }
    *ret = cg;
    return 0;
}

static int write_u64(int dirfd, const char *file, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    return seed_write_stringat(dirfd, file, buf);
}

static int v1_create(const char *path, const seed_limits *lim, seed_cgroup **ret, seed_error **err) {
    seed_cgroup *cg = NULL;
    int r = v1_open_dirs(path, true, &cg);
    if (r < 0)
        return seed_error_setp(err, -r, "cgroup v1: creating %s", path);
    /* memory: the limit, and the same for memory+swap so swap cannot extend it. The
     * order matters when a reused cgroup had other values (memsw >= limit always). */
    const char *step = NULL;
    if (lim->memory_bytes) {
        int fd = cg->fd[C_MEMORY];
        bool memsw = faccessat(fd, "memory.memsw.limit_in_bytes", F_OK, 0) == 0;
        r = write_u64(fd, "memory.limit_in_bytes", lim->memory_bytes);
        if (r == -EINVAL && memsw) {
            r = write_u64(fd, "memory.memsw.limit_in_bytes", lim->memory_bytes);
            if (r >= 0)
                r = write_u64(fd, "memory.limit_in_bytes", lim->memory_bytes);
        } else if (r >= 0 && memsw) {
            r = write_u64(fd, "memory.memsw.limit_in_bytes", lim->memory_bytes);
        }
        if (r < 0)
            step = "memory.limit_in_bytes";
    }
    if (r >= 0) {
        r = seed_write_stringat(cg->fd[C_CPU], "cpu.cfs_period_us", "100000");
        if (r >= 0)
            r = lim->cpu_millis
                    ? write_u64(cg->fd[C_CPU], "cpu.cfs_quota_us", (uint64_t)lim->cpu_millis * 100)
                    : seed_write_stringat(cg->fd[C_CPU], "cpu.cfs_quota_us", "-1");
        if (r < 0)
            step = "cpu.cfs_quota_us";
    }
    if (r >= 0) {
        r = lim->pids ? write_u64(cg->fd[C_PIDS], "pids.max", lim->pids)
                      : seed_write_stringat(cg->fd[C_PIDS], "pids.max", "max");
        if (r < 0)
            step = "pids.max";
    }
    if (r < 0) {
        v1_free(cg);
        return seed_error_setp(err, -r, "cgroup v1: setting %s of %s", step, path);
    }
    *ret = cg;
    return 0;
}

static int v1_open(const char *path, seed_cgroup **ret) {
    return v1_open_dirs(path, false, ret);
}

static int v1_attach(seed_cgroup *cg, pid_t pid) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", (int)pid);
    for (int c = 0; c < N_CTRL; c++) {
        int r = seed_write_stringat(cg->fd[c], "cgroup.procs", buf);
        if (r < 0)
            return r;
    }
    return 0;
}

static int v1_procs_fds(seed_cgroup *cg, int *fds, size_t max) {
    if (max < N_CTRL)
        return -ENOBUFS;
    for (int c = 0; c < N_CTRL; c++) {
        fds[c] = openat(cg->fd[c], "cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (fds[c] < 0) {
            int r = negative_errno();
            while (c-- > 0)
                close(fds[c]);
            return r;
        }
    }
    return N_CTRL;
}

static int v1_clone_fd(seed_cgroup *cg) {
    return -EOPNOTSUPP;
}

static int v1_kill_all(seed_cgroup *cg) {
    /* No cgroup.kill in v1: kill what is listed until nothing is (the pids limit
     * bounds how fast a fork loop can refill it). */
    for (int round = 0; round < 500; round++) {
        size_t n = 0;
        int r = seed_cgroup_kill_listed(cg->fd[C_PIDS], &n);
        if (r < 0)
            return r;
        if (n == 0)
            return 0;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return -EBUSY;
}

static int v1_pids_current(seed_cgroup *cg, uint64_t *ret) {
    return seed_cgroup_read_u64(cg->fd[C_PIDS], "pids.current", NULL, ret);
}

static int v1_oom_kills(seed_cgroup *cg, uint64_t *ret) {
    return seed_cgroup_read_u64(cg->fd[C_MEMORY], "memory.oom_control", "oom_kill", ret);
}

static int v1_destroy(seed_cgroup *cg) {
    int ret = 0;
    for (int c = 0; c < N_CTRL; c++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s%s", mounts[c], cg->path);
        int r = seed_cgroup_rmdir_wait(full);
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

static int v1_remove_if_empty(const char *path) {
    int r = find_mounts();
    for (int c = 0; r >= 0 && c < N_CTRL; c++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s%s", mounts[c], path);
        if (rmdir(full) < 0 && errno != ENOENT)
            r = negative_errno();
    }
    return r;
}

static int v1_list_children(const char *path, char ***ret) {
    int r = find_mounts();
    if (r < 0)
        return r;
    char full[4096];
    snprintf(full, sizeof(full), "%s%s", mounts[C_PIDS], path);
    return seed_cgroup_list_dirs(full, ret);
}

const seed_cgroup_ops seed_cgroup_v1 = {
    .name = "v1",
    .create = v1_create,
    .open = v1_open,
    .attach = v1_attach,
    .procs_fds = v1_procs_fds,
    .clone_fd = v1_clone_fd,
    .kill_all = v1_kill_all,
    .pids_current = v1_pids_current,
    .oom_kills = v1_oom_kills,
    .destroy = v1_destroy,
    .free = v1_free,
    .remove_if_empty = v1_remove_if_empty,
    .list_children = v1_list_children,
};
