/* Internal to the node component: the node and instance records shared by node.c
 * (lifecycle), instance.c (one instance's sandbox) and control.c (the socket). */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/event.h"
#include "node/egress.h"
#include "node/identity.h"
#include "node/logs.h"
#include "node/network.h"
#include "node/node.h"
#include "node/proxy.h"
#include "node/state.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"
#include "sandbox/security.h"
#include "shoot/http.h"
#include "shoot/pool.h"
#include "spec/spec.h"

#define ID_RANGE 65536u
#define ID_BASE 0x70000000u /* slot n maps uid 0 to ID_BASE + n * 65536 */

typedef enum inst_state {
    INST_STOPPED,
    INST_STARTING,
    INST_RUNNING,
    INST_STOPPING,
    INST_EXITED, /* every process finished for good */
    INST_FAILED, /* could not be started; retried with backoff */
} inst_state;

const char *inst_state_name(inst_state s);

typedef struct node_volume {
    const seed_volume *spec;
    char *image;      /* <state>/volumes/<ns>/<instance>/<volume>.img */
    char *mountpoint; /* <state>/run/volumes/<ns>/<instance>/<volume>, node namespace */
    bool mounted;     /* by this instance (it unmounts it, or hands it on) */
    bool borrowed;    /* mounted by the instance this one replaces (rolling) */
} node_volume;

typedef struct proc_info {
    char *name;
    int pid; /* in the instance; 0 when not running */
    unsigned restarts;
    int last_status;          /* wait status of its last run; -1: none yet */
    uint64_t next_restart_at; /* realtime usec of the next try while it waits; 0: none */
} proc_info;

struct node;
struct ctl_client;
struct node_source;
struct apply_step;

/* A loaded project, shared by the instances made from it: an instance keeps the
 * project it was made from (its spec points into it) until it is replaced. */
typedef struct node_project {
    seed_project *p;
    unsigned refs;
} node_project;
node_project *node_project_new(seed_project *p); /* takes p; one reference */
node_project *node_project_ref(node_project *np);
void node_project_unref(node_project *np);

/* Where an instance stands in a rollout. */
typedef enum inst_role {
    ROLE_ACTIVE,    /* the one that serves its name */
    ROLE_SUCCESSOR, /* rolling: started beside the active one, not serving yet */
    ROLE_RETIRING,  /* replaced or removed: stopping, then freed */
} inst_role;

typedef struct instance {
    struct node *node;
    struct node_source *src;
    node_project *proj; /* spec points into it */
    const seed_instance *spec;
    const char *ns; /* its source's namespace */
    inst_role role;
    bool alt;                /* on its second address (every rolling replace alternates) */
    bool defer_ports;        /* a rolling successor: ports move to it at the switch */
    struct instance *peer;   /* rolling: the old one for a successor and back */
    struct apply_step *step; /* the apply step waiting on it */
    bool owns_log;
    bool has_ports;          /* seedd: the keeper publishes its ports to it */
    char *identity_override; /* adopted: the identity it runs, when its spec changed since */
    unsigned slot;
    struct in_addr addr;
    uid_t id_base;
    char ifname[IFNAMSIZ];
    char cgpath[256];
    inst_state state;
    seed_sandbox sb;
    seed_source *exit_src;
    int chan; /* node end of the init channel */
    seed_source *chan_src;
    seed_cgroup *cg;
    uint64_t oom_kills;
    node_volume *vols;
    size_t n_vols;
    seed_logfile *log;
    char *log_path;
    proc_info *procs;
    size_t n_procs;
    unsigned restarts; /* process restarts inside the instance, all runs */
    unsigned starts;
    uint64_t started_at; /* realtime usec of the current run */
    int exit_status;     /* wait status of the last run's init */
    bool finished;       /* the init reported that every process is done */
    bool stop_requested;
    bool restart_after_stop;
    unsigned stop_grace_ms; /* a stop's own grace period (seed stop -t); 0: the node's */
    unsigned failures;
    seed_source *retry_timer, *kill_timer;
    char *last_error;
    char *rollout_error;        /* why the last rollout to replace it failed (seed ps) */
    struct ctl_client *waiters; /* control clients waiting for a stop/start */
    seed_shoot_pool *shoots;    /* shoot.enable: the pool of warm sandboxes */
    double chan_tokens;         /* what may be read from the init channel (bytes) */
    uint64_t chan_refilled;     /* monotonic usec */
    seed_source *chan_timer;    /* resumes reading a channel that went over its rate */
    seed_proxy **proxies;       /* its exposed ports on the node's --bind address */
    size_t n_proxies;
    struct seed_nix_closure *closure; /* root is a store path: its closure, asked once */
    const char **closure_paths;
    bool secrets_mounted;            /* its tmpfs for /seed/tpm and /run/secrets (secrets.c) */
    char *secrets_path;              /* that tmpfs, while mounted */
    char *secrets_tpm, *secrets_run; /* bind sources in that tmpfs */
    char **secret_env;               /* "NAME=value" of secrets with `env`, for the init */
    size_t n_secret_env;
} instance;

typedef struct node {
    seed_node_options opt;
    struct node_source **srcs;
    size_t n_srcs;
    char *state_dir, *run_dir, *scratch_dir;
    seed_state *db;
    seed_loop *loop;
    seed_node_net net;
    const seed_cgroup_ops *cg_ops;
    char node_id[16]; /* first 12 hex digits of sha256(state directory) */
    char cg_root[64]; /* "/seed/<node id>" */
    seed_egress egress;
    char *resolv_conf;
    seed_security *sec;
    int init_fd; /* sealed memfd with seed-init */
    char *host_passwd, *host_group;
    instance **insts; /* every instance of every source, successors included */
    size_t n_insts, cap_insts;
    int ctl_fd;
    seed_source *ctl_src;
    struct ctl_client *clients;
    int sig_fd;
    seed_source *sig_src;
    bool stopping;
    seed_source *stop_timer;
    int lock_fd;
    char *shoot_client; /* path of seed-shoot, bound into shoot-enabled instances */
    seed_shoot_engine *shoot_engine;
    seed_shoot_http *shoot_http;
    int shoot_fd;
    struct node_exec *execs; /* seed exec helpers not yet reaped */
    bool exit_when_stopped;  /* seed down: the daemon exits once every instance stopped */
    node_project *preloaded; /* seed up: its project, checked before anything starts */
    struct seed_webhook *webhook;
    int keeper_fd;                   /* seedd: the keeper's socket (node/keeper.h); -1 under seed up */
    seed_source *keeper_src;         /* its hang-up */
    void (*on_change)(instance *in); /* set by node.c: control, apply, stopping */
    void (*on_event)(struct node *n, struct json_t *ev); /* set by node.c: seed events -f */
    bool detaching;                                      /* seedd's SIGTERM: it exits, the instances stay */
    bool adopting;     /* seedd found a keeper: it adopts the instances that run */
    seed_node_key key; /* seals the instances' identities (node/identity.h) */
    bool have_key;
} node;

/* The cgroup limits of an instance's size tier (its shoots get the same). */
static inline seed_limits instance_limits(const seed_instance *s) {
    return (seed_limits){.memory_bytes = (uint64_t)s->memory_mib << 20,
                         .cpu_millis = s->vcpus * 1000,
                         .pids = 1024 * s->vcpus};
}

/* The tmpfs sizes of an instance's (and its shoots') /tmp and /run: half of its
 * memory, and an eighth of it up to 64 MiB. */
static inline uint64_t instance_tmp_bytes(const seed_instance *s) {
    return ((uint64_t)s->memory_mib << 20) / 2;
}
static inline uint64_t instance_run_bytes(const seed_instance *s) {
    return MIN(((uint64_t)s->memory_mib << 20) / 8, (uint64_t)64 << 20);
}

/* instance.c */
/* A new instance of src from spec (a project np holds; a reference is taken), not
 * started. alt: on its second address. */
int instance_new(struct node_source *src, node_project *np, const seed_instance *spec, bool alt,
                 instance *log_from, instance **ret, seed_error **err);
void instance_free(instance *in);
/* An unchanged instance moves to the new project (same identity, same content). */
void instance_adopt_spec(instance *in, node_project *np, const seed_instance *spec);
/* Rolling switch: the successor takes the ports (new connections go to it). */
void instance_take_ports(instance *successor, instance *old);
/* Adopted from the previous daemon (pidfd, channel, cgroup set): watch it as running. */
void instance_adopted(instance *in);
/* A new keeper: it gets the instance's channel, pidfd and ports again. */
void instance_keeper_restore(instance *in);
/* Then, once what the previous daemon left is cleaned up: its shoots. */
void instance_adopted_shoots(instance *in);
/* seedd: write what the next daemon needs to adopt it (its role changed, ...). */
void instance_record(instance *in);
/* TCP connections the instance's published ports still relay to it. */
size_t instance_open_connections(const instance *in);
void instance_start(instance *in);
void instance_stop(instance *in);
void instance_restart(instance *in);
/* Not running and not about to. */
static inline bool instance_settled(const instance *in) {
    return in->state == INST_STOPPED || in->state == INST_EXITED ||
           (in->state == INST_FAILED && in->sb.pidfd < 0);
}
/* What `seed ps` says: the state, or "restarting" while a running instance has a
 * process waiting to be restarted after it ended (a crash loop shows as one). */
const char *instance_state_name(const instance *in);
/* The environment every process of the instance starts with (NULL-terminated, owned). */
char **instance_environment(instance *in);

/* The init's configuration, in a sealed memfd it reads as fd 3 (files.c). */
int instance_init_config_fd(instance *in, seed_error **err);
/* Generated files of a sandbox (files.c). */
typedef struct gen_files {
    seed_sandbox_file *f; /* paths and contents owned */
    size_t n, cap;
} gen_files;
void build_files(instance *in, gen_files *g, bool shoot);
void gen_free(gen_files *g);
void instance_sandbox_config(instance *in, seed_sandbox_config *c, const seed_bind *binds, size_t n_binds,
                             const gen_files *files, const int *pass_fds, size_t n_pass_fds);

/* secrets.c */
/* Load the node key (once). */
int node_identity_key(node *n, seed_error **err);
/* Mount the instance's tmpfs with its identity and decrypted secrets; adds the binds
 * of /seed/tpm and /run/secrets. An error names the secret and why. */
int instance_secrets_setup(instance *in, seed_bind *binds, size_t *n_binds, seed_error **err);
void instance_secrets_teardown(instance *in);
/* What instance_free releases: no use of the node, which may be gone. */
void instance_secrets_free(instance *in);
/* Add the secret variables to every process of the init configuration text. */
int instance_secrets_env(const instance *in, char **text);
/* The `identity` control operation: the reply's members, or NULL with why. */
struct json_t *node_identity_request(node *n, struct json_t *req, char *why, size_t why_size);

/* shoots.c */
int node_shoots_setup(node *n, seed_error **err);
void node_shoots_teardown(node *n);
/* Start the instance's pool and templates (its volumes are mounted). */
int instance_shoots_start(instance *in, const seed_bind *binds, size_t n_binds, seed_error **err);
void instance_shoots_stop(instance *in);
/* The shoot API's URL as instances reach it (files.c). */
void node_shoot_url(node *n, char *buf, size_t size);

/* exec.c: `seed exec` (a command run inside a running instance for a control client).
 * Events come up through fn: STARTED once the command runs (pty_fd: the terminal's
 * master under tty, the callee's to close), then DONE (exit_code; error set when it
 * could not run). */
typedef struct node_exec node_exec;
typedef struct node_exec_event {
    enum { NODE_EXEC_STARTED, NODE_EXEC_DONE } type;
    int pty_fd;
    int exit_code;
    const char *error;
} node_exec_event;
typedef void (*node_exec_fn)(void *userdata, const node_exec_event *ev);
/* Start req (see node/exec.h) in a running instance; fds (stdio, kept by the caller)
 * are checked and handed to the command. */
int node_exec_start(instance *in, struct json_t *req, const int *fds, size_t n_fds, node_exec_fn fn,
                    void *userdata, node_exec **ret, seed_error **err);
/* The client went away: the command is killed, no more events. */
void node_exec_detach(node_exec *e);
/* At node teardown: kill and reap every helper. */
void node_exec_close_all(node *n);

/* control.c */
int control_listen(node *n, seed_error **err);
void control_close(node *n);
/* Tell clients waiting on this instance that its state changed. */
void control_instance_changed(instance *in);
/* Send an event to `seed events -f` followers. */
void control_event(node *n, struct json_t *ev);

/* node.c */
/* The active instance called name ("NAME" when unambiguous, or "SOURCE/NAME"): NULL
 * with *why set (static or in why_buf) when there is none or it is ambiguous. */
instance *node_find(node *n, const char *name, char *why, size_t why_size);
int node_add_instance(node *n, instance *in);
void node_remove_instance(node *n, instance *in); /* does not free it */
/* One request to the keeper; the reply (owned) or NULL (logged). */
struct json_t *node_keeper(node *n, struct json_t *req, const int *fds, size_t n_fds, int *rfds,
                           size_t *n_rfds);
/* Record and broadcast an event (seed events); also logged. */
void node_event(node *n, const char *kind, const char *source, const char *inst, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The path of a helper binary (seed-init, seed-shoot): override, or next to ours. */
int node_helper_path(const char *override, const char *name, char *path, size_t size, seed_error **err);
/* Called when an instance stopped; finishes a node shutdown when the last one did. */
void node_instance_stopped(node *n);
/* The hooks (registry.c): an instance changed state; events go up through them. */
void node_instance_changed(instance *in);
