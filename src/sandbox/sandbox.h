/* A sandbox: one isolated process tree. The node describes what goes in (root,
 * mounts, files, network, limits, security, what to exec) and a backend builds it.
 * Backends sit behind a small table so a microVM backend can join the container
 * one without the node changing. */
#pragma once

#include <netinet/in.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "sandbox/cgroup.h"
#include "sandbox/security.h"

typedef enum seed_sandbox_root {
    SEED_SANDBOX_ROOT_HOST,  /* the host's /usr (and merged-usr links), a minimal /etc */
    SEED_SANDBOX_ROOT_DIR,   /* a directory, read-only */
    SEED_SANDBOX_ROOT_STORE, /* Nix store paths under /nix/store, read-only, and links from /
                              * to the top-level entries of one of them (root_dir) */
} seed_sandbox_root;

typedef struct seed_bind {
    const char *source; /* path in the node's mount namespace */
    const char *target; /* absolute path in the sandbox */
    bool readonly;
    bool file; /* a file, not a directory */
} seed_bind;

typedef struct seed_sandbox_file {
    const char *path; /* absolute path in the sandbox (under /etc or /run) */
    const char *content;
    unsigned mode;
} seed_sandbox_file;

typedef struct seed_sandbox_net {
    bool attach;                  /* false: loopback only */
    const char *host_ifname;      /* veth end that stays with the node */
    unsigned bridge_ifindex;      /* in the node's network namespace */
    struct in_addr addr, gateway; /* the sandbox's eth0 */
    unsigned prefix;
    bool firewall; /* drop inbound traffic except to these ports */
    const unsigned *tcp_ports;
    size_t n_tcp;
    const unsigned *udp_ports;
    size_t n_udp;
} seed_sandbox_net;

typedef struct seed_sandbox_config {
    const char *hostname;
    uid_t id_base;     /* uid and gid 0 inside map to id_base outside */
    unsigned id_count; /* size of the mapped range */
    seed_sandbox_root root;
    const char *root_dir;           /* SEED_SANDBOX_ROOT_DIR: the payload directory; _STORE: the store path */
    const char *const *store_paths; /* SEED_SANDBOX_ROOT_STORE: the closure of root_dir */
    size_t n_store_paths;
    bool store_after_binds;  /* bind them over the binds (a /nix of the instance's own), not into
                              * a read-only /nix/store of their own */
    const char *scratch_dir; /* an empty directory to assemble the root on */
    const seed_bind *binds;
    size_t n_binds;
    const seed_sandbox_file *files;
    size_t n_files;
    seed_sandbox_net net;
    const seed_cgroup_ops *cgroup_ops;
    seed_cgroup *cgroup; /* may be NULL */
    const seed_security *security;
    int exec_fd; /* executed with execveat(AT_EMPTY_PATH) */
    char *const *argv;
    char *const *envp;
    const int *pass_fds; /* become fds 3, 4, ... in the sandbox */
    size_t n_pass_fds;
    /* Sizes of the tmpfs on /tmp and /run (0: the kernel's default, half of RAM). */
    uint64_t tmp_bytes, run_bytes;
    /* Outlives the node (seedd): no parent-death signal; the node's successor adopts
     * it. Otherwise it dies with the node. */
    bool survive_node;
    /* A shoot template: keeps its capabilities and no seccomp filter (it builds the
     * shoots, which drop both), leaves /proc unmasked and /dev read-only. */
    bool template;
} seed_sandbox_config;

typedef struct seed_sandbox {
    pid_t pid; /* PID 1 of the sandbox, as the node sees it */
    int pidfd; /* readable when it exits */
} seed_sandbox;

/* clone3 into the namespaces every sandbox gets — user, mount, PID, network, IPC,
 * UTS — with a pidfd for the parent, born in cgroup_fd when it is >= 0 (cgroup v2).
 * Returns like fork(): 0 in the child. */
static inline pid_t seed_clone_sandbox(int *pidfd, int cgroup_fd) {
    struct clone_args ca = {
        .flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
                 CLONE_PIDFD,
        .pidfd = (uint64_t)(uintptr_t)pidfd,
        .exit_signal = SIGCHLD,
    };
    if (cgroup_fd >= 0) {
        ca.flags |= 0x200000000ULL; /* CLONE_INTO_CGROUP */
        ca.cgroup = (uint64_t)cgroup_fd;
    }
    return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

/* Map ids 0..count-1 inside pid's user namespace to base.. outside; file is "uid_map"
 * or "gid_map". */
static inline int seed_sandbox_write_id_map(pid_t pid, const char *file, unsigned base, unsigned count) {
    char path[64], map[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    snprintf(map, sizeof(map), "0 %u %u\n", base, count);
    return seed_write_string(path, map);
}

/* Signal a process through its pidfd: 0, or a negative errno. */
static inline int seed_pidfd_kill(int pidfd, int sig) {
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

typedef struct seed_sandbox_backend {
    const char *name;
    /* Build the sandbox and exec argv in it; returns once the exec happened or
     * failed (with the child's own errno and message). */
    int (*start)(const seed_sandbox_config *c, seed_sandbox *out, seed_error **err);
    int (*kill)(seed_sandbox *sb, int sig);
    /* Reap and release; the sandbox must have exited. Returns its wait status. */
    int (*reap)(seed_sandbox *sb);
} seed_sandbox_backend;

extern const seed_sandbox_backend seed_sandbox_container;

/* Steps run inside the child (rootfs.c, network.c); each returns -errno and names
 * what failed in *what (a static string or one built into the given buffer). */
int seed_sandbox_setup_network(const seed_sandbox_net *net, char *what, size_t what_len);
int seed_sandbox_setup_rootfs(const seed_sandbox_config *c, char *what, size_t what_len);
/* Pieces of the root a shoot mounts afresh over its template's (root "" is "/"). */
int seed_sandbox_mount_proc(const char *root, bool masked, char *what, size_t what_len);
int seed_sandbox_mount_dev_private(const char *root, char *what, size_t what_len);
int seed_sandbox_mount_scratch(const char *root, uint64_t tmp_bytes, uint64_t run_bytes, char *what,
                               size_t what_len);
/* Open (O_PATH) the mount point target below root, making what is missing, without
 * following a symbolic link anywhere on the way (a directory, or with file an empty
 * regular file). Returns the fd, or -errno with *what set. */
int seed_sandbox_open_mount_point(const char *root, const char *target, bool file, char *what,
                                  size_t what_len);
/* Whether an in-sandbox path lies on the scratch filesystems (/tmp, /run): something
 * mounted there must be mounted after them, or they hide it. */
bool seed_sandbox_on_scratch(const char *path);
