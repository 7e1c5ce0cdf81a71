/* `seed exec [-i] [-t] [-w DIR] [-u USER[:GROUP]] [-e NAME[=VALUE]]... NAME [--] CMD [ARG...]`:
 * run a command inside running instance NAME (node/exec.h), as docker/podman exec do.
 * Pipes on our stdio are handed to the command as they are; a terminal never is (its
 * ioctls, TIOCSTI above all, would reach the user's shell): with -t the terminal is a
 * pty of the instance whose master we relay (our terminal raw, window size forwarded),
 * and without -t a terminal, a file or a socket on our stdio is relayed through a pipe
 * (seed_exec_fd_passable says why). The exit code is the command's; 125 when seed could not run it. */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/fdpass.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "node/exec.h"

#define MAX_LINE (64u << 10) /* the node's request limit */
#define DRAIN_IDLE_MS 200    /* after the exit: output still in flight... */
#define DRAIN_MAX_MS 2000    /* ...unless a process left behind keeps writing */

static const char exec_usage[] =
    "Usage: seed [--state-dir DIR] exec [OPTIONS] NAME [--] CMD [ARG...]\n"
    "\n"
    "Run a command inside running instance NAME: its namespaces, cgroup, root, environment,\n"
    "capabilities and seccomp filter. The exit code is the command's (126: cannot be executed,\n"
    "127: not found, 125: seed could not run it).\n"
    "\n"
    "  -i, --interactive        keep stdin attached (otherwise it is /dev/null)\n"
    "  -t, --tty                allocate a terminal inside the instance\n"
    "  -w, --workdir DIR        working directory inside the instance (default /)\n"
    "  -u, --user USER[:GROUP]  name or number in the instance's /etc/passwd (default root)\n"
    "  -e, --env NAME[=VALUE]   set a variable (NAME alone: its value here, if set)\n";

/* Bytes from one descriptor to another. Writes to our own stdout/stderr block (their
 * flags belong to the shell too); writes into the command's stdin do not, so a command
 * that does not read cannot stop us relaying its output. */
typedef struct pump {
    int from, to;
    bool buffered;             /* to is non-blocking: keep what it did not take, wait for POLLOUT */
    bool close_to, close_from; /* when the pump stops: the command's stdin pipe; an output pipe */
    bool eof;
    size_t off, len;
    char buf[1 << 16];
} pump;

static struct termios saved_tio;
static bool raw_mode;

static void restore_terminal(void) {
    if (raw_mode)
        tcsetattr(0, TCSADRAIN, &saved_tio);
    raw_mode = false;
}

static bool passable(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && seed_exec_fd_passable(&st);
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* At the end of our stdin the command's stdin pipe closes (it reads EOF); when our
 * stdout is gone its pipe closes (it gets EPIPE). */
static void pump_stop(pump *p) {
    p->eof = true;
    p->len = p->off = 0;
    if (p->close_to && p->to >= 0)
        close(p->to);
    if (p->close_from && p->from >= 0)
        close(p->from);
    if (p->close_to)
        p->to = -1;
    if (p->close_from)
        p->from = -1;
}

static void pump_read(pump *p) {
    ssize_t k = read(p->from, p->buf, sizeof(p->buf));
    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (k <= 0) { /* EOF, or EIO: every holder of the pty's other side is gone */
        pump_stop(p);
        return;
    }
    p->off = 0;
    p->len = (size_t)k;
    if (!p->buffered) {
        if (write_all(p->to, p->buf, p->len) < 0)
            pump_stop(p);
        p->len = 0;
    }
}

static void pump_write(pump *p) {
    ssize_t k = write(p->to, p->buf + p->off, p->len - p->off);
    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (k < 0) { /* the command closed its stdin */
        pump_stop(p);
        return;
    }
    p->off += (size_t)k;
    if (p->off == p->len)
        p->off = p->len = 0;
}

static void set_winsize(int master) {
    struct winsize ws;
    if (ioctl(0, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0)
        ioctl(master, TIOCSWINSZ, &ws);
}

/* One answer line from the node, with a descriptor that rode on it. */
typedef struct answers {
    char buf[MAX_LINE];
    size_t len;
    int fd;
    bool closed;
} answers;

static json_t *next_answer(answers *a, int sock, bool wait) {
    for (;;) {
        char *nl = memchr(a->buf, '\n', a->len);
        if (nl) {
            json_error_t e;
            json_t *j = json_loadb(a->buf, (size_t)(nl - a->buf), 0, &e);
            a->len -= (size_t)(nl + 1 - a->buf);
            memmove(a->buf, nl + 1, a->len);
            return j ? j : json_object();
        }
        if (a->len == sizeof(a->buf))
            a->closed = true; /* no answer is that long */
        if (a->closed)
            return NULL;
        int fds[SEED_FDPASS_MAX];
        size_t nf = 0;
        ssize_t k =
            seed_recv_fds(sock, a->buf + a->len, sizeof(a->buf) - a->len, fds, &nf, wait ? 0 : MSG_DONTWAIT);
        for (size_t i = 0; i < nf; i++) {
            if (a->fd < 0)
                a->fd = fds[i];
            else
                close(fds[i]);
        }
        if (k == -EAGAIN)
            return NULL;
        if (k <= 0) {
            a->closed = true;
            return NULL;
        }
        a->len += (size_t)k;
    }
}

/* The request's line, and which of our stdio go along; relayed ones get a pipe. */
static json_t *build_request(const char *name, char **cmd, int n_cmd, bool tty, bool interactive,
                             const char *workdir, const char *user, json_t *env) {
    json_t *argv = json_array();
    for (int i = 0; argv && i < n_cmd; i++) {
        json_t *s = json_string(cmd[i]);
        if (!s) {
            json_decref(argv);
            json_decref(env);
            return NULL;
        }
        json_array_append_new(argv, s);
    }
    json_t *req = json_pack("{s:s, s:s, s:o, s:b, s:b, s:o}", "op", "exec", "name", name, "argv", argv, "tty",
                            tty, "interactive", interactive, "env", env);
    if (req && workdir)
        json_object_set_new(req, "workdir", json_string(workdir));
    if (req && user)
        json_object_set_new(req, "user", json_string(user));
    struct winsize ws;
    if (req && tty && (ioctl(0, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0)) {
        json_object_set_new(req, "rows", json_integer(ws.ws_row));
        json_object_set_new(req, "cols", json_integer(ws.ws_col));
    }
    return req;
}

static int run_exec(const cli_globals *g, json_t *req, bool tty, bool interactive) {
    /* Our stdio: passed as is, or relayed through a pipe (pumps[0..2]: stdin, stdout,
     * stderr). With a terminal, the master replaces the pipes once it arrives. */
    static pump pumps[3];
    int pass[3], n_pass = 0;
    for (int i = 0; i < 3; i++)
        pumps[i] = (pump){.from = -1, .to = -1, .eof = true};
    int r = 125;
    if (!tty) {
        for (int i = interactive ? 0 : 1; i < 3; i++) {
            if (passable(i)) {
                pass[n_pass++] = i;
                continue;
            }
            int p[2];
            if (pipe2(p, O_CLOEXEC) < 0) {
                fprintf(stderr, "seed exec: pipe: %s\n", strerror(errno));
                goto out;
            }
            /* stdin: we write p[1], the command reads p[0]; output the other way. */
            int ours = i == 0 ? p[1] : p[0], theirs = i == 0 ? p[0] : p[1];
            fcntl(ours, F_SETFL, O_NONBLOCK);
            if (i == 0)
                pumps[i] = (pump){.from = 0, .to = ours, .buffered = true, .close_to = true};
            else
                pumps[i] = (pump){.from = ours, .to = i, .close_from = true};
            pass[n_pass++] = theirs;
        }
    }

    char *line = json_dumps(req, JSON_COMPACT);
    if (!line || strlen(line) + 1 > MAX_LINE) {
        fprintf(stderr, "seed exec: the command line is too long (the request is limited to %u KiB)\n",
                MAX_LINE >> 10);
        free(line);
        goto out;
    }
    int sock;
    if (cli_connect(g->state_dir, &sock) < 0) {
        free(line);
        goto out;
    }
    ssize_t k = seed_send_fds(sock, line, strlen(line), "\n", 1, pass, (size_t)n_pass, 0);
    bool sent = k == (ssize_t)strlen(line) + 1;
    free(line);
    for (int i = 0; i < n_pass; i++)
        if (pass[i] > 2)
            close(pass[i]);
    if (!sent) {
        fprintf(stderr, "seed exec: sending the request: %s\n", strerror(k < 0 ? (int)-k : EIO));
        close(sock);
        goto out;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGWINCH);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    static answers a;
    a.fd = -1;
    int master = -1;
    bool done = false;
    uint64_t deadline = 0;
    for (;;) {
        json_t *j;
        while (!done && (j = next_answer(&a, sock, false))) {
            if (json_is_true(json_object_get(j, "started"))) {
                if (tty && a.fd >= 0 && master < 0) {
                    master = TAKE_FD(a.fd);
                    fcntl(master, F_SETFL, O_NONBLOCK);
                    if (interactive)
                        pumps[0] = (pump){.from = 0, .to = master, .buffered = true};
                    pumps[1] = (pump){.from = master, .to = 1};
                    if (interactive && isatty(0) && tcgetattr(0, &saved_tio) == 0) {
                        struct termios raw = saved_tio;
                        cfmakeraw(&raw);
                        raw_mode = tcsetattr(0, TCSADRAIN, &raw) == 0;
                    }
                }
            } else {
                const char *err = json_string_value(json_object_get(j, "error"));
                json_t *code = json_object_get(j, "exitCode");
                r = json_is_integer(code) ? (int)json_integer_value(code) : 125;
                if (!json_is_true(json_object_get(j, "ok")))
                    fprintf(stderr, "%sseed exec: %s\n", raw_mode ? "\r" : "", err ? err : "failed");
                done = true;
                deadline = seed_now_usec() + DRAIN_MAX_MS * 1000;
            }
            json_decref(j);
            if (tty && master < 0 && !done) {
                fprintf(stderr, "seed exec: the node sent no terminal\n");
                goto closed;
            }
        }
        if (!done && a.closed) {
            restore_terminal();
            fprintf(stderr, "seed exec: the node closed the connection before the command ended\n");
            r = 125;
            break;
        }
        if (done) /* no more input for the command; what it wrote is still coming */
            pumps[0].eof = true;

        struct pollfd pfd[6];
        pump *who[6] = {0};
        nfds_t n = 0;
        if (!done)
            pfd[n++] = (struct pollfd){.fd = sock, .events = POLLIN};
        if (sfd >= 0)
            pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        bool out_open = false;
        for (int i = 0; i < 3; i++) {
            pump *p = &pumps[i];
            if (p->len > 0)
                pfd[n] = (struct pollfd){.fd = p->to, .events = POLLOUT};
            else if (!p->eof)
                pfd[n] = (struct pollfd){.fd = p->from, .events = POLLIN};
            else
                continue;
            who[n++] = p;
            out_open |= i > 0;
        }
        if (done && (!out_open || seed_now_usec() > deadline))
            break;
        int k2 = poll(pfd, n, done ? DRAIN_IDLE_MS : -1);
        if (k2 < 0 && errno != EINTR)
            break;
        if (k2 == 0 && done)
            break; /* quiet: whatever still holds the output is not the command */
        for (nfds_t i = 0; k2 > 0 && i < n; i++) {
            if (!pfd[i].revents)
                continue;
            if (pfd[i].fd == sfd && !who[i]) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                    if (si.ssi_signo == SIGWINCH && master >= 0) {
                        set_winsize(master);
                    } else if (si.ssi_signo != SIGWINCH) {
                        /* Leaving closes the connection: the node kills the command. */
                        restore_terminal();
                        r = 128 + (int)si.ssi_signo;
                        goto closed;
                    }
                }
            } else if (who[i]) {
                if (who[i]->len > 0)
                    pump_write(who[i]);
                else
                    pump_read(who[i]);
            }
        }
    }
closed:
    restore_terminal();
    if (sfd >= 0)
        close(sfd);
    if (master >= 0)
        close(master);
    if (a.fd >= 0)
        close(a.fd);
    close(sock);
out:
    for (int i = 0; i < 3; i++) {
        if (pumps[i].close_from && pumps[i].from >= 0)
            close(pumps[i].from);
        if (pumps[i].close_to && pumps[i].to >= 0)
            close(pumps[i].to);
    }
    json_decref(req);
    return r;
}

int cli_exec(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {
        {"interactive", no_argument, NULL, 'i'},
        {"tty", no_argument, NULL, 't'},
        {"workdir", required_argument, NULL, 'w'},
        {"user", required_argument, NULL, 'u'},
        {"env", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool tty = false, interactive = false;
    const char *workdir = NULL, *user = NULL;
    json_t *env = json_array();
    int c;
    while ((c = getopt_long(argc, argv, "+:itw:u:e:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            interactive = true;
            break;
        case 't':
            tty = true;
            break;
        case 'w':
            if (optarg[0] != '/') {
                json_decref(env);
                return cli_usage_error("exec", "--workdir expects an absolute path, got '%s'", optarg);
            }
            workdir = optarg;
            break;
        case 'u':
            if (!*optarg) {
                json_decref(env);
                return cli_usage_error("exec", "--user expects USER[:GROUP]");
            }
            user = optarg;
            break;
        case 'e': {
            const char *eq = strchr(optarg, '=');
            _cleanup_free_ char *kv = NULL;
            if (eq == optarg || !*optarg) {
                json_decref(env);
                return cli_usage_error("exec", "--env expects NAME=VALUE or NAME, got '%s'", optarg);
            }
            if (!eq && getenv(optarg) && asprintf(&kv, "%s=%s", optarg, getenv(optarg)) < 0)
                kv = NULL;
            if (eq || kv) {
                json_t *s = json_string(eq ? optarg : kv);
                if (!s) {
                    json_decref(env);
                    return cli_usage_error("exec", "--env: '%s' is not valid UTF-8", optarg);
                }
                json_array_append_new(env, s);
            }
            break;
        }
        case 'h':
            fputs(exec_usage, stdout);
            json_decref(env);
            return 0;
        case ':':
            json_decref(env);
            return cli_usage_error("exec", "option '%s' needs an argument", argv[optind - 1]);
        default:
            json_decref(env);
            return cli_usage_error("exec", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind < 2) {
        json_decref(env);
        return cli_usage_error("exec",
                               "expected an instance NAME and a command: seed exec NAME -- CMD [ARG...]");
    }
    const char *name = argv[optind++];
    if (streq(argv[optind], "--"))
        optind++;
    if (optind >= argc) {
        json_decref(env);
        return cli_usage_error("exec", "expected a command after --");
    }
    json_t *req = build_request(name, argv + optind, argc - optind, tty, interactive, workdir, user, env);
    if (!req)
        return cli_usage_error("exec", "the command must be valid UTF-8");
    signal(SIGPIPE, SIG_IGN);
    return run_exec(g, req, tty, interactive);
}
