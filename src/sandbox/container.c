/* The container backend: Linux namespaces, cgroups, capabilities and seccomp.
 *
 * Parent (the node)                      Child (PID 1 of the new PID namespace)
 *   clone3(NEWUSER|NEWNS|NEWPID|NEWNET|    waits for GO
 *          NEWIPC|NEWUTS, PIDFD[, INTO_CGROUP])
 *   uid_map/gid_map, cgroup (v1), veth
 *   GO ------------------------------->    root of the user namespace, cgroup
 *                                          namespace, hostname, network, root fs,
 *                                          fds, capabilities + seccomp, execveat
 *   reads EOF (exec closed the socket) <-  or ERROR(errno, message)
 *
 * The maps must be written from outside: a process cannot map itself to a range it
 * does not own. The cgroup namespace is entered after the move so the instance sees
 * its own cgroup as the root. */
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/close_range.h>

#include "base/fileio.h"
#include "base/netlink.h"
#include "sandbox/sandbox.h"
#include "sandbox/sync.h"

static _noreturn_ void child_main(const seed_sandbox_config *c, int sync) {
    char what[512];
    int r;

    /* A session and process group of our own. Process groups are not confined by PID
     * namespaces: kill(0, ...) from inside would otherwise reach every process in the
     * node's group with the same uid, other sandboxes included. */
    if (setsid() < 0)
        _exit(1);
    seed_sync_msg m;
    if (seed_sync_recv(sync, &m) < 0 || m.type != SEED_SYNC_GO)
        _exit(1);

    /* Root of the new user namespace: uid/gid 0 now map to id_base outside. */
    if (setresgid(0, 0, 0) < 0)
        seed_die(sync, errno, "becoming gid 0 in the user namespace");
    if (setresuid(0, 0, 0) < 0)
        seed_die(sync, errno, "becoming uid 0 in the user namespace");
    if (setgroups(0, NULL) < 0)
        seed_die(sync, errno, "clearing supplementary groups");
    /* Die with the node. Only now: a change of the effective uid or gid clears the
     * parent-death signal. Should the node have died in between, the init finds its
     * channel closed and ends everything itself. */
    if (!c->survive_node)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (unshare(CLONE_NEWCGROUP) < 0)
        seed_die(sync, errno, "creating the cgroup namespace");
    if (sethostname(c->hostname, strlen(c->hostname)) < 0)
        seed_die(sync, errno, "setting the hostname");

    r = seed_sandbox_setup_network(&c->net, what, sizeof(what));
    if (r < 0)
        seed_die(sync, -r, "network: %s", what);
    r = seed_sandbox_setup_rootfs(c, what, sizeof(what));
    if (r < 0)
        seed_die(sync, -r, "root filesystem: %s", what);

    /* File descriptors: /dev/null for stdio, passed fds as 3, 4, ...; everything
     * else is close-on-exec. Move sources high first so no dup2 can clobber one (a
     * node started with stdio closed may hand us fds 0-2). */
    int high[16];
    if (c->n_pass_fds > ELEMENTSOF(high))
        seed_die(sync, EINVAL, "too many file descriptors to pass");
    for (size_t i = 0; i < c->n_pass_fds; i++)
        if ((high[i] = fcntl(c->pass_fds[i], F_DUPFD_CLOEXEC, 100)) < 0)
            seed_die(sync, errno, "moving file descriptors");
    int exec_fd = fcntl(c->exec_fd, F_DUPFD_CLOEXEC, 100);
    int high_sync = fcntl(sync, F_DUPFD_CLOEXEC, 100);
    if (high_sync >= 0)
        sync = high_sync;
    if (exec_fd < 0)
        seed_die(sync, errno, "moving file descriptors");
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0)
        seed_die(sync, errno, "opening /dev/null for stdio");
    for (size_t i = 0; i < c->n_pass_fds; i++)
        if (dup2(high[i], 3 + (int)i) < 0)
            seed_die(sync, errno, "placing file descriptors");
    if (syscall(SYS_close_range, 3 + c->n_pass_fds, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
        seed_die(sync, errno, "marking file descriptors close-on-exec");

    if (!c->template) {
        const char *step = NULL;
        r = seed_security_apply(c->security, &step);
        if (r < 0)
            seed_die(sync, -r, "%s", step);
    }

    syscall(SYS_execveat, exec_fd, "", c->argv, c->envp, AT_EMPTY_PATH);
    seed_die(sync, errno, "executing %s", c->argv[0]);
}

/* Create the veth pair: one end on the node's bridge, the other as eth0 inside. */
static int attach_network(pid_t pid, const seed_sandbox_net *net, seed_error **err) {
    char nspath[64];
    snprintf(nspath, sizeof(nspath), "/proc/%d/ns/net", (int)pid);
    _cleanup_close_ int nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0)
        return seed_error_setp(err, errno, "opening %s", nspath);
    struct mnl_socket *nl = NULL;
    int r = seed_nl_open(&nl);
    if (r < 0)
        return seed_error_setp(err, -r, "opening rtnetlink");
    uint8_t mac[6];
    seed_mac_for_ipv4(net->addr, mac);
    r = seed_nl_veth_create(nl, net->host_ifname, "eth0", nsfd, net->bridge_ifindex, mac);
    if (r == -EEXIST) {
        /* Left over from a sandbox whose namespace the kernel is still tearing down. */
        unsigned old = if_nametoindex(net->host_ifname);
        if (old)
            seed_nl_link_del(nl, old);
        r = seed_nl_veth_create(nl, net->host_ifname, "eth0", nsfd, net->bridge_ifindex, mac);
    }
    seed_nl_close(nl);
    if (r < 0)
        return seed_error_setp(err, -r, "creating the veth pair %s on the bridge", net->host_ifname);
    return 0;
}

static int container_start(const seed_sandbox_config *c, seed_sandbox *out, seed_error **err) {
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        return seed_error_setp(err, errno, "socketpair");
    _cleanup_close_ int parent_end = sp[0];

    int pidfd = -1;
    /* v2: born inside the instance's cgroup, no window outside its limits. */
    int cgfd = c->cgroup ? c->cgroup_ops->clone_fd(c->cgroup) : -EOPNOTSUPP;
    pid_t pid = seed_clone_sandbox(&pidfd, cgfd);
    if (pid < 0) {
        int e = errno;
        close(sp[1]);
        return seed_error_setp(err, e, "clone3 with new user, mount, PID, network, IPC and UTS namespaces");
    }
    if (pid == 0) {
        close(sp[0]);
        child_main(c, sp[1]);
    }
    close(sp[1]);

    /* From here a failure must not leave a half-built child behind. */
    int r;
    if ((r = seed_sandbox_write_id_map(pid, "uid_map", c->id_base, c->id_count)) < 0 ||
        (r = seed_sandbox_write_id_map(pid, "gid_map", c->id_base, c->id_count)) < 0) {
        seed_error_setp(err, -r, "writing the user namespace maps");
        goto fail;
    }
    if (c->cgroup && cgfd < 0 && (r = c->cgroup_ops->attach(c->cgroup, pid)) < 0) {
        seed_error_setp(err, -r, "moving the sandbox into its cgroup");
        goto fail;
    }
    if (c->net.attach && (r = attach_network(pid, &c->net, err)) < 0)
        goto fail;
    if ((r = seed_sync_send(parent_end, SEED_SYNC_GO, 0, NULL)) < 0) {
        seed_error_setp(err, -r, "starting the sandbox");
        goto fail;
    }
    seed_sync_msg m;
    r = seed_sync_recv(parent_end, &m);
    if (r == 0 && m.type == SEED_SYNC_ERROR) {
        r = seed_error_setp(err, m.err, "%s", m.msg);
        goto fail;
    }
    if (r < 0 && r != -EPIPE) {
        seed_error_setp(err, -r, "waiting for the sandbox");
        goto fail;
    }
    out->pid = pid;
    out->pidfd = pidfd;
    return 0;

fail:
    seed_pidfd_kill(pidfd, SIGKILL);
    waitpid(pid, NULL, 0);
    close(pidfd);
    return r < 0 ? r : -EIO;
}

static int container_kill(seed_sandbox *sb, int sig) {
    if (sb->pidfd < 0)
        return -ESRCH;
    return seed_pidfd_kill(sb->pidfd, sig);
}

static int container_reap(seed_sandbox *sb) {
    int status = 0;
    if (sb->pid > 0) {
        while (waitpid(sb->pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    if (sb->pidfd >= 0)
        close(sb->pidfd);
    sb->pidfd = -1;
    sb->pid = 0;
    return status;
}

const seed_sandbox_backend seed_sandbox_container = {
    .name = "container",
    .start = container_start,
    .kill = container_kill,
    .reap = container_reap,
};
