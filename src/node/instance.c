/* One instance on the node: its cgroup, volumes, generated files, sandbox and the
 * channel to its init; starting, stopping and restarting it; reacting when it exits.
 * Plan: spec (what is declared) -> sandbox config (what to build) -> sandbox. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "image/nix.h"
#include "init/protocol.h"
#include "node/deploy.h"
#include "node/volume.h"
#include "spec/names.h"

#define RETRY_FIRST_MS 1000u
#define RETRY_MAX_MS 60000u
#define LOG_MAX_BYTES (8u << 20)

const char *inst_state_name(inst_state s) {
    static const char *const names[] = {"stopped", "starting", "running", "stopping", "exited", "failed"};
    return names[s];
}

/* Everything above an instance learns of its changes through the node's hook. */
static void set_state(instance *in, inst_state s) {
    in->state = s;
    node_instance_changed(in);
}

static int open_log(instance *in, instance *from, seed_error **err);
static void record_end(instance *in);

/* A tier larger than the machine still runs (its limits never bind), but not with the
 * resources it names: say so when the instance is made. */
static void warn_oversized(const seed_instance *s) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long long mem_mib =
        (unsigned long long)sysconf(_SC_PHYS_PAGES) * (unsigned long long)sysconf(_SC_PAGESIZE) >> 20;
    if ((cpus > 0 && s->vcpus > (unsigned long)cpus) || (mem_mib > 0 && s->memory_mib > mem_mib))
        log_warning("%s: size %s asks for %u vCPUs and %u MiB of memory, but this machine has %ld CPUs and "
                    "%llu MiB: it gets at most what there is",
                    s->name, seed_size_tier_to_string(s->size), s->vcpus, s->memory_mib, cpus, mem_mib);
}

int instance_new(node_source *src, node_project *np, const seed_instance *spec, bool alt, instance *log_from,
                 instance **ret, seed_error **err) {
    node *n = src->node;
    instance *in = calloc(1, sizeof(*in));
    if (!in)
        return seed_error_set(err, ENOMEM, "out of memory");
    in->node = n;
    in->src = src;
    in->ns = src->namespace;
    in->proj = node_project_ref(np);
    in->spec = spec;
    in->chan = -1;
    in->sb.pidfd = -1;
    in->alt = alt;
    in->owns_log = true;
    if (!log_from)
        warn_oversized(spec);
    /* The slot fixes the uid range (volumes belong to it) and the address; a rolling
     * successor keeps the uids and takes the name's second address. */
    int r = seed_state_slot(n->db, in->ns, spec->name, seed_subnet_slots(&n->net.subnet), &in->slot, err);
    unsigned addr_slot = in->slot;
    if (r >= 0 && alt) {
        char second[SEED_SPEC_MAX_NAME + 8];
        snprintf(second, sizeof(second), "%s/next", spec->name);
        r = seed_state_slot(n->db, in->ns, second, seed_subnet_slots(&n->net.subnet), &addr_slot, err);
    }
    if (r < 0) {
        instance_free(in);
        return r;
    }
    in->addr = seed_subnet_host(&n->net.subnet, SEED_SLOT_ADDRESS_INDEX(addr_slot));
    in->id_base = ID_BASE + in->slot * ID_RANGE;
    snprintf(in->cgpath, sizeof(in->cgpath), "%s/%s-%s%s", n->cg_root, in->ns, spec->name, alt ? ".b" : "");

    char path[4096];
    snprintf(path, sizeof(path), "%s/logs/%s", n->state_dir, in->ns);
    seed_mkdir_p(path, 0700);
    if (asprintf(&in->log_path, "%s/%s.log", path, spec->name) < 0) {
        in->log_path = NULL;
        instance_free(in);
        return seed_error_set(err, ENOMEM, "out of memory");
    }
    if ((r = open_log(in, log_from, err)) < 0) {
        instance_free(in);
        return r;
    }
    in->vols = calloc(spec->n_storage + 1, sizeof(node_volume));
    in->procs = calloc(spec->n_processes + 1, sizeof(proc_info));
    if (!in->vols || !in->procs) {
        instance_free(in);
        return seed_error_set(err, ENOMEM, "out of memory");
    }
    in->n_vols = spec->n_storage;
    for (size_t i = 0; i < spec->n_storage; i++) {
        node_volume *v = &in->vols[i];
        v->spec = &spec->storage[i];
        if (asprintf(&v->image, "%s/volumes/%s/%s/%s.img", n->state_dir, in->ns, spec->name, v->spec->name) <
                0 ||
            asprintf(&v->mountpoint, "%s/volumes/%s/%s/%s", n->run_dir, in->ns, spec->name, v->spec->name) <
                0) {
            instance_free(in);
            return seed_error_set(err, ENOMEM, "out of memory");
        }
    }
    in->n_procs = spec->n_processes;
    for (size_t i = 0; i < spec->n_processes; i++) {
        in->procs[i].name = spec->processes[i].name;
        in->procs[i].last_status = -1;
    }
    *ret = in;
    return 0;
}

/* Open the instance's log, or share the one of the instance it replaces (followers
 * of `seed logs -f` keep following across a rollout). */
static int open_log(instance *in, instance *from, seed_error **err) {
    if (from && from->log) {
        in->log = from->log;
        in->owns_log = false;
        return 0;
    }
    return seed_logfile_open(in->log_path, LOG_MAX_BYTES, &in->log, err);
}

void instance_adopt_spec(instance *in, node_project *np, const seed_instance *spec) {
    /* Same identity: the same names, volumes and processes in the same order. */
    in->spec = spec;
    for (size_t i = 0; i < in->n_vols && i < spec->n_storage; i++)
        in->vols[i].spec = &spec->storage[i];
    for (size_t i = 0; i < in->n_procs && i < spec->n_processes; i++)
        in->procs[i].name = spec->processes[i].name;
    node_project *old = in->proj;
    in->proj = node_project_ref(np);
    node_project_unref(old);
}

/* ---- published ports ---- */

/* ---- ports held by the keeper (seedd) ---- */

static bool remote(const instance *in) {
    return in->node->keeper_fd >= 0;
}

static void port_key(const instance *in, unsigned port, bool udp, char *buf, size_t size) {
    snprintf(buf, size, "%s/%s/%u/%s", in->ns, in->spec->name, port, udp ? "udp" : "tcp");
}

/* The keys of the ports the keeper publishes for this instance's name. */
static json_t *remote_keys(const instance *in) {
    json_t *r = node_keeper(in->node, json_pack("{s:s}", "op", "keys"), NULL, 0, NULL, NULL);
    json_t *out = json_object();
    char prefix[160];
    int l = snprintf(prefix, sizeof(prefix), "%s/%s/", in->ns, in->spec->name);
    const char *key;
    json_t *v;
    json_object_foreach (json_object_get(r, "ports"), key, v)
        if (strncmp(key, prefix, (size_t)l) == 0)
            json_object_set(out, key, v);
    json_decref(r);
    return out;
}

static void remote_unpublish_all(instance *in) {
    json_t *keys = remote_keys(in);
    const char *key;
    json_t *v;
    json_object_foreach (keys, key, v)
        json_decref(node_keeper(in->node, json_pack("{s:s, s:s}", "op", "unpublish", "key", key), NULL, 0,
                                NULL, NULL));
    json_decref(keys);
    in->has_ports = false;
}

/* Publish (or move to this instance) every exposed port; keys of ports it no longer
 * exposes are closed. */
static int remote_publish(instance *in, seed_error **err) {
    node *n = in->node;
    const seed_instance *s = in->spec;
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &in->addr, a, sizeof(a));
    json_t *keys = remote_keys(in);
    for (size_t k = 0; k < s->n_expose; k++) {
        const seed_expose *e = &s->expose[k];
        for (int udp = 0; udp <= 1; udp++) {
            if (udp ? !seed_protocol_uses_udp(e->protocol) : !seed_protocol_uses_tcp(e->protocol))
                continue;
            char key[160];
            port_key(in, e->port, udp, key, sizeof(key));
            json_t *r;
            if (json_object_get(keys, key)) {
                r = node_keeper(n, json_pack("{s:s, s:s, s:s}", "op", "retarget", "key", key, "backend", a),
                                NULL, 0, NULL, NULL);
                json_object_del(keys, key);
            } else {
                r = node_keeper(n,
                                json_pack("{s:s, s:s, s:s, s:i, s:b, s:s, s:i}", "op", "publish", "key", key,
                                          "bind", n->opt.bind, "port", (int)e->port, "udp", udp, "backend", a,
                                          "backendPort", (int)e->port),
                                NULL, 0, NULL, NULL);
            }
            if (!json_is_true(json_object_get(r, "ok"))) {
                seed_error_set(err, EADDRINUSE, "expose.%s: %s", e->name,
                               json_string_value(json_object_get(r, "error")) ?: "the keeper did not answer");
                json_decref(r);
                json_decref(keys);
                remote_unpublish_all(in);
                return -EADDRINUSE;
            }
            json_decref(r);
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach (keys, key, v)
        json_decref(
            node_keeper(n, json_pack("{s:s, s:s}", "op", "unpublish", "key", key), NULL, 0, NULL, NULL));
    json_decref(keys);
    in->has_ports = true;
    return 0;
}

static void unpublish_ports(instance *in) {
    if (remote(in)) {
        if (in->has_ports && !in->node->detaching)
            remote_unpublish_all(in);
        in->has_ports = false;
        return;
    }
    for (size_t i = 0; i < in->n_proxies; i++)
        seed_proxy_free(in->proxies[i]);
    free(in->proxies);
    in->proxies = NULL;
    in->n_proxies = 0;
}

/* Listen on the instance's exposed ports (once; they stay bound across restarts of the
 * instance until it is stopped). A port that cannot be bound fails this instance
 * only; the others run. */
static int publish_ports(instance *in, seed_error **err) {
    const seed_instance *s = in->spec;
    if (in->proxies || in->has_ports || s->n_expose == 0 || in->defer_ports)
        return 0;
    if (remote(in))
        return remote_publish(in, err);
    in->proxies = calloc(2 * s->n_expose + 1, sizeof(seed_proxy *));
    if (!in->proxies)
        return seed_error_set(err, ENOMEM, "out of memory");
    node *n = in->node;
    for (size_t k = 0; k < s->n_expose; k++) {
        const seed_expose *e = &s->expose[k];
        for (int udp = 0; udp <= 1; udp++) {
            if (udp ? !seed_protocol_uses_udp(e->protocol) : !seed_protocol_uses_tcp(e->protocol))
                continue;
            int r = seed_proxy_new(n->loop, &n->net, n->opt.bind, e->port, udp, in->addr, e->port,
                                   &in->proxies[in->n_proxies], err);
            if (r < 0) {
                unpublish_ports(in);
                return seed_error_prefix(err, "expose.%s: ", e->name);
            }
            in->n_proxies++;
        }
    }
    return 0;
}

static bool same_ports(const seed_instance *a, const seed_instance *b) {
    if (a->n_expose != b->n_expose)
        return false;
    for (size_t i = 0; i < a->n_expose; i++)
        if (a->expose[i].port != b->expose[i].port || a->expose[i].protocol != b->expose[i].protocol)
            return false;
    return true;
}

void instance_take_ports(instance *successor, instance *old) {
    successor->defer_ports = false;
    if (remote(successor)) {
        _cleanup_error_ seed_error *err = NULL;
        old->has_ports = false;
        if (remote_publish(successor, &err) < 0) {
            log_error("%s: publishing its ports: %s", successor->spec->name, err->msg);
            seed_logfile_printf(successor->log, "seed", "publishing its ports: %s", err->msg);
        }
        return;
    }
    if (old->proxies && same_ports(old->spec, successor->spec)) {
        for (size_t i = 0; i < old->n_proxies; i++)
            seed_proxy_set_backend(old->proxies[i], successor->addr);
        successor->proxies = TAKE_PTR(old->proxies);
        successor->n_proxies = old->n_proxies;
        old->n_proxies = 0;
        return;
    }
    /* Other ports: the old ones close, the new ones open. */
    unpublish_ports(old);
    _cleanup_error_ seed_error *err = NULL;
    if (publish_ports(successor, &err) < 0) {
        log_error("%s: publishing its ports: %s", successor->spec->name, err->msg);
        seed_logfile_printf(successor->log, "seed", "publishing its ports: %s", err->msg);
    }
}

size_t instance_open_connections(const instance *in) {
    size_t n = 0;
    if (remote(in)) {
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->addr, a, sizeof(a));
        json_t *keys = remote_keys(in);
        const char *key;
        json_t *v;
        json_object_foreach (keys, key, v) {
            json_t *r =
                node_keeper(in->node, json_pack("{s:s, s:s, s:s}", "op", "conns", "key", key, "backend", a),
                            NULL, 0, NULL, NULL);
            n += (size_t)json_integer_value(json_object_get(r, "n"));
            json_decref(r);
        }
        json_decref(keys);
        return n;
    }
    /* A retiring instance's ports went to its successor: count there. */
    const instance *holder = in->proxies ? in : in->peer;
    for (size_t i = 0; holder && i < holder->n_proxies; i++)
        n += seed_proxy_connections_to(holder->proxies[i], in->addr);
    return n;
}

void instance_free(instance *in) {
    if (!in)
        return;
    unpublish_ports(in);
    seed_source_free(in->chan_timer);
    seed_source_free(in->retry_timer);
    seed_source_free(in->kill_timer);
    seed_source_free(in->exit_src);
    seed_source_free(in->chan_src);
    if (in->chan >= 0)
        close(in->chan);
    if (in->cg)
        in->node->cg_ops->free(in->cg);
    for (size_t i = 0; i < in->n_vols; i++) {
        free(in->vols[i].image);
        free(in->vols[i].mountpoint);
    }
    free(in->vols);
    free(in->procs);
    seed_nix_closure_free(in->closure);
    free(in->closure_paths);
    if (in->peer) {
        /* The log goes on with the instance that replaced this one (or back). */
        if (in->owns_log && in->peer->log == in->log) {
            in->peer->owns_log = true;
            in->owns_log = false;
        }
        in->peer->peer = NULL;
    }
    if (in->owns_log)
        seed_logfile_close(in->log);
    free(in->log_path);
    free(in->last_error);
    free(in->identity_override);
    free(in->rollout_error);
    instance_secrets_free(in);
    node_project_unref(in->proj);
    free(in);
}

/* ---- the init channel ---- */

static proc_info *find_proc(instance *in, const char *name, size_t len) {
    for (size_t i = 0; i < in->n_procs; i++)
        if (strlen(in->procs[i].name) == len && memcmp(in->procs[i].name, name, len) == 0)
            return &in->procs[i];
    return NULL;
}

static void handle_message(instance *in, const char *buf, size_t n) {
    seed_init_hdr h;
    char name[256];
    const char *data;
    size_t dlen;
    /* The init is inside the sandbox: its messages are checked like any input. */
    if (seed_init_msg_parse(buf, n, &h, name, &data, &dlen) < 0)
        return;
    if (h.type == SEED_INIT_LOG) {
        seed_logfile_append(in->log, h.ts_usec, name, h.stream, data, dlen);
        return;
    }
    if (h.type != SEED_INIT_EVENT)
        return;
    proc_info *p = find_proc(in, name, h.name_len);
    switch (h.stream) {
    case SEED_EVENT_STARTED:
        if (p) {
            p->pid = (int)h.arg;
            p->next_restart_at = 0;
        }
        break;
    case SEED_EVENT_EXITED:
        if (p) {
            p->pid = 0;
            p->last_status = (int)h.arg;
        }
        if (WIFSIGNALED((int)h.arg) && WTERMSIG((int)h.arg) == SIGKILL && in->cg) {
            /* Tell an out-of-memory kill apart from any other SIGKILL. */
            uint64_t kills;
            if (in->node->cg_ops->oom_kills(in->cg, &kills) == 0 && kills > in->oom_kills) {
                in->oom_kills = kills;
                seed_logfile_printf(
                    in->log, name,
                    "killed by the out-of-memory killer: the instance's memory limit is %u MiB "
                    "(size %s)",
                    in->spec->memory_mib, seed_size_tier_to_string(in->spec->size));
                node_event(in->node, "instance-oom-killed", in->src->name, in->spec->name,
                           "process %s killed by the out-of-memory killer (limit %u MiB)", name,
                           in->spec->memory_mib);
            }
        }
        break;
    case SEED_EVENT_RESTART:
        if (p) {
            p->restarts++;
            p->next_restart_at = h.ts_usec + (uint64_t)h.arg * 1000;
        }
        in->restarts++;
        node_event(in->node, "instance-restarted", in->src->name, in->spec->name,
                   "process %s restarts in %u ms", name, (unsigned)h.arg);
        break;
    case SEED_EVENT_FINISHED:
        in->finished = true;
        break;
    }
}

#define CHAN_RATE (2.0 * SEED_INIT_LOG_RATE) /* bytes a second; the init itself keeps to half */
#define CHAN_BURST (2.0 * SEED_INIT_LOG_BURST)

static int chan_resume(seed_source *s, void *userdata) {
    instance *in = userdata;
    if (in->chan_src)
        seed_source_set_events(in->chan_src, EPOLLIN);
    return 0;
}

/* Whether the channel is still within its rate after n more bytes. Beyond it, the
 * node stops reading for a while: the init's queue fills, it stops reading its
 * processes' output, and they wait on their writes. However the instance floods (its
 * init included, were it subverted), the node reads at most CHAN_RATE from it. */
static bool chan_within_rate(instance *in, size_t n) {
    uint64_t now = seed_now_usec();
    in->chan_tokens = MIN(in->chan_tokens + (double)(now - in->chan_refilled) * CHAN_RATE / 1e6, CHAN_BURST);
    in->chan_refilled = now;
    in->chan_tokens -= (double)MAX(n, (size_t)SEED_INIT_LOG_LINE_COST);
    if (in->chan_tokens >= 0)
        return true;
    uint64_t wait = (uint64_t)(-in->chan_tokens * 1e6 / CHAN_RATE) + 1000;
    seed_source_set_events(in->chan_src, 0);
    if (in->chan_timer)
        seed_timer_restart(in->chan_timer, wait);
    else
        seed_loop_add_timer(in->node->loop, wait, chan_resume, in, &in->chan_timer);
    return false;
}

/* Bounded per call: a process printing without pause must not keep the node's loop
 * here; the rest waits for the next turn (and the init holds its output back). */
static void drain_channel(instance *in) {
    char buf[SEED_INIT_MAX_MSG];
    for (int i = 0; i < 256; i++) {
        ssize_t n = recv(in->chan, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0)
            return;
        handle_message(in, buf, (size_t)n);
        if (in->chan_src && !chan_within_rate(in, (size_t)n))
            return;
    }
}

static int on_channel(seed_source *s, int fd, uint32_t events, void *userdata) {
    instance *in = userdata;
    drain_channel(in);
    if (events & (EPOLLHUP | EPOLLERR)) {
        /* The init is gone or going; its exit is handled through the pidfd. */
        seed_source_free(in->chan_src);
        in->chan_src = NULL;
    }
    return 0;
}

/* ---- lifecycle ---- */

static void release_resources(instance *in) {
    node *n = in->node;
    /* Shoots hold the volumes too: they go first. */
    instance_shoots_stop(in);
    instance_secrets_teardown(in);
    if (in->cg) {
        n->cg_ops->kill_all(in->cg); /* stragglers, should the PID namespace not have ended them */
        n->cg_ops->destroy(in->cg);
        n->cg_ops->free(in->cg);
        in->cg = NULL;
    }
    for (size_t i = 0; i < in->n_vols; i++) {
        in->vols[i].borrowed = false;
        if (!in->vols[i].mounted)
            continue;
        node_volume *heir = NULL;
        for (size_t k = 0; in->peer && k < in->peer->n_vols; k++)
            if (in->peer->vols[k].borrowed && streq(in->peer->vols[k].mountpoint, in->vols[i].mountpoint))
                heir = &in->peer->vols[k];
        if (heir) {
            /* The instance that replaced this one uses it: it is its now. */
            heir->borrowed = false;
            heir->mounted = true;
            in->vols[i].mounted = false;
            continue;
        }
        int r = seed_volume_umount(in->vols[i].mountpoint);
        if (r < 0)
            log_warning("%s: unmounting volume %s: %s", in->spec->name, in->vols[i].spec->name, strerror(-r));
        in->vols[i].mounted = false;
    }
}

static int cmp_bind_target(const void *a, const void *b) {
    /* A parent is a prefix of its children, so it sorts before them. */
    return strcmp(((const seed_bind *)a)->target, ((const seed_bind *)b)->target);
}

static int retry_fire(seed_source *s, void *userdata);

static void schedule_retry(instance *in) {
    unsigned delay = MIN(RETRY_FIRST_MS << MIN(in->failures, 10u), RETRY_MAX_MS);
    in->failures++;
    seed_logfile_printf(in->log, "seed", "retrying in %u ms", delay);
    if (!in->retry_timer)
        seed_loop_add_timer(in->node->loop, (uint64_t)delay * 1000, retry_fire, in, &in->retry_timer);
    else
        seed_timer_restart(in->retry_timer, (uint64_t)delay * 1000);
}

static int retry_fire(seed_source *s, void *userdata) {
    instance *in = userdata;
    if (in->state == INST_FAILED && !in->node->stopping && !in->stop_requested)
        instance_start(in);
    return 0;
}

static void fail_start(instance *in, seed_error *e, bool retry) {
    free(in->last_error);
    in->last_error = strdup(e ? e->msg : "unknown error");
    log_error("%s: cannot start: %s", in->spec->name, in->last_error);
    node_event(in->node, "instance-failed", in->src->name, in->spec->name, "cannot start: %s",
               in->last_error);
    seed_logfile_printf(in->log, "seed", "cannot start the instance: %s", in->last_error);
    release_resources(in);
    if (!retry)
        unpublish_ports(in); /* it waits for `seed start`: its ports are free meanwhile */
    set_state(in, INST_FAILED);
    if (retry)
        schedule_retry(in);
}

static int on_exit_fd(seed_source *s, int fd, uint32_t events, void *userdata) {
    instance *in = userdata;
    node *n = in->node;
    drain_channel(in);
    seed_source_free(in->exit_src);
    in->exit_src = NULL;
    seed_source_free(in->chan_src);
    in->chan_src = NULL;
    seed_source_free(in->chan_timer);
    in->chan_timer = NULL;
    seed_source_free(in->kill_timer);
    in->kill_timer = NULL;
    if (in->chan >= 0)
        close(in->chan);
    in->chan = -1;
    in->exit_status = seed_sandbox_container.reap(&in->sb);
    record_end(in);
    release_resources(in);
    for (size_t i = 0; i < in->n_procs; i++) {
        in->procs[i].pid = 0;
        in->procs[i].next_restart_at = 0;
    }

    if (in->stop_requested || n->stopping) {
        if (!in->restart_after_stop)
            unpublish_ports(in); /* docker's way: a stopped container's ports are free */
        log_info("%s: stopped", in->spec->name);
        seed_logfile_printf(in->log, "seed", "instance stopped");
        in->stop_requested = false;
        set_state(in, INST_STOPPED);
        if (in->restart_after_stop && !n->stopping) {
            in->restart_after_stop = false;
            instance_start(in);
        }
        node_instance_changed(in);
        return 0;
    }
    if (in->finished) {
        log_info("%s: every process finished; the instance is done", in->spec->name);
        seed_logfile_printf(in->log, "seed", "every process finished; the instance is done");
        set_state(in, INST_EXITED);
        return 0;
    }
    /* The init itself ended unexpectedly (killed from outside, or crashed). */
    char what[96];
    if (WIFSIGNALED(in->exit_status))
        snprintf(what, sizeof(what), "killed by signal %d", WTERMSIG(in->exit_status));
    else
        snprintf(what, sizeof(what), "exited with status %d", WEXITSTATUS(in->exit_status));
    seed_error e = {.code = ECHILD, .msg = what};
    log_warning("%s: the instance's init %s", in->spec->name, what);
    fail_start(in, &e, true);
    return 0;
}

static int kill_fire(seed_source *s, void *userdata) {
    instance *in = userdata;
    in->kill_timer = NULL;
    seed_source_free(s);
    if (in->sb.pidfd >= 0) {
        seed_logfile_printf(in->log, "seed", "did not stop within the grace period: killing it");
        seed_sandbox_container.kill(&in->sb, SIGKILL);
    }
    return 0;
}

/* ---- what the next seedd needs to adopt a running instance ---- */

static void fds_key(const instance *in, char *buf, size_t size) {
    snprintf(buf, size, "%s/%s/%d", in->ns, in->spec->name, in->alt);
}

void instance_record(instance *in) {
    node *n = in->node;
    if (!remote(in) || in->sb.pidfd < 0)
        return;
    json_t *mounts = json_array();
    for (size_t i = 0; i < in->n_vols; i++)
        if (in->vols[i].mounted || in->vols[i].borrowed) /* borrowed: handed over when the old one stops */
            json_array_append_new(mounts, json_string(in->vols[i].mountpoint));
    static const char *const roles[] = {"active", "successor", "retiring"};
    json_t *rec = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:i, s:I, s:i, s:s, s:s, s:o, s:s}", "source",
                            in->src->name, "namespace", in->ns, "name", in->spec->name, "alt", in->alt,
                            "identity", in->identity_override ? in->identity_override : in->spec->identity,
                            "tree", in->proj->p->dir, "pid", (int)in->sb.pid, "startedAt",
                            (json_int_t)in->started_at, "starts", (int)in->starts, "ifname", in->ifname,
                            "cgpath", in->cgpath, "mounts", mounts, "role", roles[in->role]);
    if (!rec || seed_state_running_put(n->db, in->ns, in->spec->name, in->alt, rec) < 0)
        log_warning("%s: recording it for the next daemon failed", in->spec->name);
    json_decref(rec);
}

static void record_start(instance *in) {
    if (!remote(in))
        return;
    char key[160];
    fds_key(in, key, sizeof(key));
    int fds[2] = {in->chan, in->sb.pidfd};
    json_t *r = node_keeper(in->node, json_pack("{s:s, s:s}", "op", "store", "key", key), fds, 2, NULL, NULL);
    json_decref(r);
    instance_record(in);
}

void instance_keeper_restore(instance *in) {
    if (in->sb.pidfd >= 0 && in->chan >= 0)
        record_start(in);
    if (in->has_ports) {
        _cleanup_error_ seed_error *err = NULL;
        in->has_ports = false;
        if (remote_publish(in, &err) < 0)
            log_error("%s: publishing its ports again: %s", in->spec->name, err->msg);
    }
}

static void record_end(instance *in) {
    if (!remote(in) || in->node->detaching)
        return;
    char key[160];
    fds_key(in, key, sizeof(key));
    json_decref(
        node_keeper(in->node, json_pack("{s:s, s:s}", "op", "drop", "key", key), NULL, 0, NULL, NULL));
    seed_state_running_delete(in->node->db, in->ns, in->spec->name, in->alt);
}

void instance_start(instance *in) {
    node *n = in->node;
    const seed_instance *s = in->spec;
    if (in->state == INST_RUNNING || in->state == INST_STARTING || in->state == INST_STOPPING || n->stopping)
        return;
    _cleanup_error_ seed_error *err = NULL;
    /* A store path root: the store must hold it and everything it refers to; what the
     * instance sees under /nix/store is exactly that closure. Asked once: a store path
     * never changes. */
    if ((s->root_kind == SEED_ROOT_STORE || s->toplevel) && !in->closure) {
        if (seed_nix_closure_of(s->toplevel ? "toplevel" : "root", s->toplevel ? s->toplevel : s->root_path,
                                &in->closure, &err) < 0 ||
            !(in->closure_paths = calloc(in->closure->n, sizeof(char *)))) {
            if (!err)
                seed_error_set(&err, ENOMEM, "out of memory");
            seed_nix_closure_free(TAKE_PTR(in->closure));
            fail_start(in, err, false);
            return;
        }
        for (size_t i = 0; i < in->closure->n; i++)
            in->closure_paths[i] = in->closure->p[i].path;
    }
    set_state(in, INST_STARTING);
    in->finished = false;
    in->stop_requested = false;
    uint64_t t0 = seed_now_usec();

    /* Limits. */
    seed_limits lim = instance_limits(s);
    if (n->cg_ops->create(in->cgpath, &lim, &in->cg, &err) < 0) {
        fail_start(in, err, true);
        return;
    }
    if (n->cg_ops->oom_kills(in->cg, &in->oom_kills) < 0)
        in->oom_kills = 0;

    /* Volumes. */
    seed_bind binds[SEED_SPEC_MAX_ENTRIES + 4];
    size_t n_binds = 0;
    _cleanup_free_ char *nix_dir = NULL;
    char created[40];
    seed_format_utc(seed_realtime_usec(), 0, created, sizeof(created));
    for (size_t i = 0; i < in->n_vols; i++) {
        node_volume *v = &in->vols[i];
        /* A volume never shrinks (its data might not fit): it keeps the size it has. */
        uint64_t size = v->spec->size_bytes;
        node_volume *lent = NULL;
        for (size_t k = 0; in->peer && k < in->peer->n_vols; k++)
            if (in->peer->vols[k].mounted && streq(in->peer->vols[k].mountpoint, v->mountpoint))
                lent = &in->peer->vols[k];
        if (lent) {
            /* Rolling: the instance this one replaces has it mounted; both use it until
             * the old one stops and hands it over. */
            v->borrowed = true;
            binds[n_binds++] = (seed_bind){.source = v->mountpoint, .target = v->spec->mount_point};
            continue;
        }
        seed_volume_row old;
        if (seed_state_volume_get(n->db, in->ns, s->name, v->spec->name, &old) == 0) {
            if (old.size_bytes > size) {
                seed_logfile_printf(
                    in->log, "seed",
                    "volume %s is %llu bytes and the spec asks for %llu: shrinking a volume is "
                    "not supported (its data might not fit); it keeps its size",
                    v->spec->name, (unsigned long long)old.size_bytes, (unsigned long long)size);
                log_warning("%s: volume %s keeps its size %llu bytes: shrinking is not supported", s->name,
                            v->spec->name, (unsigned long long)old.size_bytes);
                size = old.size_bytes;
            }
            seed_volume_row_clear(&old);
        }
        seed_volume_row row = {.namespace = (char *)in->ns,
                               .instance = (char *)s->name,
                               .name = v->spec->name,
                               .size_bytes = size,
                               .image = v->image,
                               .uid = in->id_base,
                               .created = created};
        if (seed_volume_ensure(v->image, size, in->id_base, &err) < 0 ||
            seed_state_volume_put(n->db, &row, &err) < 0 ||
            seed_volume_mount(v->image, v->mountpoint, size, in->id_base, &err) < 0) {
            seed_error_prefix(&err, "storage.%s: ", v->spec->name);
            /* Not enough disk does not fix itself: no retries; `seed start` tries again. */
            fail_start(in, err, err->code != ENOSPC);
            return;
        }
        v->mounted = true;
        binds[n_binds++] = (seed_bind){.source = v->mountpoint, .target = v->spec->mount_point};
    }

    /* nix.enable: /nix is the volume's nix/, the instance's own (its root uid owns it);
     * a store root's closure is bound read-only over its store (see rootfs.c). */
    for (size_t i = 0; s->nix_enable && !nix_dir && i < in->n_vols; i++) {
        node_volume *v = &in->vols[i];
        if (!streq(v->spec->name, s->nix_volume))
            continue;
        if (asprintf(&nix_dir, "%s/nix", v->mountpoint) < 0 ||
            ((mkdir(nix_dir, 0755) < 0 && errno != EEXIST) ||
             lchown(nix_dir, in->id_base, in->id_base) < 0)) {
            seed_error_setp(&err, errno ?: ENOMEM, "nix: preparing the store on volume %s", v->spec->name);
            fail_start(in, err, true);
            return;
        }
        binds[n_binds++] = (seed_bind){.source = nix_dir, .target = "/nix"};
    }

    /* Parents first: a volume whose mount point lies in another volume is mounted after
     * it, inside it (the storage map is in name order). */
    qsort(binds, n_binds, sizeof(seed_bind), cmp_bind_target);

    /* Files, network, the init and its channel. */
    gen_files files = {0};
    build_files(in, &files, false);
    size_t n_volume_binds = n_binds;
    /* Its identity and secrets: after the binds its shoots share, which get neither. A
     * secret that does not decrypt will not next time either: no retries. */
    if (instance_secrets_setup(in, binds, &n_binds, &err) < 0) {
        gen_free(&files);
        fail_start(in, err, false);
        return;
    }
    binds[n_binds++] =
        (seed_bind){.source = in->src->hosts_path, .target = "/etc/hosts", .readonly = true, .file = true};
    if (s->shoot_enable && node_shoots_setup(n, &err) < 0) {
        /* The instance runs, but its shoots cannot: say so; requests will get 503. */
        log_error("%s: shoots unavailable: %s", s->name, err->msg);
        seed_logfile_printf(in->log, "seed", "shoots unavailable: %s", err->msg);
        seed_error_free(TAKE_PTR(err));
    }
    if (s->shoot_enable && n->shoot_client) {
        /* seed-shoot, on PATH in every process of the instance */
        binds[n_binds++] = (seed_bind){
            .source = n->shoot_client, .target = "/seed/bin/seed-shoot", .readonly = true, .file = true};
    }
    unsigned tcp[SEED_SPEC_MAX_ENTRIES], udp[SEED_SPEC_MAX_ENTRIES];
    size_t n_tcp = 0, n_udp = 0;
    for (size_t i = 0; i < s->n_expose; i++) {
        if (seed_protocol_uses_tcp(s->expose[i].protocol))
            tcp[n_tcp++] = s->expose[i].port;
        if (seed_protocol_uses_udp(s->expose[i].protocol))
            udp[n_udp++] = s->expose[i].port;
    }
    in->starts++;
    /* A rolling successor has the same slot: "b" keeps its link apart from the old one's. */
    snprintf(in->ifname, sizeof(in->ifname), "sv%x%s.%x", in->slot, in->alt ? "b" : "", in->starts & 0xfff);

    int cfg = instance_init_config_fd(in, &err);
    int sp[2] = {-1, -1};
    if (cfg < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        if (cfg >= 0)
            seed_error_setp(&err, errno, "socketpair");
        if (cfg >= 0)
            close(cfg);
        gen_free(&files);
        fail_start(in, err, true);
        return;
    }
    /* The node's end must not block the loop, and a slow reader must not lose lines:
     * a large receive buffer, and the init applies backpressure beyond it. */
    int big = 4 << 20;
    setsockopt(sp[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    int pass[2] = {cfg, sp[1]};
    seed_sandbox_config c;
    instance_sandbox_config(in, &c, binds, n_binds, &files, pass, 2);
    c.net = (seed_sandbox_net){.attach = true,
                               .host_ifname = in->ifname,
                               .bridge_ifindex = n->net.bridge_ifindex,
                               .addr = in->addr,
                               .gateway = n->net.gateway,
                               .prefix = n->net.subnet.prefix,
                               .firewall = true,
                               .tcp_ports = tcp,
                               .n_tcp = n_tcp,
                               .udp_ports = udp,
                               .n_udp = n_udp};
    c.cgroup = in->cg;
    c.survive_node = n->opt.daemon;
    int r = seed_sandbox_container.start(&c, &in->sb, &err);
    close(cfg);
    close(sp[1]);
    gen_free(&files);
    if (r < 0) {
        close(sp[0]);
        fail_start(in, err, true);
        return;
    }
    in->chan = sp[0];
    in->chan_tokens = CHAN_BURST;
    in->chan_refilled = seed_now_usec();
    fcntl(in->chan, F_SETFL, O_NONBLOCK);
    if (seed_loop_add_io(n->loop, in->sb.pidfd, EPOLLIN, on_exit_fd, in, &in->exit_src) < 0 ||
        seed_loop_add_io(n->loop, in->chan, EPOLLIN, on_channel, in, &in->chan_src) < 0) {
        seed_sandbox_container.kill(&in->sb, SIGKILL);
        seed_sandbox_container.reap(&in->sb);
        seed_source_free(TAKE_PTR(in->exit_src));
        close(in->chan);
        in->chan = -1;
        seed_error_set(&err, ENOMEM, "watching the instance");
        fail_start(in, err, true);
        return;
    }
    /* Published once its link is up: a relay that connected earlier would lose its SYN
     * and wait out TCP's first retransmission (a second). */
    if (publish_ports(in, &err) < 0) {
        seed_source_free(TAKE_PTR(in->exit_src));
        seed_source_free(TAKE_PTR(in->chan_src));
        seed_sandbox_container.kill(&in->sb, SIGKILL);
        seed_sandbox_container.reap(&in->sb);
        close(in->chan);
        in->chan = -1;
        fail_start(in, err, true);
        return;
    }
    if (s->shoot_enable && instance_shoots_start(in, binds, n_volume_binds, &err) < 0) {
        /* The instance runs, but its shoots cannot: say so; requests will get 503. */
        log_error("%s: shoots unavailable: %s", s->name, err->msg);
        seed_logfile_printf(in->log, "seed", "shoots unavailable: %s", err->msg);
        seed_error_free(TAKE_PTR(err));
    }
    in->failures = 0;
    in->started_at = seed_realtime_usec();
    free(in->last_error);
    in->last_error = NULL;
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &in->addr, a, sizeof(a));
    log_info("%s: running at %s (pid %d, started in %.1f ms)", s->name, a, (int)in->sb.pid,
             (double)(seed_now_usec() - t0) / 1000.0);
    seed_logfile_printf(in->log, "seed", "instance started at %s", a);
    set_state(in, INST_RUNNING);
    record_start(in);
}

void instance_adopted(instance *in) {
    node *n = in->node;
    in->chan_tokens = CHAN_BURST;
    in->chan_refilled = seed_now_usec();
    in->state = INST_RUNNING;
    if (seed_loop_add_io(n->loop, in->sb.pidfd, EPOLLIN, on_exit_fd, in, &in->exit_src) < 0 ||
        (in->chan >= 0 && seed_loop_add_io(n->loop, in->chan, EPOLLIN, on_channel, in, &in->chan_src) < 0))
        log_error("%s: watching the adopted instance failed", in->spec->name);
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &in->addr, a, sizeof(a));
    log_info("%s: adopted at %s (pid %d)%s", in->spec->name, a, (int)in->sb.pid,
             in->identity_override ? "; its spec changed since it started" : "");
    seed_logfile_printf(in->log, "seed", "adopted by a new seedd (pid %d)", (int)getpid());
    instance_record(in);
}

void instance_adopted_shoots(instance *in) {
    node *n = in->node;
    /* Its shoot templates ended with the previous daemon: new ones, on its volumes. */
    if (in->spec->shoot_enable && in->state == INST_RUNNING) {
        seed_bind binds[SEED_SPEC_MAX_ENTRIES + 1];
        size_t n_binds = 0;
        for (size_t i = 0; i < in->n_vols; i++)
            if (in->vols[i].mounted || in->vols[i].borrowed)
                binds[n_binds++] =
                    (seed_bind){.source = in->vols[i].mountpoint, .target = in->vols[i].spec->mount_point};
        qsort(binds, n_binds, sizeof(seed_bind), cmp_bind_target);
        _cleanup_error_ seed_error *err = NULL;
        if (node_shoots_setup(n, &err) < 0 || instance_shoots_start(in, binds, n_binds, &err) < 0) {
            log_error("%s: shoots unavailable: %s", in->spec->name, err->msg);
            seed_logfile_printf(in->log, "seed", "shoots unavailable: %s", err->msg);
        }
    }
}

void instance_stop(instance *in) {
    if (in->state == INST_FAILED || in->state == INST_EXITED) {
        seed_source_free(in->retry_timer);
        in->retry_timer = NULL;
        unpublish_ports(in);
        set_state(in, INST_STOPPED);
        node_instance_changed(in);
        return;
    }
    if (in->state != INST_RUNNING && in->state != INST_STARTING)
        return;
    in->stop_requested = true;
    set_state(in, INST_STOPPING);
    unsigned grace = in->stop_grace_ms ? in->stop_grace_ms : in->node->opt.grace_ms;
    seed_init_hdr h = {.type = SEED_INIT_STOP, .arg = grace, .ts_usec = seed_realtime_usec()};
    if (in->chan < 0 || send(in->chan, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        seed_sandbox_container.kill(&in->sb, SIGTERM);
    /* The init kills its processes after the grace period; if it does not exit a
     * little after that, end the whole PID namespace. */
    seed_loop_add_timer(in->node->loop, (uint64_t)(grace + 3000) * 1000, kill_fire, in, &in->kill_timer);
}

void instance_restart(instance *in) {
    if (in->state == INST_RUNNING || in->state == INST_STARTING) {
        in->restart_after_stop = true;
        instance_stop(in);
    } else if (in->state != INST_STOPPING) {
        instance_start(in);
    } else {
        in->restart_after_stop = true;
    }
}

const char *instance_state_name(const instance *in) {
    if (in->state == INST_RUNNING)
        for (size_t i = 0; i < in->n_procs; i++)
            if (in->procs[i].pid == 0 && in->procs[i].next_restart_at)
                return "restarting";
    return inst_state_name(in->state);
}
