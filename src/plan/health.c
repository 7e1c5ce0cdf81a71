/* The readiness prober: one check (an "attempt") at a time — TCP connections to every
 * exposed port, an HTTP GET, or a command the node runs inside the instance — repeated
 * every interval until one passes or the deadline passes. Sockets are non-blocking and
 * watched on the loop; nothing here blocks or spawns a thread. */
#include "plan/health.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "base/clock.h"

typedef enum conn_state {
    CONN_CONNECTING,
    CONN_SENDING,
    CONN_READING,
    CONN_DONE, /* TCP check: connected and closed */
} conn_state;

typedef struct probe_conn {
    seed_probe *p;
    int fd;
    seed_source *src;
    unsigned port;
    conn_state state;
} probe_conn;

struct seed_probe {
    seed_loop *loop;
    struct in_addr addr;
    char addr_text[INET_ADDRSTRLEN];
    seed_health_kind kind;
    bool tcp; /* no health check: every TCP port */
    unsigned *ports;
    size_t n_ports;
    char *http_path;
    unsigned http_port;
    char **command;
    unsigned interval_ms, timeout_ms;
    seed_probe_run_cmd run_cmd;
    seed_probe_cancel_cmd cancel_cmd;
    void *cmd_ud;
    seed_probe_fn fn;
    void *userdata;

    seed_source *deadline; /* the overall deadline */
    seed_source *next;     /* the start of the next attempt */
    seed_source *limit;    /* the end of the current attempt */

    /* The current attempt. */
    bool in_attempt;
    unsigned attempts;
    uint64_t attempt_start; /* usec, monotonic */
    probe_conn *conns;      /* one per port (TCP) or one (HTTP) */
    size_t n_open;          /* TCP: connections still pending */
    char *request;          /* HTTP: the request, sent from request_sent on */
    size_t request_len, request_sent;
    char response[SEED_PROBE_HTTP_MAX_RESPONSE];
    size_t response_len;
    void *cmd_handle;
    bool in_run_cmd; /* run_cmd has not returned yet */
    bool cmd_finished_early;
    int cmd_early_code;
    char *cmd_early_error;

    char detail[512]; /* the last failure */
};

static void attempt_start(seed_probe *p);

/* ---- ending ---- */

static void conns_close(seed_probe *p) {
    size_t n = p->tcp ? p->n_ports : 1;
    for (size_t i = 0; p->conns && i < n; i++) {
        seed_source_free(p->conns[i].src);
        p->conns[i].src = NULL;
        if (p->conns[i].fd >= 0)
            close(p->conns[i].fd);
        p->conns[i].fd = -1;
    }
    p->n_open = 0;
}

/* Stop whatever the current attempt is waiting for. */
static void attempt_abort(seed_probe *p) {
    conns_close(p);
    if (p->cmd_handle) {
        void *h = TAKE_PTR(p->cmd_handle);
        p->cancel_cmd(p->cmd_ud, h);
    }
    seed_source_free(TAKE_PTR(p->limit));
    p->in_attempt = false;
}

/* Report the outcome. The callback may free p: nothing touches p after it. */
static void finish(seed_probe *p, seed_probe_outcome outcome) {
    attempt_abort(p);
    seed_source_free(TAKE_PTR(p->deadline));
    seed_source_free(TAKE_PTR(p->next));
    seed_probe_result r = {
        .outcome = outcome,
        .detail = outcome == SEED_PROBE_READY ? NULL : p->detail,
        .attempts = p->attempts,
    };
    p->fn(p->userdata, &r);
}

static int next_fired(seed_source *s, void *userdata) {
    attempt_start(userdata);
    return 0;
}

static void attempt_failed(seed_probe *p, const char *fmt, ...) _printf_(2, 3);
static void attempt_failed(seed_probe *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof(p->detail), fmt, ap);
    va_end(ap);
    attempt_abort(p);
    /* Attempts start every interval; one that took longer is followed at once. */
    uint64_t now = seed_now_usec(), at = p->attempt_start + (uint64_t)p->interval_ms * 1000;
    uint64_t wait = at > now ? at - now : 0;
    int r = p->next ? seed_timer_restart(p->next, wait)
                    : seed_loop_add_timer(p->loop, wait, next_fired, p, &p->next);
    if (r < 0)
        /* Without a timer there is no next attempt: give up now rather than hang. */
        finish(p, SEED_PROBE_FAILED);
}

static int deadline_fired(seed_source *s, void *userdata) {
    seed_probe *p = userdata;
    if (!p->detail[0])
        snprintf(p->detail, sizeof(p->detail), "no check finished before the deadline");
    finish(p, SEED_PROBE_FAILED);
    return 0;
}

/* ---- TCP and HTTP ---- */

static void conn_failed(probe_conn *c, const char *what) {
    seed_probe *p = c->p;
    if (p->tcp)
        attempt_failed(p, "tcp %s:%u: %s", p->addr_text, c->port, what);
    else
        attempt_failed(p, "GET %s on %s:%u: %s", p->http_path, p->addr_text, c->port, what);
}

static int limit_fired(seed_source *s, void *userdata) {
    seed_probe *p = userdata;
    if (p->kind == SEED_HEALTH_COMMAND && !p->tcp) {
        attempt_failed(p, "command %s: timed out after %u ms", p->command[0], p->timeout_ms);
        return 0;
    }
    /* Name the first connection still waiting, and what for. */
    size_t n = p->tcp ? p->n_ports : 1;
    for (size_t i = 0; i < n; i++) {
        probe_conn *c = &p->conns[i];
        if (c->fd < 0 || c->state == CONN_DONE)
            continue;
        char what[96];
        snprintf(what, sizeof(what), "timed out after %u ms %s", p->timeout_ms,
                 c->state == CONN_CONNECTING ? "while connecting"
                 : c->state == CONN_SENDING  ? "while sending the request"
                                             : "waiting for the status line");
        conn_failed(c, what);
        return 0;
    }
    attempt_failed(p, "timed out after %u ms", p->timeout_ms);
    return 0;
}

/* "HTTP/1.1 200 OK": the status code, or -1 when the line is not a status line. */
static int parse_status_line(const char *line, size_t len) {
    if (len < 5 || memcmp(line, "HTTP/", 5) != 0)
        return -1;
    size_t i = 5;
    /* HTTP-version = "HTTP/" DIGIT "." DIGIT; tolerate "HTTP/2" and longer digit runs. */
    size_t d = i;
    while (i < len && line[i] >= '0' && line[i] <= '9')
        i++;
    if (i == d)
        return -1;
    if (i < len && line[i] == '.') {
        d = ++i;
        while (i < len && line[i] >= '0' && line[i] <= '9')
            i++;
        if (i == d)
            return -1;
    }
    if (i >= len || line[i] != ' ')
        return -1;
    while (i < len && line[i] == ' ')
        i++;
    if (len - i < 3)
        return -1;
    int code = 0;
    for (size_t k = 0; k < 3; k++) {
        char ch = line[i + k];
        if (ch < '0' || ch > '9')
            return -1;
        code = code * 10 + (ch - '0');
    }
    i += 3;
    if (i < len && line[i] != ' ' && line[i] != '\r')
        return -1;
    return code >= 100 ? code : -1;
}

static void http_response(probe_conn *c) {
    seed_probe *p = c->p;
    char *eol = memchr(p->response, '\n', p->response_len);
    if (!eol) {
        if (p->response_len == sizeof(p->response)) {
            char what[64];
            snprintf(what, sizeof(what), "no status line in the first %zu bytes", sizeof(p->response));
            conn_failed(c, what);
        }
        return; /* wait for more */
    }
    int code = parse_status_line(p->response, (size_t)(eol - p->response));
    if (code < 0) {
        char shown[64];
        size_t n = MIN((size_t)(eol - p->response), sizeof(shown) - 1);
        for (size_t i = 0; i < n; i++)
            shown[i] = p->response[i] >= ' ' && p->response[i] <= '~' ? p->response[i] : '?';
        shown[n] = 0;
        char what[128];
        snprintf(what, sizeof(what), "not an HTTP status line: \"%s\"", shown);
        conn_failed(c, what);
        return;
    }
    if (code >= 200 && code < 400) {
        finish(p, SEED_PROBE_READY);
        return;
    }
    char what[32];
    snprintf(what, sizeof(what), "status %d", code);
    conn_failed(c, what);
}

static int conn_io(seed_source *s, int fd, uint32_t events, void *userdata) {
    probe_conn *c = userdata;
    seed_probe *p = c->p;
    if (c->state == CONN_CONNECTING) {
        int e = 0;
        socklen_t len = sizeof(e);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
            e = errno;
        if (e == 0 && (events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLOUT))
            e = ECONNRESET;
        if (e) {
            conn_failed(c, strerror(e));
            return 0;
        }
        if (p->tcp) {
            /* Connected is all a TCP check asks for: close right away. */
            seed_source_free(TAKE_PTR(c->src));
            close(TAKE_FD(c->fd));
            c->state = CONN_DONE;
            if (--p->n_open == 0)
                finish(p, SEED_PROBE_READY);
            return 0;
        }
        c->state = CONN_SENDING;
    }
    if (c->state == CONN_SENDING) {
        while (p->request_sent < p->request_len) {
            ssize_t n =
                send(fd, p->request + p->request_sent, p->request_len - p->request_sent, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN)
                    return 0;
                conn_failed(c, strerror(errno));
                return 0;
            }
            p->request_sent += (size_t)n;
        }
        c->state = CONN_READING;
        if (seed_source_set_events(c->src, EPOLLIN) < 0) {
            conn_failed(c, "cannot watch the connection");
            return 0;
        }
        return 0;
    }
    /* CONN_READING */
    for (;;) {
        ssize_t n = recv(fd, p->response + p->response_len, sizeof(p->response) - p->response_len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            conn_failed(c, strerror(errno));
            return 0;
        }
        if (n == 0) {
            /* A status line without its line end at EOF still counts. */
            if (p->response_len && p->response_len < sizeof(p->response) &&
                !memchr(p->response, '\n', p->response_len)) {
                p->response[p->response_len++] = '\n';
                http_response(c);
                return 0;
            }
            conn_failed(c, "connection closed before a status line");
            return 0;
        }
        p->response_len += (size_t)n;
        bool full = p->response_len == sizeof(p->response);
        if (memchr(p->response, '\n', p->response_len) || full) {
            http_response(c);
            return 0;
        }
    }
}

/* Start one connection; false when the attempt has already ended (failed). */
static bool conn_start(seed_probe *p, probe_conn *c, unsigned port) {
    *c = (probe_conn){.p = p, .fd = -1, .port = port, .state = CONN_CONNECTING};
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_failed(c, strerror(errno));
        return false;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = p->addr};
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        conn_failed(c, strerror(errno));
        return false;
    }
    /* Connected or not yet: EPOLLOUT tells either way, and SO_ERROR says which. */
    if (seed_loop_add_io(p->loop, c->fd, EPOLLOUT, conn_io, c, &c->src) < 0) {
        conn_failed(c, "cannot watch the connection");
        return false;
    }
    return true;
}

/* ---- commands ---- */

static void cmd_result(seed_probe *p, int code, const char *error) {
    if (code == 0)
        finish(p, SEED_PROBE_READY);
    else if (code > 0)
        attempt_failed(p, "command %s: exit code %d", p->command[0], code);
    else
        attempt_failed(p, "command %s: could not run: %s", p->command[0], error ? error : "unknown error");
}

static void cmd_done(void *done_ud, int exit_code, const char *error) {
    seed_probe *p = done_ud;
    if (p->in_run_cmd) {
        /* Called before run_cmd returned: handled once it has. */
        p->cmd_finished_early = true;
        p->cmd_early_code = exit_code;
        free(p->cmd_early_error);
        p->cmd_early_error = error ? strdup(error) : NULL;
        return;
    }
    p->cmd_handle = NULL;
    cmd_result(p, exit_code, error);
}

static void cmd_start(seed_probe *p) {
    p->in_run_cmd = true;
    p->cmd_finished_early = false;
    void *h = p->run_cmd(p->cmd_ud, p->command, p->timeout_ms, cmd_done, p);
    p->in_run_cmd = false;
    if (p->cmd_finished_early) {
        _cleanup_free_ char *error = TAKE_PTR(p->cmd_early_error);
        cmd_result(p, p->cmd_early_code, error);
        return;
    }
    if (!h) {
        attempt_failed(p, "command %s: could not be started", p->command[0]);
        return;
    }
    p->cmd_handle = h;
}

/* ---- attempts ---- */

static void attempt_start(seed_probe *p) {
    p->attempts++;
    p->attempt_start = seed_now_usec();
    p->in_attempt = true;
    if (seed_loop_add_timer(p->loop, (uint64_t)p->timeout_ms * 1000, limit_fired, p, &p->limit) < 0) {
        attempt_failed(p, "cannot arm the check's timer");
        return;
    }
    if (p->tcp) {
        if (p->n_ports == 0) {
            finish(p, SEED_PROBE_READY);
            return;
        }
        for (size_t i = 0; i < p->n_ports; i++)
            p->conns[i] = (probe_conn){.p = p, .fd = -1};
        p->n_open = p->n_ports;
        for (size_t i = 0; i < p->n_ports; i++)
            if (!conn_start(p, &p->conns[i], p->ports[i]))
                return;
    } else if (p->kind == SEED_HEALTH_HTTP) {
        p->request_sent = 0;
        p->response_len = 0;
        conn_start(p, &p->conns[0], p->http_port);
    } else {
        cmd_start(p);
    }
}

/* ---- the handle ---- */

void seed_probe_cancel(seed_probe *p) {
    if (!p)
        return;
    attempt_abort(p);
    seed_source_free(p->deadline);
    seed_source_free(p->next);
    free(p->ports);
    free(p->conns);
    free(p->http_path);
    strv_free(p->command);
    free(p->request);
    free(p->cmd_early_error);
    free(p);
}
DEFINE_CLEANUP_FUNC(seed_probe, seed_probe_cancel)

int seed_probe_start(seed_loop *loop, const seed_probe_config *c, seed_probe_fn fn, void *userdata,
                     seed_probe **ret, seed_error **err) {
    const seed_health *h = c->health;
    if (c->deadline_ms == 0)
        return seed_error_set(err, EINVAL, "readiness probe: the deadline must be positive");
    if (h && h->kind == SEED_HEALTH_HTTP && (!h->http_path || h->http_path[0] != '/' || !h->port))
        return seed_error_set(err, EINVAL, "readiness probe: an http check needs a path and a port");
    if (h && h->kind == SEED_HEALTH_COMMAND &&
        (!h->command || !h->command[0] || !c->run_cmd || !c->cancel_cmd))
        return seed_error_set(err, EINVAL,
                              "readiness probe: a command check needs a command and run_cmd/cancel_cmd");
    if (h && (!h->interval_ms || !h->timeout_ms))
        return seed_error_set(err, EINVAL, "readiness probe: interval and timeout must be positive");

    _cleanup_(seed_probe_cancelp) seed_probe *p = calloc(1, sizeof(*p));
    if (!p)
        return seed_error_set(err, ENOMEM, "readiness probe: out of memory");
    p->loop = loop;
    p->addr = c->addr;
    inet_ntop(AF_INET, &c->addr, p->addr_text, sizeof(p->addr_text));
    p->fn = fn;
    p->userdata = userdata;
    p->run_cmd = c->run_cmd;
    p->cancel_cmd = c->cancel_cmd;
    p->cmd_ud = c->cmd_ud;
    p->tcp = !h;
    size_t n_conns = 1;
    if (!h) {
        p->interval_ms = SEED_PROBE_TCP_INTERVAL_MS;
        p->timeout_ms = SEED_PROBE_TCP_TIMEOUT_MS;
        p->n_ports = c->n_tcp_ports;
        n_conns = MAX(c->n_tcp_ports, (size_t)1);
        p->ports = calloc(n_conns, sizeof(unsigned));
        if (!p->ports)
            return seed_error_set(err, ENOMEM, "readiness probe: out of memory");
        if (c->n_tcp_ports)
            memcpy(p->ports, c->tcp_ports, c->n_tcp_ports * sizeof(unsigned));
    } else {
        p->kind = h->kind;
        p->interval_ms = h->interval_ms;
        p->timeout_ms = h->timeout_ms;
        if (h->kind == SEED_HEALTH_HTTP) {
            p->http_port = h->port;
            p->http_path = strdup(h->http_path);
            char host[INET_ADDRSTRLEN + 8];
            /* Host carries the port unless it is HTTP's default (RFC 9110 § 7.2). */
            if (h->port == 80)
                snprintf(host, sizeof(host), "%s", p->addr_text);
            else
                snprintf(host, sizeof(host), "%s:%u", p->addr_text, h->port);
            int n = asprintf(&p->request,
                             "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: seed-health\r\nAccept: */*\r\n"
                             "Connection: close\r\n\r\n",
                             h->http_path, host);
            if (n < 0 || !p->http_path) {
                p->request = NULL;
                return seed_error_set(err, ENOMEM, "readiness probe: out of memory");
            }
            p->request_len = (size_t)n;
        } else {
            size_t n = 0;
            while (h->command[n])
                n++;
            p->command = calloc(n + 1, sizeof(char *));
            for (size_t i = 0; p->command && i < n; i++)
                if (!(p->command[i] = strdup(h->command[i]))) {
                    strv_free(TAKE_PTR(p->command));
                    break;
                }
            if (!p->command)
                return seed_error_set(err, ENOMEM, "readiness probe: out of memory");
        }
    }
    p->conns = calloc(n_conns, sizeof(probe_conn));
    if (!p->conns)
        return seed_error_set(err, ENOMEM, "readiness probe: out of memory");
    for (size_t i = 0; i < n_conns; i++)
        p->conns[i].fd = -1;

    int r = seed_loop_add_timer(loop, (uint64_t)c->deadline_ms * 1000, deadline_fired, p, &p->deadline);
    if (r < 0)
        return seed_error_set(err, -r, "readiness probe: cannot arm the deadline: %s", strerror(-r));
    /* The first check runs from the loop too, so the callback never comes from here. */
    r = seed_loop_add_timer(loop, 0, next_fired, p, &p->next);
    if (r < 0)
        return seed_error_set(err, -r, "readiness probe: cannot arm a timer: %s", strerror(-r));
    *ret = TAKE_PTR(p);
    return 0;
}
