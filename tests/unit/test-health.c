/* The readiness prober against listeners and a tiny HTTP server this test runs on
 * 127.0.0.1 (ephemeral ports, in the prober's own loop): TCP readiness, a port that
 * opens late, a deadline that passes, HTTP status codes, garbage and hung responses,
 * and command checks through a fake run_cmd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "plan/health.h"

/* ---- the loop and the outcome ---- */

typedef struct outcome {
    seed_loop *loop;
    int called;
    seed_probe_result r;
    char detail[512];
    uint64_t started, finished; /* usec */
} outcome;

static void on_result(void *userdata, const seed_probe_result *r) {
    outcome *o = userdata;
    o->called++;
    o->r = *r;
    o->finished = seed_now_usec();
    snprintf(o->detail, sizeof(o->detail), "%s", r->detail ? r->detail : "");
    o->r.detail = r->detail ? o->detail : NULL;
    seed_loop_exit(o->loop, 0);
}

static int safety_fired(seed_source *s, void *userdata) {
    seed_loop_exit(userdata, -ETIMEDOUT);
    return 0;
}

static struct in_addr loopback(void) {
    struct in_addr a = {.s_addr = htonl(INADDR_LOOPBACK)};
    return a;
}

/* Run the probe until its callback; the loop is given 10 s at most. */
static void run_probe(seed_loop *l, seed_probe_config *c, outcome *o) {
    *o = (outcome){.loop = l, .started = seed_now_usec()};
    seed_probe *p = NULL;
    seed_error *err = NULL;
    if (seed_probe_start(l, c, on_result, o, &p, &err) < 0)
        fail_msg("seed_probe_start: %s", err->msg);
    assert_int_equal(o->called, 0); /* never from inside start */
    seed_source *safety;
    assert_int_equal(seed_loop_add_timer(l, 10 * 1000000, safety_fired, l, &safety), 0);
    assert_int_equal(seed_loop_run(l), 0);
    seed_source_free(safety);
    assert_int_equal(o->called, 1);
    seed_probe_cancel(p);
    /* Nothing of the probe is left to fire. */
    assert_int_equal(seed_loop_run_once(l, 50), 0);
    assert_int_equal(o->called, 1);
}

static unsigned elapsed_ms(const outcome *o) {
    return (unsigned)((o->finished - o->started) / 1000);
}

/* ---- listeners ---- */

static int listen_on(unsigned *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)*port), .sin_addr = loopback()};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 64), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A port nothing listens on (one the kernel just handed out and took back). */
static unsigned closed_port(void) {
    unsigned port = 0;
    close(listen_on(&port));
    return port;
}

/* ---- TCP ---- */

static void test_tcp_ready(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    unsigned ports[2] = {0, 0};
    int a = listen_on(&ports[0]), b = listen_on(&ports[1]);
    seed_probe_config c = {.addr = loopback(), .tcp_ports = ports, .n_tcp_ports = 2, .deadline_ms = 5000};
    outcome o;
    run_probe(l, &c, &o);
    assert_int_equal(o.r.outcome, SEED_PROBE_READY);
    assert_null(o.r.detail);
    assert_int_equal(o.r.attempts, 1);
    close(a);
    close(b);
    seed_loop_free(l);
}

static void test_no_ports_ready_at_once(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    seed_probe_config c = {.addr = loopback(), .deadline_ms = 5000};
    outcome o;
    run_probe(l, &c, &o);
    assert_int_equal(o.r.outcome, SEED_PROBE_READY);
    assert_true(elapsed_ms(&o) < 1000);
    seed_loop_free(l);
}

typedef struct late_listener {
    unsigned port;
    int fd;
} late_listener;

static int open_late(seed_source *s, void *userdata) {
    late_listener *ll = userdata;
    ll->fd = listen_on(&ll->port);
    return 0;
}

static void test_tcp_port_opens_late(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    late_listener ll = {.port = closed_port(), .fd = -1};
    unsigned port = ll.port;
    seed_source *t;
    assert_int_equal(seed_loop_add_timer(l, 300 * 1000, open_late, &ll, &t), 0);
    seed_probe_config c = {.addr = loopback(), .tcp_ports = &port, .n_tcp_ports = 1, .deadline_ms = 5000};
    outcome o;
    run_probe(l, &c, &o);
    assert_int_equal(o.r.outcome, SEED_PROBE_READY);
    assert_true(ll.fd >= 0);
    /* Refused until the listener came (polled every 100 ms), then ready. */
    assert_true(o.r.attempts >= 2);
    assert_true(elapsed_ms(&o) >= 250);
    seed_source_free(t);
    close(ll.fd);
    seed_loop_free(l);
}

static void test_tcp_never_ready(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    unsigned ports[2] = {0, closed_port()};
    int a = listen_on(&ports[0]);
    seed_probe_config c = {.addr = loopback(), .tcp_ports = ports, .n_tcp_ports = 2, .deadline_ms = 500};
    outcome o;
    run_probe(l, &c, &o);
    assert_int_equal(o.r.outcome, SEED_PROBE_FAILED);
    char want[64];
    snprintf(want, sizeof(want), "tcp 127.0.0.1:%u: Connection refused", ports[1]);
    assert_string_equal(o.r.detail, want);
    assert_true(o.r.attempts >= 2);
    assert_true(elapsed_ms(&o) >= 450);
    close(a);
    seed_loop_free(l);
}

/* ---- a tiny HTTP server in the same loop ---- */

#define HANG NULL

typedef struct server {
    seed_loop *loop;
    int fd;
    unsigned port;
    seed_source *src;
    const char *const *replies; /* per connection; HANG: read, never answer */
    size_t n_replies;
    size_t n_conns;
    char first_request[1024];
    struct client {
        int fd;
        seed_source *src;
        char buf[1024];
        size_t len;
    } clients[64];
} server;

/* The server of the running test (one at a time): clients find it through here. */
static server *the_server;

static int client_io(seed_source *s, int fd, uint32_t events, void *userdata) {
    struct client *cl = userdata;
    server *sv = the_server;
    ssize_t n = read(fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len);
    if (n <= 0) {
        seed_source_free(TAKE_PTR(cl->src));
        close(TAKE_FD(cl->fd));
        return 0;
    }
    cl->len += (size_t)n;
    cl->buf[cl->len] = 0;
    if (!strstr(cl->buf, "\r\n\r\n"))
        return 0;
    size_t idx = (size_t)(cl - sv->clients);
    if (idx == 0)
        snprintf(sv->first_request, sizeof(sv->first_request), "%s", cl->buf);
    const char *reply = idx < sv->n_replies ? sv->replies[idx] : sv->replies[sv->n_replies - 1];
    seed_source_free(TAKE_PTR(cl->src));
    if (reply == HANG)
        return 0; /* keep the connection open, answer nothing */
    (void)!write(fd, reply, strlen(reply));
    close(TAKE_FD(cl->fd));
    return 0;
}

static int server_accept(seed_source *s, int fd, uint32_t events, void *userdata) {
    server *sv = userdata;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return 0;
    assert_true(sv->n_conns < ELEMENTSOF(sv->clients));
    struct client *cl = &sv->clients[sv->n_conns++];
    *cl = (struct client){.fd = cfd};
    assert_int_equal(seed_loop_add_io(sv->loop, cfd, EPOLLIN, client_io, cl, &cl->src), 0);
    return 0;
}

static void server_start(server *sv, seed_loop *l, const char *const *replies, size_t n) {
    memset(sv, 0, sizeof(*sv));
    sv->loop = l;
    sv->replies = replies;
    sv->n_replies = n;
    sv->fd = listen_on(&sv->port);
    the_server = sv;
    assert_int_equal(seed_loop_add_io(l, sv->fd, EPOLLIN, server_accept, sv, &sv->src), 0);
}

static void server_stop(server *sv) {
    for (size_t i = 0; i < sv->n_conns; i++) {
        seed_source_free(sv->clients[i].src);
        if (sv->clients[i].fd >= 0)
            close(sv->clients[i].fd);
    }
    seed_source_free(sv->src);
    close(sv->fd);
    the_server = NULL;
}

static seed_health http_check(unsigned port, unsigned interval_ms, unsigned timeout_ms) {
    return (seed_health){.kind = SEED_HEALTH_HTTP,
                         .http_path = "/healthz",
                         .port = port,
                         .interval_ms = interval_ms,
                         .timeout_ms = timeout_ms,
                         .retries = 3};
}

/* Probe an HTTP server answering `replies` (one per connection, the last repeated). */
static void probe_http(const char *const *replies, size_t n, unsigned timeout_ms, unsigned deadline_ms,
                       outcome *o, server *sv, seed_loop *l) {
    server_start(sv, l, replies, n);
    seed_health h = http_check(sv->port, 100, timeout_ms);
    seed_probe_config c = {.addr = loopback(), .health = &h, .deadline_ms = deadline_ms};
    run_probe(l, &c, o);
}

static void test_http_503_then_200(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    static const char *const replies[] = {
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    };
    server sv;
    outcome o;
    probe_http(replies, 2, 1000, 5000, &o, &sv, l);
    assert_int_equal(o.r.outcome, SEED_PROBE_READY);
    assert_int_equal(o.r.attempts, 2);
    assert_int_equal(sv.n_conns, 2);
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%u\r\n", sv.port);
    assert_non_null(strstr(sv.first_request, host));
    assert_memory_equal(sv.first_request, "GET /healthz HTTP/1.1\r\n", 23);
    assert_non_null(strstr(sv.first_request, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(sv.first_request, "\r\nUser-Agent: seed-health\r\n"));
    server_stop(&sv);
    seed_loop_free(l);
}

static void test_http_ready_statuses(void **state) {
    static const char *const ready[] = {
        "HTTP/1.1 200 OK\r\n\r\n",   "HTTP/1.0 302 Found\r\nLocation: /login\r\n\r\n",
        "HTTP/1.1 204\r\n\r\n",      /* no reason phrase */
        "HTTP/1.1 299 Whatever\n\n", /* bare LF line ends */
        "HTTP/1.1 200 OK",           /* closed before the line end */
        "HTTP/2 200\r\n\r\n",
    };
    for (size_t i = 0; i < ELEMENTSOF(ready); i++) {
        seed_loop *l = NULL;
        assert_int_equal(seed_loop_new(&l), 0);
        server sv;
        outcome o;
        probe_http(&ready[i], 1, 1000, 2000, &o, &sv, l);
        if (o.r.outcome != SEED_PROBE_READY)
            fail_msg("%s: not ready: %s", ready[i], o.detail);
        assert_int_equal(o.r.attempts, 1);
        server_stop(&sv);
        seed_loop_free(l);
    }
}

static void test_http_failures(void **state) {
    static const struct {
        const char *reply;
        const char *detail; /* after "GET /healthz on 127.0.0.1:<port>: " */
    } cases[] = {
        {"HTTP/1.1 404 Not Found\r\n\r\n", "status 404"},
        {"HTTP/1.1 500 Oops\r\n\r\n", "status 500"},
        {"HTTP/1.1 101 Switching Protocols\r\n\r\n", "status 101"},
        {"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP status line: \"SSH-2.0-OpenSSH_9.6?\""},
        {"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP status line"},
        {"HTTP/1.1 OK 200\r\n\r\n", "not an HTTP status line"},
        {"HTTP/x 200\r\n\r\n", "not an HTTP status line"},
        {"HTTP/1.1 099 Low\r\n\r\n", "not an HTTP status line"},
        {"", "connection closed before a status line"},
        {"HTTP/1.1 20", "not an HTTP status line"}, /* cut short, then closed */
        {HANG, "timed out after 150 ms waiting for the status line"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        seed_loop *l = NULL;
        assert_int_equal(seed_loop_new(&l), 0);
        server sv;
        outcome o;
        probe_http(&cases[i].reply, 1, 150, 350, &o, &sv, l);
        char want[256];
        snprintf(want, sizeof(want), "GET /healthz on 127.0.0.1:%u: %s", sv.port, cases[i].detail);
        assert_int_equal(o.r.outcome, SEED_PROBE_FAILED);
        if (!strstr(o.detail, want))
            fail_msg("reply %s: detail \"%s\" lacks \"%s\"", cases[i].reply ? cases[i].reply : "(hang)",
                     o.detail, want);
        assert_true(o.r.attempts >= 2);
        assert_true(elapsed_ms(&o) >= 300);
        server_stop(&sv);
        seed_loop_free(l);
    }
}

/* A response that never gets to a line end: 5000 bytes without one. */
static void test_http_no_status_line(void **state) {
    static char junk[5001];
    memset(junk, 'x', 5000);
    const char *replies[] = {junk};
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    server sv;
    outcome o;
    probe_http(replies, 1, 500, 400, &o, &sv, l);
    assert_int_equal(o.r.outcome, SEED_PROBE_FAILED);
    assert_non_null(strstr(o.detail, "no status line in the first 4096 bytes"));
    server_stop(&sv);
    seed_loop_free(l);
}

static void test_http_refused(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    unsigned port = closed_port();
    seed_health h = http_check(port, 100, 500);
    seed_probe_config c = {.addr = loopback(), .health = &h, .deadline_ms = 300};
    outcome o;
    run_probe(l, &c, &o);
    assert_int_equal(o.r.outcome, SEED_PROBE_FAILED);
    char want[96];
    snprintf(want, sizeof(want), "GET /healthz on 127.0.0.1:%u: Connection refused", port);
    assert_string_equal(o.detail, want);
    seed_loop_free(l);
}

/* ---- commands through a fake run_cmd ---- */

typedef struct fake_cmd {
    seed_loop *loop;
    const int *codes; /* exit code per call, the last repeated; -2: never finish */
    size_t n_codes;
    bool sync;   /* call done before run_cmd returns */
    bool refuse; /* return NULL */
    unsigned calls, cancels;
    unsigned timeout_ms;
    char argv0[64];
    seed_source *pending;
    seed_probe_cmd_done done;
    void *done_ud;
    int code;
} fake_cmd;

static int fake_finish(seed_source *s, void *userdata) {
    fake_cmd *f = userdata;
    seed_source_free(TAKE_PTR(f->pending));
    f->done(f->done_ud, f->code, f->code < 0 ? "no such instance" : NULL);
    return 0;
}

static void *fake_run(void *cmd_ud, char *const *argv, unsigned timeout_ms, seed_probe_cmd_done done,
                      void *done_ud) {
    fake_cmd *f = cmd_ud;
    int code = f->codes[MIN(f->calls, f->n_codes - 1)];
    f->calls++;
    f->timeout_ms = timeout_ms;
    snprintf(f->argv0, sizeof(f->argv0), "%s %s", argv[0], argv[1] ? argv[1] : "");
    if (f->refuse)
        return NULL;
    assert_null(f->pending); /* one command at a time */
    if (f->sync) {
        done(done_ud, code, NULL);
        return f;
    }
    f->done = done;
    f->done_ud = done_ud;
    f->code = code;
    if (code != -2)
        assert_int_equal(seed_loop_add_timer(f->loop, 10 * 1000, fake_finish, f, &f->pending), 0);
    else
        assert_int_equal(seed_loop_add_timer(f->loop, 3600ull * 1000000, fake_finish, f, &f->pending), 0);
    return f;
}

static void fake_cancel(void *cmd_ud, void *handle) {
    fake_cmd *f = cmd_ud;
    assert_ptr_equal(handle, f);
    f->cancels++;
    seed_source_free(TAKE_PTR(f->pending));
}

static void probe_cmd(fake_cmd *f, unsigned timeout_ms, unsigned deadline_ms, outcome *o, seed_loop *l) {
    char *argv[] = {"pg_isready", "-q", NULL};
    seed_health h = {.kind = SEED_HEALTH_COMMAND,
                     .command = argv,
                     .n_command = 2,
                     .interval_ms = 100,
                     .timeout_ms = timeout_ms,
                     .retries = 3};
    f->loop = l;
    seed_probe_config c = {.addr = loopback(),
                           .health = &h,
                           .deadline_ms = deadline_ms,
                           .run_cmd = fake_run,
                           .cancel_cmd = fake_cancel,
                           .cmd_ud = f};
    run_probe(l, &c, o);
}

static void test_command_1_then_0(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    static const int codes[] = {1, 0};
    fake_cmd f = {.codes = codes, .n_codes = 2};
    outcome o;
    probe_cmd(&f, 2000, 5000, &o, l);
    assert_int_equal(o.r.outcome, SEED_PROBE_READY);
    assert_int_equal(o.r.attempts, 2);
    assert_int_equal(f.calls, 2);
    assert_int_equal(f.cancels, 0);
    assert_int_equal(f.timeout_ms, 2000);
    assert_string_equal(f.argv0, "pg_isready -q");
    seed_loop_free(l);
}

static void test_command_failures(void **state) {
    static const int one[] = {1}, cant[] = {-1}, hang[] = {-2}, zero[] = {0};
    static const struct {
        const int *codes;
        bool sync, refuse;
        const char *detail;
    } cases[] = {
        {one, false, false, "command pg_isready: exit code 1"},
        {one, true, false, "command pg_isready: exit code 1"},
        {cant, false, false, "command pg_isready: could not run: no such instance"},
        {zero, false, true, "command pg_isready: could not be started"},
        {hang, false, false, "command pg_isready: timed out after 150 ms"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        seed_loop *l = NULL;
        assert_int_equal(seed_loop_new(&l), 0);
        fake_cmd f = {
            .codes = cases[i].codes, .n_codes = 1, .sync = cases[i].sync, .refuse = cases[i].refuse};
        outcome o;
        probe_cmd(&f, 150, 350, &o, l);
        assert_int_equal(o.r.outcome, SEED_PROBE_FAILED);
        assert_string_equal(o.detail, cases[i].detail);
        assert_true(o.r.attempts >= 2);
        assert_int_equal(o.r.attempts, f.calls);
        /* The hung command was cancelled at every timeout (and at the deadline). */
        if (cases[i].codes == hang)
            assert_true(f.cancels >= f.calls - 1 && f.cancels >= 1);
        assert_null(f.pending);
        seed_loop_free(l);
    }
    /* done() called from inside run_cmd with success: ready. */
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    fake_cmd f = {.codes = zero, .n_codes = 1, .sync = true};
    outcome o;
    probe_cmd(&f, 150, 500, &o, l);
    assert_int_equal(o.r.outcome, SEED_PROBE_READY);
    assert_int_equal(o.r.attempts, 1);
    seed_loop_free(l);
}

/* ---- cancelling and bad configurations ---- */

static void no_callback(void *userdata, const seed_probe_result *r) {
    fail_msg("callback after cancel");
}

static void test_cancel(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    static const int hang[] = {-2};
    fake_cmd f = {.loop = l, .codes = hang, .n_codes = 1};
    char *argv[] = {"x", NULL};
    seed_health h = {.kind = SEED_HEALTH_COMMAND,
                     .command = argv,
                     .n_command = 1,
                     .interval_ms = 100,
                     .timeout_ms = 1000,
                     .retries = 3};
    seed_probe_config c = {.addr = loopback(),
                           .health = &h,
                           .deadline_ms = 200,
                           .run_cmd = fake_run,
                           .cancel_cmd = fake_cancel,
                           .cmd_ud = &f};
    seed_probe *p = NULL;
    assert_int_equal(seed_probe_start(l, &c, no_callback, NULL, &p, NULL), 0);
    assert_int_equal(seed_loop_run_once(l, 50), 0); /* the first check starts */
    assert_int_equal(f.calls, 1);
    seed_probe_cancel(p); /* while the command runs */
    assert_int_equal(f.cancels, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(seed_loop_run_once(l, 100), 0); /* past the deadline */

    /* Cancelled before its first check. */
    unsigned port = closed_port();
    seed_probe_config t = {.addr = loopback(), .tcp_ports = &port, .n_tcp_ports = 1, .deadline_ms = 100};
    assert_int_equal(seed_probe_start(l, &t, no_callback, NULL, &p, NULL), 0);
    seed_probe_cancel(p);
    for (int i = 0; i < 3; i++)
        assert_int_equal(seed_loop_run_once(l, 100), 0);
    seed_probe_cancel(NULL);
    seed_loop_free(l);
}

static void test_bad_config(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    seed_probe *p = NULL;
    seed_error *err = NULL;
    seed_probe_config c = {.addr = loopback()};
    assert_int_equal(seed_probe_start(l, &c, no_callback, NULL, &p, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "deadline"));
    seed_error_free(TAKE_PTR(err));
    char *argv[] = {"x", NULL};
    seed_health h = {
        .kind = SEED_HEALTH_COMMAND, .command = argv, .n_command = 1, .interval_ms = 100, .timeout_ms = 100};
    c = (seed_probe_config){.addr = loopback(), .health = &h, .deadline_ms = 1000};
    assert_int_equal(seed_probe_start(l, &c, no_callback, NULL, &p, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "run_cmd"));
    seed_error_free(TAKE_PTR(err));
    assert_null(p);
    seed_loop_free(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_ready),           cmocka_unit_test(test_no_ports_ready_at_once),
        cmocka_unit_test(test_tcp_port_opens_late), cmocka_unit_test(test_tcp_never_ready),
        cmocka_unit_test(test_http_503_then_200),   cmocka_unit_test(test_http_ready_statuses),
        cmocka_unit_test(test_http_failures),       cmocka_unit_test(test_http_no_status_line),
        cmocka_unit_test(test_http_refused),        cmocka_unit_test(test_command_1_then_0),
        cmocka_unit_test(test_command_failures),    cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
