/* seed-init: PID 1 inside every instance sandbox. Starts the instance's processes
 * with their environment, working directory and user; restarts them by policy with
 * capped exponential backoff; reaps every zombie; forwards signals; stops gracefully
 * (SIGTERM, grace period, SIGKILL to everything in the PID namespace). Each line a
 * process writes reaches the node, tagged with the process name and a timestamp.
 *
 * Image mode (an OCI image's entrypoint, see image/build.c): no fd 3, so the
 * configuration comes from /seed/image.json, there is no node channel, output lines go
 * to our own stdout/stderr prefixed with the process name, and the exit code says how
 * the processes ended.
 *
 * Driven by signalfd and epoll, never by polling. Statically linked: it must run in
 * any root filesystem, including ones without a C library. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/macro.h"
#include "init/boot.h"
#include "init/config.h"
#include "init/protocol.h"
#include "init/users.h"
#include "init/template.h"
#include "shoot/protocol.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 30000
#define BACKOFF_RESET_USEC (10 * 1000000ull) /* a run this long resets the backoff */
#define QUEUE_PAUSE_BYTES (256u << 10)       /* stop reading output above this backlog */
/* Output is rate-limited here, inside the instance, so that what a flood costs (reading
 * it, counting it, dropping it) is charged to the instance's own CPU quota, not the
 * node's: SEED_INIT_LOG_RATE bytes a second with bursts up to SEED_INIT_LOG_BURST, each
 * line counting at least SEED_INIT_LOG_LINE_COST (the node's cost is per line). */
#define LOG_MARKER_USEC 1000000ull /* report what was dropped at most this often */

enum restart { RESTART_ALWAYS, RESTART_ON_FAILURE, RESTART_NO };

typedef struct proc {
    char *name;
    char **argv;
    char **env;
    char *cwd;
    char *user;
    enum restart restart;
    pid_t pid; /* 0: not running */
    uint64_t started;
    unsigned failures;
    uint64_t restart_at; /* monotonic usec; 0: none scheduled */
    int status;          /* the last wait status */
    bool done;
    bool foreground;               /* its exit ends the instance, with its exit code */
    bool aux;                      /* the init's own (sshd, tailscaled): keeps no instance alive */
    const char *remove_on_success; /* a file to remove once it exited 0 */
} proc;

/* One output pipe; it may outlive its process while a grandchild holds it open. */
typedef struct stream {
    int fd;
    int kind; /* SEED_STREAM_STDOUT / STDERR */
    char name[64];
    char buf[SEED_INIT_MAX_LINE];
    size_t len;
    /* Over the rate, the newest line is held back rather than dropped, and sent once
     * the stream is quiet: the last words after a burst (an error, say) are kept. */
    char held[SEED_INIT_MAX_LINE];
    size_t held_len;
    bool holding;
    struct stream *next;
} stream;

typedef struct msg {
    size_t len;
    struct msg *next;
    char data[];
} msg;

static struct {
    /* the output rate limit */
    double tokens;
    uint64_t refilled;                     /* monotonic usec */
    uint64_t dropped_bytes, dropped_lines; /* not reported yet */
    uint64_t reported;                     /* when the last report was */
    char *name;
    proc *procs;
    size_t n_procs;
    stream *streams;
    int epfd, sigfd, chan;
    msg *queue, *queue_tail;
    size_t queued;
    bool paused;
    bool chan_out; /* the channel is watched for EPOLLOUT (a queue is waiting) */
    bool stopping;
    uint64_t stop_deadline;
    unsigned grace_ms;
    int devnull;
    bool image;          /* image mode: no node, see the top of the file */
    bool killed;         /* the grace period ran out */
    seed_account *users; /* the spec's users */
    size_t n_users;
    bool fg_ended; /* the foreground process ended: the rest are being stopped */
    int fg_status;
    char **base_env; /* the instance environment (for the processes the init adds) */
    char *persist;   /* image mode: the persistent volume (NULL: none) */
    unsigned ssh_port;
    char *toplevel;  /* image mode: a NixOS system whose init takes our place */
    char **required; /* image mode: boot tasks that must succeed (boot.required) */
} S = {.chan = -1, .epfd = -1, .sigfd = -1, .devnull = -1};

/* ---- channel to the node ---- */

static void chan_watch(void);

/* Image mode: a log line on our own stdout (or stderr), "name: line", as `seed logs`
 * shows it less the timestamp (the container runtime adds its own). */
static void print_line(int stream_kind, const char *name, size_t nlen, const char *data, size_t len) {
    static const char sep[] = ": ", seed_tag[] = " (seed): ", nl[] = "\n";
    bool init = stream_kind == SEED_STREAM_INIT;
    struct iovec iov[4] = {{(void *)name, nlen},
                           {(void *)(init ? seed_tag : sep), init ? sizeof(seed_tag) - 1 : sizeof(sep) - 1},
                           {(void *)data, len},
                           {(void *)nl, 1}};
    ssize_t n;
    do
        n = writev(stream_kind == SEED_STREAM_STDOUT ? STDOUT_FILENO : STDERR_FILENO, iov, 4);
    while (n < 0 && errno == EINTR);
}

static void send_msg(int type, int stream_kind, uint32_t arg, const char *name, const char *data,
                     size_t len) {
    size_t nlen = name ? MIN(strlen(name), 255u) : 0;
    len = MIN(len, (size_t)SEED_INIT_MAX_LINE);
    if (S.image && type == SEED_INIT_LOG)
        print_line(stream_kind, name, nlen, data, len);
    if (S.chan < 0)
        return;
    seed_init_hdr h = {.type = (uint8_t)type,
                       .stream = (uint8_t)stream_kind,
                       .name_len = (uint16_t)nlen,
                       .arg = arg,
                       .ts_usec = seed_realtime_usec()};
    if (!S.queue) {
        struct iovec iov[3] = {{&h, sizeof(h)}, {(void *)name, nlen}, {(void *)data, len}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 3};
        ssize_t n = sendmsg(S.chan, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            /* The node is gone: nobody to report to. Pdeathsig ends us soon. */
            close(S.chan);
            S.chan = -1;
            return;
        }
    }
    msg *m = malloc(sizeof(msg) + sizeof(h) + nlen + len);
    if (!m)
        return;
    m->len = sizeof(h) + nlen + len;
    m->next = NULL;
    memcpy(m->data, &h, sizeof(h));
    if (nlen)
        memcpy(m->data + sizeof(h), name, nlen);
    if (len)
        memcpy(m->data + sizeof(h) + nlen, data, len);
    if (S.queue_tail)
        S.queue_tail->next = m;
    else
        S.queue = m;
    S.queue_tail = m;
    S.queued += m->len;
    chan_watch();
}

static void flush_queue(void) {
    while (S.queue && S.chan >= 0) {
        msg *m = S.queue;
        ssize_t n = send(S.chan, m->data, m->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            close(S.chan);
            S.chan = -1;
            break;
        }
        S.queue = m->next;
        if (!S.queue)
            S.queue_tail = NULL;
        S.queued -= m->len;
        free(m);
    }
    chan_watch();
}

/* A message from the init itself about a process, shown in `seed logs`. */
static void say(const char *proc_name, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    send_msg(SEED_INIT_LOG, SEED_STREAM_INIT, 0, proc_name, buf, MIN((size_t)n, sizeof(buf) - 1));
}

/* ---- output streams ---- */

static void say(const char *proc_name, const char *fmt, ...) _printf_(2, 3);

/* Say what was dropped, once the limit lets output through again (or a while later). */
static void report_dropped(void) {
    if (!S.dropped_lines)
        return;
    S.reported = seed_now_usec();
    say("seed-init", "%llu bytes (%llu lines) of output suppressed: over %u bytes a second",
        (unsigned long long)S.dropped_bytes, (unsigned long long)S.dropped_lines, SEED_INIT_LOG_RATE);
    S.dropped_bytes = S.dropped_lines = 0;
}

/* Take n bytes' worth from the rate (a line costs at least SEED_INIT_LOG_LINE_COST),
 * if there is that much left, or down to -debt when allowed to borrow. */
static bool rate_take(size_t n, double debt) {
    uint64_t now = seed_now_usec();
    S.tokens += (double)(now - S.refilled) * SEED_INIT_LOG_RATE / 1e6;
    S.tokens = MIN(S.tokens, (double)SEED_INIT_LOG_BURST);
    S.refilled = now;
    double cost = (double)MAX(n, (size_t)SEED_INIT_LOG_LINE_COST);
    if (S.tokens - cost < -debt)
        return false;
    S.tokens -= cost;
    /* What was dropped is reported before the next line that passes, at most once a
     * second (the main loop reports what a flood left once it is over). */
    if (S.dropped_lines && now - S.reported >= LOG_MARKER_USEC)
        report_dropped();
    return true;
}

static void count_dropped(size_t n) {
    S.dropped_bytes += n + 1;
    S.dropped_lines++;
}

static void stream_emit(stream *s, const char *p, size_t n) {
    if (s->holding) { /* an older line: this one is newer, so that one goes */
        count_dropped(s->held_len);
        s->holding = false;
    }
    if (rate_take(n, 0)) {
        send_msg(SEED_INIT_LOG, s->kind, 0, s->name, p, n);
        return;
    }
    memcpy(s->held, p, n);
    s->held_len = n;
    s->holding = true;
}

/* The stream went quiet: send the line held back, borrowing from the rate up to one
 * line (which later lines repay), so the output stays within the rate overall. */
static void stream_flush_held(stream *s) {
    if (!s->holding)
        return;
    s->holding = false;
    if (rate_take(s->held_len, (double)sizeof(s->held) + SEED_INIT_LOG_LINE_COST))
        send_msg(SEED_INIT_LOG, s->kind, 0, s->name, s->held, s->held_len);
    else
        count_dropped(s->held_len);
}

static void stream_close(stream *s) {
    if (s->len > 0)
        stream_emit(s, s->buf, s->len);
    stream_flush_held(s);
    epoll_ctl(S.epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    for (stream **pp = &S.streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    free(s);
}

/* Read what s has. With drain (every writer is gone), read to the end whatever the
 * node's backlog: the stream is closed when this returns. */
static void stream_read(stream *s, bool drain) {
    for (;;) {
        ssize_t n = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN && !drain) {
                stream_flush_held(s);
                return;
            }
            stream_close(s);
            return;
        }
        if (n == 0) {
            stream_close(s);
            return;
        }
        s->len += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < s->len; i++)
            if (s->buf[i] == '\n') {
                stream_emit(s, s->buf + start, i - start);
                start = i + 1;
            }
        if (start == 0 && s->len == sizeof(s->buf)) {
            stream_emit(s, s->buf, s->len); /* an overlong line, split */
            start = s->len;
        }
        memmove(s->buf, s->buf + start, s->len - start);
        s->len -= start;
        if (!drain && S.queued > QUEUE_PAUSE_BYTES)
            return; /* let the node catch up first */
    }
}

static void streams_set_paused(bool paused) {
    if (S.paused == paused)
        return;
    S.paused = paused;
    for (stream *s = S.streams; s; s = s->next) {
        struct epoll_event ev = {.events = paused ? 0 : EPOLLIN, .data.ptr = s};
        epoll_ctl(S.epfd, EPOLL_CTL_MOD, s->fd, &ev);
    }
}

static int stream_add(int fd, int kind, const char *name) {
    stream *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->fd = fd;
    s->kind = kind;
    snprintf(s->name, sizeof(s->name), "%s", name);
    struct epoll_event ev = {.events = S.paused ? 0 : EPOLLIN, .data.ptr = s};
    if (epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(s);
        return -errno;
    }
    s->next = S.streams;
    S.streams = s;
    return 0;
}

/* epoll data for the fixed fds, told apart from stream pointers. */
static char tag_signal, tag_chan;

static void chan_watch(void) {
    if (S.chan < 0)
        return;
    bool out = S.queue != NULL;
    if (out != S.chan_out) { /* only when the queue starts or empties: not per message */
        struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = &tag_chan};
        epoll_ctl(S.epfd, EPOLL_CTL_MOD, S.chan, &ev);
        S.chan_out = out;
    }
    streams_set_paused(S.queued > QUEUE_PAUSE_BYTES);
}

/* ---- users ---- */

/* A process's user: one of the spec's users first (their ids hold also where the
 * root's /etc/passwd could not be written, as on a node), else the root's accounts. */
static int resolve_user(const char *spec, seed_user_ids *id, char *err, size_t len) {
    char name[256];
    snprintf(name, sizeof(name), "%s", spec);
    char *group = strchr(name, ':');
    if (group)
        *group++ = 0;
    for (size_t i = 0; i < S.n_users; i++) {
        const seed_account *a = &S.users[i];
        if (!streq(a->name, name))
            continue;
        *id = (seed_user_ids){.uid = a->uid, .gid = a->gid};
        snprintf(id->home, sizeof(id->home), "%s", a->home);
        for (size_t j = 0; group && j < S.n_users; j++)
            if (streq(S.users[j].name, group)) {
                id->gid = S.users[j].gid;
                group = NULL;
            }
        if (group) { /* a number, or a group of the root's /etc/group */
            char g[300];
            seed_user_ids gid;
            snprintf(g, sizeof(g), "0:%s", group);
            int r = seed_resolve_user(g, &gid, err, len);
            if (r < 0)
                return r;
            id->gid = gid.gid;
        }
        id->groups[0] = id->gid;
        id->n_groups = 1;
        return 0;
    }
    return seed_resolve_user(spec, id, err, len);
}

/* ---- processes ---- */

static void describe_status(int status, char *buf, size_t size) {
    if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "was killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WTERMSIG(status) == SIGKILL ? ", possibly by the out-of-memory killer" : "");
    else
        snprintf(buf, size, "ended with wait status %#x", status);
}

/* What the forked child reports if it cannot exec. */
typedef struct exec_failure {
    int err;
    char what[32];
} exec_failure;

static _noreturn_ void child_fail(int fd, int err, const char *what) {
    exec_failure f = {.err = err};
    snprintf(f.what, sizeof(f.what), "%s", what);
    ssize_t n = write(fd, &f, sizeof(f));
    (void)n;
    _exit(err == ENOENT ? 127 : 126);
}

static bool same_groups(const gid_t *want, size_t n, gid_t primary);

static int spawn(proc *p) {
    seed_user_ids id;
    char err[256];
    if (resolve_user(p->user, &id, err, sizeof(err)) < 0) {
        say(p->name, "cannot start: %s", err);
        return -ENOENT;
    }
    int out[2], errp[2], ex[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(errp, O_CLOEXEC) < 0) {
        close(out[0]);
        close(out[1]);
        return -errno;
    }
    if (pipe2(ex, O_CLOEXEC) < 0) {
        close(out[0]);
        close(out[1]);
        close(errp[0]);
        close(errp[1]);
        return -errno;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(out[0]);
        close(out[1]);
        close(errp[0]);
        close(errp[1]);
        close(ex[0]);
        close(ex[1]);
        return r;
    }
    if (pid == 0) {
        /* Child: a fresh session and default signal handling, then exec. */
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        setsid();
        if (dup2(S.devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0)
            child_fail(ex[1], errno, "set up stdio");
        if (setgroups((size_t)id.n_groups, id.groups) < 0 &&
            !(errno == EPERM && same_groups(id.groups, id.n_groups, id.gid)))
            child_fail(ex[1], errno, "setgroups");
        if (setresgid(id.gid, id.gid, id.gid) < 0)
            child_fail(ex[1], errno, "setgid");
        if (setresuid(id.uid, id.uid, id.uid) < 0)
            child_fail(ex[1], errno, "setuid");
        if (chdir(p->cwd) < 0)
            child_fail(ex[1], errno, "chdir");
        /* execvp searches the PATH of our environment: make it the process's. */
        extern char **environ;
        environ = p->env;
        bool has_home = false;
        for (char **e = p->env; *e; e++)
            has_home |= strncmp(*e, "HOME=", 5) == 0;
        if (!has_home)
            setenv("HOME", id.home, 1);
        execvp(p->argv[0], p->argv);
        child_fail(ex[1], errno, "exec");
    }
    close(out[1]);
    close(errp[1]);
    close(ex[1]);
    exec_failure f;
    ssize_t n;
    do
        n = read(ex[0], &f, sizeof(f));
    while (n < 0 && errno == EINTR);
    close(ex[0]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(errp[0], F_SETFL, O_NONBLOCK);
    if (stream_add(out[0], SEED_STREAM_STDOUT, p->name) < 0)
        close(out[0]);
    if (stream_add(errp[0], SEED_STREAM_STDERR, p->name) < 0)
        close(errp[0]);
    p->pid = pid;
    p->started = seed_now_usec();
    if (n == (ssize_t)sizeof(f)) {
        if (streq(f.what, "exec"))
            say(p->name, "cannot execute \"%s\": %s", p->argv[0], strerror(f.err));
        else if (streq(f.what, "chdir"))
            say(p->name, "cannot change to working directory \"%s\": %s", p->cwd, strerror(f.err));
        else
            say(p->name, "cannot start (%s): %s", f.what, strerror(f.err));
        return 0; /* reaped like any exit; the restart policy decides */
    }
    send_msg(SEED_INIT_EVENT, SEED_EVENT_STARTED, (uint32_t)pid, p->name, NULL, 0);
    return 0;
}

static void start_or_schedule(proc *p);

static void schedule_restart(proc *p) {
    uint64_t ran = seed_now_usec() - p->started;
    if (ran >= BACKOFF_RESET_USEC)
        p->failures = 0;
    unsigned shift = MIN(p->failures, 16u);
    unsigned delay = MIN((unsigned)BACKOFF_FIRST_MS << shift, (unsigned)BACKOFF_MAX_MS);
    p->failures++;
    p->restart_at = seed_now_usec() + (uint64_t)delay * 1000u;
    say(p->name, "restarting in %u ms (policy %s)", delay,
        p->restart == RESTART_ALWAYS ? "always" : "on-failure");
    send_msg(SEED_INIT_EVENT, SEED_EVENT_RESTART, delay, p->name, NULL, 0);
}

static void start_or_schedule(proc *p) {
    int r = spawn(p);
    if (r == 0)
        return;
    /* Could not even fork or resolve the user: treat as a failed run. */
    p->started = seed_now_usec();
    if (p->restart == RESTART_NO) {
        p->done = true;
        return;
    }
    schedule_restart(p);
}

/* Every process of the spec is done for good (the init's own do not count). */
static bool all_done(void) {
    size_t spec = 0;
    for (size_t i = 0; i < S.n_procs; i++) {
        if (S.procs[i].aux)
            continue;
        spec++;
        if (!S.procs[i].done)
            return false;
    }
    return spec > 0; /* an instance without processes idles until stopped */
}

static void begin_stop(unsigned grace_ms);

static void on_exit_status(proc *p, int status) {
    char what[160];
    describe_status(status, what, sizeof(what));
    p->pid = 0;
    p->status = status;
    send_msg(SEED_INIT_EVENT, SEED_EVENT_EXITED, (uint32_t)status, p->name, NULL, 0);
    if (p->remove_on_success && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        unlink(p->remove_on_success);
    if (S.stopping) {
        say(p->name, "%s", what);
        p->done = true;
        return;
    }
    if (p->foreground) {
        say(p->name, "%s; the foreground process ended: stopping the others", what);
        p->done = true;
        S.fg_ended = true;
        S.fg_status = status;
        begin_stop(S.grace_ms);
        return;
    }
    bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (p->restart == RESTART_NO || (p->restart == RESTART_ON_FAILURE && !failed)) {
        say(p->name, "%s; not restarting (policy %s)", what, p->restart == RESTART_NO ? "no" : "on-failure");
        p->done = true;
        return;
    }
    say(p->name, "%s", what);
    schedule_restart(p);
}

static void reap(void) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (size_t i = 0; i < S.n_procs; i++)
            if (S.procs[i].pid == pid) {
                on_exit_status(&S.procs[i], status);
                break;
            }
        /* Anything else was an orphan re-parented to us: reaped, nothing to report. */
    }
}

static void signal_all(int sig) {
    for (size_t i = 0; i < S.n_procs; i++)
        if (S.procs[i].pid > 0)
            kill(-S.procs[i].pid, sig) < 0 ? kill(S.procs[i].pid, sig) : 0;
}

static void begin_stop(unsigned grace_ms) {
    if (S.stopping)
        return;
    S.stopping = true;
    S.stop_deadline = seed_now_usec() + (uint64_t)grace_ms * 1000u;
    for (size_t i = 0; i < S.n_procs; i++) {
        S.procs[i].restart_at = 0;
        if (S.procs[i].pid == 0)
            S.procs[i].done = true;
    }
    signal_all(SIGTERM);
}

/* Kill whatever is left in our PID namespace. In image mode we may not be PID 1 of one
 * (docker run --pid=host): then only our own processes' groups. */
static void kill_rest(void) {
    if (S.image && getpid() != 1)
        signal_all(SIGKILL);
    else
        kill(-1, SIGKILL);
}

/* Image mode's exit code: the foreground process's when it ended (128 + N for signal
 * N); after a stop, 0 when every process ended within the grace period, else 137
 * (killed); when the processes ended on their own, the first failed one's exit status,
 * else 0. */
static int image_exit_code(void) {
    if (S.fg_ended) /* the foreground process's, whatever the others did */
        return WIFSIGNALED(S.fg_status) ? 128 + WTERMSIG(S.fg_status) : WEXITSTATUS(S.fg_status);
    if (S.stopping)
        return S.killed ? 128 + SIGKILL : 0;
    for (size_t i = 0; i < S.n_procs; i++) {
        int st = S.procs[i].status;
        if (S.procs[i].aux)
            continue;
        if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
            return WEXITSTATUS(st);
        if (WIFSIGNALED(st))
            return 128 + WTERMSIG(st);
    }
    return 0;
}

static bool any_running(void) {
    for (size_t i = 0; i < S.n_procs; i++)
        if (S.procs[i].pid > 0)
            return true;
    return false;
}

/* ---- configuration ---- */

static char **json_strv(json_t *a) {
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    char **v = calloc(n + 1, sizeof(char *));
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        v[i] = strdup(s ? s : "");
    }
    return v;
}

static int load_config(void) {
    json_error_t e;
    FILE *f = S.image ? fopen(SEED_IMAGE_CONFIG_PATH, "re") : fdopen(SEED_INIT_CONFIG_FD, "r");
    if (!f)
        return -errno;
    json_t *c = json_loadf(f, 0, &e);
    fclose(f);
    if (!c || !json_is_object(c))
        return -EINVAL;
    S.name = strdup(json_string_value(json_object_get(c, "name")) ?: "instance");
    S.grace_ms = (unsigned)json_integer_value(json_object_get(c, "grace_ms"));
    S.required = json_strv(json_object_get(c, "required"));
    const char *toplevel = json_string_value(json_object_get(c, "toplevel"));
    S.toplevel = toplevel ? strdup(toplevel) : NULL;
    if (S.grace_ms == 0)
        S.grace_ms = 10000;

    /* /run/seed/env: the instance environment, one KEY=value per line, values quoted
     * so that both a shell and systemd's EnvironmentFile= read them back. */
    json_t *envf = json_object_get(c, "env_file");
    S.base_env = json_strv(envf);
    S.ssh_port = (unsigned)json_integer_value(json_object_get(c, "ssh_port"));
    if (S.ssh_port == 0 || S.ssh_port > 65535)
        S.ssh_port = 22;
    /* $SEED_PERSIST, else the first volume: where boot tasks keep what must survive. */
    const char *persist = getenv("SEED_PERSIST");
    if (!persist || !*persist)
        persist = json_string_value(json_array_get(json_object_get(c, "volumes"), 0));
    struct stat pst;
    if (S.image && persist && stat(persist, &pst) == 0 && S_ISDIR(pst.st_mode))
        S.persist = strdup(persist);
    mkdir("/run/seed", 0755);
    FILE *out = fopen("/run/seed/env", "we");
    if (out) {
        size_t i;
        json_t *v;
        json_array_foreach (envf, i, v) {
            const char *kv = json_string_value(v);
            const char *eq = kv ? strchr(kv, '=') : NULL;
            if (!eq)
                continue;
            fprintf(out, "%.*s='", (int)(eq - kv), kv);
            for (const char *q = eq + 1; *q; q++)
                if (*q == '\'')
                    fputs("'\\''", out);
                else
                    fputc(*q, out);
            fputs("'\n", out);
        }
        fclose(out);
    }

    json_t *procs = json_object_get(c, "processes");
    S.n_procs = json_array_size(procs);
    S.procs = calloc(S.n_procs ? S.n_procs : 1, sizeof(proc));
    if (!S.procs)
        return -ENOMEM;
    for (size_t i = 0; i < S.n_procs; i++) {
        json_t *p = json_array_get(procs, i);
        proc *x = &S.procs[i];
        x->name = strdup(json_string_value(json_object_get(p, "name")) ?: "process");
        x->argv = json_strv(json_object_get(p, "argv"));
        x->env = json_strv(json_object_get(p, "env"));
        x->cwd = strdup(json_string_value(json_object_get(p, "cwd")) ?: "/");
        x->user = strdup(json_string_value(json_object_get(p, "user")) ?: "root");
        const char *r = json_string_value(json_object_get(p, "restart")) ?: "always";
        x->restart = streq(r, "no")           ? RESTART_NO
                     : streq(r, "on-failure") ? RESTART_ON_FAILURE
                                              : RESTART_ALWAYS;
        x->foreground = json_is_true(json_object_get(p, "foreground"));
        if (!x->argv || !x->argv[0] || !x->env)
            return -EINVAL;
    }
    json_t *users = json_object_get(c, "users");
    S.n_users = json_array_size(users);
    S.users = calloc(S.n_users ? S.n_users : 1, sizeof(seed_account));
    if (!S.users)
        return -ENOMEM;
    for (size_t i = 0; i < S.n_users; i++) {
        json_t *u = json_array_get(users, i);
        seed_account *a = &S.users[i];
        a->name = strdup(json_string_value(json_object_get(u, "name")) ?: "");
        a->uid = (unsigned)json_integer_value(json_object_get(u, "uid"));
        a->gid = (unsigned)json_integer_value(json_object_get(u, "gid"));
        a->shell = strdup(json_string_value(json_object_get(u, "shell")) ?: "/bin/sh");
        a->home = strdup(json_string_value(json_object_get(u, "home")) ?: "/");
        if (!a->name || !*a->name || !a->shell || !a->home)
            return -EINVAL;
    }
    json_decref(c);
    return 0;
}

/* nix.enable with a store root: the closure the instance was given, registered in its
 * own Nix database on its volume (what `nix-store --dump-db` said of it, written by the
 * node), so that its nix sees those paths as valid. A root without nix-store: one line. */
static void nix_register(void) {
    int fd = open("/etc/nix/closure-registration", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    static const char *const where[] = {"/bin/nix-store", "/usr/bin/nix-store", "/sbin/nix-store",
                                        "/nix/var/nix/profiles/default/bin/nix-store"};
    const char *tool = NULL;
    for (size_t i = 0; i < ELEMENTSOF(where) && !tool; i++)
        if (access(where[i], X_OK) == 0)
            tool = where[i];
    if (!tool) {
        say("seed-init", "nix: no nix-store in the root: the closure is not registered");
        close(fd);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 0);
        if (S.devnull >= 0)
            dup2(S.devnull, 1);
        execve(tool, (char *[]){(char *)tool, "--load-db", NULL}, S.base_env ? S.base_env : (char *[]){NULL});
        _exit(127);
    }
    close(fd);
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        say("seed-init", "nix: the root's closure is registered in the instance's store");
    else
        say("seed-init", "nix: registering the root's closure failed (nix-store --load-db)");
}

/* Replace ourselves with <toplevel>/init; returns only when that fails. */
static int exec_toplevel(void) {
    _cleanup_free_ char *init = NULL;
    if (asprintf(&init, "%s/init", S.toplevel) < 0)
        return 1;
    say("seed-init", "starting the NixOS system %s", S.toplevel);
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    execve(init, (char *[]){init, NULL}, S.base_env ? S.base_env : (char *[]){NULL});
    say("seed-init", "cannot start %s: %s", init, strerror(errno));
    return 127;
}

/* ---- main loop ---- */

static void handle_signal(void) {
    struct signalfd_siginfo si;
    while (read(S.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap();
            break;
        case SIGTERM:
        case SIGINT:
            begin_stop(S.grace_ms);
            break;
        default:
            signal_all((int)si.ssi_signo); /* SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGQUIT */
            break;
        }
    }
}

static void handle_channel(uint32_t events) {
    if (events & EPOLLOUT)
        flush_queue();
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    char buf[256];
    ssize_t n = recv(S.chan, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* The node went away without stopping us: stop everything, now (also when a
         * graceful stop was under way: nobody waits for it any more). */
        epoll_ctl(S.epfd, EPOLL_CTL_DEL, S.chan, NULL);
        close(S.chan);
        S.chan = -1;
        begin_stop(0);
        S.stop_deadline = seed_now_usec();
        return;
    }
    if ((size_t)n >= sizeof(seed_init_hdr)) {
        seed_init_hdr h;
        memcpy(&h, buf, sizeof(h));
        if (h.type == SEED_INIT_STOP)
            begin_stop(h.arg);
    }
}

/* Without CAP_SETGID (a runtime's default bounding set, as umoci writes it for crun)
 * setgroups fails even when there is nothing to change: that is fine. */
static bool same_groups(const gid_t *want, size_t n, gid_t primary) {
    gid_t have[256];
    int k = getgroups(256, have);
    if (k < 0)
        return false;
    /* The primary group counts as held whether it is listed or not. */
    for (size_t i = 0; i < n; i++) {
        bool found = want[i] == primary;
        for (int j = 0; j < k && !found; j++)
            found = have[j] == want[i];
        if (!found)
            return false;
    }
    for (int j = 0; j < k; j++) {
        bool found = have[j] == primary;
        for (size_t i = 0; i < n && !found; i++)
            found = have[j] == want[i];
        if (!found)
            return false;
    }
    return true;
}

/* Image mode: a runtime that gives the container a network namespace of its own may
 * leave its loopback down (crun and runc do; podman and docker bring it up), and
 * services listening on 127.0.0.1 need it. Best effort: without CAP_NET_ADMIN it stays
 * as it is. */
static void loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
            say("seed-init", "bringing up the loopback interface: %s", strerror(errno));
    }
    close(fd);
}

/* Image mode: the platform's configuration, taken out of our environment first thing. */
typedef struct boot_secrets {
    char *root_password, *ssh_keys, *ssh_keys_file, *tailscale_key;
} boot_secrets;

static void secrets_take(boot_secrets *b) {
    b->root_password = seed_boot_take_env("ROOT_PASSWORD");
    b->ssh_keys = seed_boot_take_env("SSH_PUBLIC_KEYS");
    b->ssh_keys_file = seed_boot_take_env("SSH_PUBLIC_KEYS_FILE");
    b->tailscale_key = seed_boot_take_env("TAILSCALE_AUTHKEY");
}

static void secret_free(char **s) {
    if (*s)
        explicit_bzero(*s, strlen(*s));
    free(*s);
    *s = NULL;
}

/* Whether a process of the spec runs the program name itself. */
static bool runs(const char *name) {
    for (size_t i = 0; i < S.n_procs; i++) {
        const char *slash = strrchr(S.procs[i].argv[0], '/');
        if (streq(slash ? slash + 1 : S.procs[i].argv[0], name))
            return true;
    }
    return false;
}

/* A process of the init's own (sshd, tailscaled), run like the spec's daemons. */
static proc *add_proc(const char *name, char **argv, enum restart restart) {
    proc *n = realloc(S.procs, (S.n_procs + 1) * sizeof(proc));
    if (!n) {
        strv_free(argv);
        return NULL;
    }
    S.procs = n;
    proc *p = &S.procs[S.n_procs++];
    *p = (proc){.name = strdup(name),
                .argv = argv,
                .env = S.base_env,
                .cwd = strdup("/"),
                .user = strdup("root"),
                .restart = restart,
                .aux = true};
    return p;
}

/* The container's environment (less what secrets_take took, and HOME) reaches the
 * processes: on a GPU cloud it is the only configuration there is. The spec's
 * variables win. */
static void add_runtime_env(proc *p) {
    extern char **environ;
    size_t n = 0, extra = 0, m = 0;
    while (p->env[n])
        n++;
    while (environ && environ[m])
        m++;
    char **v = calloc(n + m + 1, sizeof(char *));
    if (!v)
        return;
    memcpy(v, p->env, n * sizeof(char *));
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || strncmp(*e, "HOME=", 5) == 0) /* HOME is the process user's */
            continue;
        size_t kl = (size_t)(eq - *e) + 1;
        bool have = false;
        for (size_t i = 0; i < n && !have; i++)
            have = strncmp(v[i], *e, kl) == 0;
        if (!have && (v[n + extra] = strdup(*e)))
            extra++;
    }
    if (p->env != S.base_env) /* the init's own processes share that one */
        free(p->env);
    p->env = v;
}

/* The boot tasks, in order; with daemons, also what the init runs for them (sshd). */
static void boot(boot_secrets *b, bool daemons) {
    seed_boot_gpu();
    /* Homes on the volume first: the accounts' homes and the SSH keys go there. */
    seed_boot_persist(S.persist, S.users, S.n_users);
    seed_boot_accounts(S.users, S.n_users);
    seed_boot_password(b->root_password);
    seed_boot_ssh_keys(b->ssh_keys, b->ssh_keys_file, S.users, S.n_users);
    secret_free(&b->root_password);
    secret_free(&b->ssh_keys);
    secret_free(&b->ssh_keys_file);
    if (!daemons) {
        if (b->tailscale_key)
            seed_boot_log("tailscale", "warning: --boot starts no daemon: TAILSCALE_AUTHKEY is not used");
        secret_free(&b->tailscale_key);
        return;
    }
    char **sshd = runs("sshd") ? NULL : seed_boot_sshd(S.persist, S.ssh_port);
    if (sshd)
        add_proc("sshd", sshd, RESTART_ALWAYS);
    char **nixd = runs("nix-daemon") ? NULL : seed_boot_nix_daemon();
    if (nixd)
        add_proc("nix-daemon", nixd, RESTART_ALWAYS);
    char **tsd, **tsup;
    if (b->tailscale_key && seed_boot_tailscale(b->tailscale_key, S.persist, S.name, &tsd, &tsup) == 0) {
        add_proc("tailscaled", tsd, RESTART_ALWAYS);
        /* tailscale up fails until tailscaled listens: retried with backoff; the key
         * file goes once it succeeded. */
        proc *up = add_proc("tailscale-up", tsup, RESTART_ON_FAILURE);
        if (up)
            up->remove_on_success = SEED_TAILSCALE_KEY_FILE;
    }
    secret_free(&b->tailscale_key);
    for (size_t i = 0; i < S.n_procs; i++)
        add_runtime_env(&S.procs[i]);
}

/* boot.required: each of those tasks did its work, or the container stops here with
 * the reason, before any process starts. */
static bool boot_required_done(void) {
    bool ok = true;
    for (char **t = S.required; t && *t; t++) {
        char why[256];
        if (seed_boot_task_done(*t, why, sizeof(why)))
            continue;
        say("seed-init", "boot task %s is required (boot.required) but did not succeed: %s", *t, why);
        ok = false;
    }
    if (!ok)
        say("seed-init", "stopping: a required boot task failed");
    return ok;
}

int main(int argc, char **argv) {
    /* Not dumpable, so not ptraceable: without CAP_SYS_PTRACE (which instances never
     * have) no process of the instance can attach to us, read or write our memory
     * (/proc/1/mem, process_vm_*) or take our channel to the node. Our children get
     * the ordinary setting back when they exec. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (argc > 1 && streq(argv[1], SEED_SHOOT_TEMPLATE_ARG))
        return seed_template_main();
    prctl(PR_SET_NAME, "seed-init");
    S.tokens = SEED_INIT_LOG_BURST;
    S.refilled = seed_now_usec();
    /* A node always passes the configuration as fd 3; a container runtime passes
     * nothing beyond stdio. */
    S.image = fcntl(SEED_INIT_CONFIG_FD, F_GETFD) < 0 && errno == EBADF;
    /* --boot: the boot tasks alone, for platforms that replace the entrypoint (vast.ai's
     * ssh and jupyter modes run an onstart script instead): no process is started. */
    bool boot_only = argc > 1 && streq(argv[1], "--boot");
    if (argc > 1 && !boot_only) {
        fprintf(stderr,
                "seed-init: unknown argument \"%s\": expected none, or --boot to run the boot tasks "
                "of an image alone\n",
                argv[1]);
        return 2;
    }
    S.image |= boot_only;
    boot_secrets secrets = {0};
    if (S.image)
        secrets_take(&secrets);
    if (!S.image) {
        S.chan = SEED_INIT_CHANNEL_FD;
        fcntl(S.chan, F_SETFD, FD_CLOEXEC);
    }
    S.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (S.image)
        loopback_up();
    if (load_config() < 0) {
        if (S.image)
            say("seed-init", "cannot read the instance configuration %s", SEED_IMAGE_CONFIG_PATH);
        else
            say("seed-init", "cannot read the instance configuration");
        return 1;
    }
    if (boot_only) {
        boot(&secrets, false);
        return boot_required_done() ? 0 : 1;
    }

    /* A NixOS system, in an image or on a node: its own init (stage 2, then systemd)
     * must be PID 1, so it takes our place, with the instance environment. On a node the
     * channel closes with the exec (the node then sees the instance through its PID 1
     * alone: no process list, logs or graceful stop through us; a stop ends in SIGKILL
     * after the grace period unless the system stops on SIGTERM itself). */
    if (S.toplevel)
        return exec_toplevel();

    sigset_t mask;
    sigemptyset(&mask);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGQUIT};
    for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
        sigaddset(&mask, sigs[i]);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    S.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    S.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (S.sigfd < 0 || S.epfd < 0)
        return 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_signal};
    epoll_ctl(S.epfd, EPOLL_CTL_ADD, S.sigfd, &ev);
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &tag_chan};
    if (S.chan >= 0)
        epoll_ctl(S.epfd, EPOLL_CTL_ADD, S.chan, &ev);

    if (S.image) {
        boot(&secrets, true);
        if (!boot_required_done())
            return 1;
    }
    nix_register();

    /* The daemons first, so that the foreground process finds them started. */
    for (size_t i = 0; i < S.n_procs; i++)
        if (!S.procs[i].foreground)
            start_or_schedule(&S.procs[i]);
    for (size_t i = 0; i < S.n_procs; i++)
        if (S.procs[i].foreground)
            start_or_schedule(&S.procs[i]);

    for (;;) {
        uint64_t now = seed_now_usec();
        if (S.stopping && !any_running()) {
            /* Managed processes are gone; end whatever they left behind. After the
             * foreground process ended, the instance is done, as when every process is. */
            if (S.fg_ended)
                send_msg(SEED_INIT_EVENT, SEED_EVENT_FINISHED, 0, S.name, NULL, 0);
            kill_rest();
            while (waitpid(-1, NULL, 0) > 0)
                ;
            break;
        }
        if (S.stopping && now >= S.stop_deadline) {
            say(S.name, "grace period over: killing everything that is left");
            kill_rest();
            S.killed = true;
            S.stop_deadline = UINT64_MAX;
        }
        if (!S.stopping && all_done()) {
            send_msg(SEED_INIT_EVENT, SEED_EVENT_FINISHED, 0, S.name, NULL, 0);
            kill_rest();
            while (waitpid(-1, NULL, 0) > 0)
                ;
            break;
        }
        uint64_t next = UINT64_MAX;
        for (size_t i = 0; i < S.n_procs; i++) {
            proc *p = &S.procs[i];
            if (p->restart_at && p->restart_at <= now) {
                p->restart_at = 0;
                start_or_schedule(p);
            }
            if (p->restart_at)
                next = MIN(next, p->restart_at);
        }
        if (S.stopping && S.stop_deadline != UINT64_MAX)
            next = MIN(next, S.stop_deadline);
        if (S.dropped_lines && now - S.reported >= LOG_MARKER_USEC)
            report_dropped(); /* what a flood left, once it is over (or every second) */
        if (S.dropped_lines)
            next = MIN(next, S.reported + LOG_MARKER_USEC);
        int timeout = next == UINT64_MAX ? -1 : (int)MIN((next - now + 999) / 1000, 60000u);

        struct epoll_event evs[32];
        int n = epoll_wait(S.epfd, evs, (int)ELEMENTSOF(evs), timeout);
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &tag_signal)
                handle_signal();
            else if (tag == &tag_chan)
                handle_channel(evs[i].events);
            else
                stream_read(tag, false);
        }
    }
    /* Everything is dead: read what the processes wrote before they went away (also
     * what a paused stream held back), then report. */
    while (S.streams)
        stream_read(S.streams, true);
    report_dropped();
    flush_queue();
    if (S.chan >= 0) {
        /* Wait briefly for the node to take the last messages. */
        for (int tries = 0; S.queue && tries < 100; tries++) {
            struct epoll_event e2;
            epoll_wait(S.epfd, &e2, 1, 10);
            flush_queue();
        }
    }
    return S.image ? image_exit_code() : 0;
}
