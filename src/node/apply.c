/* The executor of a plan: it turns each step into instance operations and follows
 * them as the instances change state, then records the generation.
 *   create    start the new instance; done when it is ready
 *   remove    stop it (volumes stay); done when it stopped
 *   replace   recreate: stop the old one, then start the new one
 *             rolling:  start the new one beside the old one (same volumes, its second
 *                       address), wait until it is ready, switch the published ports
 *                       and the namespace's /etc/hosts to it, let open connections to
 *                       the old one drain (up to the grace period), stop the old one.
 *                       If the new one is not ready in time, or exits, it goes and the
 *                       old one keeps serving untouched.
 *   unchanged nothing at all: same process, same mounts.
 * Removals run first (they may free host ports the others need). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "node/deploy.h"
#include "plan/health.h"

#define DRAIN_POLL_USEC 50000ull

typedef enum step_phase {
    PH_BEGIN,
    PH_STOP_OLD, /* recreate and remove: waiting for the old one to stop */
    PH_START,    /* waiting for the new one to run */
    PH_READY,    /* probing it */
    PH_DRAIN,    /* rolling: switched; open connections to the old one finish */
    PH_RETIRE,   /* rolling: the old one stops */
    PH_ABORT,    /* rolling failed: the new one stops */
    PH_DONE,
} step_phase;

typedef struct apply_step {
    node_apply *a;
    seed_plan_step st;
    instance *old, *cur;
    step_phase phase;
    bool rolling;
    bool failed;
    char *error;
    uint64_t deadline, drain_until; /* monotonic usec */
    seed_source *timer;
    seed_probe *probe;
    char *probe_detail;
} apply_step;

struct node_apply {
    node_source *src;
    apply_request *req;
    node_project *proj;
    /* The projects of the instances the plan was made against: the plan's names and old
     * identities point into them, and an unchanged instance moving to proj, or a replaced
     * one going away, must not free them while the plan is still answered. */
    node_project **held;
    size_t n_held;
    char **idents; /* the identities the plan was made against (copies) */
    size_t n_idents;
    seed_plan plan;
    apply_step *steps;
    size_t n_steps;
    bool removes_done;
    bool finished;
    unsigned gen;
    char *revision, *tree;
    uint64_t started; /* monotonic usec */
    seed_source *kick;
    bool quiet; /* a no-op at start or by polling: not recorded */
    node_apply_done_fn on_done;
    void *done_ud;
};

static void step_advance(apply_step *st);
static void apply_kick(node_apply *a);

static void step_finish(apply_step *st, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void step_finish(apply_step *st, bool ok, const char *fmt, ...) {
    st->phase = PH_DONE;
    st->failed = !ok;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        free(st->error);
        if (vasprintf(&st->error, fmt, ap) < 0)
            st->error = NULL;
        va_end(ap);
    }
    seed_source_free(TAKE_PTR(st->timer));
    seed_probe_cancel(TAKE_PTR(st->probe));
    if (st->old && st->old->step == st)
        st->old->step = NULL;
    if (st->cur && st->cur->step == st)
        st->cur->step = NULL;
    apply_kick(st->a); /* the apply looks whether it is complete */
}

/* ---- readiness: the health check, or every exposed TCP port accepts ---- */

static size_t tcp_ports(const seed_instance *s, unsigned *out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < s->n_expose && n < max; i++)
        if (seed_protocol_uses_tcp(s->expose[i].protocol))
            out[n++] = s->expose[i].port;
    return n;
}

static int step_timer(seed_source *t, void *userdata) {
    apply_step *st = userdata;
    (void)t;
    step_advance(st);
    return 0;
}

static void arm(apply_step *st, uint64_t usec) {
    if (st->timer)
        seed_timer_restart(st->timer, usec);
    else
        seed_loop_add_timer(st->a->src->node->loop, usec, step_timer, st, &st->timer);
}

static void became_ready(apply_step *st);

static void on_probe(void *userdata, const seed_probe_result *r) {
    apply_step *st = userdata;
    if (r->outcome == SEED_PROBE_READY) {
        became_ready(st);
        return;
    }
    free(st->probe_detail);
    st->probe_detail = r->detail ? strdup(r->detail) : NULL;
    st->deadline = 0; /* the prober's deadline is the rollout's */
    step_advance(st);
}

/* Command checks run inside the instance as seed exec does, output to /dev/null. */
typedef struct cmd_run {
    node_exec *exec;
    seed_probe_cmd_done done;
    void *done_ud;
} cmd_run;

static void on_cmd_event(void *userdata, const node_exec_event *ev) {
    cmd_run *c = userdata;
    if (ev->type == NODE_EXEC_STARTED) {
        if (ev->pty_fd >= 0)
            close(ev->pty_fd);
        return;
    }
    c->exec = NULL;
    c->done(c->done_ud, ev->error ? -1 : ev->exit_code, ev->error);
    free(c);
}

static void *run_cmd(void *cmd_ud, char *const *argv, unsigned timeout_ms, seed_probe_cmd_done done,
                     void *done_ud) {
    instance *in = cmd_ud;
    (void)timeout_ms; /* the prober cancels a check that takes too long */
    cmd_run *c = calloc(1, sizeof(*c));
    json_t *args = json_array();
    for (size_t i = 0; argv[i]; i++)
        json_array_append_new(args, json_string(argv[i]));
    json_t *req = json_pack("{s:o}", "argv", args);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int fds[2] = {null, null};
    _cleanup_error_ seed_error *err = NULL;
    if (!c || !req || null < 0) {
        free(c);
        c = NULL;
    } else {
        c->done = done;
        c->done_ud = done_ud;
        if (node_exec_start(in, req, fds, 2, on_cmd_event, c, &c->exec, &err) < 0) {
            done(done_ud, -1, err ? err->msg : "could not run");
            free(c);
            c = NULL;
        }
    }
    if (null >= 0)
        close(null);
    json_decref(req);
    return c;
}

static void cancel_cmd(void *cmd_ud, void *handle) {
    cmd_run *c = handle;
    (void)cmd_ud;
    if (c->exec)
        node_exec_detach(c->exec);
    free(c);
}

static void start_probe(apply_step *st) {
    st->phase = PH_READY;
    unsigned ports[SEED_SPEC_MAX_ENTRIES];
    const seed_instance *s = st->cur->spec;
    uint64_t now = seed_now_usec();
    seed_probe_config c = {.addr = st->cur->addr,
                           .tcp_ports = ports,
                           .n_tcp_ports = tcp_ports(s, ports, ELEMENTSOF(ports)),
                           .health = s->health,
                           .deadline_ms =
                               st->deadline > now ? (unsigned)((st->deadline - now) / 1000) + 1 : 1,
                           .run_cmd = run_cmd,
                           .cancel_cmd = cancel_cmd,
                           .cmd_ud = st->cur};
    _cleanup_error_ seed_error *err = NULL;
    if (seed_probe_start(st->a->src->node->loop, &c, on_probe, st, &st->probe, &err) < 0) {
        free(st->probe_detail);
        st->probe_detail = strdup(err->msg);
        st->deadline = 0;
        step_advance(st);
    }
}

/* ---- steps ---- */

static node *step_node(apply_step *st) {
    return st->a->src->node;
}

static const char *src_name(apply_step *st) {
    return st->a->src->name;
}

/* The new instance of a create or replace. */
static int make_instance(apply_step *st, bool alt, instance *log_from, inst_role role) {
    _cleanup_error_ seed_error *err = NULL;
    instance *in = NULL;
    if (instance_new(st->a->src, st->a->proj, st->st.desired, alt, log_from, &in, &err) < 0 ||
        node_add_instance(step_node(st), in) < 0) {
        instance_free(in);
        step_finish(st, false, "%s", err ? err->msg : "out of memory");
        return -1;
    }
    in->role = role;
    in->step = st;
    st->cur = in;
    return 0;
}

static bool held(apply_step *st) {
    return seed_state_is_held(step_node(st)->db, st->a->src->namespace, st->st.name);
}

static void retire(apply_step *st, instance *in) {
    node_remove_instance(step_node(st), in);
    instance_free(in);
}

static void set_rollout_error(instance *in, const char *why) {
    free(in->rollout_error);
    in->rollout_error = why ? strdup(why) : NULL;
}

static void became_ready(apply_step *st) {
    node *n = step_node(st);
    seed_source_free(TAKE_PTR(st->timer));
    seed_probe_cancel(TAKE_PTR(st->probe));
    node_event(n, "instance-ready", src_name(st), st->st.name, "ready at generation %u (identity %.12s)",
               st->a->gen, st->cur->spec->identity);
    if (!st->rolling) {
        step_finish(st, true, NULL);
        return;
    }
    /* The switch: new connections and names go to the new instance. */
    instance *old = st->old, *cur = st->cur;
    instance_take_ports(cur, old);
    cur->role = ROLE_ACTIVE;
    old->role = ROLE_RETIRING;
    instance_record(cur);
    instance_record(old);
    node_source_write_hosts(st->a->src);
    node_event(n, "instance-replaced", src_name(st), st->st.name, "rolling: switched to the new instance");
    st->phase = PH_DRAIN;
    st->drain_until = seed_now_usec() + (uint64_t)n->opt.grace_ms * 1000;
    step_advance(st);
}

static void step_begin(apply_step *st) {
    node *n = step_node(st);
    switch (st->st.kind) {
    case SEED_PLAN_UNCHANGED:
        set_rollout_error(st->old, NULL); /* what runs is what is wanted again */
        instance_adopt_spec(st->old, st->a->proj, st->st.desired);
        instance_record(st->old); /* the tree it is known by now */
        step_finish(st, true, NULL);
        return;
    case SEED_PLAN_REMOVE:
        st->old->role = ROLE_RETIRING;
        st->old->step = st;
        node_source_write_hosts(st->a->src);
        instance_stop(st->old);
        st->phase = PH_STOP_OLD;
        break;
    case SEED_PLAN_CREATE:
        /* made with the others of the apply (names resolve from the start) */
        if (!st->cur && make_instance(st, false, NULL, ROLE_ACTIVE) < 0)
            return;
        node_event(n, "instance-created", src_name(st), st->st.name, "identity %.12s",
                   st->st.desired->identity);
        if (held(st)) {
            log_info("%s: stopped by seed stop; not started (seed start %s)", st->st.name, st->st.name);
            seed_logfile_printf(st->cur->log, "seed", "held stopped by seed stop; seed start %s starts it",
                                st->st.name);
            step_finish(st, true, NULL);
            return;
        }
        instance_start(st->cur);
        st->phase = PH_START;
        break;
    case SEED_PLAN_REPLACE: {
        instance *old = st->old;
        bool running = old->state == INST_RUNNING;
        st->rolling = st->st.rollout == SEED_ROLLOUT_ROLLING && running;
        if (make_instance(st, st->rolling ? !old->alt : old->alt, old, ROLE_SUCCESSOR) < 0)
            return;
        st->cur->peer = old;
        old->peer = st->cur;
        old->step = st;
        if (st->rolling) {
            st->cur->defer_ports = true;
            instance_start(st->cur);
            st->phase = PH_START;
        } else {
            old->role = ROLE_RETIRING;
            instance_stop(old);
            st->phase = PH_STOP_OLD;
        }
        break;
    }
    default:
        step_finish(st, false, "unknown step");
        return;
    }
    if (st->st.desired) /* a removal has none */
        st->deadline = seed_now_usec() + (uint64_t)st->st.desired->rollout_timeout_ms * 1000;
    step_advance(st);
}

static void abort_rolling(apply_step *st, const char *why) {
    free(st->error);
    st->error = strdup(why);
    set_rollout_error(st->old, why);
    node_event(step_node(st), "rollout-failed", src_name(st), st->st.name,
               "%s; the old instance keeps serving", why);
    seed_logfile_printf(st->cur->log, "seed", "rollout failed: %s; the old instance keeps serving", why);
    st->cur->role = ROLE_RETIRING;
    seed_probe_cancel(TAKE_PTR(st->probe));
    instance_stop(st->cur);
    st->phase = PH_ABORT;
}

/* The new instance will not do: a rolling one goes and the old one stays; otherwise
 * the step fails with it as it is. */
static void rollout_failed(apply_step *st, const char *why) {
    if (st->rolling) {
        abort_rolling(st, why);
        step_advance(st);
        return;
    }
    node_event(step_node(st), "rollout-failed", src_name(st), st->st.name, "%s", why);
    set_rollout_error(st->cur, why);
    step_finish(st, false, "%s", why);
}

static void step_advance(apply_step *st) {
    if (st->phase == PH_DONE)
        return;
    node *n = step_node(st);
    uint64_t now = seed_now_usec();
    switch (st->phase) {
    case PH_STOP_OLD:
        if (!instance_settled(st->old))
            return;
        if (st->st.kind == SEED_PLAN_REMOVE) {
            retire(st, TAKE_PTR(st->old));
            node_event(n, "instance-removed", src_name(st), st->st.name, "stopped; its volumes are kept");
            step_finish(st, true, NULL);
            return;
        }
        /* recreate: the old one stopped; the new one takes its place. */
        retire(st, TAKE_PTR(st->old));
        st->cur->role = ROLE_ACTIVE;
        node_source_write_hosts(st->a->src);
        node_event(n, "instance-replaced", src_name(st), st->st.name, "recreate: identity %.12s",
                   st->st.desired->identity);
        if (held(st)) {
            step_finish(st, true, NULL);
            return;
        }
        instance_start(st->cur);
        st->phase = PH_START;
        st->deadline = now + (uint64_t)st->st.desired->rollout_timeout_ms * 1000;
        /* fall through */
    case PH_START:
        if (st->cur->state == INST_RUNNING) {
            start_probe(st);
            return;
        }
        if (st->cur->state == INST_FAILED || st->cur->state == INST_EXITED ||
            st->cur->state == INST_STOPPED) {
            char why[768];
            snprintf(why, sizeof(why), "the new instance %s: %s",
                     st->cur->state == INST_FAILED ? "failed to start" : "exited",
                     st->cur->last_error ? st->cur->last_error : instance_state_name(st->cur));
            rollout_failed(st, why);
            return;
        }
        if (now > st->deadline)
            goto timeout;
        arm(st, st->deadline - now);
        return;
    case PH_READY:
        if (st->cur->state != INST_RUNNING) {
            seed_probe_cancel(TAKE_PTR(st->probe));
            st->phase = PH_START;
            step_advance(st);
            return;
        }
        if (now > st->deadline)
            goto timeout;
        return; /* the probe goes on */
    case PH_DRAIN:
        if (instance_open_connections(st->old) > 0 && now < st->drain_until) {
            arm(st, DRAIN_POLL_USEC);
            return;
        }
        st->phase = PH_RETIRE;
        instance_stop(st->old);
        /* fall through */
    case PH_RETIRE:
        if (!instance_settled(st->old))
            return;
        retire(st, TAKE_PTR(st->old));
        step_finish(st, true, NULL);
        return;
    case PH_ABORT:
        if (!instance_settled(st->cur))
            return;
        retire(st, TAKE_PTR(st->cur));
        step_finish(st, false, NULL);
        return;
    default:
        return;
    }
timeout : {
    char why[768];
    snprintf(why, sizeof(why), "not ready within %.1f s%s%s", st->st.desired->rollout_timeout_ms / 1000.0,
             st->probe_detail ? ": " : "", st->probe_detail ? st->probe_detail : "");
    rollout_failed(st, why);
}
}

/* ---- the apply ---- */

int node_apply_start(node_source *s, apply_request *req, node_project *np, const char *revision,
                     const char *tree, node_apply_done_fn on_done, void *done_ud, node_apply **ret,
                     seed_error **err) {
    node *n = s->node;
    node_apply *a = calloc(1, sizeof(*a));
    if (!a)
        return seed_error_set(err, ENOMEM, "out of memory");
    a->src = s;
    a->req = req;
    a->on_done = on_done;
    a->done_ud = done_ud;
    a->proj = node_project_ref(np);
    a->started = seed_now_usec();
    a->revision = revision ? strdup(revision) : NULL;
    a->tree = tree ? strdup(tree) : NULL;
    /* What exists now: the instances that serve a name of this source. */
    seed_plan_actual *actual = calloc(n->n_insts + 1, sizeof(*actual));
    instance **owners = calloc(n->n_insts + 1, sizeof(*owners));
    a->held = calloc(n->n_insts + 1, sizeof(*a->held));
    a->idents = calloc(n->n_insts + 1, sizeof(*a->idents));
    size_t n_actual = 0;
    if (!actual || !owners || !a->held || !a->idents) {
        free(actual);
        free(owners);
        a->req = NULL;
        node_apply_free(a);
        return seed_error_set(err, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n->n_insts; i++) {
        instance *in = n->insts[i];
        if (in->src != s || in->role != ROLE_ACTIVE)
            continue;
        owners[n_actual] = in;
        a->held[a->n_held++] = node_project_ref(in->proj);
        /* Copied: an instance (and its identity_override) may go before the apply. */
        char *ident = strdup(in->identity_override ? in->identity_override : in->spec->identity);
        a->idents[a->n_idents++] = ident;
        actual[n_actual++] = (seed_plan_actual){.name = in->spec->name, .identity = ident ? ident : ""};
    }
    int r = seed_plan_make(np->p, actual, n_actual, req->only, &a->plan);
    if (r >= 0 && !(a->steps = calloc(a->plan.n + 1, sizeof(apply_step))))
        r = -ENOMEM;
    if (r < 0) {
        free(actual);
        free(owners);
        a->req = NULL;
        node_apply_free(a);
        return seed_error_set(err, -r, "making the plan");
    }
    a->n_steps = a->plan.n;
    for (size_t i = 0; i < a->plan.n; i++) {
        apply_step *st = &a->steps[i];
        st->a = a;
        st->st = a->plan.steps[i];
        if (st->st.kind != SEED_PLAN_CREATE)
            st->old = owners[st->st.actual];
    }
    free(actual);
    free(owners);
    if (req->only && a->plan.n == 0) {
        a->req = NULL;
        node_apply_free(a);
        return seed_error_set(err, ENOENT, "source %s has no instance named '%s', declared or running",
                              s->name, req->only);
    }
    *ret = a;
    return 0;
}

static json_t *plan_message(node_apply *a) {
    return json_pack("{s:s, s:s, s:o, s:o, s:b}", "source", a->src->name, "namespace", a->src->namespace,
                     "revision", a->revision ? json_string(a->revision) : json_null(), "plan",
                     seed_plan_json(&a->plan), "dryRun", a->req->dry_run);
}

static bool all_done(node_apply *a, bool removes_only) {
    for (size_t i = 0; i < a->n_steps; i++) {
        if (removes_only && a->steps[i].st.kind != SEED_PLAN_REMOVE)
            continue;
        if (a->steps[i].phase != PH_DONE)
            return false;
    }
    return true;
}

static void finish(node_apply *a) {
    node_source *s = a->src;
    node *n = s->node;
    a->finished = true;
    if (!a->req->dry_run && !a->quiet) {
        json_t *actions = json_array();
        for (size_t i = 0; i < a->n_steps; i++) {
            apply_step *st = &a->steps[i];
            json_t *o = json_pack("{s:s, s:s, s:s}", "name", st->st.name, "action",
                                  seed_plan_kind_name(st->st.kind), "result", st->failed ? "failed" : "ok");
            if (st->st.kind == SEED_PLAN_REPLACE)
                json_object_set_new(o, "rollout", json_string(seed_rollout_to_string(st->st.rollout)));
            if (st->error)
                json_object_set_new(o, "error", json_string(st->error));
            json_array_append_new(actions, o);
        }
        bool failed = node_apply_failed(a);
        seed_state_generation_finish(n->db, s->name, a->gen, failed ? "failed" : "ok",
                                     failed ? "a rollout failed" : NULL, actions);
        json_decref(actions);
        const size_t *c = a->plan.counts;
        node_event(n, failed ? "apply-failed" : "apply-finished", s->name, NULL,
                   "generation %u%s%s: %zu created, %zu replaced, %zu removed, %zu unchanged in %.0f ms",
                   a->gen, a->revision ? " at " : "", a->revision ? a->revision : "", c[SEED_PLAN_CREATE],
                   c[SEED_PLAN_REPLACE], c[SEED_PLAN_REMOVE], c[SEED_PLAN_UNCHANGED],
                   (double)(seed_now_usec() - a->started) / 1000.0);
    }
    seed_source_free(TAKE_PTR(a->kick));
    a->on_done(a, a->done_ud); /* frees a */
}

void node_apply_run(node_apply *a) {
    node_source *s = a->src;
    node *n = s->node;
    json_t *plan = plan_message(a);
    for (apply_waiter *w = a->req->waiters; w; w = w->next)
        if (w->plan)
            w->plan(w, plan);
    json_decref(plan);
    if (a->req->dry_run) {
        finish(a);
        return;
    }
    /* A restart or a poll that finds nothing to do is not a generation. */
    a->quiet =
        seed_plan_is_noop(&a->plan) && (streq(a->req->trigger, "start") || streq(a->req->trigger, "poll") ||
                                        streq(a->req->trigger, "sighup"));
    if (a->quiet) {
        finish(a);
        return;
    }
    if (seed_state_generation_begin(n->db, s->name, s->namespace, a->revision, a->tree, a->req->trigger,
                                    &a->gen) < 0)
        log_warning("%s: recording the generation failed", s->name);
    const size_t *c = a->plan.counts;
    if (!seed_plan_is_noop(&a->plan))
        node_event(n, "apply-started", s->name, NULL,
                   "generation %u (%s)%s%s: %zu to create, %zu to replace, %zu to remove, %zu unchanged",
                   a->gen, a->req->trigger, a->revision ? " at " : "", a->revision ? a->revision : "",
                   c[SEED_PLAN_CREATE], c[SEED_PLAN_REPLACE], c[SEED_PLAN_REMOVE], c[SEED_PLAN_UNCHANGED]);
    /* Unchanged ones move to the new project at once; removals go first. */
    for (size_t i = 0; i < a->n_steps; i++)
        if (a->steps[i].st.kind == SEED_PLAN_UNCHANGED || a->steps[i].st.kind == SEED_PLAN_REMOVE)
            step_begin(&a->steps[i]);
    node_apply_advance(a);
}

void node_apply_advance(node_apply *a) {
    if (a->finished || a->req->dry_run)
        return;
    for (size_t i = 0; i < a->n_steps; i++)
        if (a->steps[i].phase != PH_BEGIN && a->steps[i].phase != PH_DONE)
            step_advance(&a->steps[i]);
    if (!a->removes_done && all_done(a, true)) {
        a->removes_done = true;
        /* Every new instance is in the namespace's /etc/hosts before any starts. */
        for (size_t i = 0; i < a->n_steps; i++)
            if (a->steps[i].phase == PH_BEGIN && a->steps[i].st.kind == SEED_PLAN_CREATE)
                make_instance(&a->steps[i], false, NULL, ROLE_ACTIVE);
        node_source_write_hosts(a->src);
        for (size_t i = 0; i < a->n_steps; i++)
            if (a->steps[i].phase == PH_BEGIN)
                step_begin(&a->steps[i]);
    }
    if (a->removes_done && all_done(a, false))
        finish(a);
}

static int kick_fire(seed_source *t, void *userdata) {
    (void)t;
    node_apply_advance(userdata);
    return 0;
}

/* Look at the apply again soon, outside the callback that changed something. */
static void apply_kick(node_apply *a) {
    if (a->kick)
        seed_timer_restart(a->kick, 0);
    else
        seed_loop_add_timer(a->src->node->loop, 0, kick_fire, a, &a->kick);
}

void apply_instance_changed(instance *in) {
    if (in->step)
        apply_kick(in->step->a);
}

bool node_apply_failed(const node_apply *a) {
    for (size_t i = 0; i < a->n_steps; i++)
        if (a->steps[i].failed)
            return true;
    return false;
}

unsigned node_apply_generation(const node_apply *a) {
    return a->gen;
}

bool node_apply_dry_run(const node_apply *a) {
    return a->req->dry_run || a->quiet;
}

apply_waiter **node_apply_waiters(node_apply *a) {
    return &a->req->waiters;
}

json_t *node_apply_result(node_apply *a) {
    json_t *res = plan_message(a);
    bool failed = node_apply_failed(a);
    json_object_set_new(res, "ok", json_boolean(!failed));
    json_object_set_new(res, "generation", a->gen ? json_integer(a->gen) : json_null());
    json_t *actions = json_object_get(res, "plan");
    for (size_t i = 0; i < a->n_steps && i < json_array_size(actions); i++) {
        json_t *o = json_array_get(actions, i);
        if (!a->req->dry_run)
            json_object_set_new(o, "result", json_string(a->steps[i].failed ? "failed" : "ok"));
        if (a->steps[i].error)
            json_object_set_new(o, "error", json_string(a->steps[i].error));
    }
    if (failed)
        json_object_set_new(res, "error", json_string("a rollout failed"));
    return res;
}

void node_apply_free(node_apply *a) {
    if (!a)
        return;
    for (size_t i = 0; i < a->n_steps; i++) {
        apply_step *st = &a->steps[i];
        if (st->phase != PH_DONE)
            step_finish(st, false, "the node stopped");
        free(st->error);
        free(st->probe_detail);
    }
    seed_source_free(a->kick);
    free(a->steps);
    seed_plan_clear(&a->plan);
    node_project_unref(a->proj);
    for (size_t i = 0; i < a->n_held; i++)
        node_project_unref(a->held[i]);
    free(a->held);
    for (size_t i = 0; i < a->n_idents; i++)
        free(a->idents[i]);
    free(a->idents);
    if (a->req) {
        free(a->req->only);
        free(a->req);
    }
    free(a->revision);
    free(a->tree);
    free(a);
}
