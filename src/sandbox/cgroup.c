/* Cgroup backend detection and helpers shared by v1 and v2. */
#include "sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"

int seed_cgroup_read_u64(int dirfd, const char *file, const char *key, uint64_t *ret) {
    _cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    _cleanup_free_ char *buf = NULL;
    int r = seed_read_fd(fd, 1 << 16, &buf, NULL);
    if (r < 0)
        return r;
    if (!key) {
        if (strncmp(buf, "max", 3) == 0) {
            *ret = UINT64_MAX;
            return 0;
        }
        *ret = strtoull(buf, NULL, 10);
        return 0;
    }
    /* "key value" lines (memory.events, memory.oom_control, memory.stat) */
    size_t klen = strlen(key);
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            *ret = strtoull(line + klen + 1, NULL, 10);
            return 0;
        }
    return -ENOENT;
}

int seed_cgroup_kill_listed(int dirfd, size_t *n) {
    pid_t *pids = NULL;
    int r = seed_cgroup_read_pids(dirfd, "cgroup.procs", &pids, n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < *n; i++)
        kill(pids[i], SIGKILL);
    free(pids);
    return 0;
}

int seed_cgroup_rmdir_wait(const char *dir) {
    for (int tries = 0; tries < 200; tries++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return negative_errno();
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    return -EBUSY;
}

int seed_cgroup_read_pids(int dirfd, const char *file, pid_t **ret, size_t *n) {
    _cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    _cleanup_free_ char *buf = NULL;
    int r = seed_read_fd(fd, 16 << 20, &buf, NULL);
    if (r < 0)
        return r;
    size_t cap = 16, count = 0;
    pid_t *pids = malloc(cap * sizeof(pid_t));
    if (!pids)
        return -ENOMEM;
    for (char *p = buf; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        if (count == cap) {
            pid_t *np = realloc(pids, (cap *= 2) * sizeof(pid_t));
            if (!np) {
                free(pids);
                return -ENOMEM;
            }
            pids = np;
        }
        pids[count++] = (pid_t)v;
        p = end;
        while (*p == '\n')
            p++;
    }
    *ret = pids;
    *n = count;
    return 0;
}

int seed_cgroup_list_dirs(const char *dir, char ***ret) {
    DIR *d = opendir(dir);
    if (!d)
        return negative_errno();
    size_t n = 0;
    char **v = calloc(1, sizeof(char *));
    struct dirent *de;
    while (v && (de = readdir(d))) {
        if (de->d_type != DT_DIR || de->d_name[0] == '.')
            continue;
        char **nv = realloc(v, (n + 2) * sizeof(char *));
        if (!nv)
            break;
        v = nv;
        if (!(v[n] = strdup(de->d_name)))
            break;
        v[++n] = NULL;
    }
    closedir(d);
    if (!v)
        return -ENOMEM;
    *ret = v;
    return 0;
}

static bool has_controllers(const char *file) {
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    _cleanup_free_ char *buf = NULL;
    if (seed_read_fd(fd, 4096, &buf, NULL) < 0)
        return false;
    return strstr(buf, "memory") && strstr(buf, "cpu") && strstr(buf, "pids");
}

int seed_cgroup_detect(const seed_cgroup_ops **ret, seed_error **err) {
    struct statfs fs;
    if (statfs("/sys/fs/cgroup", &fs) < 0)
        return seed_error_setp(err, errno, "cgroups: /sys/fs/cgroup is not mounted");
    if (fs.f_type == CGROUP2_SUPER_MAGIC) {
        if (!has_controllers("/sys/fs/cgroup/cgroup.controllers"))
            return seed_error_set(err, EOPNOTSUPP,
                                  "cgroups: the cgroup2 hierarchy lacks the memory, cpu or pids "
                                  "controller; resource limits cannot be enforced");
        *ret = &seed_cgroup_v2;
        return 0;
    }
    /* tmpfs with v1 hierarchies (and maybe a controller-less cgroup2 at unified/) */
    struct statfs m;
    if (statfs("/sys/fs/cgroup/memory", &m) == 0 && m.f_type == CGROUP_SUPER_MAGIC) {
        *ret = &seed_cgroup_v1;
        return 0;
    }
    if (statfs("/sys/fs/cgroup/unified", &m) == 0 && m.f_type == CGROUP2_SUPER_MAGIC &&
        has_controllers("/sys/fs/cgroup/unified/cgroup.controllers")) {
        *ret = &seed_cgroup_v2;
        return 0;
    }
    return seed_error_set(err, EOPNOTSUPP,
                          "cgroups: neither a cgroup2 hierarchy with the memory, cpu and pids "
                          "controllers nor v1 hierarchies for them were found under /sys/fs/cgroup");
}

int seed_cgroup_mount_hierarchies(seed_error **err) {
    /* /proc/self/cgroup names every hierarchy this process is in: "0::/..." for the
     * unified one, "N:memory:/..." or "N:name=systemd:/..." for v1 ones. */
    _cleanup_fclose_ FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return seed_error_setp(err, errno, "cgroups: reading /proc/self/cgroup");
    char lines[32][256];
    size_t n = 0;
    bool v1 = false;
    while (n < ELEMENTSOF(lines) && fgets(lines[n], sizeof(lines[n]), f)) {
        char *c = strchr(lines[n], ':'), *c2 = c ? strchr(c + 1, ':') : NULL;
        if (!c || !c2)
            continue;
        *c2 = 0;
        memmove(lines[n], c + 1, strlen(c + 1) + 1); /* the controllers, "" for unified */
        v1 |= lines[n][0] != 0;
        n++;
    }
    const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (!v1) {
        if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", flags, NULL) < 0)
            return seed_error_setp(err, errno, "cgroups: mounting cgroup2 at /sys/fs/cgroup");
        return 0;
    }
    if (mount("tmpfs", "/sys/fs/cgroup", "tmpfs", flags, "mode=755,size=64k") < 0)
        return seed_error_setp(err, errno, "cgroups: mounting a tmpfs at /sys/fs/cgroup");
    for (size_t i = 0; i < n; i++) {
        const char *ctrls = lines[i];
        bool unified = !*ctrls;
        bool named = strncmp(ctrls, "name=", 5) == 0;
        char dir[300], opts[300];
        snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%.255s", unified ? "unified" : named ? ctrls + 5 : ctrls);
        snprintf(opts, sizeof(opts), named ? "none,%.255s" : "%.255s", ctrls);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return seed_error_setp(err, errno, "cgroups: creating %s", dir);
        /* Mounting a hierarchy that exists with its own options gives that hierarchy. */
        if (mount(unified ? "cgroup2" : "cgroup", dir, unified ? "cgroup2" : "cgroup", flags,
                  unified ? NULL : opts) < 0)
            return seed_error_setp(err, errno, "cgroups: mounting the %s hierarchy at %s",
                                   unified ? "unified" : ctrls, dir);
    }
    return 0;
}
