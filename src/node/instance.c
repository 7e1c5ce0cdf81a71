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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "init/protocol.h"
#include "node/deploy.h"
#include "node/volume.h"
#include "spec/names.h"

#define ID_RANGE 65536u
#define ID_BASE 0x70000000u /* slot n maps uid 0 to ID_BASE + n * 65536 */
#define RETRY_FIRST_MS 1000u
#define RETRY_MAX_MS 60000u
#define LOG_MAX_BYTES (8u << 20)

const char *inst_state_name(inst_state s) {
    static const char *const names[] = {"stopped", "starting", "running", "stopping", "exited", "failed"};
    return names[s];
}

static void set_state(instance *in, inst_state s) {
    in->state = s;
    control_instance_changed(in);
    apply_instance_changed(in);
}

static int open_log(instance *in, instance *from, seed_error **err);

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

static void unpublish_ports(instance *in) {
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
    if (in->proxies || s->n_expose == 0 || in->defer_ports)
        return 0;
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
    node_project_unref(in->proj);
    free(in);
}

/* ---- what goes into the sandbox ---- */

typedef struct strv {
    char **v;
    size_t n, cap;
} strv;

static int strv_push(strv *s, char *str) {
    if (!str)
        return -ENOMEM;
    if (s->n + 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        char **nv = realloc(s->v, ncap * sizeof(char *));
        if (!nv) {
            free(str);
            return -ENOMEM;
        }
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
    return 0;
}

/* Set KEY=value, replacing an earlier KEY. */
static int env_set(strv *env, const char *key, const char *value) {
    char *kv = NULL;
    if (asprintf(&kv, "%s=%s", key, value) < 0)
        return -ENOMEM;
    size_t klen = strlen(key);
    for (size_t i = 0; i < env->n; i++)
        if (strncmp(env->v[i], key, klen) == 0 && env->v[i][klen] == '=') {
            free(env->v[i]);
            env->v[i] = kv;
            return 0;
        }
    return strv_push(env, kv);
}

/* The instance environment: the basics, connect variables, the instance's env. */
static int instance_env(instance *in, strv *env) {
    const seed_instance *s = in->spec;
    int r = env_set(env, "PATH",
                    s->shoot_enable ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/seed/bin"
                                    : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    if (r >= 0)
        r = env_set(env, "HOSTNAME", s->name);
    if (r >= 0)
        r = env_set(env, "SEED_INSTANCE", s->name);
    if (r >= 0)
        r = env_set(env, "SEED_NAMESPACE", in->ns);
    if (r >= 0 && s->shoot_enable) {
        char url[64];
        node_shoot_url(in->node, url, sizeof(url));
        r = env_set(env, "SEED_SHOOT_URL", url);
    }
    for (size_t i = 0; r >= 0 && i < s->n_connect; i++) {
        _cleanup_free_ char *key = seed_connect_env_name(s->connect[i].name);
        r = key ? env_set(env, key, s->connect[i].service) : -ENOMEM;
    }
    for (size_t i = 0; r >= 0 && i < s->n_env; i++)
        r = env_set(env, s->env[i].key, s->env[i].value);
    return r;
}

char **instance_environment(instance *in) {
    strv env = {0};
    if (instance_env(in, &env) >= 0)
        return env.v;
    strv_free(env.v);
    return NULL;
}

static json_t *strv_json(char **v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* The init's configuration, in a sealed memfd it reads as fd 3. */
static int init_config_fd(instance *in, seed_error **err) {
    const seed_instance *s = in->spec;
    strv base = {0};
    int r = instance_env(in, &base);
    json_t *procs = json_array();
    for (size_t i = 0; r >= 0 && procs && i < s->n_processes; i++) {
        const seed_process *p = &s->processes[i];
        strv env = {0};
        for (size_t j = 0; r >= 0 && j < base.n; j++)
            r = strv_push(&env, strdup(base.v[j]));
        for (size_t j = 0; r >= 0 && j < p->n_env; j++)
            r = env_set(&env, p->env[j].key, p->env[j].value);
        json_t *cmd = strv_json(p->command, p->n_command);
        json_array_append_new(procs, json_pack("{s:s, s:o, s:o, s:s, s:s, s:s}", "name", p->name, "argv", cmd,
                                               "env", strv_json(env.v, env.n), "cwd", p->cwd ? p->cwd : "/",
                                               "user", p->user ? p->user : "root", "restart",
                                               seed_restart_to_string(p->restart)));
        strv_free(env.v);
    }
    json_t *c = r >= 0 && procs ? json_pack("{s:s, s:i, s:o, s:o}", "name", s->name, "grace_ms",
                                            (int)in->node->opt.grace_ms, "env_file",
                                            strv_json(base.v, base.n), "processes", procs)
                                : NULL;
    strv_free(base.v);
    _cleanup_free_ char *text = c ? json_dumps(c, JSON_COMPACT) : NULL;
    json_decref(c);
    if (!text)
        return seed_error_set(err, ENOMEM, "building the init configuration");
    int fd = seed_memfd_sealed("seed-init-config", text, strlen(text));
    if (fd < 0)
        return seed_error_setp(err, -fd, "writing the init configuration");
    return fd;
}

/* Files the sandbox gets: names of the namespace's instances, hostname, DNS, the
 * connect files, and for a host root the minimal account databases. */
static void gen_add(gen_files *g, char *path, char *content, unsigned mode) {
    if (path && content && g->n == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 16;
        seed_sandbox_file *f = realloc(g->f, ncap * sizeof(*f));
        if (f) {
            g->f = f;
            g->cap = ncap;
        }
    }
    if (!path || !content || g->n == g->cap) { /* out of memory */
        free(path);
        free(content);
        return;
    }
    g->f[g->n++] = (seed_sandbox_file){.path = path, .content = content, .mode = mode};
}

void gen_free(gen_files *g) {
    for (size_t i = 0; i < g->n; i++) {
        free((char *)g->f[i].path);
        free((char *)g->f[i].content);
    }
    free(g->f);
}

/* shoot: the files of the instance's shoots, which have no network, no peers and no
 * connect entries: only localhost in /etc/hosts. */
void build_files(instance *in, gen_files *g, bool shoot) {
    const seed_instance *s = in->spec;
    node *n = in->node;
    char *c = NULL;
    if (shoot) {
        gen_add(g, strdup("/etc/hosts"), strdup("127.0.0.1\tlocalhost shoot\n::1\tlocalhost ip6-localhost\n"),
                0644);
        gen_add(g, strdup("/etc/hostname"), strdup("shoot\n"), 0644);
        gen_add(g, strdup("/etc/resolv.conf"), strdup("# seed: shoots have no network.\n"), 0644);
    } else {
        /* /etc/hosts is the namespace's, bound read-only (source.c keeps it current). */
        gen_add(g, strdup("/etc/hostname"), asprintf(&c, "%s\n", s->name) < 0 ? NULL : c, 0644);
        gen_add(g, strdup("/etc/resolv.conf"), strdup(n->resolv_conf), 0644);
    }
    for (size_t i = 0; !shoot && i < s->n_connect; i++) {
        char *path = NULL, *content = NULL;
        if (asprintf(&path, "/etc/seed/connect/%s", s->connect[i].name) < 0)
            path = NULL;
        int r = s->connect[i].port ? asprintf(&content, "%s:%u", s->connect[i].service, s->connect[i].port)
                                   : asprintf(&content, "%s", s->connect[i].service);
        gen_add(g, path, r < 0 ? NULL : content, 0644);
    }
    if (s->root_kind == SEED_ROOT_HOST) {
        gen_add(g, strdup("/etc/passwd"), strdup(n->host_passwd), 0644);
        gen_add(g, strdup("/etc/group"), strdup(n->host_group), 0644);
        gen_add(g, strdup("/etc/nsswitch.conf"),
                strdup("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
                       "protocols: files\nservices: files\nethers: files\nrpc: files\n"),
                0644);
    }
}

/* What every sandbox of an instance shares (its own, and its shoot templates'):
 * hostname, id range, root, the seed-init memfd; the caller adds network, cgroup and
 * anything particular. */
void instance_sandbox_config(instance *in, seed_sandbox_config *c, const seed_bind *binds, size_t n_binds,
                             const gen_files *files, const int *pass_fds, size_t n_pass_fds) {
    static char *const init_argv[] = {"seed-init", NULL};
    static char *const empty_env[] = {NULL};
    const seed_instance *s = in->spec;
    node *n = in->node;
    *c = (seed_sandbox_config){
        .hostname = s->name,
        .id_base = in->id_base,
        .id_count = ID_RANGE,
        .root = s->root_kind == SEED_ROOT_HOST ? SEED_SANDBOX_ROOT_HOST : SEED_SANDBOX_ROOT_DIR,
        .root_dir = s->root_path,
        .scratch_dir = n->scratch_dir,
        .tmp_bytes = instance_tmp_bytes(s),
        .run_bytes = instance_run_bytes(s),
        .binds = binds,
        .n_binds = n_binds,
        .files = files->f,
        .n_files = files->n,
        .cgroup_ops = n->cg_ops,
        .security = n->sec,
        .exec_fd = n->init_fd,
        .argv = init_argv,
        .envp = empty_env,
        .pass_fds = pass_fds,
        .n_pass_fds = n_pass_fds,
    };
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
        node_instance_stopped(n);
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

void instance_start(instance *in) {
    node *n = in->node;
    const seed_instance *s = in->spec;
    if (in->state == INST_RUNNING || in->state == INST_STARTING || in->state == INST_STOPPING || n->stopping)
        return;
    _cleanup_error_ seed_error *err = NULL;
    if (s->root_kind == SEED_ROOT_NONE) {
        seed_error_set(&err, EOPNOTSUPP,
                       "NixOS instances (toplevel) need a Nix store on the node, which this container "
                       "backend does not provide");
        fail_start(in, err, false);
        return;
    }
    set_state(in, INST_STARTING);
    in->finished = false;
    in->stop_requested = false;
    uint64_t t0 = seed_now_usec();

    if (publish_ports(in, &err) < 0) {
        fail_start(in, err, true);
        return;
    }

    /* Limits. */
    seed_limits lim = instance_limits(s);
    if (n->cg_ops->create(in->cgpath, &lim, &in->cg, &err) < 0) {
        fail_start(in, err, true);
        return;
    }
    if (n->cg_ops->oom_kills(in->cg, &in->oom_kills) < 0)
        in->oom_kills = 0;

    /* Volumes. */
    seed_bind binds[SEED_SPEC_MAX_ENTRIES + 1];
    size_t n_binds = 0;
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

    /* Parents first: a volume whose mount point lies in another volume is mounted after
     * it, inside it (the storage map is in name order). */
    qsort(binds, n_binds, sizeof(seed_bind), cmp_bind_target);

    /* Files, network, the init and its channel. */
    gen_files files = {0};
    build_files(in, &files, false);
    size_t n_volume_binds = n_binds;
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
    /* A rolling successor shares the slot: its veth must not take the old one's name. */
    snprintf(in->ifname, sizeof(in->ifname), "sv%x%s.%x", in->slot, in->alt ? "b" : "", in->starts & 0xfff);

    int cfg = init_config_fd(in, &err);
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
}

void instance_stop(instance *in) {
    if (in->state == INST_FAILED || in->state == INST_EXITED) {
        seed_source_free(in->retry_timer);
        in->retry_timer = NULL;
        unpublish_ports(in);
        set_state(in, INST_STOPPED);
        node_instance_stopped(in->node);
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

bool instance_settled(const instance *in) {
    return in->state == INST_STOPPED || in->state == INST_EXITED ||
           (in->state == INST_FAILED && in->sb.pidfd < 0);
}
