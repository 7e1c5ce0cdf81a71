/* The sources a node serves: each a project (a directory, or a git repository the
 * node fetches) and a namespace. Applies of one source run one at a time; requests
 * that arrive meanwhile wait, and plain ones (a push, a SIGHUP, a poll) coalesce into
 * one, so a burst of pushes costs one reconcile of the newest commit. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "node/deploy.h"
#include "source/fetch.h"
#include "source/webhook.h"
#include "spec/names.h"

#define PIN_SETTING "pin:" /* + source name: the generation a rollback holds */

node_source *node_source_find(node *n, const char *name) {
    for (size_t i = 0; i < n->n_srcs; i++)
        if (streq(n->srcs[i]->name, name))
            return n->srcs[i];
    return NULL;
}

/* The webhook secret: the file's content without its final newline. */
static int read_secret(const char *path, char **ret, seed_error **err) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return seed_error_setp(err, errno, "--webhook-secret-file %s", path);
    char *buf = NULL;
    size_t len = 0;
    int r = seed_read_fd(fd, 4096, &buf, &len);
    if (r < 0)
        return seed_error_setp(err, -r, "--webhook-secret-file %s (at most 4 KiB)", path);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = 0;
    if (len < 8 || memchr(buf, 0, len)) {
        free(buf);
        return seed_error_set(
            err, EINVAL, "--webhook-secret-file %s: expected a secret of at least 8 bytes of text", path);
    }
    *ret = buf;
    return 0;
}

void node_source_reload_secret(node_source *s) {
    if (!s->secret_file)
        return;
    char *fresh = NULL;
    _cleanup_error_ seed_error *err = NULL;
    if (read_secret(s->secret_file, &fresh, &err) < 0) {
        log_warning("%s: keeping the webhook secret it has: %s", s->name, err->msg);
        return;
    }
    if (s->secret)
        explicit_bzero(s->secret, strlen(s->secret));
    free(s->secret);
    s->secret = fresh;
}

static void set_str(char **dst, const char *v) {
    free(*dst);
    *dst = v ? strdup(v) : NULL;
}

int node_source_new(node *n, const char *name, const char *url, const char *ref, const char *secret_file,
                    unsigned poll_s, bool persistent, node_source **ret, seed_error **err) {
    const char *why = seed_check_dns_label(name, SEED_SPEC_MAX_NAME);
    if (why)
        return seed_error_set(err, EINVAL, "source name '%s': %s", name, why);
    if (node_source_find(n, name))
        return seed_error_set(err, EEXIST, "a source named '%s' exists already", name);
    node_source *s = calloc(1, sizeof(*s));
    if (!s)
        return seed_error_set(err, ENOMEM, "out of memory");
    s->node = n;
    s->persistent = persistent;
    s->poll_s = poll_s;
    int r = 0;
    if (!(s->name = strdup(name)) || !(s->url = strdup(url)) || (ref && !(s->ref = strdup(ref))) ||
        (secret_file && !(s->secret_file = strdup(secret_file))))
        r = seed_error_set(err, ENOMEM, "out of memory");
    if (r >= 0)
        r = seed_fetch_url_parse(url, ref, &s->fu, err);
    if (r >= 0) {
        s->git = s->fu.kind == SEED_FETCH_GIT;
        if (!s->git && ref)
            r = seed_error_set(err, EINVAL, "--ref applies to git sources; '%s' is a directory", url);
        else if (!s->git && !(s->dir = strdup(s->fu.url)))
            r = seed_error_set(err, ENOMEM, "out of memory");
        else if (!(s->uri = strdup(s->fu.uri)))
            r = seed_error_set(err, ENOMEM, "out of memory");
    }
    if (r >= 0 && secret_file)
        r = read_secret(secret_file, &s->secret, err);
    if (r >= 0 && asprintf(&s->cache_dir, "%s/sources/%s", n->state_dir, name) < 0) {
        s->cache_dir = NULL;
        r = seed_error_set(err, ENOMEM, "out of memory");
    }
    if (r < 0) {
        node_source_free(s);
        return r;
    }
    node_source_set_uri(s, s->uri);
    for (size_t i = 0; i < n->n_srcs; i++)
        if (streq(n->srcs[i]->namespace, s->namespace)) {
            r = seed_error_set(err, EEXIST,
                               "source %s serves %s already (namespace %s): one source per URL and ref",
                               n->srcs[i]->name, s->uri, s->namespace);
            node_source_free(s);
            return r;
        }
    char pin[32];
    char key[128];
    snprintf(key, sizeof(key), PIN_SETTING "%s", name);
    if (persistent && seed_state_setting_get(n->db, key, pin, sizeof(pin)) == 0)
        s->pinned = (unsigned)strtoul(pin, NULL, 10);
    /* Where it stood when the previous daemon left it. */
    json_t *hist = persistent ? seed_state_history(n->db, name, 1) : NULL;
    json_t *last = json_array_get(hist, 0);
    if (last) {
        s->generation = (unsigned)json_integer_value(json_object_get(last, "generation"));
        snprintf(s->revision, sizeof(s->revision), "%s",
                 json_string_value(json_object_get(last, "revision")) ?: "");
        set_str(&s->result, json_string_value(json_object_get(last, "result")));
        set_str(&s->error, json_string_value(json_object_get(last, "error")));
        set_str(&s->applied_at, json_string_value(json_object_get(last, "time")));
    }
    json_decref(hist);
    *ret = s;
    return 0;
}

void node_source_set_uri(node_source *s, const char *uri) {
    if (uri != s->uri) {
        free(s->uri);
        s->uri = strdup(uri);
    }
    seed_namespace_from_uri(s->uri, s->namespace);
    free(s->hosts_path);
    if (asprintf(&s->hosts_path, "%s/hosts/%s", s->node->run_dir, s->namespace) < 0)
        s->hosts_path = NULL;
}

static void request_free(apply_request *r) {
    if (!r)
        return;
    free(r->only);
    free(r);
}

static void answer(apply_waiter **list, json_t *result) {
    while (*list) {
        apply_waiter *w = *list;
        *list = w->next;
        w->next = NULL;
        w->done(w, result);
    }
}

void node_source_free(node_source *s) {
    if (!s)
        return;
    seed_source_free(s->poll_timer);
    seed_source_free(s->kick);
    json_t *gone = json_pack("{s:b, s:s}", "ok", 0, "error", "the node stopped");
    if (s->queued) {
        answer(&s->queued->waiters, gone);
        request_free(s->queued);
    }
    if (s->apply)
        node_apply_free(s->apply);
    answer(&s->rm_waiters, gone);
    json_decref(gone);
    node_project_unref(s->preloaded);
    seed_fetch_cancel(s->fetch);
    request_free(s->fetching);
    seed_fetch_url_clear(&s->fu);
    if (s->secret)
        explicit_bzero(s->secret, strlen(s->secret));
    free(s->secret);
    free(s->name);
    free(s->url);
    free(s->ref);
    free(s->secret_file);
    free(s->dir);
    free(s->cache_dir);
    free(s->uri);
    free(s->hosts_path);
    free(s->result);
    free(s->error);
    free(s->applied_at);
    free(s);
}

/* ---- applies ---- */

static void run_next(node_source *s);
static void kick(node_source *s);
static void applied(node_apply *done, void *userdata);

static int kick_fire(seed_source *t, void *userdata) {
    node_source *s = userdata;
    (void)t;
    if (s->apply)
        node_apply_advance(s->apply); /* may finish it */
    /* Retired instances no step waits on (adopted mid-rollout) go once they stopped. */
    for (size_t i = 0; i < s->node->n_insts;) {
        instance *in = s->node->insts[i];
        if (in->src == s && in->role == ROLE_RETIRING && !in->step && !s->removing && instance_settled(in)) {
            node_remove_instance(s->node, in);
            instance_free(in);
            continue;
        }
        i++;
    }
    if (s->removing && !s->apply) {
        node *n = s->node;
        for (size_t i = 0; i < n->n_insts;) {
            instance *in = n->insts[i];
            if (in->src == s && instance_settled(in)) {
                node_remove_instance(n, in);
                instance_free(in);
                continue;
            }
            i++;
        }
        if (node_source_settled(s))
            node_source_finish_remove(s); /* frees s */
        return 0;
    }
    run_next(s);
    return 0;
}

static void kick(node_source *s) {
    if (s->kick)
        seed_timer_restart(s->kick, 0);
    else
        seed_loop_add_timer(s->node->loop, 0, kick_fire, s, &s->kick);
}

static bool plain(const apply_request *r) {
    return !r->dry_run && !r->only && !r->rollback;
}

void node_source_request(node_source *s, const char *trigger, bool dry_run, const char *only,
                         unsigned rollback, apply_waiter *w) {
    if (s->removing || s->node->stopping) {
        json_t *res = json_pack("{s:b, s:s}", "ok", 0, "error",
                                s->removing ? "the source is being removed" : "the node is stopping");
        if (w)
            w->done(w, res);
        json_decref(res);
        return;
    }
    apply_request *q = s->queued;
    if (q && !(plain(q) && !dry_run && !only && !rollback)) {
        /* Only plain requests coalesce; another kind waits for the queued one. A dry
         * run of the source as it is does not need to wait: it is queued behind. */
        if (w) {
            json_t *res = json_pack("{s:b, s:s}", "ok", 0, "error",
                                    "another apply of this source is queued; try again when it is done");
            w->done(w, res);
            json_decref(res);
        }
        return;
    }
    if (!q) {
        q = calloc(1, sizeof(*q));
        if (!q) {
            if (w) {
                json_t *res = json_pack("{s:b, s:s}", "ok", 0, "error", "out of memory");
                w->done(w, res);
                json_decref(res);
            }
            return;
        }
        q->dry_run = dry_run;
        q->rollback = rollback;
        q->only = only ? strdup(only) : NULL;
        s->queued = q;
    }
    snprintf(q->trigger, sizeof(q->trigger), "%s", trigger);
    if (w) {
        w->next = q->waiters;
        q->waiters = w;
    }
    kick(s);
}

void node_source_forget(node *n, apply_waiter *w) {
    for (size_t i = 0; i < n->n_srcs; i++) {
        node_source *s = n->srcs[i];
        apply_waiter **lists[3] = {s->queued ? &s->queued->waiters : NULL, NULL, &s->rm_waiters};
        if (s->apply)
            lists[1] = node_apply_waiters(s->apply);
        for (size_t k = 0; k < 3; k++)
            for (apply_waiter **pp = lists[k]; pp && *pp; pp = &(*pp)->next)
                if (*pp == w) {
                    *pp = w->next;
                    return;
                }
    }
}

static json_t *diags_json(const seed_diags *d) {
    json_t *arr = json_array();
    for (size_t i = 0; i < d->n; i++)
        json_array_append_new(arr, json_pack("{s:o, s:s, s:s}", "file",
                                             d->items[i].file ? json_string(d->items[i].file) : json_null(),
                                             "path", d->items[i].path, "message", d->items[i].message));
    return arr;
}

static void now_iso(char **dst) {
    char buf[40];
    seed_format_utc(seed_realtime_usec(), 0, buf, sizeof(buf));
    set_str(dst, buf);
}

/* An apply that could not begin (no project, a broken one): recorded, nothing changed. */
static void fail_request(node_source *s, apply_request *req, const char *revision, const char *tree,
                         const char *msg, json_t *diags) {
    node *n = s->node;
    unsigned gen = 0;
    if (!req->dry_run) {
        if (seed_state_generation_begin(n->db, s->name, s->namespace, revision, tree, req->trigger, &gen) ==
            0)
            seed_state_generation_finish(n->db, s->name, gen, "error", msg, NULL);
        set_str(&s->result, "error");
        set_str(&s->error, msg);
        now_iso(&s->applied_at);
        node_event(n, "apply-failed", s->name, NULL, "%s%s%s", msg, revision ? " at " : "", revision ?: "");
    }
    log_error("%s: %s", s->name, msg);
    json_t *res = json_pack(
        "{s:b, s:s, s:s, s:s, s:o, s:o, s:o}", "ok", 0, "source", s->name, "namespace", s->namespace, "error",
        msg, "revision", revision ? json_string(revision) : json_null(), "generation",
        gen ? json_integer(gen) : json_null(), "diagnostics", diags ? diags : json_array());
    answer(&req->waiters, res);
    json_decref(res);
    bool added = streq(req->trigger, "source-add");
    request_free(req);
    if (added) {
        /* A source whose first apply cannot even begin is not added: nothing changed. */
        log_info("%s: not added", s->name);
        node_source_remove(s, NULL);
        return;
    }
    kick(s);
}

/* Load the project at dir and run the request's plan on it. */
static void begin(node_source *s, apply_request *req, const char *dir, const char *revision,
                  const char *tree) {
    node *n = s->node;
    node_project *np = NULL;
    if (s->preloaded && !req->rollback) {
        np = TAKE_PTR(s->preloaded); /* seed up checked it before the node started */
    } else {
        seed_diags diags = {0};
        seed_project *p = NULL;
        int r = seed_project_load(dir, s->uri, &p, &diags);
        if (r < 0 || seed_diags_count(&diags) > 0) {
            char msg[512];
            size_t count = seed_diags_count(&diags);
            if (r < 0)
                snprintf(msg, sizeof(msg), "loading the project: %s", strerror(-r));
            else
                snprintf(msg, sizeof(msg),
                         "the project has %zu error%s; nothing was changed (first: %s%s%s%s%s)", count,
                         count == 1 ? "" : "s", diags.items[0].file ?: "", diags.items[0].file ? ": " : "",
                         diags.items[0].path, *diags.items[0].path ? ": " : "", diags.items[0].message);
            json_t *dj = diags_json(&diags);
            seed_diags_clear(&diags);
            seed_project_free(p);
            fail_request(s, req, revision, tree, msg, dj);
            return;
        }
        seed_diags_clear(&diags);
        np = node_project_new(p);
        if (!np) {
            fail_request(s, req, revision, tree, "out of memory", NULL);
            return;
        }
    }
    _cleanup_error_ seed_error *err = NULL;
    node_apply *a = NULL;
    int r = node_apply_start(s, req, np, revision, tree, applied, s, &a, &err);
    node_project_unref(np);
    if (r < 0) {
        fail_request(s, req, revision, tree, err->msg, NULL);
        return;
    }
    (void)n;
    s->apply = a; /* it finishes through applied() */
    node_apply_run(a);
}

/* A fetch done: apply the commit it got. If it failed at start and the source has a
 * generation that worked, run that meanwhile (the node must come up offline). */
static void on_fetched(void *userdata, const seed_fetch_result *r) {
    node_source *s = userdata;
    apply_request *req = TAKE_PTR(s->fetching);
    s->fetch = NULL; /* released when this returns */
    if (r->warning)
        node_event(s->node, "source-warning", s->name, NULL, "%s", r->warning);
    if (r->error) {
        unsigned last = 0;
        _cleanup_free_ char *revision = NULL, *tree = NULL, *result = NULL;
        bool have_instances = false;
        for (size_t i = 0; i < s->node->n_insts; i++)
            have_instances |= s->node->insts[i]->src == s;
        if (streq(req->trigger, "start") && !have_instances &&
            seed_state_generation_last_ok(s->node->db, s->name, &last) == 0 &&
            seed_state_generation_get(s->node->db, s->name, last, &revision, &tree, &result) == 0 && tree &&
            access(tree, F_OK) == 0) {
            log_warning("%s: fetching failed (%s); running generation %u meanwhile", s->name, r->message,
                        last);
            node_event(s->node, "source-fetch-failed", s->name, NULL, "%s; running generation %u meanwhile",
                       r->message, last);
            begin(s, req, tree, revision, tree);
            return;
        }
        char msg[2600];
        snprintf(msg, sizeof(msg), "%s", r->message ? r->message : "fetching failed");
        fail_request(s, req, NULL, NULL, msg, NULL);
        return;
    }
    begin(s, req, r->tree, r->commit, r->tree);
}

static void run_next(node_source *s) {
    if (s->apply || s->fetch || !s->queued || s->node->stopping)
        return;
    apply_request *req = TAKE_PTR(s->queued);
    node *n = s->node;
    char key[128];
    snprintf(key, sizeof(key), PIN_SETTING "%s", s->name);
    bool explicit = streq(req->trigger, "cli") || streq(req->trigger, "webhook");
    if (explicit && s->pinned && !req->rollback && !req->dry_run) {
        log_info("%s: the pin on generation %u ends (%s)", s->name, s->pinned, req->trigger);
        s->pinned = 0;
        seed_state_setting_set(n->db, key, NULL);
    }
    if (!req->rollback && s->pinned && !explicit)
        req->rollback = s->pinned; /* SIGHUP, polls and restarts keep the rolled-back generation */
    if (req->rollback) {
        _cleanup_free_ char *revision = NULL, *tree = NULL, *result = NULL;
        if (seed_state_generation_get(n->db, s->name, req->rollback, &revision, &tree, &result) < 0) {
            char msg[128];
            snprintf(msg, sizeof(msg), "source %s has no generation %u (seed history %s)", s->name,
                     req->rollback, s->name);
            fail_request(s, req, NULL, NULL, msg, NULL);
            return;
        }
        const char *dir = tree ? tree : s->dir;
        if (!dir || access(dir, F_OK) < 0) {
            char msg[256];
            snprintf(msg, sizeof(msg), "generation %u of %s cannot be re-applied: its tree is gone",
                     req->rollback, s->name);
            fail_request(s, req, revision, tree, msg, NULL);
            return;
        }
        if (!req->dry_run && !streq(req->trigger, "start") && !streq(req->trigger, "sighup") &&
            !streq(req->trigger, "poll")) {
            char v[16];
            snprintf(v, sizeof(v), "%u", req->rollback);
            s->pinned = req->rollback;
            seed_state_setting_set(n->db, key, s->persistent ? v : NULL);
        }
        begin(s, req, dir, revision, tree);
        return;
    }
    if (!s->git) {
        begin(s, req, s->dir, NULL, NULL);
        return;
    }
    _cleanup_error_ seed_error *err = NULL;
    s->fetching = req;
    if (seed_fetch_start(n->loop, &s->fu, s->cache_dir, SEED_FETCH_TIMEOUT_DEFAULT, on_fetched, s, &s->fetch,
                         &err) < 0) {
        s->fetching = NULL;
        fail_request(s, req, NULL, NULL, err->msg, NULL);
    }
}

void node_source_instance_changed(instance *in) {
    if (in->src && (in->src->removing || in->role == ROLE_RETIRING))
        kick(in->src);
}

/* A git source's exported trees: those its instances run from and those of its last
 * generations (for seed rollback) stay; the others go. */
#define KEEP_GENERATION_TREES 20
static void prune_trees(node_source *s) {
    if (!s->git)
        return;
    node *n = s->node;
    json_t *keep = seed_state_generation_trees(n->db, s->name, KEEP_GENERATION_TREES);
    for (size_t i = 0; i < n->n_insts; i++)
        if (n->insts[i]->src == s)
            json_array_append_new(keep, json_string(n->insts[i]->proj->p->dir));
    size_t count = json_array_size(keep);
    const char **commits = calloc(count + 1, sizeof(*commits));
    for (size_t i = 0; commits && i < count; i++) {
        /* <cache>/trees/<commit>: the module keeps trees by commit */
        const char *t = json_string_value(json_array_get(keep, i));
        const char *slash = t ? strrchr(t, '/') : NULL;
        commits[i] = slash ? slash + 1 : t;
    }
    if (commits) {
        int r = seed_fetch_prune_trees(s->cache_dir, commits, count);
        if (r > 0)
            log_info("%s: removed %d old tree%s", s->name, r, r == 1 ? "" : "s");
    }
    free(commits);
    json_decref(keep);
}

/* An apply finished: record, answer, run the next. */
static void applied(node_apply *done, void *userdata) {
    node_source *s = userdata;
    node_apply *a = TAKE_PTR(s->apply);
    (void)done;
    json_t *res = node_apply_result(a);
    if (!node_apply_dry_run(a)) {
        set_str(&s->result, node_apply_failed(a) ? "failed" : "ok");
        set_str(&s->error, json_string_value(json_object_get(res, "error")));
        s->generation = node_apply_generation(a);
        now_iso(&s->applied_at);
        const char *rev = json_string_value(json_object_get(res, "revision"));
        snprintf(s->revision, sizeof(s->revision), "%s", rev ? rev : "");
    }
    answer(node_apply_waiters(a), res);
    json_decref(res);
    node_apply_free(a);
    prune_trees(s);
    if (s->removing)
        node_source_remove_continue(s);
    kick(s);
}

json_t *node_source_json(node_source *s) {
    size_t count = 0, running = 0;
    for (size_t i = 0; i < s->node->n_insts; i++) {
        instance *in = s->node->insts[i];
        if (in->src != s || in->role != ROLE_ACTIVE)
            continue;
        count++;
        running += in->state == INST_RUNNING;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:I, s:I, s:s, s:b}",
                     "name", s->name, "url", s->url, "uri", s->uri, "namespace", s->namespace, "ref",
                     s->ref ? json_string(s->ref) : json_null(), "revision",
                     *s->revision ? json_string(s->revision) : json_null(), "generation",
                     s->generation ? json_integer(s->generation) : json_null(), "lastResult",
                     s->result ? json_string(s->result) : json_null(), "lastError",
                     s->error ? json_string(s->error) : json_null(), "appliedAt",
                     s->applied_at ? json_string(s->applied_at) : json_null(), "pinnedGeneration",
                     s->pinned ? json_integer(s->pinned) : json_null(), "poll",
                     s->poll_s ? json_integer(s->poll_s) : json_null(), "webhook", s->secret_file != NULL,
                     "instances", (json_int_t)count, "running", (json_int_t)running, "kind",
                     s->git ? "git" : "path", "applying", s->apply != NULL);
}

/* ---- removal ---- */

bool node_source_settled(node_source *s) {
    for (size_t i = 0; i < s->node->n_insts; i++)
        if (s->node->insts[i]->src == s)
            return false;
    return !s->apply;
}

void node_source_finish_remove(node_source *s) {
    node *n = s->node;
    if (s->persistent) {
        char key[128];
        snprintf(key, sizeof(key), PIN_SETTING "%s", s->name);
        seed_state_source_delete(n->db, s->name);
        seed_state_generations_delete(n->db, s->name);
        seed_state_setting_set(n->db, key, NULL);
    }
    if (s->hosts_path)
        unlink(s->hosts_path);
    node_event(n, "source-removed", s->name, NULL, "removed; its volumes are kept");
    json_t *res = json_pack("{s:b, s:s}", "ok", 1, "source", s->name);
    answer(&s->rm_waiters, res);
    json_decref(res);
    for (size_t i = 0; i < n->n_srcs; i++)
        if (n->srcs[i] == s) {
            memmove(&n->srcs[i], &n->srcs[i + 1], (n->n_srcs - i - 1) * sizeof(*n->srcs));
            n->n_srcs--;
            break;
        }
    node_source_free(s);
    node_sources_changed(n);
}

/* Stop each instance of the source; the last one to stop finishes the removal. */
void node_source_remove(node_source *s, apply_waiter *w) {
    if (w) {
        w->next = s->rm_waiters;
        s->rm_waiters = w;
    }
    if (s->removing)
        return;
    s->removing = true;
    seed_source_free(TAKE_PTR(s->poll_timer));
    if (s->queued) {
        json_t *res = json_pack("{s:b, s:s}", "ok", 0, "error", "the source is being removed");
        answer(&s->queued->waiters, res);
        json_decref(res);
        request_free(TAKE_PTR(s->queued));
    }
    if (s->apply)
        return; /* applied() goes on */
    node_source_remove_continue(s);
}

void node_source_remove_continue(node_source *s) {
    for (size_t i = 0; i < s->node->n_insts; i++) {
        instance *in = s->node->insts[i];
        if (in->src != s)
            continue;
        in->role = ROLE_RETIRING;
        instance_stop(in);
    }
    node_source_write_hosts(s);
    kick(s); /* those already stopped go at once */
}

/* ---- stopping the node, polling, the webhook table ---- */

static int force_stop(seed_source *s, void *userdata) {
    node *n = userdata;
    n->stop_timer = NULL;
    seed_source_free(s);
    for (size_t i = 0; i < n->n_insts; i++)
        if (n->insts[i]->sb.pidfd >= 0)
            seed_sandbox_container.kill(&n->insts[i]->sb, SIGKILL);
    return 0;
}

void node_stop_all(node *n) {
    if (n->stopping) {
        log_warning("second signal: killing every instance now");
        force_stop(n->stop_timer, n);
        return;
    }
    log_info("stopping %zu instance%s (grace period %u ms)", n->n_insts, n->n_insts == 1 ? "" : "s",
             n->opt.grace_ms);
    n->stopping = true;
    for (size_t i = 0; i < n->n_srcs; i++)
        seed_source_free(TAKE_PTR(n->srcs[i]->poll_timer));
    for (size_t i = 0; i < n->n_insts; i++) {
        instance *in = n->insts[i];
        seed_source_free(in->retry_timer); /* a retry scheduled for a failed start */
        in->retry_timer = NULL;
        instance_stop(in); /* failed and exited ones become stopped there, waiters told */
    }
    seed_loop_add_timer(n->loop, (uint64_t)(n->opt.grace_ms + 5000) * 1000, force_stop, n, &n->stop_timer);
    node_instance_stopped(n);
}

/* Polling: each source with --poll applies itself every poll_s seconds. */
static int poll_fire(seed_source *t, void *userdata) {
    node_source *s = userdata;
    node_source_request(s, "poll", false, NULL, 0, NULL);
    seed_timer_restart(t, (uint64_t)s->poll_s * 1000000);
    return 0;
}

void node_sources_changed(node *n) {
    for (size_t i = 0; i < n->n_srcs; i++) {
        node_source *s = n->srcs[i];
        if (s->poll_s && !s->poll_timer && !s->removing && !n->stopping)
            seed_loop_add_timer(n->loop, (uint64_t)s->poll_s * 1000000, poll_fire, s, &s->poll_timer);
    }
    if (!n->webhook)
        return;
    seed_webhook_source *tab = calloc(n->n_srcs + 1, sizeof(*tab));
    if (!tab)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n->n_srcs; i++)
        if (!n->srcs[i]->removing)
            tab[k++] = (seed_webhook_source){
                .name = n->srcs[i]->name, .secret = n->srcs[i]->secret, .ref = n->srcs[i]->fu.ref};
    if (seed_webhook_set_sources(n->webhook, tab, k) < 0)
        log_warning("webhooks: updating the table of sources failed (out of memory)");
    free(tab);
}
