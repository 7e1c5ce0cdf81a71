/* Resource limits through cgroups, v2 (unified) or v1 (per-controller hierarchies),
 * picked at runtime behind one table of operations. Paths are relative to the
 * hierarchy root, like "/seed/<node>/<instance>". */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

typedef struct seed_limits {
    uint64_t memory_bytes; /* 0: no limit */
    unsigned cpu_millis;   /* 1000 = one CPU; 0: no limit */
    unsigned pids;         /* 0: no limit */
} seed_limits;

typedef struct seed_cgroup seed_cgroup;

typedef struct seed_cgroup_ops {
    const char *name; /* "v2" or "v1" */
    /* Create (or reuse) the cgroup at path with limits; parents are created. */
    int (*create)(const char *path, const seed_limits *lim, seed_cgroup **ret, seed_error **err);
    /* Open an existing cgroup without changing it (for cleanup of a previous run). */
    int (*open)(const char *path, seed_cgroup **ret);
    int (*attach)(seed_cgroup *cg, pid_t pid);
    /* Open the cgroup.procs files (one per hierarchy) for writing; a process handed
     * these fds can move itself in by writing "0", with the opener's permission (the
     * kernel checks the credentials of the open, not of the write). Returns the count. */
    int (*procs_fds)(seed_cgroup *cg, int *fds, size_t max);
    /* A directory fd for clone3(CLONE_INTO_CGROUP), or -EOPNOTSUPP (v1). */
    int (*clone_fd)(seed_cgroup *cg);
    /* SIGKILL every process in the cgroup and wait (bounded) until it is empty. */
    int (*kill_all)(seed_cgroup *cg);
    /* Processes in the cgroup now; out-of-memory kills so far. */
    int (*pids_current)(seed_cgroup *cg, uint64_t *ret);
    int (*oom_kills)(seed_cgroup *cg, uint64_t *ret);
    /* Remove the (empty) cgroup directories. */
    int (*destroy)(seed_cgroup *cg);
    void (*free)(seed_cgroup *cg);
    /* Remove the directory at path if it is empty (one attempt, no waiting). */
    int (*remove_if_empty)(const char *path);
    /* Names of child cgroups of path (to find leftovers); NULL-terminated. */
    int (*list_children)(const char *path, char ***ret);
} seed_cgroup_ops;

extern const seed_cgroup_ops seed_cgroup_v1;
extern const seed_cgroup_ops seed_cgroup_v2;

/* The backend this host supports: v2 when /sys/fs/cgroup is cgroup2 with the memory,
 * cpu and pids controllers available; v1 when those controllers have v1 hierarchies
 * (a hybrid host whose cgroup2 mount carries no controllers counts as v1). */
int seed_cgroup_detect(const seed_cgroup_ops **ret, seed_error **err);

/* Mount the cgroup hierarchies this process belongs to under /sys/fs/cgroup, as the
 * host has them: for a mount namespace of our own whose /sys lacks them (as under
 * `ip netns exec`, which mounts a fresh sysfs). */
int seed_cgroup_mount_hierarchies(seed_error **err);

/* Shared helpers for the two backends. */
int seed_cgroup_read_u64(int dirfd, const char *file, const char *key, uint64_t *ret);
int seed_cgroup_read_pids(int dirfd, const char *file, pid_t **ret, size_t *n);
/* SIGKILL every process listed in dirfd's cgroup.procs; *n gets how many there were. */
int seed_cgroup_kill_listed(int dirfd, size_t *n);
/* rmdir an absolute cgroup directory, waiting (bounded) while exiting tasks keep it
 * busy. A missing directory counts as removed. */
int seed_cgroup_rmdir_wait(const char *dir);
/* Names of the subdirectories of an absolute directory, NULL-terminated. */
int seed_cgroup_list_dirs(const char *dir, char ***ret);
