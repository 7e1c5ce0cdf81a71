/* What goes into an instance's sandbox (its own, and its shoots'): the environment,
 * the init's configuration, generated files, the sandbox configuration, the
 * namespace's /etc/hosts; and where the helper binaries are. Below instance.c,
 * shoots.c and exec.c, which all build sandboxes from it. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "image/nix.h"
#include "init/config.h"
#include "node/deploy.h"
#include "spec/names.h"

int node_helper_path(const char *override, const char *name, char *path, size_t size, seed_error **err) {
    if (override) {
        snprintf(path, size, "%s", override);
        return 0;
    }
    /* Installed (or built) next to the running seed binary. */
    ssize_t l = readlink("/proc/self/exe", path, size - 32);
    if (l < 0)
        return seed_error_setp(err, errno, "finding the seed binary");
    path[l] = 0;
    char *slash = strrchr(path, '/');
    snprintf(slash + 1, size - (size_t)(slash + 1 - path), "%s", name);
    return 0;
}

/* The instance environment (init/config.c), with the node's namespace and shoot URL. */
char **instance_environment(instance *in) {
    char url[64], **env = NULL;
    node_shoot_url(in->node, url, sizeof(url));
    return seed_instance_init_env(in->spec, in->ns, url, &env) < 0 ? NULL : env;
}

/* The init's configuration, in a sealed memfd it reads as fd 3. */
int instance_init_config_fd(instance *in, seed_error **err) {
    char url[64];
    node_shoot_url(in->node, url, sizeof(url));
    _cleanup_free_ char *text = NULL;
    if (seed_instance_init_config(in->spec, in->ns, url, in->node->opt.grace_ms, &text) < 0 ||
        instance_secrets_env(in, &text) < 0)
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
    /* nix.enable: single-user Nix as root of the instance (or its nix-daemon), builds
     * unsandboxed (a sandbox cannot nest namespaces inside this one), GC limits; a store
     * root's closure to register in the instance's own database. */
    if (s->nix_enable) {
        char *conf = NULL;
        char minf[64] = "", maxf[64] = "";
        if (s->nix_min_free)
            snprintf(minf, sizeof(minf), "min-free = %llu\n", (unsigned long long)s->nix_min_free_bytes);
        if (s->nix_max_free)
            snprintf(maxf, sizeof(maxf), "max-free = %llu\n", (unsigned long long)s->nix_max_free_bytes);
        gen_add(g, strdup("/etc/nix/nix.conf"),
                asprintf(&conf,
                         "# seed: nix.enable\nbuild-users-group =\nsandbox = false\n"
                         "experimental-features = nix-command flakes\n%s%s",
                         minf, maxf) < 0
                    ? NULL
                    : conf,
                0644);
        if (in->closure && in->closure->registration)
            gen_add(g, strdup("/etc/nix/closure-registration"), strdup(in->closure->registration), 0644);
    }
    /* A store path without its own accounts gets the two every system has. */
    char etc_passwd[4200];
    const char *store_root = s->toplevel                       ? s->toplevel
                             : s->root_kind == SEED_ROOT_STORE ? s->root_path
                                                               : NULL;
    snprintf(etc_passwd, sizeof(etc_passwd), "%s/etc/passwd", store_root ? store_root : "");
    if (store_root && access(etc_passwd, F_OK) < 0) {
        gen_add(g, strdup("/etc/passwd"),
                strdup("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"),
                0644);
        gen_add(g, strdup("/etc/group"), strdup("root:x:0:\nnogroup:x:65534:\n"), 0644);
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
        /* a NixOS system (toplevel) is a store root whose init takes seed-init's place */
        .root = s->root_kind == SEED_ROOT_HOST                   ? SEED_SANDBOX_ROOT_HOST
                : s->root_kind == SEED_ROOT_STORE || s->toplevel ? SEED_SANDBOX_ROOT_STORE
                                                                 : SEED_SANDBOX_ROOT_DIR,
        .root_dir = s->toplevel ? s->toplevel : s->root_path,
        .store_paths = in->closure_paths,
        .n_store_paths = in->closure ? in->closure->n : 0,
        .store_after_binds = s->nix_enable, /* over the instance's own store on its volume */
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

/* The shoot API, as instances reach it (SEED_SHOOT_URL). */
void node_shoot_url(node *n, char *buf, size_t size) {
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &n->net.gateway, a, sizeof(a));
    snprintf(buf, size, "http://%s:%d", a, SEED_SHOOT_PORT);
}

/* The namespace's /etc/hosts: the serving instance of each name. */
void node_source_write_hosts(node_source *s) {
    node *n = s->node;
    size_t cap = 256, o = 0;
    for (size_t i = 0; i < n->n_insts; i++)
        cap += 2 * strlen(n->insts[i]->spec->name) + 32;
    _cleanup_free_ char *buf = malloc(cap);
    if (!buf || !s->hosts_path)
        return;
    o += (size_t)snprintf(buf + o, cap - o,
                          "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (size_t i = 0; i < n->n_insts; i++) {
        instance *in = n->insts[i];
        if (in->src != s || in->role != ROLE_ACTIVE)
            continue;
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->addr, a, sizeof(a));
        o += (size_t)snprintf(buf + o, cap - o, "%s\tseed-%s %s\n", a, in->spec->name, in->spec->name);
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/hosts", n->run_dir);
    seed_mkdir_p(dir, 0755);
    /* Rewritten in place: every instance has this very file bound at /etc/hosts. */
    _cleanup_close_ int fd = open(s->hosts_path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 || pwrite(fd, buf, o, 0) != (ssize_t)o || ftruncate(fd, (off_t)o) < 0)
        log_warning("%s: writing %s: %m", s->name, s->hosts_path);
}
