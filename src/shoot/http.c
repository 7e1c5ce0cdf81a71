/* The shoot API over HTTP (libmicrohttpd), on the node's address of the instance
 * network. MHD runs in "external" mode inside the node's event loop: its epoll fd is
 * one of our sources, and a request waiting for its shoot is a suspended connection.
 * While suspended MHD does not watch the socket, so we do (EPOLLRDHUP): a client that
 * hangs up ends its shoot at once.
 *
 * Who may connect is decided at accept, before a byte is read: only a running
 * shoot-enabled instance of this node, with fewer than its shoot.max + CONN_SLACK
 * connections open; anything else is closed at once. A connection then has
 * REQUEST_DEADLINE_S to deliver a whole request (counted from accept, or from the end
 * of its previous answer, not reset by each byte), and ANSWER_DEADLINE_S to take its
 * answer; past that it is dropped. Answers are streamed from the shoot's own buffers.
 *
 * Errors: 400 bad request, 403 the caller's shoots stopped meanwhile, 404 unknown
 * path, 405 wrong method, 413 body over 1 MiB, 503 (Retry-After) no sandbox in time,
 * 500 internal; every error body is {"error": "..."}. */
#include "shoot/http.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/utf8.h"
#include "shoot/request.h"

#define CONNECTION_TIMEOUT_S 10 /* idle */
#define REQUEST_DEADLINE_S 10   /* to send a whole request */
#define ANSWER_DEADLINE_S 60    /* to take an answer */
#define CONN_SLACK 64           /* connections of a caller beyond its shoot.max (queued requests) */
#define MAX_CONNECTIONS 4096
#define DRAIN_MAX (16u << 20) /* oversized bodies up to this are read and dropped */

/* One accepted socket (its requests come and go). */
typedef struct conn {
    int fd;
    in_addr_t addr;
    uint64_t deadline; /* monotonic usec; 0: none (its shoot runs) */
    struct conn *prev, *next;
} conn;

struct seed_shoot_http {
    seed_loop *loop;
    struct MHD_Daemon *d;
    seed_source *epoll_src, *timer;
    seed_source *tick; /* enforces the deadlines while there are connections */
    bool tick_armed;
    conn *conns;
    seed_shoot_resolve_fn resolve;
    void *userdata;
};

typedef struct req_ctx {
    seed_shoot_http *h;
    struct MHD_Connection *conn;
    seed_shoot_pool *pool;
    char *body;
    size_t len;
    bool too_large;
    size_t drained;
    unsigned status;         /* response ready when non-zero */
    char *response;          /* JSON text of an error */
    seed_shoot_reply *reply; /* or the shoot's answer */
    bool retry_after;
    seed_shoot *shoot;
    seed_source *hup_src;
    bool suspended;
} req_ctx;

static void http_kick(seed_shoot_http *h);
static void http_kick_soon(seed_shoot_http *h);

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *text, bool retry_after) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (retry_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
    enum MHD_Result r = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static char *error_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *error_json(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = seed_utf8_vasprintf(fmt, ap); /* the URL quoted may be anything */
    va_end(ap);
    json_t *o = msg ? json_pack("{s:s}", "error", msg) : NULL;
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s ? s : strdup("{\"error\":\"out of memory\"}");
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, char *json) {
    return send_json(c, status, json, status == MHD_HTTP_SERVICE_UNAVAILABLE);
}

static ssize_t read_reply(void *cls, uint64_t pos, char *buf, size_t max) {
    size_t n = seed_shoot_reply_read(cls, (size_t)pos, buf, max);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void free_reply(void *cls) {
    seed_shoot_reply_free(cls);
}

/* A shoot's answer, streamed from its buffers (taken over). */
static enum MHD_Result send_reply(struct MHD_Connection *c, seed_shoot_reply *reply) {
    struct MHD_Response *resp = MHD_create_response_from_callback(seed_shoot_reply_size(reply), 64u << 10,
                                                                  read_reply, reply, free_reply);
    if (!resp) {
        seed_shoot_reply_free(reply);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result r = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}

/* ---- connections: who, how many, and until when ---- */

static conn *conn_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

static void set_deadline(struct MHD_Connection *c, unsigned seconds) {
    conn *k = conn_of(c);
    if (k)
        k->deadline = seconds ? seed_now_usec() + (uint64_t)seconds * 1000000 : 0;
}

/* Before anything is read: is this a caller we serve, with room for one more? */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len) {
    seed_shoot_http *h = cls;
    const char *why = NULL;
    seed_shoot_pool *p = h->resolve(h->userdata, addr, &why);
    if (!p || addr->sa_family != AF_INET || len < (socklen_t)sizeof(struct sockaddr_in))
        return MHD_NO;
    in_addr_t a = ((const struct sockaddr_in *)addr)->sin_addr.s_addr;
    unsigned n = 0, limit = seed_shoot_pool_max_running(p) + CONN_SLACK;
    for (conn *k = h->conns; k; k = k->next)
        if (k->addr == a && ++n >= limit)
            return MHD_NO;
    return MHD_YES;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    seed_shoot_http *h = cls;
    conn *k = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (!k)
            return;
        if (k->prev)
            k->prev->next = k->next;
        else
            h->conns = k->next;
        if (k->next)
            k->next->prev = k->prev;
        free(k);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ai || !fi || ai->client_addr->sa_family != AF_INET || !(k = calloc(1, sizeof(*k))))
        return; /* untracked: only the idle timeout applies (out of memory) */
    k->fd = fi->connect_fd;
    k->addr = ((const struct sockaddr_in *)ai->client_addr)->sin_addr.s_addr;
    k->deadline = seed_now_usec() + REQUEST_DEADLINE_S * 1000000ull;
    k->next = h->conns;
    if (h->conns)
        h->conns->prev = k;
    h->conns = k;
    *socket_context = k;
    if (!h->tick_armed && seed_timer_restart(h->tick, 1000000) >= 0)
        h->tick_armed = true;
}

static void http_kick(seed_shoot_http *h);

/* Once a second while there are connections: drop those past their deadline. A
 * shutdown wakes MHD on the socket, which then closes it as a failed connection. */
static int on_tick(seed_source *s, void *userdata) {
    seed_shoot_http *h = userdata;
    uint64_t now = seed_now_usec();
    bool dropped = false;
    for (conn *k = h->conns; k; k = k->next)
        if (k->deadline && now >= k->deadline) {
            shutdown(k->fd, SHUT_RDWR);
            k->deadline = 0;
            dropped = true;
        }
    h->tick_armed = false;
    if (dropped)
        http_kick(h);
    if (h->conns && !h->tick_armed && seed_timer_restart(h->tick, 1000000) >= 0)
        h->tick_armed = true;
    return 0;
}

/* ---- a shoot finishing wakes its connection ---- */

static void unwatch_hangup(req_ctx *r) {
    seed_source_free(r->hup_src);
    r->hup_src = NULL;
}

static void resume(req_ctx *r) {
    unwatch_hangup(r);
    if (r->suspended) {
        r->suspended = false;
        set_deadline(r->conn, ANSWER_DEADLINE_S);
        MHD_resume_connection(r->conn);
        /* Let MHD send it on the next turn of the loop, not from here: this can run
         * deep inside the pool (a pool being freed fails its shoots), where calling
         * back into MHD — and so into handle() for other requests — is not safe. */
        http_kick_soon(r->h);
    }
}

static void on_shoot_done(void *userdata, const seed_shoot_result *res) {
    req_ctx *r = userdata;
    r->shoot = NULL;
    if (res->status == SEED_SHOOT_OK) {
        r->reply = res->reply;
        r->status = MHD_HTTP_OK;
    } else if (res->status == SEED_SHOOT_BUSY) {
        r->status = MHD_HTTP_SERVICE_UNAVAILABLE;
        r->retry_after = true;
        r->response = error_json("%s", res->message ? res->message : "busy");
    } else {
        r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        r->response = error_json("%s", res->message ? res->message : "the shoot failed");
    }
    resume(r);
}

static int on_hangup(seed_source *s, int fd, uint32_t events, void *userdata) {
    req_ctx *r = userdata;
    /* The client closed its end while its shoot ran: end the shoot now. */
    if (r->shoot) {
        seed_shoot_abandon(r->shoot);
        r->shoot = NULL;
    }
    r->status = MHD_HTTP_BAD_REQUEST;
    r->response = error_json("the client went away");
    resume(r);
    return 0;
}

/* ---- MHD callbacks ---- */

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    seed_shoot_http *h = cls;
    req_ctx *r = *con_cls;
    if (!r) {
        /* Headers are in: refuse early what needs no body. */
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->h = h;
        r->conn = c;
        *con_cls = r;
        if (!streq(url, "/shoot"))
            return send_error(c, MHD_HTTP_NOT_FOUND, error_json("no such endpoint %.200s: POST /shoot", url));
        if (!streq(method, MHD_HTTP_METHOD_POST))
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                              error_json("method %.32s not allowed: POST /shoot", method));
        /* An oversized body: refuse before it is sent when the client waits for
         * "100 Continue" or the body is huge; otherwise read it away first, so the
         * client is not reset mid-send and can read the 413. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        unsigned long long length = cl ? strtoull(cl, NULL, 10) : 0;
        if (length > SEED_SHOOT_MAX_BODY && (expect || length > DRAIN_MAX))
            return send_error(
                c, MHD_HTTP_CONTENT_TOO_LARGE,
                error_json("request body is %s bytes: at most %u are accepted", cl, SEED_SHOOT_MAX_BODY));
        r->too_large = length > SEED_SHOOT_MAX_BODY;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const char *why = "unknown caller";
        r->pool = ci ? h->resolve(h->userdata, ci->client_addr, &why) : NULL;
        if (!r->pool)
            return send_error(c, MHD_HTTP_FORBIDDEN, error_json("%s", why));
        return MHD_YES;
    }
    if (r->status) {
        /* Back from suspension (or the hangup path): answer. */
        unsigned status = r->status;
        char *resp = r->response;
        seed_shoot_reply *reply = r->reply;
        r->response = NULL;
        r->reply = NULL;
        r->status = 0;
        if (reply)
            return send_reply(c, reply);
        return send_json(c, status, resp, r->retry_after);
    }
    if (*upload_size) {
        if (r->too_large || r->len + *upload_size > SEED_SHOOT_MAX_BODY) {
            r->too_large = true;
            r->drained += *upload_size;
            if (r->drained > DRAIN_MAX) {
                *upload_size = 0;
                return MHD_NO; /* a chunked flood: drop the connection */
            }
        } else {
            char *nb = realloc(r->body, r->len + *upload_size + 1);
            if (!nb)
                return MHD_NO;
            r->body = nb;
            memcpy(r->body + r->len, upload, *upload_size);
            r->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    /* The whole body is in. Look the caller up again: its pool may have gone (the
     * instance stopped) while the body was arriving. */
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const char *why = "unknown caller";
    r->pool = ci ? h->resolve(h->userdata, ci->client_addr, &why) : NULL;
    if (!r->pool)
        return send_error(c, MHD_HTTP_FORBIDDEN, error_json("%s", why));
    if (r->too_large)
        return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
                          error_json("request body is over %u bytes", SEED_SHOOT_MAX_BODY));
    seed_shoot_request req;
    char *msg = NULL;
    int e = seed_shoot_request_parse(r->body ? r->body : "", r->len, &req, &msg);
    if (e < 0) {
        enum MHD_Result res =
            send_error(c, MHD_HTTP_BAD_REQUEST, error_json("%s", msg ? msg : "bad request"));
        free(msg);
        return res;
    }
    free(r->body);
    r->body = NULL;
    MHD_suspend_connection(c);
    r->suspended = true;
    set_deadline(c, 0); /* the shoot takes what it takes (its own timeout) */
    const union MHD_ConnectionInfo *fdi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (fdi)
        seed_loop_add_io(h->loop, fdi->connect_fd, EPOLLRDHUP, on_hangup, r, &r->hup_src);
    int e2 = seed_shoot_start(r->pool, &req, on_shoot_done, r, &r->shoot);
    if (e2 < 0) {
        seed_shoot_request_clear(&req);
        r->status = e2 == -ESHUTDOWN ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_INTERNAL_SERVER_ERROR;
        r->retry_after = e2 == -ESHUTDOWN;
        r->response =
            error_json("%s", e2 == -ESHUTDOWN ? "the instance's shoots are stopping" : "out of memory");
        resume(r);
    }
    return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    /* A next request on this connection has its own time from now. */
    set_deadline(c, REQUEST_DEADLINE_S);
    req_ctx *r = *con_cls;
    if (!r)
        return;
    unwatch_hangup(r);
    if (r->shoot)
        seed_shoot_abandon(r->shoot);
    free(r->body);
    free(r->response);
    seed_shoot_reply_free(r->reply);
    free(r);
    *con_cls = NULL;
}

/* ---- the loop ---- */

static int on_timer(seed_source *s, void *userdata);

static void http_kick(seed_shoot_http *h) {
    MHD_run(h->d);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(h->d, &ms) == MHD_YES) {
        uint64_t usec = (uint64_t)ms * 1000;
        if (h->timer)
            seed_timer_restart(h->timer, usec);
        else
            seed_loop_add_timer(h->loop, usec, on_timer, h, &h->timer);
    }
}

static int on_timer(seed_source *s, void *userdata) {
    http_kick(userdata);
    return 0;
}

static void http_kick_soon(seed_shoot_http *h) {
    if (h->timer)
        seed_timer_restart(h->timer, 0);
    else
        seed_loop_add_timer(h->loop, 0, on_timer, h, &h->timer);
}

static int on_epoll(seed_source *s, int fd, uint32_t events, void *userdata) {
    http_kick(userdata);
    return 0;
}

int seed_shoot_http_new(seed_loop *loop, int listen_fd, seed_shoot_resolve_fn resolve, void *userdata,
                        seed_shoot_http **ret, seed_error **err) {
    seed_shoot_http *h = calloc(1, sizeof(*h));
    if (!h)
        return seed_error_set(err, ENOMEM, "out of memory");
    h->loop = loop;
    h->resolve = resolve;
    h->userdata = userdata;
    int r = seed_loop_add_timer(loop, UINT64_MAX / 2, on_tick, h, &h->tick);
    if (r < 0) {
        free(h);
        return seed_error_setp(err, -r, "starting the shoot HTTP server");
    }
    h->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO, 0, accept_policy, h,
                            handle, h, MHD_OPTION_LISTEN_SOCKET, listen_fd, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)MAX_CONNECTIONS, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_END);
    if (!h->d) {
        seed_source_free(h->tick);
        free(h);
        return seed_error_set(err, EIO, "starting the shoot HTTP server failed");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    r = di ? seed_loop_add_io(loop, di->epoll_fd, EPOLLIN, on_epoll, h, &h->epoll_src) : -EIO;
    if (r < 0) {
        MHD_stop_daemon(h->d);
        seed_source_free(h->tick);
        free(h);
        return seed_error_setp(err, -r, "watching the shoot HTTP server");
    }
    *ret = h;
    return 0;
}

void seed_shoot_http_free(seed_shoot_http *h) {
    if (!h)
        return;
    seed_source_free(h->epoll_src);
    seed_source_free(h->timer);
    seed_source_free(h->tick);
    /* MHD must not be stopped with suspended connections: every shoot has ended by
     * now (the pools go first), which resumed them. */
    MHD_run(h->d);
    MHD_stop_daemon(h->d);
    free(h);
}
