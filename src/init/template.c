/* seed-init --shoot-template: a caller's shoot template, and the PID 1 of each of its
 * shoots.
 *
 * The template lives in a sandbox the node built like the caller's own (same root,
 * same volumes) but with its capabilities, an unmasked /proc and a read-only /dev.
 * On SPAWN it clones a warm sandbox: fresh user (identity-mapped inside the
 * template's), mount, PID, network, IPC and UTS namespaces. That sandbox's mount
 * namespace is a copy of the template's finished root, so it only has to add what
 * must be its own — /proc, /tmp, /run, /dev/pts, /dev/shm, /dev/mqueue, a cgroup
 * namespace, lo — then it drops capabilities, loads the seccomp filter and waits.
 * On RUN it forks the command, waits for it, reports the status and exits, which
 * ends every process the command started (PID 1 of the namespace is gone). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <linux/sched.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "base/fileio.h"
#include "base/macro.h"
#include "init/template.h"
#include "sandbox/sandbox.h"
#include "sandbox/security.h"
#include "shoot/protocol.h"

#define NODE_FD 4
/* Volumes of one instance: at most the entries of one storage map. */
#define MAX_SCRATCH_BINDS 1000
#define FILTER_FD 5

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif

typedef struct scratch_bind {
    char *target;
    bool file;
} scratch_bind;

static struct {
    uint64_t keep_caps;
    char hostname[64];
    struct sock_fprog filter;
    uint64_t tmp_bytes, run_bytes;
    scratch_bind *binds; /* volumes on /tmp or /run, put back over each shoot's tmpfs */
    size_t n_binds;
} T;

/* Mount the shoot's own /tmp and /run, keeping the volumes that lie on them: each is
 * detached (a clone of it, held by an fd) before the tmpfs covers it, and moved back
 * on top after. */
static int mount_scratch_keeping_volumes(char *what, size_t what_len) {
    int fds[MAX_SCRATCH_BINDS];
    size_t n = MIN(T.n_binds, ELEMENTSOF(fds));
    for (size_t i = 0; i < n; i++) {
        /* A volume inside another (they come parents first) travels with it: the clone
         * is recursive, as it must be for mounts locked by the template's namespace. */
        bool nested = false;
        for (size_t k = 0; k < i && !nested; k++)
            nested = fds[k] >= 0 && seed_path_under(T.binds[i].target, T.binds[k].target);
        fds[i] = nested ? -1
                        : (int)syscall(SYS_open_tree, AT_FDCWD, T.binds[i].target,
                                       OPEN_TREE_CLONE | AT_RECURSIVE | O_CLOEXEC);
        if (fds[i] < 0 && !nested) {
            int e = errno;
            snprintf(what, what_len, "holding the volume at %s", T.binds[i].target);
            while (i-- > 0)
                if (fds[i] >= 0)
                    close(fds[i]);
            return -e;
        }
    }
    int r = seed_sandbox_mount_scratch("", T.tmp_bytes, T.run_bytes, what, what_len);
    for (size_t i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        if (r >= 0) {
            /* Onto its mount point in the fresh tmpfs (or in a volume put back before
             * it), opened without following symbolic links. */
            int to = seed_sandbox_open_mount_point("/", T.binds[i].target, T.binds[i].file, what, what_len);
            if (to < 0) {
                r = to;
            } else {
                if (syscall(SYS_move_mount, fds[i], "", to, "",
                            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
                    r = -errno;
                    snprintf(what, what_len, "putting the volume back at %s", T.binds[i].target);
                }
                close(to);
            }
        }
        close(fds[i]);
    }
    return r;
}

static int send_hdr(int sock, uint32_t type, int err, uint32_t arg, const char *msg) {
    seed_shoot_hdr h = {.type = type, .err = err, .arg = arg, .len = msg ? (uint32_t)strlen(msg) : 0};
    ssize_t n = seed_send_fds(sock, &h, sizeof(h), msg, h.len, NULL, 0, 0);
    return n < 0 ? (int)n : 0;
}

/* ---- the shoot's PID 1 ---- */

static _noreturn_ void fail(int sock, int err, const char *what) {
    send_hdr(sock, SEED_SHOOT_FAILED, err, 0, what);
    _exit(1);
}

static int lo_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int e = errno;
    close(s);
    return r < 0 ? -e : 0;
}

/* Split the RUN payload: cwd, argv..., env... */
static int parse_run(char *p, size_t len, char **cwd, char ***argv, char ***envp) {
    if (len < 8 || p[len - 1] != 0)
        return -EBADMSG;
    uint32_t argc, envc;
    memcpy(&argc, p, 4);
    memcpy(&envc, p + 4, 4);
    if (argc == 0 || argc > 65536 || envc > 65536)
        return -EBADMSG;
    char **v = calloc((size_t)argc + envc + 2, sizeof(char *));
    if (!v)
        return -ENOMEM;
    char *s = p + 8, *end = p + len;
    *cwd = s;
    s += strlen(s) + 1;
    for (uint32_t i = 0; i < argc + envc; i++) {
        if (s >= end) {
            free(v);
            return -EBADMSG;
        }
        /* argv, a NULL, then env */
        v[i < argc ? i : i + 1] = s;
        s += strlen(s) + 1;
    }
    *argv = v;
    *envp = v + argc + 1;
    return 0;
}

/* Start the command with posix_spawn (a vfork-style clone: no copy of our page
 * tables) on the given stdio. On failure, say why on its stderr and return -errno. */
static pid_t spawn_command(char **argv, char **envp, const char *cwd, const int fds[3]) {
    struct stat st;
    if (stat(cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
        int e = errno ? errno : ENOTDIR;
        dprintf(fds[2], "seed-shoot: cannot change to directory \"%s\": %s\n", cwd, strerror(e));
        return -EACCES; /* reported as 126 */
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    for (int i = 0; i < 3; i++)
        posix_spawn_file_actions_adddup2(&fa, fds[i], i);
    posix_spawn_file_actions_addchdir_np(&fa, cwd);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    /* posix_spawnp searches the PATH of our environment: make it the command's. */
    extern char **environ;
    environ = envp;
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (e != 0) {
        dprintf(fds[2], "seed-shoot: cannot execute \"%s\": %s\n", argv[0], strerror(e));
        return -e;
    }
    return pid;
}

static _noreturn_ void shoot_main(int sock, const int *cg_fds, size_t n_cg) {
    char what[512];
    /* Not ptraceable by the command (it holds the channel to the node); inherited from
     * the template, said again because it is a promise of this process. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* The template ignores SIGCHLD (the kernel reaps shoots for it); we must not, or
     * waitpid() below would find no status to report. */
    signal(SIGCHLD, SIG_DFL);
    /* Our own session and process group: process groups cross PID namespaces, and a
     * shoot's kill(0, ...) must not reach the template or the other shoots. */
    if (setsid() < 0)
        _exit(1);
    seed_shoot_hdr h;
    if (recv(sock, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.type != SEED_SHOOT_GO)
        _exit(1);

    /* Into our own cgroup, through the node's open cgroup.procs files; the migration
     * (which can stall on an RCU grace period) is ours to wait for, nobody else's. */
    for (size_t i = 0; i < n_cg; i++) {
        if (write(cg_fds[i], "0", 1) != 1)
            fail(sock, errno, "moving into the shoot's cgroup");
        close(cg_fds[i]);
    }
    /* Root of the new user namespace (identity-mapped: the template's uids). */
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0 || setgroups(0, NULL) < 0)
        fail(sock, errno, "becoming root of the shoot's user namespace");
    /* Die with the template; after the uid change, which would clear it. Should the
     * template be gone already, the node closes our socket and we stop at the next
     * receive. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* the uid change reset it too */
    if (unshare(CLONE_NEWCGROUP) < 0)
        fail(sock, errno, "creating the cgroup namespace");
    if (sethostname(T.hostname, strlen(T.hostname)) < 0)
        fail(sock, errno, "setting the hostname");
    /* The template's mounts are all private already (it made / private before it
     * built its root), and so are our copies of them. */
    int r = seed_sandbox_mount_proc("", true, what, sizeof(what));
    if (r >= 0)
        r = mount_scratch_keeping_volumes(what, sizeof(what));
    if (r >= 0)
        r = seed_sandbox_mount_dev_private("", what, sizeof(what));
    if (r < 0)
        fail(sock, -r, what);
    if ((r = lo_up()) < 0)
        fail(sock, -r, "bringing up lo");
    const char *step = NULL;
    if ((r = seed_security_apply_caps(T.keep_caps, &step)) < 0 ||
        (r = seed_security_apply_filter(&T.filter, &step)) < 0)
        fail(sock, -r, step);
    if (send_hdr(sock, SEED_SHOOT_READY, 0, 0, NULL) < 0)
        _exit(1);

    /* Warm: wait for a command (or for the node to give up on us). */
    static char buf[SEED_SHOOT_MAX_MSG];
    int fds[SEED_FDPASS_MAX];
    size_t n_fds = 0;
    ssize_t n = seed_recv_fds(sock, buf, sizeof(buf), fds, &n_fds, 0);
    if (n < (ssize_t)sizeof(h))
        _exit(1);
    memcpy(&h, buf, sizeof(h));
    char *cwd;
    char **argv, **envp;
    if (h.type != SEED_SHOOT_RUN || n_fds != 3 ||
        parse_run(buf + sizeof(h), (size_t)n - sizeof(h), &cwd, &argv, &envp) < 0)
        fail(sock, EBADMSG, "malformed run request");

    pid_t pid = spawn_command(argv, envp, cwd, fds);
    for (size_t i = 0; i < n_fds; i++)
        close(fds[i]);
    int status = pid > 0 ? 0 : pid == -ENOENT || pid == -ENOTDIR ? (127 << 8) : (126 << 8);
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* Whatever the command left running (daemons included) ends now, and is reaped
     * before we report: when the node answers, nothing the shoot started is left. Our
     * own exit (and the teardown of the namespaces) happens after the answer. */
    kill(-1, SIGKILL);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    send_hdr(sock, SEED_SHOOT_EXITED, 0, (uint32_t)status, NULL);
    _exit(0);
}

/* ---- the template ---- */

static void spawn_one(int node, const int *cg_fds, size_t n_cg) {
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        send_hdr(node, SEED_SHOOT_SPAWN_FAILED, errno, 0, "socketpair");
        return;
    }
    int pidfd = -1;
    pid_t pid = seed_clone_sandbox(&pidfd, -1);
    if (pid < 0) {
        int e = errno;
        close(sp[0]);
        close(sp[1]);
        send_hdr(node, SEED_SHOOT_SPAWN_FAILED, e, 0, "clone3 with new namespaces");
        return;
    }
    if (pid == 0) {
        close(sp[0]);
        close(node);
        shoot_main(sp[1], cg_fds, n_cg);
    }
    close(sp[1]);
    /* The child maps to our own uids; it waits for GO until they are written. */
    int r = seed_sandbox_write_id_map(pid, "uid_map", 0, 65536); /* the template's own range */
    if (r >= 0)
        r = seed_sandbox_write_id_map(pid, "gid_map", 0, 65536);
    seed_shoot_hdr go = {.type = SEED_SHOOT_GO};
    if (r >= 0 && send(sp[0], &go, sizeof(go), MSG_NOSIGNAL) != (ssize_t)sizeof(go))
        r = -errno;
    if (r < 0) {
        seed_pidfd_kill(pidfd, SIGKILL);
        send_hdr(node, SEED_SHOOT_SPAWN_FAILED, -r, 0, "writing the shoot's id maps");
    } else {
        seed_shoot_hdr h = {.type = SEED_SHOOT_SPAWNED};
        int fds[2] = {pidfd, sp[0]};
        seed_send_fds(node, &h, sizeof(h), NULL, 0, fds, 2, 0);
    }
    close(pidfd);
    close(sp[0]);
}

static int load_config(void) {
    json_error_t e;
    FILE *f = fdopen(3, "r");
    json_t *c = f ? json_loadf(f, 0, &e) : NULL;
    if (f)
        fclose(f);
    if (!c)
        return -EINVAL;
    T.keep_caps = (uint64_t)json_integer_value(json_object_get(c, "keep_caps"));
    snprintf(T.hostname, sizeof(T.hostname), "%s",
             json_string_value(json_object_get(c, "hostname")) ?: "shoot");
    T.tmp_bytes = (uint64_t)json_integer_value(json_object_get(c, "tmp_bytes"));
    T.run_bytes = (uint64_t)json_integer_value(json_object_get(c, "run_bytes"));
    json_t *binds = json_object_get(c, "scratch_binds");
    T.n_binds = MIN(json_array_size(binds), (size_t)MAX_SCRATCH_BINDS);
    T.binds = calloc(T.n_binds + 1, sizeof(scratch_bind));
    if (!T.binds)
        return -ENOMEM;
    for (size_t i = 0; i < T.n_binds; i++) {
        json_t *b = json_array_get(binds, i);
        const char *t = json_string_value(json_object_get(b, "target"));
        if (!t || t[0] != '/' || !(T.binds[i].target = strdup(t)))
            return -EINVAL;
        T.binds[i].file = json_is_true(json_object_get(b, "file"));
    }
    json_decref(c);
    /* The node shares one memfd between templates: read it by offset, not position. */
    struct stat st;
    if (fstat(FILTER_FD, &st) < 0 || st.st_size <= 0 || st.st_size > (1 << 20) ||
        st.st_size % (off_t)sizeof(struct sock_filter))
        return -EINVAL;
    size_t len = (size_t)st.st_size;
    char *bpf = malloc(len);
    if (!bpf || pread(FILTER_FD, bpf, len, 0) != (ssize_t)len)
        return -EINVAL;
    close(FILTER_FD);
    T.filter.filter = (struct sock_filter *)bpf;
    T.filter.len = (unsigned short)(len / sizeof(struct sock_filter));
    return 0;
}

int seed_template_main(void) {
    prctl(PR_SET_NAME, "seed-template");
    if (load_config() < 0) {
        send_hdr(NODE_FD, SEED_SHOOT_SPAWN_FAILED, EINVAL, 0, "cannot read the template configuration");
        return 1;
    }
    /* Shoots are reaped by the kernel; the node watches them through pidfds. */
    signal(SIGCHLD, SIG_IGN);
    for (;;) {
        seed_shoot_hdr h;
        int fds[SEED_FDPASS_MAX];
        size_t n_fds = 0;
        ssize_t n = seed_recv_fds(NODE_FD, &h, sizeof(h), fds, &n_fds, 0);
        if (n <= 0)
            return 0; /* the node went away */
        if (n == (ssize_t)sizeof(h) && h.type == SEED_SHOOT_SPAWN)
            spawn_one(NODE_FD, fds, n_fds);
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
    }
}
