/* Run a helper program and collect its output: see spawn.h. */
#include "base/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/macro.h"

#define ERR_KEPT 4096
#define NOT_FOUND_MARK "seed: cannot run "

void seed_spawn_result_clear(seed_spawn_result *r) {
    free(r->out);
    free(r->err);
    *r = (seed_spawn_result){0};
}

typedef struct grow {
    char *p;
    size_t len, cap;
} grow;

static int grow_add(grow *g, const char *s, size_t n) {
    if (g->len + n + 1 > g->cap) {
        size_t ncap = MAX(g->cap * 2, g->len + n + 1);
        ncap = MAX(ncap, (size_t)4096);
        char *np = realloc(g->p, ncap);
        if (!np)
            return -ENOMEM;
        g->p = np;
        g->cap = ncap;
    }
    memcpy(g->p + g->len, s, n);
    g->len += n;
    g->p[g->len] = 0;
    return 0;
}

int seed_spawn_capture(const char *const argv[], size_t max_out, const seed_spawn_opts *opts,
                       seed_spawn_result *ret) {
    static const seed_spawn_opts none = {0};
    if (!opts)
        opts = &none;
    *ret = (seed_spawn_result){0};
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0)
        return negative_errno();
    if (pipe2(pe, O_CLOEXEC) < 0) {
        int r = negative_errno();
        close(po[0]);
        close(po[1]);
        return r;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int r = negative_errno();
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return r;
    }
    if (pid == 0) {
        if (opts->timeout_ms)
            setpgid(0, 0); /* its own group: a timeout ends whatever it started too */
        if (opts->env_add)
            putenv((char *)opts->env_add);
        if (opts->max_memory) {
            struct rlimit rl = {opts->max_memory, opts->max_memory};
            setrlimit(RLIMIT_DATA, &rl);
            setrlimit(RLIMIT_AS, &rl);
        }
        if (opts->cwd && chdir(opts->cwd) < 0) {
            dprintf(pe[1], "seed: cannot enter %s: %s\n", opts->cwd, strerror(errno));
            _exit(126);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
            _exit(127);
        syscall(SYS_close_range, 3, ~0u, 0);
        execvp(argv[0], (char *const *)argv);
        dprintf(2, NOT_FOUND_MARK "%s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    if (opts->timeout_ms)
        setpgid(pid, pid);
    size_t kept = opts->err_kept ? opts->err_kept : ERR_KEPT;
    grow out = {0}, err = {0};
    int r = 0;
    bool timed_out = false;
    uint64_t deadline = opts->timeout_ms ? seed_now_usec() + (uint64_t)opts->timeout_ms * 1000 : 0;
    struct pollfd p[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        int wait_ms = -1;
        if (deadline) {
            uint64_t now = seed_now_usec();
            if (now >= deadline) {
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                timed_out = true;
                break;
            }
            wait_ms = (int)MIN((deadline - now + 999) / 1000, (uint64_t)INT32_MAX);
        }
        if (poll(p, 2, wait_ms) < 0) {
            if (errno == EINTR)
                continue;
            r = negative_errno();
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char chunk[16384];
            ssize_t k = read(p[i].fd, chunk, sizeof(chunk));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                continue;
            }
            if (i == 0) {
                if (out.len + (size_t)k > max_out)
                    r = r ?: -EFBIG; /* keep reading, so that the child is not stuck */
                else if (grow_add(&out, chunk, (size_t)k) < 0)
                    r = r ?: -ENOMEM;
                continue;
            }
            if (grow_add(&err, chunk, (size_t)k) < 0)
                r = r ?: -ENOMEM;
            else if (err.len > 2 * kept) { /* the end is what says why */
                memmove(err.p, err.p + err.len - kept, kept + 1);
                err.len = kept;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            r = r ?: negative_errno();
            break;
        }
    if (r == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127 && err.p &&
        strncmp(err.p, NOT_FOUND_MARK, strlen(NOT_FOUND_MARK)) == 0)
        r = -ENOENT;
    if (r < 0) {
        free(out.p);
        free(err.p);
        return r;
    }
    ret->out = out.p ? out.p : strdup("");
    ret->out_len = out.len;
    ret->err = err.p ? err.p : strdup("");
    ret->status = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    ret->timed_out = timed_out;
    if (!ret->out || !ret->err) {
        seed_spawn_result_clear(ret);
        return -ENOMEM;
    }
    return 0;
}
