/* The control socket: a Unix stream socket in the state directory, newline-delimited
 * JSON. One request per connection:
 *   {"op":"ps"}                                   -> {"ok":true,"instances":[...]}
 *   {"op":"logs","name":N,"tail":K,"follow":B}    -> {"log":"..."}* then {"ok":true}
 *                                                    (the last K lines, 0: none; no "tail": all)
 *   {"op":"stop"|"start"|"restart","name":N}      -> {"ok":true,"state":"..."} once settled
 *      optional "grace_ms":G (stop, restart)         SIGTERM to SIGKILL for this call
 *   {"op":"volumes"}                              -> {"ok":true,"volumes":[...]}
 *   {"op":"volume-rm","id":"ns/instance/volume"}  -> {"ok":true} (and the instance's identity
 *                                                    goes with its last volume)
 *   {"op":"identity","name":N,"action":A}          -> {"ok":true,"recipient":"age1…",...}
 *                                                    (A: show, rotate, rm; node/secrets.c)
 *   {"op":"shoot","name":N,"request":{...}}       -> {"ok":true,"result":{...}} (the shoot API's
 *                                                    request and response, run as instance N)
 *   {"op":"exec","name":N,"argv":[...],...} + fds -> {"started":true} [+ pty master] then
 *                                                    {"ok":true,"exitCode":C} (node/exec.h)
 * Failures answer {"ok":false,"error":"..."}. Only root (or the node's own user) may
 * connect: the socket is 0600 and the peer's credentials are checked. */
#include <arpa/inet.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "base/log.h"
#include "base/utf8.h"
#include "node/deploy.h"
#include "node/volume.h"

#define MAX_REQUEST (64u << 10)
#define MAX_PENDING (16u << 20) /* a follower this far behind is dropped */

typedef enum { WAIT_NONE, WAIT_STOP, WAIT_RUN } wait_kind;

typedef struct ctl_client {
    node *n;
    seed_shoot *shoot;
    seed_shoot_reply *reply; /* a shoot's answer, sent from where it is after out */
    size_t reply_pos;
    int fd;
    seed_source *src;
    char in[MAX_REQUEST];
    size_t in_len;
    bool got_request;
    int fds[SEED_FDPASS_MAX]; /* passed with the request (exec: stdio) */
    size_t n_fds;
    char *out;
    size_t out_len, out_cap;
    int out_fd; /* sent with the first byte of out (exec: the pty master) */
    node_exec *exec;
    bool closing;
    instance *follow;
    instance *waiting;
    wait_kind wait;
    struct ctl_client *next_waiter;
    apply_waiter aw; /* apply, rollback, source add/rm */
    bool awaiting;   /* aw is queued somewhere */
    bool events;     /* seed events -f */
    struct ctl_client *prev, *next;
} ctl_client;

static void client_free(ctl_client *c) {
    node *n = c->n;
    if (c->shoot)
        seed_shoot_abandon(c->shoot);
    if (c->exec)
        node_exec_detach(c->exec);
    for (size_t i = 0; i < c->n_fds; i++)
        close(c->fds[i]);
    if (c->out_fd >= 0)
        close(c->out_fd);
    if (c->follow)
        seed_logfile_unfollow(c->follow->log, c);
    if (c->awaiting)
        node_source_forget(n, &c->aw);
    if (c->waiting)
        for (ctl_client **pp = &c->waiting->waiters; *pp; pp = &(*pp)->next_waiter)
            if (*pp == c) {
                *pp = c->next_waiter;
                break;
            }
    seed_source_free(c->src);
    close(c->fd);
    free(c->out);
    seed_shoot_reply_free(c->reply);
    if (c->prev)
        c->prev->next = c->next;
    else
        n->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

/* The shoot answer line {"ok":true,"result":<reply>} from offset pos; 0 at its end. */
static size_t reply_line_read(const seed_shoot_reply *r, size_t pos, char *buf, size_t n) {
    static const char head[] = "{\"ok\":true,\"result\":", tail[] = "}\n";
    size_t size = seed_shoot_reply_size(r), done = 0;
    if (pos < sizeof(head) - 1) {
        done = MIN(sizeof(head) - 1 - pos, n);
        memcpy(buf, head + pos, done);
    }
    size_t at = pos + done - (sizeof(head) - 1); /* within the reply, or past it */
    if (done < n && at < size) {
        size_t k = seed_shoot_reply_read(r, at, buf + done, n - done);
        done += k;
        at += k;
    }
    if (done < n && at >= size && at - size < sizeof(tail) - 1) {
        size_t k = MIN(sizeof(tail) - 1 - (at - size), n - done);
        memcpy(buf + done, tail + (at - size), k);
        done += k;
    }
    return done;
}

static void client_flush(ctl_client *c) {
    while (c->out_len > 0) {
        ssize_t k = c->out_fd >= 0
                        ? seed_send_fds(c->fd, c->out, c->out_len, NULL, 0, &c->out_fd, 1, MSG_DONTWAIT)
                        : send(c->fd, c->out, c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0 && c->out_fd >= 0)
            errno = (int)-k;
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            client_free(c);
            return;
        }
        if (c->out_fd >= 0) {
            close(c->out_fd);
            c->out_fd = -1;
        }
        memmove(c->out, c->out + k, c->out_len - (size_t)k);
        c->out_len -= (size_t)k;
    }
    /* A shoot's answer goes out from its own buffers, never copied whole. */
    while (c->out_len == 0 && c->reply) {
        static char chunk[64u << 10];
        size_t n = reply_line_read(c->reply, c->reply_pos, chunk, sizeof(chunk));
        if (n == 0) {
            seed_shoot_reply_free(c->reply);
            c->reply = NULL;
            break;
        }
        ssize_t k = send(c->fd, chunk, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            client_free(c);
            return;
        }
        c->reply_pos += (size_t)k;
    }
    if (c->out_len == 0 && !c->reply && c->closing) {
        client_free(c);
        return;
    }
    seed_source_set_events(c->src, (c->out_len || c->reply ? EPOLLOUT : 0) | (c->got_request ? 0 : EPOLLIN) |
                                       EPOLLRDHUP);
}

/* From callbacks (log lines, finished waits and shoots), which may run inside another
 * client's turn: never send or free here, only ask for EPOLLOUT. on_client then
 * flushes, and it alone frees a client. */
static void client_kick(ctl_client *c) {
    seed_source_set_events(c->src, EPOLLOUT | (c->got_request ? 0 : EPOLLIN) | EPOLLRDHUP);
}

/* Queue one JSON line (stealing the reference). */
static void client_send(ctl_client *c, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return;
    size_t len = strlen(s);
    /* Only a follower can fall behind for good; a log's first dump (two files of at
     * most LOG_MAX_BYTES) is sent whole, however long it is. */
    if (c->follow && c->out_len + len + 1 > MAX_PENDING) {
        free(s);
        c->closing = true; /* too far behind; it can reconnect */
        c->out_len = 0;
        return;
    }
    if (c->out_len + len + 1 > c->out_cap) {
        size_t ncap = MAX(c->out_cap * 2, c->out_len + len + 1 + 4096);
        char *n = realloc(c->out, ncap);
        if (!n) {
            free(s);
            return;
        }
        c->out = n;
        c->out_cap = ncap;
    }
    memcpy(c->out + c->out_len, s, len);
    c->out[c->out_len + len] = '\n';
    c->out_len += len + 1;
    free(s);
}

static void reply_error(ctl_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_error(ctl_client *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = seed_utf8_vasprintf(fmt, ap);
    va_end(ap);
    client_send(c, json_pack("{s:b, s:s}", "ok", 0, "error", msg ? msg : "out of memory"));
    c->closing = true;
}

static void reply_ok(ctl_client *c, json_t *extra) {
    json_t *o = extra ? extra : json_object();
    json_object_set_new(o, "ok", json_true());
    client_send(c, o);
    c->closing = true;
}

static json_t *iso_time(uint64_t usec) {
    if (usec == 0)
        return json_null();
    char buf[40];
    seed_format_utc(usec, 3, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *instance_json(instance *in) {
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &in->addr, a, sizeof(a));
    json_t *procs = json_array();
    for (size_t i = 0; i < in->n_procs; i++) {
        proc_info *p = &in->procs[i];
        /* How its last run ended, as a shell says it: an exit code, or a signal name. */
        int st = p->last_status;
        json_t *code = st >= 0 && WIFEXITED(st) ? json_integer(WEXITSTATUS(st)) : json_null();
        char signame[32] = "";
        if (st >= 0 && WIFSIGNALED(st))
            snprintf(signame, sizeof(signame), "SIG%s", sigabbrev_np(WTERMSIG(st)) ?: "?");
        json_t *sig = *signame ? json_string(signame) : json_null();
        json_array_append_new(
            procs, json_pack("{s:s, s:b, s:o, s:i, s:o, s:o, s:o}", "name", p->name, "running", p->pid > 0,
                             "pid", p->pid > 0 ? json_integer(p->pid) : json_null(), "restarts",
                             (int)p->restarts, "exitCode", code, "signal", sig, "nextRestartAt",
                             p->pid == 0 && p->next_restart_at ? iso_time(p->next_restart_at) : json_null()));
    }
    bool live = in->state == INST_RUNNING || in->state == INST_STOPPING;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:o}", "name", in->spec->name,
                          "source", in->src->name, "namespace", in->ns, "state", instance_state_name(in),
                          "address", a, "identity", in->spec->identity, "restarts", (int)in->restarts,
                          "startedAt", live ? iso_time(in->started_at) : json_null(), "pid",
                          live ? json_integer(in->sb.pid) : json_null(), "processes", procs, "error",
                          in->last_error ? json_string(in->last_error) : json_null());
    json_object_set_new(o, "rolloutError", in->rollout_error ? json_string(in->rollout_error) : json_null());
    /* A rolling replacement under way: the new one, beside this one. */
    instance *next = in->peer && in->peer->role == ROLE_SUCCESSOR ? in->peer : NULL;
    if (next) {
        char na[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &next->addr, na, sizeof(na));
        bool nlive = next->state == INST_RUNNING || next->state == INST_STOPPING;
        json_object_set_new(o, "rollout",
                            json_pack("{s:s, s:s, s:s, s:o}", "state", instance_state_name(next), "address",
                                      na, "identity", next->spec->identity, "pid",
                                      nlive ? json_integer(next->sb.pid) : json_null()));
    }
    return o;
}

static void op_ps(ctl_client *c) {
    json_t *arr = json_array();
    for (size_t i = 0; i < c->n->n_insts; i++)
        if (c->n->insts[i]->role == ROLE_ACTIVE)
            json_array_append_new(arr, instance_json(c->n->insts[i]));
    reply_ok(c, json_pack("{s:o}", "instances", arr));
}

static void on_log_line(void *userdata, const char *line, size_t len) {
    ctl_client *c = userdata;
    if (len && line[len - 1] == '\n')
        len--;
    client_send(c, json_pack("{s:s%}", "log", line, len));
    client_kick(c);
}

static void op_logs(ctl_client *c, instance *in, json_t *req) {
    json_t *t = json_object_get(req, "tail");
    json_int_t tail = json_is_integer(t) ? json_integer_value(t) : -1;
    bool follow = json_is_true(json_object_get(req, "follow"));
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    /* seed_logfile_tail reads all for 0 lines. */
    int r = tail == 0 ? 0 : seed_logfile_tail(in->log_path, tail > 0 ? (size_t)tail : 0, &text, &len);
    if (r < 0) {
        reply_error(c, "reading the log of %s: %s", in->spec->name, strerror(-r));
        return;
    }
    for (char *p = text; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        client_send(c, json_pack("{s:s%}", "log", p, l));
        p += l + 1;
    }
    if (!follow) {
        reply_ok(c, NULL);
        return;
    }
    if (seed_logfile_follow(in->log, on_log_line, c) == 0)
        c->follow = in;
}

static bool wait_satisfied(ctl_client *c) {
    instance *in = c->waiting;
    if (c->wait == WAIT_STOP)
        return instance_settled(in);
    return in->state == INST_RUNNING || in->state == INST_EXITED ||
           (in->state == INST_FAILED && !in->restart_after_stop);
}

static void finish_wait(ctl_client *c) {
    instance *in = c->waiting;
    if (c->wait == WAIT_RUN && in->state == INST_FAILED)
        reply_error(c, "%s failed to start: %s", in->spec->name,
                    in->last_error ? in->last_error : "unknown error");
    else
        reply_ok(c, json_pack("{s:s}", "state", inst_state_name(in->state)));
}

void control_instance_changed(instance *in) {
    ctl_client **pp = &in->waiters;
    while (*pp) {
        ctl_client *c = *pp;
        if (!wait_satisfied(c)) {
            pp = &c->next_waiter;
            continue;
        }
        *pp = c->next_waiter;
        finish_wait(c);
        c->waiting = NULL;
        client_kick(c);
    }
}

static void op_lifecycle(ctl_client *c, instance *in, const char *op, json_t *req) {
    if (c->n->stopping) {
        reply_error(c, "the node is stopping");
        return;
    }
    json_t *grace = json_object_get(req, "grace_ms");
    if (grace &&
        (!json_is_integer(grace) || json_integer_value(grace) < 1 || json_integer_value(grace) > 3600000)) {
        reply_error(c, "grace_ms: expected milliseconds from 1 to 3600000");
        return;
    }
    /* What the user asked for outlives the node: a stopped instance stays stopped. */
    seed_state_set_held(c->n->db, in->ns, in->spec->name, streq(op, "stop"));
    c->waiting = in;
    c->wait = streq(op, "stop") ? WAIT_STOP : WAIT_RUN;
    /* Read by instance_stop during this call only. */
    in->stop_grace_ms = grace ? (unsigned)json_integer_value(grace) : 0;
    if (streq(op, "stop"))
        instance_stop(in);
    else if (streq(op, "start"))
        instance_start(in);
    else
        instance_restart(in);
    in->stop_grace_ms = 0;
    if (wait_satisfied(c) && !(c->wait == WAIT_RUN && in->restart_after_stop)) {
        finish_wait(c);
        c->waiting = NULL;
        return;
    }
    c->next_waiter = in->waiters;
    in->waiters = c;
}

static void op_volumes(ctl_client *c) {
    seed_volume_row *rows = NULL;
    size_t n = 0;
    int r = seed_state_volume_list(c->n->db, &rows, &n);
    if (r < 0) {
        reply_error(c, "listing volumes: %s", strerror(-r));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        seed_volume_row *v = &rows[i];
        uint64_t used = 0, total = 0;
        bool mounted = false;
        instance *in = NULL;
        for (size_t k = 0; k < c->n->n_insts && !in; k++)
            if (streq(c->n->insts[k]->ns, v->namespace) && streq(c->n->insts[k]->spec->name, v->instance) &&
                c->n->insts[k]->role == ROLE_ACTIVE)
                in = c->n->insts[k];
        const char *mount_point = NULL;
        for (size_t k = 0; in && k < in->n_vols; k++)
            if (streq(in->vols[k].spec->name, v->name)) {
                mount_point = in->vols[k].spec->mount_point;
                if (in->vols[k].mounted) {
                    mounted = seed_volume_usage_mounted(in->vols[k].mountpoint, &used, &total) == 0;
                }
            }
        if (!mounted)
            seed_volume_usage_image(v->image, &used, &total);
        json_array_append_new(arr, seed_volume_row_json(v, used, total, mounted, mount_point));
    }
    seed_volume_rows_free(rows, n);
    reply_ok(c, json_pack("{s:o}", "volumes", arr));
}

static void op_volume_rm(ctl_client *c, const char *id) {
    char ns[128], inst[128], vol[128];
    if (!seed_volume_parse_id(id, ns, inst, vol)) {
        reply_error(c, "expected a volume as NAMESPACE/INSTANCE/VOLUME (see seed volume ls)");
        return;
    }
    for (size_t i = 0; i < c->n->n_insts; i++) {
        instance *in = c->n->insts[i];
        if (!streq(in->ns, ns) || !streq(in->spec->name, inst))
            continue;
        for (size_t k = 0; k < in->n_vols; k++)
            if (streq(in->vols[k].spec->name, vol) &&
                (in->vols[k].mounted || in->vols[k].borrowed || !instance_settled(in))) {
                reply_error(c, "volume %s is in use by instance %s (%s): stop it first", id, inst,
                            inst_state_name(in->state));
                return;
            }
    }
    _cleanup_error_ seed_error *err = NULL;
    if (seed_volume_remove(c->n->db, ns, inst, vol, &err) < 0) {
        reply_error(c, "%s", err->msg);
        return;
    }
    log_info("volume %s removed", id);
    /* The identity goes with the instance's last volume (issue 11). */
    seed_volume_row *rows = NULL;
    size_t n = 0, left = 0;
    if (seed_state_volume_list(c->n->db, &rows, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            left += streq(rows[i].namespace, ns) && streq(rows[i].instance, inst);
        seed_volume_rows_free(rows, n);
        if (left == 0 && seed_identity_remove(c->n->state_dir, ns, inst) == 0)
            log_info("%s/%s: identity removed with its last volume", ns, inst);
    }
    reply_ok(c, NULL);
}

static void on_shoot_done(void *userdata, const seed_shoot_result *r) {
    ctl_client *c = userdata;
    c->shoot = NULL;
    if (r->status == SEED_SHOOT_OK) {
        c->reply = r->reply; /* sent by client_flush */
        c->reply_pos = 0;
        c->closing = true;
    } else {
        reply_error(c, "%s", r->message ? r->message : "the shoot failed");
    }
    client_kick(c);
}

static void op_shoot(ctl_client *c, instance *in, json_t *req) {
    if (!in->spec->shoot_enable) {
        reply_error(c, "%s does not have shoot.enable", in->spec->name);
        return;
    }
    if (!in->shoots) {
        reply_error(c, "%s is not running, or its shoots are unavailable", in->spec->name);
        return;
    }
    seed_shoot_request sr;
    char *msg = NULL;
    if (seed_shoot_request_from_json(json_object_get(req, "request"), &sr, &msg) < 0) {
        reply_error(c, "bad shoot request: %s", msg ? msg : "out of memory");
        free(msg);
        return;
    }
    if (seed_shoot_start(in->shoots, &sr, on_shoot_done, c, &c->shoot) < 0) {
        seed_shoot_request_clear(&sr);
        reply_error(c, "out of memory");
    }
}

static void on_exec_event(void *userdata, const node_exec_event *ev) {
    ctl_client *c = userdata;
    if (ev->type == NODE_EXEC_STARTED) {
        /* Nothing was queued before: the master rides on the first byte. */
        if (ev->pty_fd >= 0 && c->out_len == 0 && c->out_fd < 0)
            c->out_fd = ev->pty_fd;
        else if (ev->pty_fd >= 0)
            close(ev->pty_fd);
        client_send(c, json_pack("{s:b}", "started", 1));
    } else {
        c->exec = NULL;
        if (ev->error) {
            _cleanup_free_ char *msg = seed_utf8_dup(ev->error);
            client_send(c, json_pack("{s:b, s:s, s:i}", "ok", 0, "error", msg ? msg : "out of memory",
                                     "exitCode", ev->exit_code));
            c->closing = true;
        } else {
            reply_ok(c, json_pack("{s:i}", "exitCode", ev->exit_code));
        }
    }
    client_kick(c);
}

static void op_exec(ctl_client *c, instance *in, json_t *req) {
    _cleanup_error_ seed_error *err = NULL;
    if (node_exec_start(in, req, c->fds, c->n_fds, on_exec_event, c, &c->exec, &err) < 0)
        reply_error(c, "%s", err->msg);
    /* The helper has its copies now. */
    for (size_t i = 0; i < c->n_fds; i++)
        close(c->fds[i]);
    c->n_fds = 0;
}

/* ---- deploys: apply, sources, history, events ---- */

static void on_apply_plan(apply_waiter *w, json_t *plan) {
    ctl_client *c = container_of(w, ctl_client, aw);
    client_send(c, json_pack("{s:O}", "plan", plan));
    client_kick(c);
}

static void on_apply_done(apply_waiter *w, json_t *result) {
    ctl_client *c = container_of(w, ctl_client, aw);
    c->awaiting = false;
    client_send(c, json_incref(result));
    c->closing = true;
    client_kick(c);
}

static apply_waiter *waiter(ctl_client *c) {
    c->aw = (apply_waiter){.plan = on_apply_plan, .done = on_apply_done};
    c->awaiting = true;
    return &c->aw;
}

/* The source a target names: a source, or the source of an instance (NAME or
 * SOURCE/NAME; *only is then the instance). */
static node_source *resolve_target(ctl_client *c, const char *target, const char **only) {
    node *n = c->n;
    *only = NULL;
    if (!target || !*target) {
        if (n->n_srcs == 1)
            return n->srcs[0];
        reply_error(c,
                    n->n_srcs ? "this node serves %zu sources: name one (seed source ls)"
                              : "this node serves no sources yet (seed source add NAME URL)",
                    n->n_srcs);
        return NULL;
    }
    node_source *s = node_source_find(n, target);
    if (s)
        return s;
    const char *slash = strchr(target, '/');
    if (slash) {
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(slash - target), target);
        if ((s = node_source_find(n, name))) {
            *only = slash + 1;
            return s;
        }
        reply_error(c, "no source named \"%s\" (seed source ls)", name);
        return NULL;
    }
    char why[512];
    instance *in = node_find(n, target, why, sizeof(why));
    if (!in) {
        reply_error(c, "\"%s\" is neither a source nor an instance on this node (seed source ls, seed ps)",
                    target);
        return NULL;
    }
    *only = in->spec->name;
    return in->src;
}

static void op_apply(ctl_client *c, json_t *req) {
    const char *only = NULL;
    node_source *s = resolve_target(c, json_string_value(json_object_get(req, "target")), &only);
    if (!s)
        return;
    node_source_request(s, "cli", json_is_true(json_object_get(req, "dry_run")), only, 0, waiter(c));
}

static void op_rollback(ctl_client *c, json_t *req) {
    const char *name = json_string_value(json_object_get(req, "source"));
    node_source *s = name ? node_source_find(c->n, name) : NULL;
    if (!s) {
        reply_error(c, "no source named \"%s\" (seed source ls)", name ? name : "");
        return;
    }
    json_t *g = json_object_get(req, "generation");
    unsigned gen = 0;
    if (json_is_integer(g) && json_integer_value(g) > 0 && json_integer_value(g) < UINT32_MAX) {
        gen = (unsigned)json_integer_value(g);
    } else if (g && !json_is_null(g)) {
        reply_error(c, "generation: expected a positive number (seed history %s)", s->name);
        return;
    } else {
        /* The one before the newest that worked. */
        unsigned last = 0;
        json_t *h = seed_state_history(c->n->db, s->name, 100000);
        size_t i;
        json_t *row;
        json_array_foreach (h, i, row) {
            unsigned g2 = (unsigned)json_integer_value(json_object_get(row, "generation"));
            if (streq(json_string_value(json_object_get(row, "result")) ?: "", "ok") && g2 < s->generation &&
                g2 > last)
                last = g2;
        }
        json_decref(h);
        if (!last) {
            reply_error(c, "source %s has no earlier generation that applied cleanly (seed history %s)",
                        s->name, s->name);
            return;
        }
        gen = last;
    }
    node_source_request(s, "rollback", false, NULL, gen, waiter(c));
}

static void op_source_add(ctl_client *c, json_t *req) {
    node *n = c->n;
    if (!n->opt.daemon) {
        reply_error(c, "seed up serves the one project it was given; run seedd to serve sources");
        return;
    }
    const char *name = json_string_value(json_object_get(req, "name"));
    const char *url = json_string_value(json_object_get(req, "url"));
    const char *ref = json_string_value(json_object_get(req, "ref"));
    const char *secret = json_string_value(json_object_get(req, "secret_file"));
    json_t *poll = json_object_get(req, "poll");
    if (!name || !url) {
        reply_error(c, "source-add: expected \"name\" and \"url\"");
        return;
    }
    if (poll &&
        (!json_is_integer(poll) || json_integer_value(poll) < 0 || json_integer_value(poll) > 86400 * 7)) {
        reply_error(c, "--poll expects seconds from 0 (off) to 604800");
        return;
    }
    if (secret && access(secret, R_OK) < 0) {
        reply_error(c, "--webhook-secret-file %s: %s", secret, strerror(errno));
        return;
    }
    node_source **m = realloc(n->srcs, (n->n_srcs + 1) * sizeof(*m));
    if (!m) {
        reply_error(c, "out of memory");
        return;
    }
    n->srcs = m;
    node_source *s = NULL;
    _cleanup_error_ seed_error *err = NULL;
    if (node_source_new(n, name, url, ref, secret, poll ? (unsigned)json_integer_value(poll) : 0, true, &s,
                        &err) < 0) {
        reply_error(c, "%s", err->msg);
        return;
    }
    char created[40];
    seed_format_utc(seed_realtime_usec(), 0, created, sizeof(created));
    seed_source_row row = {.name = s->name,
                           .url = s->url,
                           .ref = s->ref,
                           .secret_file = s->secret_file,
                           .poll_s = s->poll_s,
                           .created = created};
    if (seed_state_source_put(n->db, &row) < 0) {
        node_source_free(s);
        reply_error(c, "recording the source in the state database failed");
        return;
    }
    n->srcs[n->n_srcs++] = s;
    node_source_write_hosts(s);
    node_event(n, "source-added", s->name, NULL, "%s (namespace %s)", s->uri, s->namespace);
    node_sources_changed(n);
    node_source_request(s, "source-add", false, NULL, 0, waiter(c));
}

static void op_source_rm(ctl_client *c, json_t *req) {
    const char *name = json_string_value(json_object_get(req, "name"));
    node_source *s = name ? node_source_find(c->n, name) : NULL;
    if (!s) {
        reply_error(c, "no source named \"%s\" (seed source ls)", name ? name : "");
        return;
    }
    if (!c->n->opt.daemon) {
        reply_error(c, "seed up serves the one project it was given; stop it with Ctrl-C");
        return;
    }
    node_source_remove(s, waiter(c));
    node_sources_changed(c->n);
}

static void op_source_ls(ctl_client *c) {
    json_t *arr = json_array();
    for (size_t i = 0; i < c->n->n_srcs; i++)
        json_array_append_new(arr, node_source_json(c->n->srcs[i]));
    reply_ok(c, json_pack("{s:o}", "sources", arr));
}

static void op_history(ctl_client *c, json_t *req) {
    const char *name = json_string_value(json_object_get(req, "source"));
    if (name && !node_source_find(c->n, name)) {
        json_t *h = seed_state_history(c->n->db, name, 1);
        bool known = json_array_size(h) > 0;
        json_decref(h);
        if (!known) {
            reply_error(c, "no source named \"%s\" (seed source ls)", name);
            return;
        }
    }
    json_t *limit = json_object_get(req, "limit");
    unsigned l =
        json_is_integer(limit) && json_integer_value(limit) > 0 ? (unsigned)json_integer_value(limit) : 100;
    reply_ok(c, json_pack("{s:o}", "history", seed_state_history(c->n->db, name, l)));
}

static void op_events(ctl_client *c, json_t *req) {
    json_t *after = json_object_get(req, "after");
    json_t *limit = json_object_get(req, "limit");
    unsigned l =
        json_is_integer(limit) && json_integer_value(limit) >= 0 ? (unsigned)json_integer_value(limit) : 100;
    json_t *evs = seed_state_events(c->n->db, json_is_integer(after) ? json_integer_value(after) : 0, l);
    size_t i;
    json_t *ev;
    json_array_foreach (evs, i, ev)
        client_send(c, json_pack("{s:O}", "event", ev));
    json_decref(evs);
    if (json_is_true(json_object_get(req, "follow")))
        c->events = true;
    else
        reply_ok(c, NULL);
}

void control_event(node *n, json_t *ev) {
    for (ctl_client *c = n->clients; c; c = c->next)
        if (c->events) {
            client_send(c, json_pack("{s:O}", "event", ev));
            client_kick(c);
        }
}

static void op_down(ctl_client *c) {
    node *n = c->n;
    log_info("seed down: stopping every instance, then the node");
    n->exit_when_stopped = true;
    c->waiting = NULL;
    reply_ok(c, NULL);
    node_stop_all(n);
}

/* true when op was one of these. */
static bool control_deploy_op(ctl_client *c, const char *op, json_t *req) {
    if (streq(op, "apply"))
        op_apply(c, req);
    else if (streq(op, "rollback"))
        op_rollback(c, req);
    else if (streq(op, "source-add"))
        op_source_add(c, req);
    else if (streq(op, "source-rm"))
        op_source_rm(c, req);
    else if (streq(op, "source-ls"))
        op_source_ls(c);
    else if (streq(op, "history"))
        op_history(c, req);
    else if (streq(op, "events"))
        op_events(c, req);
    else if (streq(op, "down"))
        op_down(c);
    else
        return false;
    return true;
}

static void handle_request(ctl_client *c, const char *line, size_t len) {
    json_error_t e;
    json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &e);
    const char *op = req ? json_string_value(json_object_get(req, "op")) : NULL;
    if (!op) {
        reply_error(c, "malformed request: expected {\"op\": ...}");
        json_decref(req);
        return;
    }
    if (streq(op, "ps")) {
        op_ps(c);
    } else if (streq(op, "volumes")) {
        op_volumes(c);
    } else if (streq(op, "volume-rm")) {
        op_volume_rm(c, json_string_value(json_object_get(req, "id")));
    } else if (streq(op, "identity")) {
        char why[512];
        json_t *r = node_identity_request(c->n, req, why, sizeof(why));
        if (r)
            reply_ok(c, r);
        else
            reply_error(c, "%s", why);
    } else if (streq(op, "logs") || streq(op, "stop") || streq(op, "start") || streq(op, "restart") ||
               streq(op, "shoot") || streq(op, "exec")) {
        const char *name = json_string_value(json_object_get(req, "name"));
        char why[512] = "expected \"name\"";
        instance *in = name ? node_find(c->n, name, why, sizeof(why)) : NULL;
        if (!in)
            reply_error(c, "%s", why);
        else if (streq(op, "logs"))
            op_logs(c, in, req);
        else if (streq(op, "shoot"))
            op_shoot(c, in, req);
        else if (streq(op, "exec"))
            op_exec(c, in, req);
        else
            op_lifecycle(c, in, op, req);
    } else if (!control_deploy_op(c, op, req)) {
        reply_error(c, "unknown operation \"%s\"", op);
    }
    json_decref(req);
}

static int on_client(seed_source *s, int fd, uint32_t events, void *userdata) {
    ctl_client *c = userdata;
    if (events & EPOLLOUT) {
        client_flush(c);
        return 0; /* c may be gone */
    }
    if (!c->got_request && (events & EPOLLIN)) {
        int fds[SEED_FDPASS_MAX];
        size_t nf = 0;
        ssize_t k = seed_recv_fds(fd, c->in + c->in_len, sizeof(c->in) - c->in_len, fds, &nf, MSG_DONTWAIT);
        for (size_t i = 0; i < nf; i++) {
            if (c->n_fds < ELEMENTSOF(c->fds))
                c->fds[c->n_fds++] = fds[i];
            else
                close(fds[i]);
        }
        if (k <= 0) {
            if (k == -EAGAIN || k == -EINTR)
                return 0;
            client_free(c);
            return 0;
        }
        c->in_len += (size_t)k;
        char *nl = memchr(c->in, '\n', c->in_len);
        if (!nl && c->in_len == sizeof(c->in)) {
            reply_error(c, "request too long");
        } else if (nl) {
            c->got_request = true;
            handle_request(c, c->in, (size_t)(nl - c->in));
        }
        client_flush(c);
        return 0;
    }
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        client_free(c); /* a follower or waiter went away */
    return 0;
}

static int on_accept(seed_source *s, int fd, uint32_t events, void *userdata) {
    node *n = userdata;
    for (int cfd; (cfd = seed_accept_trusted(fd)) >= 0;) {
        ctl_client *c = calloc(1, sizeof(*c));
        if (!c) {
            close(cfd);
            continue;
        }
        c->n = n;
        c->fd = cfd;
        c->out_fd = -1;
        if (seed_loop_add_io(n->loop, cfd, EPOLLIN | EPOLLRDHUP, on_client, c, &c->src) < 0) {
            close(cfd);
            free(c);
            continue;
        }
        c->next = n->clients;
        if (n->clients)
            n->clients->prev = c;
        n->clients = c;
    }
    return 0;
}

int control_listen(node *n, seed_error **err) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int len = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", n->state_dir, SEED_CONTROL_SOCKET);
    if (len < 0 || (size_t)len >= sizeof(sa.sun_path))
        return seed_error_set(err, ENAMETOOLONG, "state directory path too long for a socket: %s",
                              n->state_dir);
    unlink(sa.sun_path); /* left by a node that was killed; we hold the lock */
    n->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (n->ctl_fd < 0)
        return seed_error_setp(err, errno, "creating the control socket");
    mode_t old = umask(0077);
    int r = bind(n->ctl_fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || listen(n->ctl_fd, 128) < 0)
        return seed_error_setp(err, errno, "listening on %s", sa.sun_path);
    r = seed_loop_add_io(n->loop, n->ctl_fd, EPOLLIN, on_accept, n, &n->ctl_src);
    if (r < 0)
        return seed_error_setp(err, -r, "watching the control socket");
    return 0;
}

void control_close(node *n) {
    while (n->clients) {
        ctl_client *c = n->clients;
        if (c->waiting || c->follow || c->exec) {
            if (c->follow)
                client_send(c, json_pack("{s:b}", "ok", 1));
            else
                reply_error(c, "the node stopped");
            /* best effort: one last non-blocking write */
            if (c->out_len)
                (void)!send(c->fd, c->out, c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        client_free(c);
    }
    node_exec_close_all(n);
    seed_source_free(n->ctl_src);
    n->ctl_src = NULL;
    if (n->ctl_fd >= 0) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", n->state_dir, SEED_CONTROL_SOCKET);
        unlink(path);
        close(n->ctl_fd);
        n->ctl_fd = -1;
    }
}
