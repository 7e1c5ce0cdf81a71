/* The node's lifecycle: take the state directory, set up (or, under seedd, join) the
 * node's private mount and network namespaces, clean up what a killed predecessor
 * left, add the sources and apply them, serve the control socket and webhooks; on
 * SIGINT/SIGTERM `seed up` stops everything gracefully, seedd exits and leaves its
 * instances to the keeper.
 *
 * Crash safety comes from the kernel: volumes are mounted in the node's private
 * mount namespace, the bridge and veths live in its private network namespace. Under
 * `seed up` every sandbox dies with the node (PR_SET_PDEATHSIG), so a node killed with
 * SIGKILL leaves no mounts, loop devices, links or processes; only empty cgroup
 * directories remain, and the next node removes them. Under seedd the keeper
 * (node/keeper.h) holds those namespaces and the instances outlive the daemon; the
 * next seedd adopts them, and once `seed down` stopped them the keeper ends and the
 * kernel takes the rest the same way. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "node/deploy.h"
#include "node/keeper.h"
#include "node/volume.h"
#include "source/fetch.h"
#include "source/webhook.h"

#define SETTING_FORWARD "host-ipv4-forward" /* what net.ipv4.ip_forward was before --egress */

static void on_webhook(void *userdata, const seed_webhook_event *ev) {
    node *n = userdata;
    node_source *s = ev->source ? node_source_find(n, ev->source) : NULL;
    const char *src = s ? s->name : NULL; /* never echo an unknown name into the log */
    switch (ev->kind) {
    case SEED_WEBHOOK_PUSH:
        node_event(n, "webhook-received", src, NULL, "%s push of %s to %s from %s (delivery %s)",
                   ev->provider ? ev->provider : "?", ev->after ? ev->after : "?", ev->ref ? ev->ref : "?",
                   ev->peer ? ev->peer : "?", ev->delivery ? ev->delivery : "-");
        if (s)
            node_source_request(s, "webhook", false, NULL, 0, NULL);
        break;
    case SEED_WEBHOOK_PING:
    case SEED_WEBHOOK_IGNORED:
        node_event(n, "webhook-received", src, NULL, "%s %s: %s (status %u)",
                   ev->provider ? ev->provider : "?", ev->kind == SEED_WEBHOOK_PING ? "ping" : "ignored",
                   ev->reason ? ev->reason : "-", ev->status);
        break;
    case SEED_WEBHOOK_REJECTED:
        node_event(n, "webhook-rejected", src, NULL, "status %u from %s: %s", ev->status,
                   ev->peer ? ev->peer : "?", ev->reason ? ev->reason : "-");
        break;
    }
}

/* What happens to an instance reaches the control socket's waiters, the apply that
 * waits on it, and a node that is stopping. */
static void on_instance_changed(instance *in) {
    control_instance_changed(in);
    apply_instance_changed(in);
    node_source_instance_changed(in);
    node_instance_stopped(in->node);
}

static int on_signal(seed_source *s, int fd, uint32_t events, void *userdata) {
    node *n = userdata;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if ((si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) && n->opt.daemon && !n->stopping) {
            /* The daemon goes; what it runs stays (the keeper holds it), and the
             * next seedd adopts it. seed down stops the instances. */
            log_info("%s: seedd exits; %zu instance%s keep running (seed down stops them)",
                     strsignal((int)si.ssi_signo), n->n_insts, n->n_insts == 1 ? "" : "s");
            n->detaching = true;
            seed_loop_exit(n->loop, 0);
        } else if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
            node_stop_all(n);
        } else if (si.ssi_signo == SIGHUP && !n->stopping) {
            /* Re-read every source and reconcile; never a stop (a terminal hang-up
             * must not take the instances down either). */
            log_info("SIGHUP: re-applying %zu source%s", n->n_srcs, n->n_srcs == 1 ? "" : "s");
            for (size_t i = 0; i < n->n_srcs; i++) {
                node_source_reload_secret(n->srcs[i]);
                node_source_request(n->srcs[i], "sighup", false, NULL, 0, NULL);
            }
            node_sources_changed(n); /* the webhook table gets the secrets */
        }
    }
    return 0;
}

/* seed-init, copied into a sealed memfd: exec'd from there, so no instance can reach
 * the node's copy on disk through /proc/1/exe, and nobody can change it underneath. */
static int load_init(node *n, seed_error **err) {
    char path[PATH_MAX];
    int r = node_helper_path(n->opt.init_path, "seed-init", path, sizeof(path), err);
    if (r < 0)
        return r;
    _cleanup_close_ int src = open(path, O_RDONLY | O_CLOEXEC);
    if (src < 0)
        return seed_error_setp(err, errno, "opening %s (seed-init, the instances' PID 1)", path);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    r = seed_read_fd(src, 64u << 20, &data, &len);
    if (r < 0)
        return seed_error_setp(err, -r, "reading %s", path);
    n->init_fd = seed_memfd_sealed("seed-init", data, len);
    if (n->init_fd < 0)
        return seed_error_setp(err, -n->init_fd, "keeping seed-init in memory");
    return 0;
}

/* The host's system accounts (uid/gid below 1000, and nobody) without passwords or
 * group members, for instances on the host root: enough for services that run as
 * www-data or nobody, nothing about the people who use the host. */
static char *filter_accounts(const char *file, bool group) {
    _cleanup_fclose_ FILE *f = fopen(file, "re");
    size_t cap = 4096, o = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = 0;
    char line[1024];
    while (f && fgets(line, sizeof(line), f)) {
        char *fields[7] = {0};
        int nf = 0;
        char *save = line;
        for (char *tok = strsep(&save, ":"); tok && nf < 7; tok = strsep(&save, ":"))
            fields[nf++] = tok;
        if (nf < (group ? 3 : 7))
            continue;
        long id = strtol(fields[2], NULL, 10);
        if (!(id < 1000 || id == 65534))
            continue;
        if (o + 512 > cap) {
            char *n = realloc(out, cap *= 2);
            if (!n)
                break;
            out = n;
        }
        if (group)
            o += (size_t)snprintf(out + o, cap - o, "%s:x:%ld:\n", fields[0], id);
        else
            o += (size_t)snprintf(out + o, cap - o, "%s:x:%ld:%s:%s:%s:%s", fields[0], id, fields[3],
                                  fields[4], fields[5], fields[6]);
    }
    if (o == 0)
        o += (size_t)snprintf(out, cap, group ? "root:x:0:\n" : "root:x:0:0:root:/root:/bin/sh\n");
    return out;
}

/* Kill and remove the cgroup at path and everything below it, deepest first (an
 * instance's shoots live in <instance>-shoots/sN). Returns how many were removed. */
static size_t remove_cgroup_tree(node *n, const char *path, unsigned depth) {
    size_t count = 0;
    char **children = NULL;
    if (depth < 8 && n->cg_ops->list_children(path, &children) == 0) {
        for (char **c = children; *c; c++) {
            char child[512];
            snprintf(child, sizeof(child), "%s/%s", path, *c);
            count += remove_cgroup_tree(n, child, depth + 1);
        }
        strv_free(children);
    }
    seed_cgroup *cg = NULL;
    if (depth > 0 && n->cg_ops->open(path, &cg) == 0) {
        n->cg_ops->kill_all(cg);
        if (n->cg_ops->destroy(cg) == 0)
            count++;
        n->cg_ops->free(cg);
    }
    return count;
}

/* Kill and remove cgroups a previous node on this state directory left behind. */
static void clean_leftover_cgroups(node *n) {
    size_t count = remove_cgroup_tree(n, n->cg_root, 0);
    if (count)
        log_info("removed %zu cgroup%s left by a previous node", count, count == 1 ? "" : "s");
}

static int take_state_dir(node *n, seed_error **err) {
    int r = seed_mkdir_p(n->opt.state_dir, 0700);
    if (r < 0)
        return seed_error_setp(err, -r, "creating the state directory %s", n->opt.state_dir);
    char real[PATH_MAX];
    if (!realpath(n->opt.state_dir, real))
        return seed_error_setp(err, errno, "resolving %s", n->opt.state_dir);
    n->state_dir = strdup(real);
    if (!n->state_dir || asprintf(&n->run_dir, "%s/run", real) < 0 ||
        asprintf(&n->scratch_dir, "%s/run/rootfs", real) < 0)
        return seed_error_set(err, ENOMEM, "out of memory");

    char lock[PATH_MAX + 16];
    snprintf(lock, sizeof(lock), "%s/" SEED_NODE_LOCK, real);
    n->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (n->lock_fd < 0)
        return seed_error_setp(err, errno, "opening %s", lock);
    if (flock(n->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t k = pread(n->lock_fd, pid, sizeof(pid) - 1, 0);
        if (k > 0)
            pid[strcspn(pid, "\n")] = 0;
        return seed_error_set(err, EBUSY, "another node is running on %s%s%s%s", real, *pid ? " (pid " : "",
                              pid, *pid ? ")" : "");
    }
    char pid[32];
    int l = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(n->lock_fd, 0) < 0 || pwrite(n->lock_fd, pid, (size_t)l, 0) != l)
        return seed_error_setp(err, errno, "writing %s", lock);

    if ((r = seed_mkdir_p(n->scratch_dir, 0700)) < 0)
        return seed_error_setp(err, -r, "creating %s", n->scratch_dir);
    /* Instances must be able to traverse to the scratch directory's mount. */
    chmod(n->state_dir, 0711);
    chmod(n->run_dir, 0711);
    chmod(n->scratch_dir, 0755);
    char db[PATH_MAX + 16];
    snprintf(db, sizeof(db), "%s/" SEED_STATE_DB, real);
    return seed_state_open(db, false, &n->db, err);
}

/* The keeper died (killed by hand, out of memory): the daemon is in the node's
 * namespaces, so they live on; a new keeper takes over the ports and channels. */
static int on_keeper_gone(seed_source *src, int fd, uint32_t events, void *userdata) {
    node *n = userdata;
    (void)fd;
    if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return 0;
    seed_source_free(src);
    n->keeper_src = NULL;
    close(n->keeper_fd);
    n->keeper_fd = -1;
    pid_t pid = seed_keeper_spawn(n->run_dir, &n->net, n->opt.subnet);
    int r = pid < 0 ? (int)pid : seed_keeper_connect(n->run_dir, &n->keeper_fd);
    if (r < 0) {
        log_error("the keeper died and a new one cannot start (%s): published ports are gone, and instances "
                  "stop with this daemon",
                  strerror(-r));
        node_event(n, "keeper-died", NULL, NULL, "a new keeper cannot start: %s", strerror(-r));
        return 0;
    }
    seed_loop_add_io(n->loop, n->keeper_fd, EPOLLRDHUP, on_keeper_gone, n, &n->keeper_src);
    for (size_t i = 0; i < n->n_insts; i++)
        instance_keeper_restore(n->insts[i]);
    log_error("the keeper died: a new one (pid %d) took over the published ports and channels", (int)pid);
    node_event(n, "keeper-died", NULL, NULL, "a new keeper (pid %d) took over", (int)pid);
    return 0;
}

static int join_keeper(node *n, seed_error **err) {
    int fd;
    if (seed_keeper_connect(n->run_dir, &fd) < 0)
        return 0; /* none: this daemon starts one */
    int hostns = -1;
    size_t nr = 1;
    json_t *h = seed_keeper_call(fd, json_pack("{s:s}", "op", "hello"), NULL, 0, &hostns, &nr, err);
    if (!h || nr != 1) {
        json_decref(h);
        close(fd);
        if (hostns >= 0)
            close(hostns);
        return *err ? seed_error_prefix(err, "the keeper of %s: ", n->state_dir)
                    : seed_error_set(err, EPROTO, "the keeper of %s sent no namespace", n->state_dir);
    }
    const char *subnet = json_string_value(json_object_get(h, "subnet"));
    pid_t pid = (pid_t)json_integer_value(json_object_get(h, "pid"));
    int r = 0;
    if (!subnet || !streq(subnet, n->opt.subnet))
        r = seed_error_set(
            err, EINVAL,
            "the instances still running on %s use --subnet %s: start seedd with it, or stop them "
            "first (seed down)",
            n->state_dir, subnet ? subnet : "?");
    int pidfd = r < 0 ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
    if (r >= 0 && (pidfd < 0 || setns(pidfd, CLONE_NEWNS | CLONE_NEWNET) < 0))
        r = seed_error_setp(err, errno, "joining the namespaces of the keeper (pid %d)", (int)pid);
    if (pidfd >= 0)
        close(pidfd);
    seed_subnet sn;
    if (r >= 0 && (r = seed_subnet_parse(subnet, &sn, err)) >= 0) {
        n->net = (seed_node_net){.subnet = sn,
                                 .gateway = seed_subnet_host(&sn, 1),
                                 .host_netns = hostns,
                                 .bridge_ifindex = if_nametoindex(SEED_BRIDGE)};
        hostns = -1;
        if (!n->net.bridge_ifindex)
            r = seed_error_set(err, ENODEV, "the node's bridge %s is gone", SEED_BRIDGE);
    }
    json_decref(h);
    if (hostns >= 0)
        close(hostns);
    if (r < 0) {
        close(fd);
        return r;
    }
    n->keeper_fd = fd;
    log_info("joined the keeper (pid %d): adopting the instances that run", (int)pid);
    return 0;
}

/* The instances the previous daemon left running: each gets its instance again, from
 * the project it was started from, with its pidfd and init channel from the keeper. A
 * rollout cut short is settled here: a successor that never took over is killed; an
 * old instance that had handed over is stopped. */
static void adopt_instances(node *n) {
    json_t *rows = seed_state_running_list(n->db);
    node_project **projects = calloc(json_array_size(rows) + 1, sizeof(*projects));
    size_t n_projects = 0, adopted = 0;
    json_t *claimed = json_object(); /* mount points already given to an instance */
    /* Serving ones first: they keep the volumes. */
    for (int pass = 0; pass < 2; pass++) {
        size_t i;
        json_t *row;
        json_array_foreach (rows, i, row) {
            const char *role = json_string_value(json_object_get(row, "role")) ?: "active";
            if ((pass == 0) != streq(role, "active"))
                continue;
            const char *ns = json_string_value(json_object_get(row, "namespace"));
            const char *name = json_string_value(json_object_get(row, "name"));
            const char *srcname = json_string_value(json_object_get(row, "source"));
            const char *tree = json_string_value(json_object_get(row, "tree"));
            const char *identity = json_string_value(json_object_get(row, "identity"));
            bool alt = json_is_true(json_object_get(row, "alt"));
            if (!ns || !name || !srcname || !tree || !identity)
                continue;
            char key[160];
            snprintf(key, sizeof(key), "%s/%s/%d", ns, name, alt);
            int fds[2] = {-1, -1};
            size_t nf = 2;
            json_t *got =
                node_keeper(n, json_pack("{s:s, s:s}", "op", "fetch", "key", key), NULL, 0, fds, &nf);
            json_decref(got);
            node_source *src = node_source_find(n, srcname);
            instance *in = NULL;
            const seed_instance *spec = NULL;
            node_project *np = NULL;
            for (size_t k = 0; src && k < n_projects && !np; k++)
                if (streq(projects[k]->p->dir, tree))
                    np = projects[k];
            if (src && !np) {
                seed_diags d = {0};
                seed_project *p = NULL;
                if (seed_project_load(tree, src->uri, &p, &d) >= 0 && p && (np = node_project_new(p)))
                    projects[n_projects++] = np;
                else
                    seed_project_free(p);
                seed_diags_clear(&d);
            }
            if (np)
                spec = seed_project_find(np->p, name);
            _cleanup_error_ seed_error *e = NULL;
            bool alive = nf == 2 && fds[1] >= 0 && seed_pidfd_kill(fds[1], 0) == 0;
            if (!alive || !spec || streq(role, "successor") ||
                instance_new(src, np, spec, alt, NULL, &in, &e) < 0 || node_add_instance(n, in) < 0) {
                /* Gone, or nothing to run it as, or a successor that never took over. */
                if (alive)
                    seed_pidfd_kill(fds[1], SIGKILL);
                log_info("%s/%s: not adopted (%s)", srcname, name,
                         !alive                     ? "it is no longer running"
                         : streq(role, "successor") ? "a rollout the previous daemon did not finish"
                                                    : "its source or spec is gone");
                instance_free(in);
                for (size_t k = 0; k < nf; k++)
                    if (fds[k] >= 0)
                        close(fds[k]);
                json_decref(
                    node_keeper(n, json_pack("{s:s, s:s}", "op", "drop", "key", key), NULL, 0, NULL, NULL));
                seed_state_running_delete(n->db, ns, name, alt);
                continue;
            }
            if (!streq(identity, spec->identity))
                in->identity_override = strdup(identity);
            in->sb.pid = (pid_t)json_integer_value(json_object_get(row, "pid"));
            in->sb.pidfd = fds[1];
            in->chan = fds[0];
            fcntl(in->chan, F_SETFL, O_NONBLOCK);
            in->started_at = (uint64_t)json_integer_value(json_object_get(row, "startedAt"));
            in->starts = (unsigned)json_integer_value(json_object_get(row, "starts"));
            snprintf(in->ifname, sizeof(in->ifname), "%s",
                     json_string_value(json_object_get(row, "ifname")) ?: "");
            n->cg_ops->open(in->cgpath, &in->cg);
            size_t k;
            json_t *m;
            json_array_foreach (json_object_get(row, "mounts"), k, m) {
                const char *mp = json_string_value(m);
                bool used = false;
                for (size_t v = 0; mp && v < in->n_vols; v++)
                    if (streq(in->vols[v].mountpoint, mp) && !json_object_get(claimed, mp)) {
                        in->vols[v].mounted = used = true;
                        json_object_set_new(claimed, mp, json_true());
                    }
                if (mp && !used && !json_object_get(claimed, mp))
                    seed_volume_umount(mp); /* the instance keeps its own mount */
            }
            in->role = streq(role, "retiring") ? ROLE_RETIRING : ROLE_ACTIVE;
            instance_adopted(in);
            adopted++;
            if (in->role == ROLE_RETIRING)
                instance_stop(in);
        }
    }
    json_decref(claimed);
    for (size_t k = 0; k < n_projects; k++)
        node_project_unref(projects[k]);
    free(projects);
    json_decref(rows);
    /* Ports and stored fds nobody owns any more. */
    json_t *keys = node_keeper(n, json_pack("{s:s}", "op", "keys"), NULL, 0, NULL, NULL);
    const char *key;
    json_t *v;
    json_object_foreach (json_object_get(keys, "ports"), key, v) {
        bool owned = false;
        for (size_t i = 0; i < n->n_insts && !owned; i++) {
            instance *in = n->insts[i];
            char prefix[160];
            int l = snprintf(prefix, sizeof(prefix), "%s/%s/", in->ns, in->spec->name);
            if (strncmp(key, prefix, (size_t)l) == 0 && in->role == ROLE_ACTIVE) {
                in->has_ports = true;
                owned = true;
            }
        }
        if (!owned)
            json_decref(
                node_keeper(n, json_pack("{s:s, s:s}", "op", "unpublish", "key", key), NULL, 0, NULL, NULL));
    }
    json_decref(keys);
    /* Cgroups of instances that are not coming back. */
    char **children = NULL;
    if (n->cg_ops->list_children(n->cg_root, &children) == 0) {
        for (char **c = children; *c; c++) {
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", n->cg_root, *c);
            bool mine = false;
            for (size_t i = 0; i < n->n_insts && !mine; i++)
                mine = streq(n->insts[i]->cgpath, path);
            if (!mine)
                remove_cgroup_tree(n, path, 1);
        }
        strv_free(children);
    }
    for (size_t i = 0; i < n->n_insts; i++)
        instance_adopted_shoots(n->insts[i]);
    log_info("adopted %zu running instance%s", adopted, adopted == 1 ? "" : "s");
    node_event(n, "node-adopted", NULL, NULL, "%zu running instance%s adopted", adopted,
               adopted == 1 ? "" : "s");
}

/* seed up: its one source; seedd: those in the state database. */
static int add_sources(node *n, seed_error **err) {
    int r;
    if (!n->opt.daemon) {
        /* Named after the project's directory, as compose names projects. */
        const char *dir = n->preloaded->p->dir;
        const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
        char name[SEED_SPEC_MAX_NAME + 1];
        size_t k = 0;
        for (const char *c = base; *c && k < sizeof(name) - 1; c++)
            if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || (*c == '-' && k > 0))
                name[k++] = *c;
            else if (*c >= 'A' && *c <= 'Z')
                name[k++] = (char)(*c - 'A' + 'a');
        while (k > 0 && name[k - 1] == '-')
            k--;
        name[k] = 0;
        node_source *s = NULL;
        /* Always the directory as it is on disk (a git work tree too). */
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "path:%s", dir) < 0)
            return seed_error_set(err, ENOMEM, "out of memory");
        if ((r = node_source_new(n, *name ? name : "default", url, NULL, NULL, 0, false, &s, err)) < 0)
            return r;
        node_source_set_uri(s, n->preloaded->p->uri);
        s->preloaded = TAKE_PTR(n->preloaded);
        n->preloaded = NULL;
        n->srcs = calloc(1, sizeof(*n->srcs));
        if (!n->srcs) {
            node_source_free(s);
            return seed_error_set(err, ENOMEM, "out of memory");
        }
        n->srcs[n->n_srcs++] = s;
        node_source_write_hosts(s);
        return 0;
    }
    seed_source_row *rows = NULL;
    size_t count = 0;
    if ((r = seed_state_source_list(n->db, &rows, &count)) < 0)
        return seed_error_setp(err, -r, "reading the sources from the state database");
    n->srcs = calloc(count + 1, sizeof(*n->srcs));
    if (!n->srcs) {
        seed_source_rows_free(rows, count);
        return seed_error_set(err, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        node_source *s = NULL;
        _cleanup_error_ seed_error *e = NULL;
        if (node_source_new(n, rows[i].name, rows[i].url, rows[i].ref, rows[i].secret_file, rows[i].poll_s,
                            true, &s, &e) < 0) {
            /* A source that went bad (its directory removed) does not keep the others down. */
            log_error("source %s: %s", rows[i].name, e->msg);
            continue;
        }
        n->srcs[n->n_srcs++] = s;
        node_source_write_hosts(s);
    }
    seed_source_rows_free(rows, count);
    if (n->keeper_fd >= 0 && n->adopting)
        adopt_instances(n);
    return 0;
}

static int setup(node *n, seed_error **err) {
    int r = take_state_dir(n, err);
    if (r < 0)
        return r;
    /* seedd: a keeper left by the previous daemon holds the node's namespaces and the
     * instances that still run: join them. */
    if (n->opt.daemon && (r = join_keeper(n, err)) < 0)
        return r;
    int probe_fd;
    if (!n->opt.daemon && seed_keeper_connect(n->run_dir, &probe_fd) == 0) {
        close(probe_fd);
        return seed_error_set(
            err, EBUSY,
            "instances of a seedd still run on %s (its keeper answers): start seedd to manage "
            "them, or stop them with seedd's seed down first",
            n->state_dir);
    }
    bool adopt = n->keeper_fd >= 0;
    n->adopting = adopt;

    /* Private mounts: volumes mounted from here on are invisible to the host and go
     * away with the node. Slave, so host unmounts still reach us. */
    if (!adopt && unshare(CLONE_NEWNS) < 0)
        return seed_error_setp(err, errno, "creating the node's mount namespace");
    if (!adopt && mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return seed_error_setp(err, errno, "making the node's mounts private");

    if ((r = seed_cgroup_detect(&n->cg_ops, err)) < 0) {
        /* No hierarchies under /sys/fs/cgroup: a sysfs of its own, as `ip netns exec`
         * mounts. Mount them in our namespace, as the host has them. */
        _cleanup_error_ seed_error *first = TAKE_PTR(*err);
        if (seed_cgroup_mount_hierarchies(err) < 0 || (r = seed_cgroup_detect(&n->cg_ops, err)) < 0)
            return seed_error_prefix(err, "%s; mounting them failed: ", first->msg);
        log_info("cgroups: mounted the hierarchies under /sys/fs/cgroup (its sysfs had none)");
    }
    char hex[SEED_SHA256_HEX_LEN + 1];
    seed_sha256_hex(n->state_dir, strlen(n->state_dir), hex);
    snprintf(n->node_id, sizeof(n->node_id), "%.12s", hex);
    snprintf(n->cg_root, sizeof(n->cg_root), "/seed/%s", n->node_id);
    if (!adopt)
        clean_leftover_cgroups(n); /* after adoption otherwise, sparing the adopted */

    if ((r = seed_security_new(&n->sec, err)) < 0 || (r = load_init(n, err)) < 0)
        return r;
    n->host_passwd = filter_accounts("/etc/passwd", false);
    n->host_group = filter_accounts("/etc/group", true);
    if (!n->host_passwd || !n->host_group)
        return seed_error_set(err, ENOMEM, "out of memory");
    /* The key that seals the instances' identities: said at every start, so an operator
     * knows what a copy of the state directory would reveal. */
    if ((r = node_identity_key(n, err)) < 0)
        return r;
    log_info("identities: %s", n->key.protection);

    seed_subnet subnet;
    if (!adopt && ((r = seed_subnet_parse(n->opt.subnet, &subnet, err)) < 0 ||
                   (r = seed_node_net_setup(&n->net, &subnet, err)) < 0))
        return r;
    /* The host's forwarding setting from before any node of this state directory
     * changed it: recorded before the change, so a killed node's successor restores
     * the original, not the 1 it finds. */
    char forward_was[16];
    bool recorded = seed_state_setting_get(n->db, SETTING_FORWARD, forward_was, sizeof(forward_was)) == 0;
    if (adopt && n->opt.egress)
        seed_egress_remove_stale(n->node_id, n->net.host_netns); /* set up afresh below */
    if (n->opt.egress) {
        if (!recorded && ((r = seed_egress_host_forward(n->net.host_netns, NULL, forward_was)) < 0 ||
                          (r = seed_state_setting_set(n->db, SETTING_FORWARD, forward_was)) < 0))
            return seed_error_setp(err, -r, "egress: recording the host's forwarding setting");
        if ((r = seed_egress_setup(&n->egress, n->node_id, &n->net, forward_was, err)) < 0)
            return r;
        n->resolv_conf = seed_egress_resolv_conf();
    } else {
        /* A killed predecessor started with --egress may have left its NAT table,
         * and forwarding on. */
        seed_egress_remove_stale(n->node_id, n->net.host_netns);
        char now[16];
        if (recorded && seed_egress_host_forward(n->net.host_netns, forward_was, now) >= 0) {
            seed_state_setting_set(n->db, SETTING_FORWARD, NULL);
            log_info("restored the host's IPv4 forwarding to %s, as it was before a previous node's --egress",
                     forward_was);
        }
        n->resolv_conf = strdup("# seed: this instance has no outbound network, so no name servers.\n"
                                "# Instances of the namespace resolve through /etc/hosts.\n");
    }
    if (!n->resolv_conf)
        return seed_error_set(err, ENOMEM, "out of memory");
    if (n->opt.daemon && !adopt) {
        /* Nothing survived (a boot, or seed down): a fresh keeper for this node. */
        seed_state_running_clear(n->db);
        pid_t pid = seed_keeper_spawn(n->run_dir, &n->net, n->opt.subnet);
        if (pid < 0)
            return seed_error_setp(err, (int)-pid, "starting the keeper");
        if ((r = seed_keeper_connect(n->run_dir, &n->keeper_fd)) < 0)
            return seed_error_setp(err, -r, "connecting to the keeper");
        log_info("keeper started (pid %d): instances outlive this daemon; seed down stops them", (int)pid);
    }

    n->on_change = on_instance_changed;
    n->on_event = control_event;
    if ((r = seed_loop_new(&n->loop)) < 0)
        return seed_error_setp(err, -r, "creating the event loop");
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    n->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (n->sig_fd < 0)
        return seed_error_setp(err, errno, "signalfd");
    if ((r = seed_loop_add_io(n->loop, n->sig_fd, EPOLLIN, on_signal, n, &n->sig_src)) < 0)
        return seed_error_setp(err, -r, "watching signals");

    seed_fetch_set_max_tree(n->opt.max_tree);
    if ((r = add_sources(n, err)) < 0)
        return r;
    if (n->opt.webhook) {
        /* In the host's network namespace, where the providers reach it. */
        int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (self < 0 || setns(n->net.host_netns, CLONE_NEWNET) < 0) {
            if (self >= 0)
                close(self);
            return seed_error_setp(err, errno, "entering the host's network namespace for --webhook");
        }
        r = seed_webhook_new(n->loop, n->opt.webhook, on_webhook, n, &n->webhook, err);
        if (setns(self, CLONE_NEWNET) < 0)
            abort(); /* cannot happen: we were just there */
        close(self);
        if (r < 0)
            return seed_error_prefix(err, "--webhook %s: ", n->opt.webhook);
        log_info("webhooks: POST http://%s/webhook/<source>", n->opt.webhook);
    }
    node_sources_changed(n);
    if (n->keeper_fd >= 0 &&
        (r = seed_loop_add_io(n->loop, n->keeper_fd, EPOLLRDHUP, on_keeper_gone, n, &n->keeper_src)) < 0)
        return seed_error_setp(err, -r, "watching the keeper");
    return control_listen(n, err);
}

static void teardown(node *n) {
    seed_webhook_free(n->webhook);
    n->webhook = NULL;
    if (n->loop)
        control_close(n);
    node_shoots_teardown(n);
    for (size_t i = 0; i < n->n_srcs; i++)
        node_source_free(n->srcs[i]);
    free(n->srcs);
    for (size_t i = 0; i < n->n_insts; i++) {
        instance *in = n->insts[i];
        if (in->sb.pidfd >= 0 && !n->detaching) {
            /* Only after a forced stop: the PID namespace ends with its init. */
            seed_sandbox_container.kill(&in->sb, SIGKILL);
            seed_sandbox_container.reap(&in->sb);
        }
        instance_free(in);
    }
    free(n->insts);
    if (n->cg_ops) {
        /* The node's own cgroup directory, now empty, and /seed unless another node
         * uses it. */
        n->cg_ops->remove_if_empty(n->cg_root);
        n->cg_ops->remove_if_empty("/seed");
    }
    seed_source_free(n->stop_timer);
    seed_source_free(n->sig_src);
    if (n->sig_fd >= 0)
        close(n->sig_fd);
    seed_loop_free(n->loop);
    if (!n->detaching) {
        bool forward_changed = n->egress.host_forward_was[0] != 0;
        seed_egress_teardown(&n->egress); /* restores the host's forwarding setting */
        if (forward_changed)
            seed_state_setting_set(n->db, SETTING_FORWARD, NULL);
    }
    seed_source_free(n->keeper_src);
    n->keeper_src = NULL;
    if (n->keeper_fd >= 0) {
        /* seed down (every instance stopped): the keeper's work is done too. */
        if (!n->detaching)
            json_decref(node_keeper(n, json_pack("{s:s}", "op", "exit"), NULL, 0, NULL, NULL));
        close(n->keeper_fd);
        n->keeper_fd = -1;
    }
    seed_node_net_close(&n->net);
    free(n->resolv_conf);
    seed_security_free(n->sec);
    if (n->init_fd >= 0)
        close(n->init_fd);
    seed_state_close(n->db);
    free(n->host_passwd);
    free(n->host_group);
    free(n->state_dir);
    free(n->run_dir);
    seed_node_key_clear(&n->key);
    free(n->scratch_dir);
    if (n->lock_fd >= 0)
        close(n->lock_fd);
    node_project_unref(n->preloaded);
}

int seed_node_run(const seed_node_options *opts, seed_error **err) {
    node n = {
        .opt = *opts,
        .init_fd = -1,
        .ctl_fd = -1,
        .sig_fd = -1,
        .lock_fd = -1,
        .shoot_fd = -1,
        .keeper_fd = -1,
    };
    n.net.host_netns = -1;
    if (!n.opt.state_dir)
        n.opt.state_dir = SEED_DEFAULT_STATE_DIR;
    if (!n.opt.bind)
        n.opt.bind = SEED_DEFAULT_BIND;
    if (!n.opt.subnet)
        n.opt.subnet = SEED_DEFAULT_SUBNET;
    if (!n.opt.grace_ms)
        n.opt.grace_ms = 10000;

    int r;
    if (!n.opt.daemon) {
        /* seed up: a broken project starts nothing. */
        seed_diags diags = {0};
        seed_project *p = NULL;
        r = seed_project_load(n.opt.source, n.opt.uri, &p, &diags);
        if (r < 0) {
            seed_diags_clear(&diags);
            return seed_error_setp(err, -r, "loading the project");
        }
        if (seed_diags_count(&diags) > 0) {
            for (size_t i = 0; i < diags.n; i++) {
                const seed_diag *d = &diags.items[i];
                log_error("%s%s%s%s%s", d->file ? d->file : "", d->file ? ": " : "", d->path,
                          *d->path ? ": " : "", d->message);
            }
            size_t count = seed_diags_count(&diags);
            seed_diags_clear(&diags);
            seed_project_free(p);
            return seed_error_set(err, EINVAL, "the project has %zu error%s; nothing was started", count,
                                  count == 1 ? "" : "s");
        }
        if (!(n.preloaded = node_project_new(p)))
            return seed_error_set(err, ENOMEM, "out of memory");
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);

    r = setup(&n, err);
    if (r < 0) {
        teardown(&n);
        return r;
    }
    const seed_project *up = !n.opt.daemon && n.n_srcs ? n.srcs[0]->preloaded->p : NULL;
    if (up)
        log_info("node up: %zu instance%s of namespace %s (generation %s), state in %s, cgroups %s",
                 up->n_instances, up->n_instances == 1 ? "" : "s", up->namespace, up->generation, n.state_dir,
                 n.cg_ops->name);
    else
        log_info("node up: %zu source%s, state in %s, cgroups %s", n.n_srcs, n.n_srcs == 1 ? "" : "s",
                 n.state_dir, n.cg_ops->name);
    node_event(&n, "node-started", NULL, NULL, "pid %d, %zu source%s", (int)getpid(), n.n_srcs,
               n.n_srcs == 1 ? "" : "s");
    for (size_t i = 0; i < n.n_srcs; i++)
        node_source_request(n.srcs[i], "start", false, NULL, 0, NULL);
    if (n.opt.ready)
        n.opt.ready(n.opt.ready_userdata);

    r = seed_loop_run(n.loop);
    log_info("node stopped");
    teardown(&n);
    if (r < 0)
        return seed_error_setp(err, -r, "event loop");
    return 0;
}
