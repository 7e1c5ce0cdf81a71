/* Shoots on the node: the pool manager's HTTP endpoint on the instance network, the
 * mapping from a caller's source address to its pool, and each shoot-enabled
 * instance's templates (sandboxes like the instance's, kept privileged inside their
 * user namespace, that make the warm sandboxes). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "node/node-internal.h"
#include "shoot/protocol.h"

/* Identify the caller by its source address: only running shoot-enabled instances
 * of this node are served. Addresses on the bridge cannot be forged from inside an
 * instance (no CAP_NET_ADMIN or CAP_NET_RAW there). */
static seed_shoot_pool *resolve(void *userdata, const struct sockaddr *peer, const char **why) {
    node *n = userdata;
    if (peer->sa_family != AF_INET) {
        *why = "shoots are served to instances of this node only";
        return NULL;
    }
    struct in_addr a = ((const struct sockaddr_in *)peer)->sin_addr;
    for (size_t i = 0; i < n->n_insts; i++) {
        instance *in = n->insts[i];
        if (in->addr.s_addr != a.s_addr)
            continue;
        if (!in->spec->shoot_enable) {
            *why = "this instance does not have shoot.enable";
            return NULL;
        }
        if (!in->shoots) {
            *why = "this instance's shoots are not running";
            return NULL;
        }
        return in->shoots;
    }
    *why = "shoots are served to instances of this node only";
    return NULL;
}

/* The memory limits of the instances that hold memory now, summed: what the shoot
 * memory budget is shared with. */
static uint64_t instances_memory(void *userdata) {
    node *n = userdata;
    uint64_t sum = 0;
    for (size_t i = 0; i < n->n_insts; i++) {
        inst_state st = n->insts[i]->state;
        if (st == INST_STARTING || st == INST_RUNNING || st == INST_STOPPING)
            sum += instance_limits(n->insts[i]->spec).memory_bytes;
    }
    return sum;
}

/* Half of the machine's memory (MemTotal), the default shoot memory budget. */
static uint64_t default_shoot_memory(void) {
    _cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
    char line[256];
    unsigned long long kib = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
            break;
    return (uint64_t)kib * 1024 / 2;
}

static int shoots_setup(node *n, seed_error **err);

static bool any_shoots(node *n) {
    for (size_t i = 0; i < n->n_insts; i++)
        if (n->insts[i]->spec->shoot_enable)
            return true;
    return false;
}

/* Once, when the first shoot-enabled instance starts. */
int node_shoots_setup(node *n, seed_error **err) {
    if (n->shoot_http || !any_shoots(n))
        return 0;
    int r = shoots_setup(n, err);
    if (r < 0)
        node_shoots_teardown(n); /* tried again at the next start */
    return r;
}

static int shoots_setup(node *n, seed_error **err) {
    char path[PATH_MAX];
    int r = node_helper_path(n->opt.shoot_client_path, "seed-shoot", path, sizeof(path), err);
    if (r < 0)
        return r;
    if (access(path, R_OK | X_OK) < 0)
        return seed_error_setp(err, errno, "seed-shoot (the in-instance client) at %s", path);
    n->shoot_client = strdup(path);

    seed_shoot_config cfg = {.warm = n->opt.shoot_warm,
                             .max_running = n->opt.shoot_max,
                             .queue_ms = n->opt.shoot_queue_ms,
                             .output_max = n->opt.shoot_output_max,
                             .memory_budget =
                                 n->opt.shoot_memory ? n->opt.shoot_memory : default_shoot_memory(),
                             .instances_memory = instances_memory,
                             .userdata = n};
    if (!cfg.memory_budget)
        return seed_error_set(err, EIO, "cannot read MemTotal from /proc/meminfo: give --shoot-memory");
    log_info("shoots: at most %u at once, memory budget %llu MiB (running instances and shoots)",
             cfg.max_running ? cfg.max_running : SEED_SHOOT_DEFAULT_MAX_RUNNING,
             (unsigned long long)(cfg.memory_budget >> 20));
    r = seed_shoot_engine_new(n->loop, &cfg, n->cg_ops, &n->shoot_engine);
    if (r < 0)
        return seed_error_setp(err, -r, "starting the shoot pool manager");

    /* The endpoint lives in the node's namespace, on the bridge's address: only the
     * instances can reach it. */
    n->shoot_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(SEED_SHOOT_PORT), .sin_addr = n->net.gateway};
    int one = 1;
    setsockopt(n->shoot_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (n->shoot_fd < 0 || bind(n->shoot_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(n->shoot_fd, 4096) < 0)
        return seed_error_setp(err, errno, "listening for shoots on port %d", SEED_SHOOT_PORT);
    return seed_shoot_http_new(n->loop, n->shoot_fd, resolve, n, &n->shoot_http, err);
}

void node_shoots_teardown(node *n) {
    for (size_t i = 0; i < n->n_insts; i++)
        instance_shoots_stop(n->insts[i]);
    seed_shoot_http_free(n->shoot_http);
    n->shoot_http = NULL;
    seed_shoot_engine_free(n->shoot_engine);
    n->shoot_engine = NULL;
    if (n->shoot_fd >= 0)
        close(n->shoot_fd);
    n->shoot_fd = -1;
    free(n->shoot_client);
    n->shoot_client = NULL;
}

/* A template's configuration (each template reads its own copy from its position). */
static int template_config_fd(const char *text, seed_error **err) {
    int fd = text ? seed_memfd_sealed("seed-template-config", text, strlen(text)) : -ENOMEM;
    if (fd < 0)
        return seed_error_setp(err, -fd, "writing the template configuration");
    return fd;
}

int instance_shoots_start(instance *in, const seed_bind *binds, size_t n_binds, seed_error **err) {
    node *n = in->node;
    const seed_instance *s = in->spec;
    if (!n->shoot_engine)
        return seed_error_set(err, ENOTCONN, "the pool manager is not running");
    char base[300];
    snprintf(base, sizeof(base), "%s-shoots", in->cgpath);
    seed_limits lim = instance_limits(s);
    int r = seed_shoot_pool_new(n->shoot_engine, s->name, base, &lim, s->shoot_max, &in->shoots, err);
    if (r < 0)
        return r;

    gen_files files = {0};
    build_files(in, &files, true);
    /* Volumes on /tmp or /run: each shoot mounts fresh tmpfs there and must put them
     * back on top. */
    json_t *keep = json_array();
    for (size_t i = 0; keep && i < n_binds; i++)
        if (seed_sandbox_on_scratch(binds[i].target))
            json_array_append_new(keep,
                                  json_pack("{s:s, s:b}", "target", binds[i].target, "file", binds[i].file));
    json_t *tc = json_pack("{s:I, s:s, s:I, s:I, s:o}", "keep_caps", (json_int_t)n->sec->keep_caps,
                           "hostname", "shoot", "tmp_bytes", (json_int_t)instance_tmp_bytes(s), "run_bytes",
                           (json_int_t)instance_run_bytes(s), "scratch_binds", keep);
    _cleanup_free_ char *tcfg = tc ? json_dumps(tc, JSON_COMPACT) : NULL;
    json_decref(tc);
    unsigned count =
        n->opt.shoot_templates ? n->opt.shoot_templates : (unsigned)MAX(sysconf(_SC_NPROCESSORS_ONLN), 1);
    for (unsigned i = 0; i < count && r >= 0; i++) {
        seed_cgroup *cg = NULL;
        if ((r = seed_shoot_pool_template_cgroup(in->shoots, i, &cg, err)) < 0)
            break;
        int cfg = template_config_fd(tcfg, err);
        int sp[2] = {-1, -1};
        if (cfg < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
            r = cfg < 0 ? cfg : seed_error_setp(err, errno, "socketpair");
            if (cfg >= 0)
                close(cfg);
            n->cg_ops->free(cg);
            break;
        }
        int pass[3] = {cfg, sp[1], n->sec->prog_fd}; /* the templates load the filter into each shoot */
        static char *const argv[] = {"seed-init", SEED_SHOOT_TEMPLATE_ARG, NULL};
        seed_sandbox_config c;
        instance_sandbox_config(in, &c, binds, n_binds, &files, pass, 3);
        c.hostname = "shoot";
        c.net = (seed_sandbox_net){.attach = false};
        c.cgroup = cg;
        c.argv = argv;
        c.template = true;
        seed_sandbox sb = {.pidfd = -1};
        r = seed_sandbox_container.start(&c, &sb, err);
        close(cfg);
        close(sp[1]);
        n->cg_ops->free(cg);
        if (r < 0) {
            close(sp[0]);
            break;
        }
        fcntl(sp[0], F_SETFL, O_NONBLOCK);
        if ((r = seed_shoot_pool_add_template(in->shoots, &sb, sp[0])) < 0) {
            seed_sandbox_container.kill(&sb, 9);
            seed_sandbox_container.reap(&sb);
            close(sp[0]);
            seed_error_setp(err, -r, "adding a shoot template");
        }
    }
    gen_free(&files);
    if (r < 0) {
        seed_shoot_pool_free(in->shoots);
        in->shoots = NULL;
        return r;
    }
    return 0;
}

void instance_shoots_stop(instance *in) {
    seed_shoot_pool *p = in->shoots;
    if (!p)
        return;
    /* Unreachable first: no request can find the pool while it is being freed. */
    in->shoots = NULL;
    seed_shoot_pool_free(p);
}
