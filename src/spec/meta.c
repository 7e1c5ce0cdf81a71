/* The meta of an instance as JSON — the shape Seed's controller reads from
 * `nix eval .#seeds.<name>.meta --json` — plus our payload fields. The same object,
 * minus namespace and identity, is what the identity hashes. Written as text directly
 * (base/jsonw.h): building a jansson tree per instance cost more than parsing. */
#include <string.h>

#include "spec/meta.h"

static void kv_write(seed_jw *w, const seed_kv *kv, size_t n) {
    seed_jw_object_begin(w);
    for (size_t i = 0; i < n; i++) {
        seed_jw_key(w, kv[i].key);
        seed_jw_string(w, kv[i].value);
    }
    seed_jw_object_end(w);
}

static void processes_write(seed_jw *w, const seed_instance *inst) {
    seed_jw_object_begin(w);
    for (size_t i = 0; i < inst->n_processes; i++) {
        const seed_process *p = &inst->processes[i];
        seed_jw_key(w, p->name);
        seed_jw_object_begin(w);
        seed_jw_key(w, "command");
        seed_jw_array_begin(w);
        for (size_t j = 0; j < p->n_command; j++)
            seed_jw_string(w, p->command[j]);
        seed_jw_array_end(w);
        seed_jw_key(w, "env");
        kv_write(w, p->env, p->n_env);
        seed_jw_key(w, "cwd");
        seed_jw_string(w, p->cwd ? p->cwd : "/");
        seed_jw_key(w, "user");
        seed_jw_string(w, p->user ? p->user : "root");
        seed_jw_key(w, "restart");
        seed_jw_string(w, seed_restart_to_string(p->restart));
        /* Added later: in the identity only when set (see seed_instance_meta_members). */
        if (w->style != SEED_JW_CANONICAL || p->foreground) {
            seed_jw_key(w, "foreground");
            seed_jw_bool(w, p->foreground);
        }
        seed_jw_object_end(w);
    }
    seed_jw_object_end(w);
}

static void users_write(seed_jw *w, const seed_instance *inst) {
    seed_jw_object_begin(w);
    for (size_t i = 0; i < inst->n_users; i++) {
        const seed_user *u = &inst->users[i];
        seed_jw_key(w, u->name);
        seed_jw_object_begin(w);
        seed_jw_key(w, "uid");
        seed_jw_int(w, (long long)u->uid);
        seed_jw_key(w, "gid");
        seed_jw_int(w, (long long)u->gid);
        seed_jw_key(w, "shell");
        seed_jw_string(w, u->shell);
        seed_jw_key(w, "home");
        seed_jw_string(w, u->home);
        seed_jw_object_end(w);
    }
    seed_jw_object_end(w);
}

/* {"http": "/healthz", "port": 8080, ...} or {"command": [...], ...}; durations in ms. */
static void health_write(seed_jw *w, const seed_health *h) {
    if (!h) {
        seed_jw_null(w);
        return;
    }
    seed_jw_object_begin(w);
    if (h->kind == SEED_HEALTH_HTTP) {
        seed_jw_key(w, "http");
        seed_jw_string(w, h->http_path);
        seed_jw_key(w, "port");
        seed_jw_int(w, (long long)h->port);
    } else {
        seed_jw_key(w, "command");
        seed_jw_array_begin(w);
        for (size_t j = 0; j < h->n_command; j++)
            seed_jw_string(w, h->command[j]);
        seed_jw_array_end(w);
    }
    seed_jw_key(w, "intervalMs");
    seed_jw_int(w, (long long)h->interval_ms);
    seed_jw_key(w, "timeoutMs");
    seed_jw_int(w, (long long)h->timeout_ms);
    seed_jw_key(w, "retries");
    seed_jw_int(w, (long long)h->retries);
    seed_jw_object_end(w);
}

void seed_instance_meta_members(seed_jw *w, const seed_instance *inst, const char *namespace,
                                bool with_identity) {
    seed_jw_key(w, "name");
    seed_jw_string(w, inst->name);
    seed_jw_key(w, "system");
    seed_jw_string(w, inst->system ? inst->system : "");
    seed_jw_key(w, "size");
    seed_jw_string(w, seed_size_tier_to_string(inst->size));
    seed_jw_key(w, "resources");
    seed_jw_object_begin(w);
    seed_jw_key(w, "vcpus");
    seed_jw_int(w, (int)inst->vcpus);
    seed_jw_key(w, "memory");
    seed_jw_int(w, (int)inst->memory_mib);
    seed_jw_object_end(w);

    seed_jw_key(w, "expose");
    seed_jw_object_begin(w);
    for (size_t i = 0; i < inst->n_expose; i++) {
        seed_jw_key(w, inst->expose[i].name);
        seed_jw_object_begin(w);
        seed_jw_key(w, "port");
        seed_jw_int(w, (int)inst->expose[i].port);
        seed_jw_key(w, "protocol");
        seed_jw_string(w, seed_protocol_to_string(inst->expose[i].protocol));
        seed_jw_object_end(w);
    }
    seed_jw_object_end(w);

    seed_jw_key(w, "storage");
    seed_jw_object_begin(w);
    for (size_t i = 0; i < inst->n_storage; i++) {
        seed_jw_key(w, inst->storage[i].name);
        seed_jw_object_begin(w);
        seed_jw_key(w, "size");
        seed_jw_string(w, inst->storage[i].size);
        seed_jw_key(w, "sizeBytes");
        seed_jw_int(w, (long long)inst->storage[i].size_bytes);
        seed_jw_key(w, "mountPoint");
        seed_jw_string(w, inst->storage[i].mount_point);
        seed_jw_object_end(w);
    }
    seed_jw_object_end(w);

    seed_jw_key(w, "connect");
    seed_jw_object_begin(w);
    for (size_t i = 0; i < inst->n_connect; i++) {
        seed_jw_key(w, inst->connect[i].name);
        seed_jw_object_begin(w);
        seed_jw_key(w, "service");
        seed_jw_string(w, inst->connect[i].service);
        seed_jw_key(w, "port");
        if (inst->connect[i].port)
            seed_jw_int(w, inst->connect[i].port);
        else
            seed_jw_null(w);
        seed_jw_object_end(w);
    }
    seed_jw_object_end(w);

    seed_jw_key(w, "rollout");
    seed_jw_string(w, seed_rollout_to_string(inst->rollout));
    /* Added after identity version 1: in the identity only when they differ from their
     * default, so that a project that does not use them keeps its identities and
     * nothing rolls out because seed was upgraded. */
    bool identity = w->style == SEED_JW_CANONICAL;
    if (!identity || inst->rollout_timeout_ms != SEED_ROLLOUT_DEFAULT_TIMEOUT_MS) {
        seed_jw_key(w, "rolloutTimeoutMs");
        seed_jw_int(w, (long long)inst->rollout_timeout_ms);
    }
    if (!identity || inst->health) {
        seed_jw_key(w, "health");
        health_write(w, inst->health);
    }
    seed_jw_key(w, "shoot");
    seed_jw_object_begin(w);
    seed_jw_key(w, "enable");
    seed_jw_bool(w, inst->shoot_enable);
    seed_jw_key(w, "max");
    seed_jw_int(w, (int)inst->shoot_max);
    seed_jw_object_end(w);
    if (namespace) {
        seed_jw_key(w, "namespace");
        seed_jw_string(w, namespace);
    }
    if (with_identity) {
        seed_jw_key(w, "identity");
        seed_jw_string(w, inst->identity);
    }
    seed_jw_key(w, "root");
    seed_jw_string(w, inst->root); /* NULL: null */
    seed_jw_key(w, "env");
    kv_write(w, inst->env, inst->n_env);
    seed_jw_key(w, "processes");
    processes_write(w, inst);
    if (!identity || inst->n_users) {
        seed_jw_key(w, "users");
        users_write(w, inst);
    }
    if (!identity || inst->n_boot_required) {
        seed_jw_key(w, "boot");
        seed_jw_object_begin(w);
        seed_jw_key(w, "required");
        seed_jw_array_begin(w);
        for (size_t i = 0; i < inst->n_boot_required; i++)
            seed_jw_string(w, inst->boot_required[i]);
        seed_jw_array_end(w);
        seed_jw_object_end(w);
    }
    if (!identity || inst->nix_enable) {
        seed_jw_key(w, "nix");
        seed_jw_object_begin(w);
        seed_jw_key(w, "enable");
        seed_jw_bool(w, inst->nix_enable);
        seed_jw_key(w, "volume");
        seed_jw_string(w, inst->nix_enable ? inst->nix_volume : NULL);
        seed_jw_key(w, "daemon");
        seed_jw_bool(w, inst->nix_daemon);
        seed_jw_key(w, "minFree");
        seed_jw_string(w, inst->nix_min_free);
        seed_jw_key(w, "maxFree");
        seed_jw_string(w, inst->nix_max_free);
        seed_jw_object_end(w);
    }
    seed_jw_key(w, "toplevel");
    seed_jw_string(w, inst->toplevel);
    /* Only when there are some, so the identities of instances without stay as they
     * were. The digest is of the encrypted file: a re-encrypted secret rolls the
     * instance out, and nothing here depends on the plaintext. */
    if (inst->n_secrets) {
        seed_jw_key(w, "secrets");
        seed_jw_object_begin(w);
        for (size_t i = 0; i < inst->n_secrets; i++) {
            const seed_secret *x = &inst->secrets[i];
            char mode[8];
            snprintf(mode, sizeof(mode), "%04o", x->mode);
            seed_jw_key(w, x->name);
            seed_jw_object_begin(w);
            seed_jw_key(w, "file");
            seed_jw_string(w, x->file);
            seed_jw_key(w, "format");
            seed_jw_string(w, x->format);
            seed_jw_key(w, "key");
            seed_jw_string(w, x->key);
            seed_jw_key(w, "mode");
            seed_jw_string(w, mode);
            seed_jw_key(w, "owner");
            seed_jw_string(w, x->owner ? x->owner : "root");
            seed_jw_key(w, "env");
            seed_jw_string(w, x->env);
            seed_jw_key(w, "digest");
            seed_jw_string(w, x->digest);
            seed_jw_object_end(w);
        }
        seed_jw_object_end(w);
    }
}

int seed_project_meta_write(seed_jw *w, const seed_project *p) {
    seed_jw_object_begin(w);
    for (size_t i = 0; i < p->n_instances; i++) {
        seed_jw_key(w, p->instances[i].name);
        seed_jw_object_begin(w);
        seed_instance_meta_members(w, &p->instances[i], p->namespace, true);
        seed_jw_object_end(w);
    }
    seed_jw_object_end(w);
    return seed_jw_finish(w);
}

/* The text as a jansson tree: members keep their order, so json_dumps(JSON_INDENT(2))
 * of it is the writer's text again. */
static json_t *load_text(seed_jw *w, int r) {
    json_t *j = r == 0 ? json_loadb(w->buf, w->len, 0, NULL) : NULL;
    seed_jw_free(w);
    return j;
}

json_t *seed_instance_meta(const seed_instance *inst, const char *namespace, bool with_identity) {
    seed_jw w = {.style = SEED_JW_PRETTY};
    seed_jw_object_begin(&w);
    seed_instance_meta_members(&w, inst, namespace, with_identity);
    seed_jw_object_end(&w);
    return load_text(&w, seed_jw_finish(&w));
}

json_t *seed_project_meta(const seed_project *p) {
    seed_jw w = {.style = SEED_JW_PRETTY};
    return load_text(&w, seed_project_meta_write(&w, p));
}
