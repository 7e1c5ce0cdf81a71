/* seed-probe: runs inside a sandbox and reports what it sees, for the isolation and
 * resource tests. Static, so it runs in any root. Every report is one JSON line on
 * stdout (the tests read it back through `seed logs`).
 *
 *   seed-probe report             identity, namespaces, capabilities, mounts, files,
 *                                 and the outcome of every privileged operation tried
 *   seed-probe alloc MIB          allocate and touch MIB mebibytes, reporting progress
 *   seed-probe forkbomb           fork until refused; report how many and the errno
 *   seed-probe cpu SECONDS        spin two threads; report CPU time against wall time
 *   seed-probe fill PATH          write zeros to PATH until refused; report bytes, errno
 *   seed-probe serve PORT...      answer "probe PORT\n" (as HTTP/1.0) to every TCP connection
 *   seed-probe connect HOST PORT  report whether a TCP connection succeeds
 *   seed-probe udpecho PORT       send every UDP datagram back, prefixed with "echo "
 *   seed-probe ptrace PID...      try to attach to, and read and write the memory of,
 *                                 each PID (ptrace, /proc/PID/mem, process_vm_readv)
 *   seed-probe ptrace-scan SECS   for SECS, try to ptrace and to open /proc/PID/mem of every
 *                                 other process it sees; report the comm of each one reached

 *   seed-probe tamper PATH...     try to change /etc/hosts (write it, through /proc/self/root
 *                                 too, remount it read-write, unmount it, rename and bind
 *                                 over it) and to read, write and connect to each PATH
 *   seed-probe sleep              sleep forever (a process for `ps`-style checks) */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/ptrace.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- a tiny JSON writer ---- */

static char out[1 << 20];
static size_t olen;
static int depth_first[32];
static int depth;

static void emit(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + olen, sizeof(out) - olen, fmt, ap);
    va_end(ap);
    if (n > 0)
        olen += (size_t)n < sizeof(out) - olen ? (size_t)n : sizeof(out) - olen - 1;
}

static void sep(void) {
    if (!depth_first[depth])
        emit(",");
    depth_first[depth] = 0;
}

static void str(const char *s) {
    emit("\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            emit("\\%c", *c);
        else if (*c < 0x20 || *c >= 0x7f)
            emit("\\u%04x", *c);
        else
            emit("%c", *c);
    }
    emit("\"");
}

static void key(const char *k) {
    sep();
    str(k);
    emit(":");
}

static void open_obj(const char *k) {
    if (k)
        key(k);
    else if (depth > 0)
        sep();
    emit("{");
    depth_first[++depth] = 1;
}

static void open_arr(const char *k) {
    key(k);
    emit("[");
    depth_first[++depth] = 1;
}

static void close_obj(void) {
    depth--;
    emit("}");
}

static void close_arr(void) {
    depth--;
    emit("]");
}

static void kv_str(const char *k, const char *v) {
    key(k);
    if (v)
        str(v);
    else
        emit("null");
}

static void kv_int(const char *k, long long v) {
    key(k);
    emit("%lld", v);
}

static void arr_str(const char *v) {
    sep();
    str(v);
}

static void flush_line(void) {
    emit("\n");
    fwrite(out, 1, olen, stdout);
    fflush(stdout);
    olen = 0;
}

/* ---- helpers ---- */

static char *slurp(const char *path) {
    static char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return NULL;
    buf[n] = 0;
    return buf;
}

static const char *status_field(const char *name) {
    static char val[256];
    char *s = slurp("/proc/self/status");
    if (!s)
        return NULL;
    size_t l = strlen(name);
    for (char *line = s; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, l) == 0 && line[l] == ':') {
            char *v = line + l + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strcspn(v, "\n");
            snprintf(val, sizeof(val), "%.*s", (int)n, v);
            return val;
        }
    return NULL;
}

/* The outcome of an attempt: "ok" or the errno name. */
static const char *outcome(long r) {
    static char buf[32];
    if (r >= 0)
        return "ok";
    int e = errno;
    switch (e) {
    case EPERM:
        return "EPERM";
    case EACCES:
        return "EACCES";
    case EROFS:
        return "EROFS";
    case ENOENT:
        return "ENOENT";
    case ENOSYS:
        return "ENOSYS";
    case EINVAL:
        return "EINVAL";
    case EFAULT:
        return "EFAULT";
    case EBADF:
        return "EBADF";
    case EAFNOSUPPORT:
        return "EAFNOSUPPORT";
    case ENOTDIR:
        return "ENOTDIR";
    default:
        snprintf(buf, sizeof(buf), "errno %d", e);
        return buf;
    }
}

static void attempt(const char *name, long r) {
    kv_str(name, outcome(r));
}

/* ---- report ---- */

static void report_processes(void) {
    open_arr("processes");
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char p[300];
        snprintf(p, sizeof(p), "/proc/%s/comm", de->d_name);
        char *c = slurp(p);
        if (!c)
            continue;
        c[strcspn(c, "\n")] = 0;
        char entry[600];
        snprintf(entry, sizeof(entry), "%s:%.256s", de->d_name, c);
        arr_str(entry);
    }
    if (d)
        closedir(d);
    close_arr();
}

static void report_mounts(void) {
    open_arr("mounts");
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    while (f && fgets(line, sizeof(line), f)) {
        char mp[1024], opts[1024], fstype[64];
        char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %*s %1023s %1023s", mp, opts) != 2 ||
            sscanf(dash + 3, "%63s", fstype) != 1)
            continue;
        char entry[2200];
        snprintf(entry, sizeof(entry), "%s %s %s", mp, fstype, opts);
        arr_str(entry);
    }
    if (f)
        fclose(f);
    close_arr();
}

static void report_dir(const char *k, const char *path) {
    open_arr(k);
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            arr_str(de->d_name);
    if (d)
        closedir(d);
    close_arr();
}

static void report_interfaces(void) {
    open_arr("interfaces");
    struct if_nameindex *ifs = if_nameindex();
    for (struct if_nameindex *i = ifs; i && i->if_index; i++)
        arr_str(i->if_name);
    if (ifs)
        if_freenameindex(ifs);
    close_arr();
}

static int report(void) {
    open_obj(NULL);
    kv_str("probe", "report");
    kv_int("uid", getuid());
    kv_int("gid", getgid());
    kv_int("pid", getpid());
    kv_int("ppid", getppid());
    char host[256] = "";
    gethostname(host, sizeof(host));
    kv_str("hostname", host);
    kv_str("uid_map", slurp("/proc/self/uid_map"));
    kv_str("gid_map", slurp("/proc/self/gid_map"));
    kv_str("pid1", slurp("/proc/1/comm"));
    kv_str("cgroup", slurp("/proc/self/cgroup"));
    static const char *const fields[] = {"CapInh", "CapPrm",     "CapEff", "CapBnd",
                                         "CapAmb", "NoNewPrivs", "Seccomp"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        kv_str(fields[i], status_field(fields[i]));
    report_processes();
    report_mounts();
    report_interfaces();
    report_dir("root_entries", "/");
    report_dir("etc_entries", "/etc");
    kv_str("hosts", slurp("/etc/hosts"));
    kv_str("run_seed_env", slurp("/run/seed/env"));
    open_obj("connect_files");
    DIR *d = opendir("/etc/seed/connect");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof(p), "/etc/seed/connect/%s", de->d_name);
        kv_str(de->d_name, slurp(p));
    }
    if (d)
        closedir(d);
    close_obj();
    open_obj("env");
    extern char **environ;
    for (char **e = environ; *e; e++) {
        char k[256];
        const char *eq = strchr(*e, '=');
        if (!eq || eq - *e >= (long)sizeof(k))
            continue;
        snprintf(k, sizeof(k), "%.*s", (int)(eq - *e), *e);
        kv_str(k, eq + 1);
    }
    close_obj();

    open_obj("attempts");
    mkdir("/tmp/probe-mnt", 0755);
    attempt("mount_tmpfs", mount("tmpfs", "/tmp/probe-mnt", "tmpfs", 0, NULL));
    attempt("umount_proc", umount2("/proc", MNT_DETACH));
    attempt("unshare_user", unshare(CLONE_NEWUSER));
    attempt("unshare_mount", unshare(CLONE_NEWNS));
    attempt("unshare_net", unshare(CLONE_NEWNET));
    attempt("setns", syscall(SYS_setns, 0, 0));
    attempt("init_module", syscall(SYS_init_module, NULL, 0, ""));
    attempt("finit_module", syscall(SYS_finit_module, -1, "", 0));
    attempt("delete_module", syscall(SYS_delete_module, "loop", 0));
    attempt("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    attempt("raw_socket", s);
    if (s >= 0)
        close(s);
    s = socket(AF_PACKET, SOCK_RAW, 0);
    attempt("packet_socket", s);
    if (s >= 0)
        close(s);
    s = socket(AF_INET, SOCK_STREAM, 0);
    attempt("tcp_socket", s);
    if (s >= 0)
        close(s);
    attempt("bpf", syscall(SYS_bpf, BPF_PROG_LOAD, NULL, 0));
    attempt("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    attempt("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0));
    attempt("add_key", syscall(SYS_add_key, "user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING));
    attempt("userfaultfd", syscall(SYS_userfaultfd, 0));
    attempt("io_uring_setup", syscall(425 /* io_uring_setup */, 1, NULL));
    attempt("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
    attempt("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    attempt("chroot", chroot("/tmp"));
    attempt("mknod_char", mknod("/tmp/probe-null", S_IFCHR | 0666, makedev(1, 3)));
    attempt("sethostname", sethostname("evil", 4));
    struct timespec ts = {0, 0};
    attempt("clock_settime", clock_settime(CLOCK_REALTIME, &ts));
    attempt("reboot", reboot(0x4321fedc /* RB_POWER_OFF-like magic: refused before use */));
    attempt("swapon", syscall(SYS_swapon, "/tmp/none", 0));
    attempt("syslog", syscall(SYS_syslog, 3, NULL, 0));
    attempt("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    attempt("write_root", open("/probe-file", O_WRONLY | O_CREAT, 0644));
    attempt("write_usr", open("/usr/probe-file", O_WRONLY | O_CREAT, 0644));
    attempt("write_etc", open("/etc/probe-file", O_WRONLY | O_CREAT, 0644));
    attempt("write_bin", open("/bin/probe-file", O_WRONLY | O_CREAT, 0644));
    attempt("write_tmp", open("/tmp/probe-file", O_WRONLY | O_CREAT, 0644));
    attempt("write_sys", open("/sys/kernel/uevent_helper", O_WRONLY));
    attempt("write_proc_sys", open("/proc/sys/kernel/hostname", O_WRONLY));
    attempt("write_sysrq", open("/proc/sysrq-trigger", O_WRONLY));
    attempt("read_shadow", open("/etc/shadow", O_RDONLY));
    attempt("stat_root_home", access("/root", F_OK));
    attempt("stat_home", access("/home", F_OK));
    attempt("stat_var", access("/var", F_OK));
    attempt("kill_pid1", kill(1, SIGKILL) < 0 ? -1 : 0);
    struct stat st;
    /* Absent (a kernel without it) or masked by /dev/null. */
    int kr = stat("/proc/kcore", &st);
    attempt("kcore_hidden", (kr < 0 && errno == ENOENT) || (kr == 0 && st.st_size == 0) ? 0 : -1);
    close_obj();
    close_obj();
    flush_line();
    return 0;
}

/* ---- resource probes ---- */

static int alloc(long mib) {
    for (long i = 1; i <= mib; i++) {
        char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            printf("{\"probe\":\"alloc\",\"failed_at_mib\":%ld,\"errno\":%d}\n", i, errno);
            return 1;
        }
        memset(p, 1, 1 << 20);
        if (i % 64 == 0) {
            printf("{\"probe\":\"alloc\",\"mib\":%ld}\n", i);
            fflush(stdout);
        }
    }
    printf("{\"probe\":\"alloc\",\"done_mib\":%ld}\n", mib);
    fflush(stdout);
    pause();
    return 0;
}

static int forkbomb(void) {
    long n = 0;
    int err = 0;
    for (;;) {
        pid_t p = fork();
        if (p < 0) {
            err = errno;
            break;
        }
        if (p == 0) {
            pause();
            _exit(0);
        }
        n++;
        if (n > 1000000)
            break;
    }
    printf("{\"probe\":\"forkbomb\",\"forked\":%ld,\"errno\":%d}\n", n, err);
    fflush(stdout);
    kill(0, SIGKILL);
    return 0;
}

static volatile int spin_stop;

static void *spin(void *arg) {
    (void)arg;
    volatile unsigned long x = 0;
    while (!spin_stop)
        x++;
    return NULL;
}

static int cpu(double secs) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, spin, NULL);
    struct timespec d = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&d, NULL);
    spin_stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                   ru.ru_stime.tv_usec / 1e6;
    double wall = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("{\"probe\":\"cpu\",\"wall\":%.3f,\"cpu\":%.3f,\"threads\":2}\n", wall, cpu_s);
    fflush(stdout);
    return 0;
}

static int fill(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        printf("{\"probe\":\"fill\",\"open_errno\":%d}\n", errno);
        return 1;
    }
    static char buf[1 << 20];
    long long total = 0;
    int err = 0;
    for (;;) {
        ssize_t n = write(fd, buf, sizeof(buf));
        if (n < 0) {
            err = errno;
            break;
        }
        total += n;
        if (total > (64ll << 30))
            break;
    }
    if (fsync(fd) < 0 && !err)
        err = errno;
    close(fd);
    printf("{\"probe\":\"fill\",\"bytes\":%lld,\"errno\":%d,\"enospc\":%s}\n", total, err,
           err == ENOSPC ? "true" : "false");
    fflush(stdout);
    return 0;
}

static int serve(int argc, char **argv) {
    struct pollfd pfd[16];
    int ports[16], n = 0;
    for (int i = 0; i < argc && n < 16; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[i]))};
        if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 64) < 0) {
            printf("{\"probe\":\"serve\",\"port\":%s,\"errno\":%d}\n", argv[i], errno);
            return 1;
        }
        pfd[n] = (struct pollfd){.fd = s, .events = POLLIN};
        ports[n++] = atoi(argv[i]);
    }
    printf("{\"probe\":\"serve\",\"listening\":%d}\n", n);
    fflush(stdout);
    for (;;) {
        if (poll(pfd, (nfds_t)n, -1) < 0)
            continue;
        for (int i = 0; i < n; i++)
            if (pfd[i].revents & POLLIN) {
                int c = accept(pfd[i].fd, NULL, NULL);
                if (c < 0)
                    continue;
                /* Enough HTTP for curl and wget; a raw reader sees the body last. */
                char req[1024];
                struct timeval rtv = {0, 200000};
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof(rtv));
                (void)!read(c, req, sizeof(req));
                char msg[128];
                int l = snprintf(
                    msg, sizeof(msg),
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\nprobe %d\n",
                    ports[i] >= 10000  ? 12
                    : ports[i] >= 1000 ? 11
                                       : 10,
                    ports[i]);
                (void)!write(c, msg, (size_t)l);
                close(c);
            }
    }
}

static int udpecho(const char *port) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        printf("{\"probe\":\"udpecho\",\"errno\":%d}\n", errno);
        return 1;
    }
    printf("{\"probe\":\"udpecho\",\"listening\":%s}\n", port);
    fflush(stdout);
    for (;;) {
        char buf[2048];
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(s, buf + 5, sizeof(buf) - 5, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            continue;
        memcpy(buf, "echo ", 5);
        sendto(s, buf, (size_t)n + 5, 0, (struct sockaddr *)&from, fl);
    }
}

static int connect_to(const char *host, const char *port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    struct timeval tv = {3, 0};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int r = connect(s, (struct sockaddr *)&sa, sizeof(sa));
    printf("{\"probe\":\"connect\",\"host\":\"%s\",\"port\":%s,\"result\":\"%s\"}\n", host, port, outcome(r));
    fflush(stdout);
    close(s);
    return 0;
}

/* What a process of the sandbox can do to another one it sees (PID 1 holds the channel
 * to the node: nothing may attach to it, read or write its memory). */
static int ptrace_pids(int n, char **pids) {
    for (int i = 0; i < n; i++) {
        pid_t pid = (pid_t)atoi(pids[i]);
        char path[64], buf[16];
        open_obj(NULL);
        kv_str("probe", "ptrace");
        kv_int("pid", pid);
        long r = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
        attempt("attach", r);
        if (r == 0) {
            waitpid(pid, NULL, __WALL);
            ptrace(PTRACE_DETACH, pid, NULL, NULL);
        }
        r = ptrace(PTRACE_SEIZE, pid, NULL, NULL);
        attempt("seize", r);
        if (r == 0)
            ptrace(PTRACE_DETACH, pid, NULL, NULL);
        snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        attempt("mem_rdwr", fd);
        if (fd >= 0)
            close(fd);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        attempt("mem_read", fd);
        if (fd >= 0)
            close(fd);
        /* Any mapped address will do: the check comes before the copy. */
        struct iovec local = {buf, sizeof(buf)}, remote = {(void *)0x400000, sizeof(buf)};
        r = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        attempt("vm_readv", r < 0 && errno == EFAULT ? 0 : r);
        r = process_vm_writev(pid, &local, 1, &remote, 1, 0);
        attempt("vm_writev", r < 0 && errno == EFAULT ? 0 : r);
        snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        attempt("environ", fd);
        if (fd >= 0)
            close(fd);
        close_obj();
        flush_line();
    }
    return 0;
}

/* The comm of pid now: read after a successful attach or open, it names what was
 * reached (an exec can no longer change it under an attach, nor after the mm an
 * open of /proc/PID/mem holds was taken, since exec sets it under the same lock). */
static void comm_of(int pid, char *buf, size_t len) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/comm", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = 0;
    if (n > 0 && buf[n - 1] == '\n')
        buf[n - 1] = 0;
}

static void add_unique(char list[][48], int *n, int max, const char *v) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(list[i], v))
            return;
    if (*n < max)
        snprintf(list[(*n)++], 48, "%s", v);
}

static int ptrace_scan(double secs) {
    static char seen[256][48], reached[256][48];
    int n_seen = 0, n_reached = 0, self = getpid();
    long rounds = 0, tries = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        DIR *d = opendir("/proc");
        for (struct dirent *e; d && (e = readdir(d));) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == self)
                continue;
            char comm[32], path[64], what[48];
            comm_of(pid, comm, sizeof(comm));
            add_unique(seen, &n_seen, 256, comm);
            tries++;
            snprintf(path, sizeof(path), "/proc/%d/mem", pid);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                comm_of(pid, comm, sizeof(comm));
                snprintf(what, sizeof(what), "mem:%s", comm);
                add_unique(reached, &n_reached, 256, what);
                close(fd);
            }
            /* SEIZE + INTERRUPT, not ATTACH: a SIGSTOP left pending by a racing
             * attach would stop the process for good after the detach. */
            if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
                int st = 0;
                ptrace(PTRACE_INTERRUPT, pid, 0, 0);
                if (waitpid(pid, &st, __WALL) == pid && WIFSTOPPED(st)) {
                    comm_of(pid, comm, sizeof(comm));
                    snprintf(what, sizeof(what), "ptrace:%s", comm);
                    add_unique(reached, &n_reached, 256, what);
                    /* a signal that arrived meanwhile goes on to the process */
                    ptrace(PTRACE_DETACH, pid, 0, (st >> 16) ? 0 : WSTOPSIG(st));
                }
            }
        }
        if (d)
            closedir(d);
        rounds++;
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9 < secs);
    open_obj(NULL);
    kv_str("probe", "ptrace-scan");
    kv_int("rounds", rounds);
    kv_int("tries", tries);
    open_arr("seen");
    for (int i = 0; i < n_seen; i++)
        arr_str(seen[i]);
    close_arr();
    open_arr("reached");
    for (int i = 0; i < n_reached; i++)
        arr_str(reached[i]);
    close_arr();
    close_obj();
    flush_line();
    return 0;
}

static long try_write(const char *path) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long r = write(fd, "6.6.6.6 evil\n", 13);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

static int tamper(int n, char **paths) {
    open_obj(NULL);
    kv_str("probe", "tamper");
    attempt("hosts_write", try_write("/etc/hosts"));
    attempt("hosts_proc_root_write", try_write("/proc/self/root/etc/hosts"));
    attempt("hosts_remount_rw", mount(NULL, "/etc/hosts", NULL, MS_REMOUNT | MS_BIND, NULL));
    attempt("hosts_write_after_remount", try_write("/etc/hosts"));
    int fd = open("/tmp/evil-hosts", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!write(fd, "6.6.6.6 evil\n", 13);
        close(fd);
    }
    attempt("hosts_rename", rename("/tmp/evil-hosts", "/etc/hosts"));
    attempt("hosts_bind", mount("/tmp/evil-hosts", "/etc/hosts", NULL, MS_BIND, NULL));
    attempt("hosts_umount", umount2("/etc/hosts", MNT_DETACH));
    attempt("hosts_write_after_umount", try_write("/etc/hosts"));
    open_obj("paths");
    for (int i = 0; i < n; i++) {
        open_obj(paths[i]);
        struct stat st;
        attempt("stat", stat(paths[i], &st));
        fd = open(paths[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        attempt("read", fd);
        if (fd >= 0)
            close(fd);
        attempt("write", try_write(paths[i]));
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", paths[i]);
        long r = -1;
        errno = ENOTSOCK;
        if (stat(paths[i], &st) == 0 && S_ISSOCK(st.st_mode)) {
            int types[] = {SOCK_SEQPACKET, SOCK_STREAM};
            for (int t = 0; t < 2 && r < 0; t++) {
                int s = socket(AF_UNIX, types[t] | SOCK_CLOEXEC, 0);
                r = connect(s, (struct sockaddr *)&sa, sizeof(sa));
                int e = errno;
                close(s);
                errno = e;
                if (r < 0 && errno != EPROTOTYPE)
                    break;
            }
        }
        attempt("connect", r);
        close_obj();
    }
    close_obj();
    close_obj();
    flush_line();
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    const char *mode = argc > 1 ? argv[1] : "report";
    if (!strcmp(mode, "report"))
        return report();
    if (!strcmp(mode, "alloc") && argc > 2)
        return alloc(atol(argv[2]));
    if (!strcmp(mode, "forkbomb"))
        return forkbomb();
    if (!strcmp(mode, "cpu") && argc > 2)
        return cpu(atof(argv[2]));
    if (!strcmp(mode, "fill") && argc > 2)
        return fill(argv[2]);
    if (!strcmp(mode, "serve") && argc > 2)
        return serve(argc - 2, argv + 2);
    if (!strcmp(mode, "connect") && argc > 3)
        return connect_to(argv[2], argv[3]);
    if (!strcmp(mode, "udpecho") && argc > 2)
        return udpecho(argv[2]);
    if (!strcmp(mode, "ptrace") && argc > 2)
        return ptrace_pids(argc - 2, argv + 2);
    if (!strcmp(mode, "ptrace-scan") && argc > 2)
        return ptrace_scan(atof(argv[2]));
    if (!strcmp(mode, "tamper"))
        return tamper(argc - 2, argv + 2);
    if (!strcmp(mode, "sleep")) {
        for (;;)
            pause();
    }
    fprintf(stderr, "usage: seed-probe report|alloc MIB|forkbomb|cpu SECONDS|fill PATH|serve PORT...|connect "
                    "HOST PORT|sleep\n");
    return 2;
}
