/* Capabilities and the seccomp profile. The allowlist follows the shape of Docker's
 * default profile (default action EPERM; clone without namespace flags; clone3 gives
 * ENOSYS so libc falls back to clone, whose flags a filter can see) but leaves out
 * more: mount and the new mount API, unshare/setns, keyrings, bpf, perf, io_uring,
 * userfaultfd, module loading, kexec, time setting, handle-based opens. */
#include "sandbox/security.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"

static const char *const allowed_syscalls[] = {
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
};

/* Kept capabilities: file ownership and permissions inside the sandbox, signals,
 * switching users, binding ports below 1024. */
static const int kept_caps[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID,
                                CAP_KILL,  CAP_SETGID,       CAP_SETUID, CAP_NET_BIND_SERVICE};

#define NAMESPACE_FLAGS                                                                        \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
     CLONE_NEWCGROUP | CLONE_NEWTIME)

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static int build_filter(scmp_filter_ctx ctx, seed_error **err) {
    int r;
    /* Native system calls only: 32-bit x86 and x32 programs are killed (SIGSYS) at
     * their first system call. The compat entry points are a classic source of kernel
     * bugs, and filtering them more than doubles the cost of loading the filter,
     * which every sandbox and every shoot pays (about 40 us native-only against 230 us
     * with x86 added, on the machine this was measured on). */
    for (size_t i = 0; i < ELEMENTSOF(allowed_syscalls); i++) {
        int nr = seccomp_syscall_resolve_name(allowed_syscalls[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a syscall on this architecture */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (r < 0 && r != -EDOM && r != -EEXIST)
            return seed_error_setp(err, -r, "seccomp: allowing %s", allowed_syscalls[i]);
    }
    /* clone only without namespace flags; clone3's flags live in memory a filter cannot
     * read, so it answers ENOSYS and libc falls back to clone. */
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, NAMESPACE_FLAGS, 0));
    if (r < 0)
        return seed_error_setp(err, -r, "seccomp: clone rule");
    r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (r < 0)
        return seed_error_setp(err, -r, "seccomp: clone3 rule");
    /* personality: only the values programs use to query or pick a compatible layout. */
    static const unsigned long personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
    for (size_t i = 0; i < ELEMENTSOF(personas); i++) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                             SCMP_A0(SCMP_CMP_EQ, personas[i]));
        if (r < 0)
            return seed_error_setp(err, -r, "seccomp: personality rule");
    }
    /* socket: anything but AF_VSOCK, which would reach the hypervisor's host. */
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, AF_VSOCK));
    if (r < 0)
        return seed_error_setp(err, -r, "seccomp: socket rule");
    return 0;
}

int seed_security_new(seed_security **ret, seed_error **err) {
    _cleanup_(seed_security_freep) seed_security *s = calloc(1, sizeof(*s));
    if (!s)
        return seed_error_set(err, ENOMEM, "out of memory");
    s->prog_fd = -1;
    for (size_t i = 0; i < ELEMENTSOF(kept_caps); i++)
        s->keep_caps |= 1ull << kept_caps[i];

    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx)
        return seed_error_set(err, ENOMEM, "seccomp_init failed");
    /* A binary tree on the syscall number instead of a linear list. Loading a filter
     * makes the kernel emulate it for every syscall number to fill its cache, so the
     * length of the path to each verdict is what a sandbox start pays: with a linear
     * list that was most of a shoot's cost. */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    int r = build_filter(ctx, err);
    if (r < 0) {
        seccomp_release(ctx);
        return r;
    }
    /* libseccomp 2.5 exports BPF only to a file descriptor: a memfd, which is kept
     * (sealed) for the shoot templates. */
    _cleanup_close_ int fd = memfd_create("seed-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        seccomp_release(ctx);
        return seed_error_setp(err, errno, "memfd_create");
    }
    r = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (r < 0)
        return seed_error_setp(err, -r, "exporting the seccomp filter");
    if (lseek(fd, 0, SEEK_SET) < 0)
        return seed_error_setp(err, errno, "lseek");
    char *buf = NULL;
    size_t len = 0;
    r = seed_read_fd(fd, 1 << 20, &buf, &len);
    if (r < 0)
        return seed_error_setp(err, -r, "reading the seccomp filter");
    if (len == 0 || len % sizeof(struct sock_filter) != 0) {
        free(buf);
        return seed_error_set(err, EINVAL, "seccomp filter has an odd size (%zu bytes)", len);
    }
    s->prog.len = (unsigned short)(len / sizeof(struct sock_filter));
    s->prog.filter = (struct sock_filter *)buf;
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        return seed_error_setp(err, errno, "sealing the seccomp filter");
    s->prog_fd = TAKE_FD(fd);
    *ret = TAKE_PTR(s);
    return 0;
}

void seed_security_free(seed_security *s) {
    if (!s)
        return;
    free(s->prog.filter);
    if (s->prog_fd >= 0)
        close(s->prog_fd);
    free(s);
}
