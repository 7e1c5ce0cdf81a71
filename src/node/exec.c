/* `seed exec` on the node: run a command inside a running instance for a control
 * client — in the instance's namespaces, cgroup, root, environment, capabilities and
 * seccomp filter, and nothing more (node/exec.h has the protocol with the CLI).
 *
 * node                       helper "seed-exec" (forked)                 command
 *   fork -------------------> dies with the node, non-dumpable, a session of its
 *                             own, no descriptors but its own, /dev/null as stdio
 *                             joins the instance's cgroup ("0" > cgroup.procs)
 *                             setns(init's pidfd: user mnt pid net ipc uts cgroup)
 *                             uid/gid 0 of the instance; finds --user there
 *                             [tty: a pty from the instance's own devpts]
 *                             fork (the PID namespace applies) ---------> session, stdio,
 *                                                                         capabilities,
 *                                                                         user, cwd, seccomp,
 *                                                                         execve (PATH search)
 *   <- STARTED [pty master]   the exec pipe closed (close-on-exec)   <----
 *   <- FAILED (126/127, why)  or the command said why it could not run
 *   <- EXITED (wait status)   the command ended
 *   closes the channel -----> SIGKILL to the command (the client went away)
 *
 * The helper stays outside the instance's PID namespace, so nothing inside can name
 * it. The command is visible from its fork on, with a copy of the node's memory until
 * execve; it is non-dumpable, and the memory of a forked process belongs to the
 * initial user namespace, so no capability inside the instance lets a process there
 * ptrace it or open its /proc/PID/mem before the exec replaces that memory. */
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <linux/close_range.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "init/users.h"
#include "node/exec.h"
#include "node/node-internal.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define HIGH_FD 64

/* Helper -> node, one SEQPACKET record each. */
enum { MSG_STARTED = 1, MSG_FAILED = 2, MSG_EXITED = 3 };

typedef struct exec_msg {
    int32_t type;
    int32_t value; /* FAILED: the exit code to report; EXITED: the wait status */
    char text[504];
} exec_msg;

/* What the helper needs, prepared by the node before the fork. */
typedef struct exec_spec {
    char **argv, **envp;
    const char *workdir, *user;
    bool tty;
    unsigned short rows, cols;
    int stdio[3]; /* -1: none (stdin: /dev/null of the instance; tty: the pty) */
    int cg[3];    /* the instance's cgroup.procs files */
    int n_cg;
    int ns_pidfd; /* the instance's init */
    int sync;
    pid_t node_pid;
    const seed_security *sec;
} exec_spec;

struct node_exec {
    node *n;
    instance *in;
    node_exec_fn fn; /* NULL once the client is gone */
    void *userdata;
    bool tty;
    pid_t pid;
    int pidfd, sync;
    seed_source *pid_src, *sync_src;
    bool exited, failed;
    int status; /* EXITED: the command's wait status */
    int code;   /* FAILED: the exit code to report */
    char *error;
    struct node_exec *next;
};

/* ---- the helper (forked from the node; between fork and exec, docs/errors.md 5) ---- */

/* A failure report: "what: strerror(err)" (err 0: what alone). */
static void failure(exec_msg *m, int code, int err, const char *fmt, va_list ap) _printf_(4, 0);
static void failure(exec_msg *m, int code, int err, const char *fmt, va_list ap) {
    *m = (exec_msg){.type = MSG_FAILED, .value = code};
    int n = vsnprintf(m->text, sizeof(m->text), fmt, ap);
    if (err && n >= 0 && (size_t)n < sizeof(m->text))
        snprintf(m->text + n, sizeof(m->text) - (size_t)n, ": %s", strerror(err));
}

static _noreturn_ void helper_fail(int sync, int code, int err, const char *fmt, ...) _printf_(4, 5);
static _noreturn_ void helper_fail(int sync, int code, int err, const char *fmt, ...) {
    exec_msg m;
    va_list ap;
    va_start(ap, fmt);
    failure(&m, code, err, fmt, ap);
    va_end(ap);
    (void)!send(sync, &m, sizeof(m), MSG_NOSIGNAL);
    _exit(1);
}

/* The command's report to the helper when it cannot exec. */
static _noreturn_ void command_fail(int pipe_fd, int code, int err, const char *fmt, ...) _printf_(4, 5);
static _noreturn_ void command_fail(int pipe_fd, int code, int err, const char *fmt, ...) {
    exec_msg m;
    va_list ap;
    va_start(ap, fmt);
    failure(&m, code, err, fmt, ap);
    va_end(ap);
    (void)!write(pipe_fd, &m, sizeof(m));
    _exit(code);
}

/* Close every descriptor but the n in keep. */
static void close_except(const int *keep, size_t n) {
    int k[16];
    size_t m = 0;
    for (size_t i = 0; i < n && m < ELEMENTSOF(k); i++)
        if (keep[i] >= 0)
            k[m++] = keep[i];
    for (size_t i = 1; i < m; i++) /* insertion sort */
        for (size_t j = i; j > 0 && k[j - 1] > k[j]; j--) {
            int t = k[j];
            k[j] = k[j - 1];
            k[j - 1] = t;
        }
    unsigned from = 0;
    for (size_t i = 0; i < m; i++) {
        if ((unsigned)k[i] > from)
            syscall(SYS_close_range, from, (unsigned)k[i] - 1, 0);
        from = (unsigned)k[i] + 1;
    }
    syscall(SYS_close_range, from, ~0u, 0);
}

static void move_high(int sync, int *fd) {
    if (*fd < 0)
        return;
    int h = fcntl(*fd, F_DUPFD_CLOEXEC, HIGH_FD);
    if (h < 0)
        helper_fail(sync, SEED_EXEC_EXIT_FAILED, errno, "moving file descriptors");
    *fd = h;
}

/* Add KEY=value unless the environment has KEY already. */
static void env_default(char ***envp, const char *key, const char *value) {
    size_t n = 0, klen = strlen(key);
    for (; (*envp)[n]; n++)
        if (strncmp((*envp)[n], key, klen) == 0 && (*envp)[n][klen] == '=')
            return;
    char **v = realloc(*envp, (n + 2) * sizeof(char *));
    if (!v)
        return;
    *envp = v;
    if (asprintf(&v[n], "%s=%s", key, value) < 0)
        v[n] = NULL;
    else
        v[n + 1] = NULL;
}

/* A pseudo-terminal of the instance: /dev/pts is its own devpts instance, which it
 * cannot replace (no mount); the peer comes from the master, not from a path. */
static int open_pty(const exec_spec *s, const seed_user_ids *id, int *slave) {
    int m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
    if (m < 0)
        return -errno;
    struct statfs sf;
    int unlock = 0;
    if (fstatfs(m, &sf) < 0 || sf.f_type != DEVPTS_SUPER_MAGIC) {
        close(m);
        return -ENOTTY;
    }
    if (ioctl(m, TIOCSPTLCK, &unlock) < 0) {
        int e = errno;
        close(m);
        return -e;
    }
    if (s->rows && s->cols) {
        struct winsize ws = {.ws_row = s->rows, .ws_col = s->cols};
        ioctl(m, TIOCSWINSZ, &ws);
    }
    *slave = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*slave < 0 || fchown(*slave, id->uid, id->gid) < 0) {
        int e = errno;
        if (*slave >= 0)
            close(*slave);
        close(m);
        return -e;
    }
    return m;
}

/* execve with a PATH search in the command's environment (execvp would search the
 * node's). Returns the errno that explains the failure. */
static int exec_search(char *const *argv, char *const *envp) {
    const char *file = argv[0], *path = DEFAULT_PATH;
    if (!*file)
        return ENOENT;
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        return errno;
    }
    for (char *const *e = envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            path = *e + 5;
    int saved = ENOENT;
    for (const char *p = path;;) {
        const char *end = strchrnul(p, ':');
        char buf[4096];
        int n = snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(end - p), p, end > p ? "/" : "", file);
        if (n > 0 && (size_t)n < sizeof(buf)) {
            execve(buf, argv, envp);
            if (errno == EACCES)
                saved = EACCES;
            else if (errno != ENOENT && errno != ENOTDIR)
                return errno;
        }
        if (!*end)
            return saved;
        p = end + 1;
    }
}

/* The command, forked by the helper inside the PID namespace: uid 0 of the instance
 * still, with every capability there until it drops them like an instance does. */
static _noreturn_ void command_main(const exec_spec *s, const seed_user_ids *id, int slave, int fail) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL); /* the node ignores SIGPIPE; dispositions survive execve */
    if (setsid() < 0)
        command_fail(fail, SEED_EXEC_EXIT_FAILED, errno, "creating a session");
    int in = s->stdio[0], out = s->stdio[1], err = s->stdio[2];
    if (slave >= 0) {
        if (ioctl(slave, TIOCSCTTY, 0) < 0)
            command_fail(fail, SEED_EXEC_EXIT_FAILED, errno, "acquiring the terminal");
        in = out = err = slave;
    } else if (in < 0) {
        /* The instance's /dev/null: non-blocking, should it be something else now. */
        in = open("/dev/null", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (in < 0 || fcntl(in, F_SETFL, 0) < 0)
            command_fail(fail, SEED_EXEC_EXIT_FAILED, errno, "opening /dev/null for stdin");
    }
    /* Every source is above 2 (the helper's own stdio is /dev/null). */
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        command_fail(fail, SEED_EXEC_EXIT_FAILED, errno, "setting up stdio");
    if (syscall(SYS_close_range, 3, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
        command_fail(fail, SEED_EXEC_EXIT_FAILED, errno, "marking file descriptors close-on-exec");

    /* Capabilities go first, while uid 0 still holds them all (changing to another
     * user clears the permitted set, after which the bounding set could not be
     * dropped); the filter last, since it forbids some of these steps. */
    const char *step = NULL;
    int r = seed_security_apply_caps(s->sec->keep_caps, &step);
    if (r < 0)
        command_fail(fail, SEED_EXEC_EXIT_FAILED, -r, "%s", step);
    if (setgroups(id->n_groups, id->groups) < 0 || setresgid(id->gid, id->gid, id->gid) < 0 ||
        setresuid(id->uid, id->uid, id->uid) < 0)
        command_fail(fail, SEED_EXEC_EXIT_FAILED, errno, "becoming user %u", (unsigned)id->uid);
    prctl(PR_SET_DUMPABLE, 0); /* a uid change may have reset it (fs.suid_dumpable) */
    const char *dir = s->workdir ? s->workdir : "/";
    if (chdir(dir) < 0)
        command_fail(fail, SEED_EXEC_EXIT_NOEXEC, errno, "cannot change to the working directory %s", dir);
    r = seed_security_apply_filter(&s->sec->prog, &step);
    if (r < 0)
        command_fail(fail, SEED_EXEC_EXIT_FAILED, -r, "%s", step);

    int e = exec_search(s->argv, s->envp);
    if (e == ENOENT && !strchr(s->argv[0], '/'))
        command_fail(fail, SEED_EXEC_EXIT_NOTFOUND, 0, "%s: command not found in the instance's PATH",
                     s->argv[0]);
    command_fail(fail, e == ENOENT ? SEED_EXEC_EXIT_NOTFOUND : SEED_EXEC_EXIT_NOEXEC, e, "cannot execute %s",
                 s->argv[0]);
}

static _noreturn_ void helper_main(exec_spec *s) {
    int sync = s->sync;
    /* Die with the node; it may be gone already. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != s->node_pid)
        _exit(1);
    prctl(PR_SET_DUMPABLE, 0);
    prctl(PR_SET_NAME, "seed-exec");
    setsid(); /* out of the node's process group: a Ctrl-C for the node is not ours */

    /* Only our own descriptors, moved above 2; the node's stdio becomes /dev/null. */
    move_high(sync, &s->sync);
    sync = s->sync;
    move_high(sync, &s->ns_pidfd);
    for (int i = 0; i < 3; i++)
        move_high(sync, &s->stdio[i]);
    for (int i = 0; i < s->n_cg; i++)
        move_high(sync, &s->cg[i]);
    int keep[] = {sync, s->ns_pidfd, s->stdio[0], s->stdio[1], s->stdio[2], s->cg[0], s->cg[1], s->cg[2]};
    close_except(keep, ELEMENTSOF(keep));
    int nul = open("/dev/null", O_RDWR);
    if (nul != 0 || dup2(0, 1) != 1 || dup2(0, 2) != 2)
        helper_fail(sync, SEED_EXEC_EXIT_FAILED, errno, "opening /dev/null");

    /* The cgroup first: the cgroup namespace joined next is rooted at it, and the
     * command is born inside its limits. The fds were opened by the node. */
    for (int i = 0; i < s->n_cg; i++) {
        if (write(s->cg[i], "0", 1) != 1)
            helper_fail(sync, SEED_EXEC_EXIT_FAILED, errno, "joining the instance's cgroup");
        close(s->cg[i]);
    }
    /* All at once: the kernel joins the user namespace first and checks the others
     * with the capabilities that gives (setns(2) with a pidfd, Linux 5.8). */
    if (setns(s->ns_pidfd, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                               CLONE_NEWUTS | CLONE_NEWCGROUP) < 0)
        helper_fail(sync, SEED_EXEC_EXIT_FAILED, errno, "entering the instance's namespaces");
    close(s->ns_pidfd);
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0 || setgroups(0, NULL) < 0)
        helper_fail(sync, SEED_EXEC_EXIT_FAILED, errno, "becoming root of the instance");
    /* A change of credentials resets both (fs.suid_dumpable decides the first). */
    prctl(PR_SET_DUMPABLE, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != s->node_pid)
        _exit(1);

    seed_user_ids id;
    char msg[400];
    if (seed_resolve_user(s->user, &id, msg, sizeof(msg)) < 0)
        helper_fail(sync, SEED_EXEC_EXIT_FAILED, 0, "%s", msg);
    env_default(&s->envp, "HOME", id.home);
    int slave = -1, master = -1;
    if (s->tty && (master = open_pty(s, &id, &slave)) < 0)
        helper_fail(sync, SEED_EXEC_EXIT_FAILED, -master, "allocating a terminal in the instance");

    int ex[2];
    if (pipe2(ex, O_CLOEXEC) < 0)
        helper_fail(sync, SEED_EXEC_EXIT_FAILED, errno, "pipe");
    pid_t pid = fork();
    if (pid < 0)
        helper_fail(sync, SEED_EXEC_EXIT_FAILED, errno, "forking the command");
    if (pid == 0) {
        close(ex[0]);
        if (master >= 0)
            close(master);
        command_main(s, &id, slave, ex[1]);
    }
    close(ex[1]);
    if (slave >= 0)
        close(slave);
    for (int i = 0; i < 3; i++)
        if (s->stdio[i] >= 0)
            close(s->stdio[i]);
    exec_msg m;
    ssize_t k;
    while ((k = read(ex[0], &m, sizeof(m))) < 0 && errno == EINTR)
        ;
    if (k == (ssize_t)sizeof(m)) {
        waitpid(pid, NULL, 0);
        (void)!send(sync, &m, sizeof(m), MSG_NOSIGNAL);
        _exit(1);
    }
    close(ex[0]);
    m = (exec_msg){.type = MSG_STARTED};
    seed_send_fds(sync, &m, sizeof(m), NULL, 0, &master, master >= 0 ? 1 : 0, 0);
    if (master >= 0)
        close(master);

    /* Wait for the command, or for the node to close the channel. */
    struct pollfd p[2] = {{.fd = sync, .events = POLLIN},
                          {.fd = (int)syscall(SYS_pidfd_open, pid, 0), .events = POLLIN}};
    for (;;) {
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            m = (exec_msg){.type = MSG_EXITED, .value = status};
            (void)!send(sync, &m, sizeof(m), MSG_NOSIGNAL);
            _exit(0);
        }
        if (poll(p, p[1].fd >= 0 ? 2 : 1, p[1].fd >= 0 ? -1 : 100) < 0 && errno != EINTR)
            break;
        char c;
        if ((p[0].revents & (POLLHUP | POLLERR)) || ((p[0].revents & POLLIN) && recv(sync, &c, 1, 0) <= 0))
            break;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    _exit(0);
}

/* ---- the node's side ---- */

static void exec_free(node_exec *e) {
    for (node_exec **pp = &e->n->execs; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    seed_source_free(e->pid_src);
    seed_source_free(e->sync_src);
    if (e->pidfd >= 0)
        close(e->pidfd);
    if (e->sync >= 0)
        close(e->sync);
    free(e->error);
    free(e);
}

/* The helper is our own code, but it ran inside the instance: every record is
 * checked, and anything unexpected is dropped. */
static void exec_drain(node_exec *e) {
    for (;;) {
        exec_msg m;
        int fds[SEED_FDPASS_MAX];
        size_t nf = 0;
        ssize_t k = seed_recv_fds(e->sync, &m, sizeof(m), fds, &nf, MSG_DONTWAIT);
        if (k <= 0)
            return;
        int pty = -1;
        for (size_t i = 0; i < nf; i++) {
            if (i == 0 && e->tty && k == (ssize_t)sizeof(m) && m.type == MSG_STARTED)
                pty = fds[i];
            else
                close(fds[i]);
        }
        if (k != (ssize_t)sizeof(m)) {
            if (pty >= 0)
                close(pty);
            continue;
        }
        m.text[sizeof(m.text) - 1] = 0;
        if (m.type == MSG_STARTED) {
            if (e->fn)
                e->fn(e->userdata, &(node_exec_event){.type = NODE_EXEC_STARTED, .pty_fd = pty});
            else if (pty >= 0)
                close(pty);
        } else if (m.type == MSG_FAILED && !e->failed) {
            e->failed = true;
            e->code = m.value >= 1 && m.value <= 255 ? m.value : SEED_EXEC_EXIT_FAILED;
            e->error = strdup(m.text);
        } else if (m.type == MSG_EXITED) {
            e->exited = true;
            e->status = m.value;
        }
    }
}

static int on_sync(seed_source *s, int fd, uint32_t events, void *userdata) {
    node_exec *e = userdata;
    exec_drain(e);
    if (events & (EPOLLHUP | EPOLLERR)) {
        seed_source_free(e->sync_src);
        e->sync_src = NULL;
    }
    return 0;
}

static int on_helper_exit(seed_source *s, int fd, uint32_t events, void *userdata) {
    node_exec *e = userdata;
    if (e->sync >= 0)
        exec_drain(e);
    int status = 0;
    while (waitpid(e->pid, &status, 0) < 0 && errno == EINTR)
        ;
    node_exec_event ev = {.type = NODE_EXEC_DONE, .pty_fd = -1};
    char buf[256];
    if (e->exited) {
        ev.exit_code = WIFSIGNALED(e->status) ? 128 + WTERMSIG(e->status) : WEXITSTATUS(e->status);
    } else if (e->failed) {
        ev.exit_code = e->code;
        ev.error = e->error ? e->error : "the command could not be started";
    } else {
        /* Killed with the instance's cgroup (it stopped), or by its OOM killer. */
        ev.exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : SEED_EXEC_EXIT_FAILED;
        if (e->in->state == INST_RUNNING)
            snprintf(buf, sizeof(buf), "the exec helper ended without a status (is %s at its memory limit?)",
                     e->in->spec->name);
        else
            snprintf(buf, sizeof(buf), "the command was killed: %s stopped", e->in->spec->name);
        ev.error = buf;
    }
    if (e->fn)
        e->fn(e->userdata, &ev);
    exec_free(e);
    return 0;
}

static int check_string(const json_t *j, const char *what, bool required, seed_error **err) {
    if (!j && !required)
        return 0;
    if (!json_is_string(j) || strlen(json_string_value(j)) != json_string_length(j))
        return seed_error_set(err, EINVAL, "%s: expected a string without NUL bytes", what);
    return 0;
}

/* argv, env and the descriptors of a request, checked. */
static int parse_request(json_t *req, const int *fds, size_t n_fds, seed_error **err) {
    json_t *argv = json_object_get(req, "argv"), *env = json_object_get(req, "env"), *v;
    size_t i;
    if (!json_is_array(argv) || json_array_size(argv) == 0)
        return seed_error_set(err, EINVAL, "argv: expected a non-empty array of strings");
    json_array_foreach (argv, i, v) {
        if (check_string(v, "argv", true, err) < 0)
            return -EINVAL;
    }
    if (env && !json_is_array(env))
        return seed_error_set(err, EINVAL, "env: expected an array of \"NAME=value\" strings");
    json_array_foreach (env, i, v) {
        if (check_string(v, "env", true, err) < 0)
            return -EINVAL;
        const char *s = json_string_value(v);
        if (!strchr(s, '=') || *s == '=')
            return seed_error_set(err, EINVAL, "env: expected NAME=value, got \"%s\"", s);
    }
    const char *dir = json_string_value(json_object_get(req, "workdir"));
    if (check_string(json_object_get(req, "workdir"), "workdir", false, err) < 0 || (dir && *dir != '/'))
        return seed_error_set(err, EINVAL, "the working directory must be an absolute path");
    const char *user = json_string_value(json_object_get(req, "user"));
    if (check_string(json_object_get(req, "user"), "user", false, err) < 0 ||
        (user && (!*user || strlen(user) > 255)))
        return seed_error_set(err, EINVAL, "user: expected USER[:GROUP], a name or a number");
    bool tty = json_is_true(json_object_get(req, "tty"));
    bool interactive = json_is_true(json_object_get(req, "interactive"));
    size_t want = tty ? 0 : interactive ? 3 : 2;
    if (n_fds != want)
        return seed_error_set(err, EINVAL, "expected %zu file descriptors with the request, got %zu", want,
                              n_fds);
    static const char *const names[] = {"stdin", "stdout", "stderr"};
    for (i = 0; i < n_fds; i++) {
        struct stat st;
        if (fstat(fds[i], &st) < 0 || !seed_exec_fd_passable(&st))
            return seed_error_set(err, EPERM,
                                  "%s is a terminal, socket or device, which must not enter an instance "
                                  "(the seed CLI relays those through a pipe)",
                                  names[i + (interactive ? 0 : 1)]);
    }
    return 0;
}

static char **json_strv(json_t *a) {
    char **v = calloc(json_array_size(a) + 1, sizeof(char *));
    size_t i;
    json_t *s;
    json_array_foreach (a, i, s) {
        if (v && !(v[i] = strdup(json_string_value(s)))) {
            strv_free(v);
            return NULL;
        }
    }
    return v;
}

/* Set or replace NAME=value (kv) in a NULL-terminated environment. */
static int env_put(char ***envp, const char *kv) {
    size_t klen = (size_t)(strchr(kv, '=') - kv) + 1, n = 0;
    char *dup = strdup(kv);
    if (!dup)
        return -ENOMEM;
    for (; (*envp)[n]; n++)
        if (strncmp((*envp)[n], kv, klen) == 0) {
            free((*envp)[n]);
            (*envp)[n] = dup;
            return 0;
        }
    char **v = realloc(*envp, (n + 2) * sizeof(char *));
    if (!v) {
        free(dup);
        return -ENOMEM;
    }
    v[n] = dup;
    v[n + 1] = NULL;
    *envp = v;
    return 0;
}

int node_exec_start(instance *in, struct json_t *req, const int *fds, size_t n_fds, node_exec_fn fn,
                    void *userdata, node_exec **ret, seed_error **err) {
    node *n = in->node;
    if (n->stopping)
        return seed_error_set(err, ESHUTDOWN, "the node is stopping");
    if (in->state != INST_RUNNING || in->sb.pidfd < 0 || !in->cg)
        return seed_error_set(err, ESRCH, "%s is not running (it is %s); start it with: seed start %s",
                              in->spec->name, inst_state_name(in->state), in->spec->name);
    int r = parse_request(req, fds, n_fds, err);
    if (r < 0)
        return r;

    bool tty = json_is_true(json_object_get(req, "tty"));
    bool interactive = json_is_true(json_object_get(req, "interactive"));
    json_int_t rows = json_integer_value(json_object_get(req, "rows"));
    json_int_t cols = json_integer_value(json_object_get(req, "cols"));
    exec_spec s = {
        .workdir = json_string_value(json_object_get(req, "workdir")),
        .user = json_string_value(json_object_get(req, "user")),
        .tty = tty,
        .rows = rows > 0 && rows <= 0xffff ? (unsigned short)rows : 0,
        .cols = cols > 0 && cols <= 0xffff ? (unsigned short)cols : 0,
        .stdio = {-1, -1, -1},
        .cg = {-1, -1, -1},
        .node_pid = getpid(),
        .sec = n->sec,
    };
    for (size_t i = 0; i < n_fds; i++)
        s.stdio[i + (interactive ? 0 : 1)] = fds[i];
    s.argv = json_strv(json_object_get(req, "argv"));
    s.envp = instance_environment(in);
    json_t *env = json_object_get(req, "env"), *v;
    size_t i;
    r = s.argv && s.envp ? 0 : -ENOMEM;
    if (r >= 0 && tty)
        r = env_put(&s.envp, "TERM=xterm");
    json_array_foreach (env, i, v) {
        if (r >= 0)
            r = env_put(&s.envp, json_string_value(v));
    }
    if (r < 0) {
        strv_free(s.argv);
        strv_free(s.envp);
        return seed_error_set(err, ENOMEM, "out of memory");
    }

    node_exec *e = calloc(1, sizeof(*e));
    int sp[2] = {-1, -1};
    if (!e) {
        r = seed_error_set(err, ENOMEM, "out of memory");
        goto out;
    }
    *e = (node_exec){.n = n, .in = in, .fn = fn, .userdata = userdata, .tty = tty, .pidfd = -1, .sync = -1};
    s.n_cg = n->cg_ops->procs_fds(in->cg, s.cg, ELEMENTSOF(s.cg));
    if (s.n_cg < 0) {
        r = seed_error_setp(err, -s.n_cg, "opening the cgroup of %s", in->spec->name);
        goto out;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        r = seed_error_setp(err, errno, "socketpair");
        goto out;
    }
    e->sync = TAKE_FD(sp[0]);
    s.sync = sp[1];
    s.ns_pidfd = in->sb.pidfd;
    struct clone_args ca = {
        .flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)&e->pidfd, .exit_signal = SIGCHLD};
    e->pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
    if (e->pid == 0)
        helper_main(&s);
    if (e->pid < 0) {
        r = seed_error_setp(err, errno, "forking the exec helper");
        goto out;
    }
    fcntl(e->sync, F_SETFL, O_NONBLOCK);
    if (seed_loop_add_io(n->loop, e->pidfd, EPOLLIN, on_helper_exit, e, &e->pid_src) < 0 ||
        seed_loop_add_io(n->loop, e->sync, EPOLLIN, on_sync, e, &e->sync_src) < 0) {
        seed_pidfd_kill(e->pidfd, SIGKILL);
        waitpid(e->pid, NULL, 0);
        r = seed_error_set(err, ENOMEM, "watching the exec helper");
        goto out;
    }
    e->next = n->execs;
    n->execs = e;
    *ret = TAKE_PTR(e);
    r = 0;
out:
    if (e)
        exec_free(e);
    for (int k = 0; k < s.n_cg; k++)
        close(s.cg[k]);
    if (sp[1] >= 0)
        close(sp[1]);
    strv_free(s.argv);
    strv_free(s.envp);
    return r;
}

void node_exec_detach(node_exec *e) {
    /* The helper sees the channel close and kills the command; its exit is still
     * watched, to reap it. */
    e->fn = NULL;
    seed_source_free(e->sync_src);
    e->sync_src = NULL;
    close(e->sync);
    e->sync = -1;
}

void node_exec_close_all(node *n) {
    while (n->execs) {
        node_exec *e = n->execs;
        e->fn = NULL;
        seed_pidfd_kill(e->pidfd, SIGKILL);
        waitpid(e->pid, NULL, 0);
        exec_free(e);
    }
}
