/* The meta of an instance as JSON — the shape Seed's controller reads from
 * `nix eval .#seeds.<name>.meta --json` — plus our payload fields. The same object,
 * minus namespace and identity, is what the identity hashes. */
#include <string.h>

#include "spec/meta.h"

static json_t *kv_object(const seed_kv *kv, size_t n) {
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++)
        json_object_set_new(o, kv[i].key, json_string(kv[i].value));
    return o;
}

static json_t *processes_object(const seed_instance *inst) {
    json_t *o = json_object();
    for (size_t i = 0; o && i < inst->n_processes; i++) {
        const seed_process *p = &inst->processes[i];
        json_t *cmd = json_array();
        for (size_t j = 0; cmd && j < p->n_command; j++)
            json_array_append_new(cmd, json_string(p->command[j]));
        json_object_set_new(o, p->name,
                            json_pack("{s:o, s:o, s:s, s:s, s:s}", "command", cmd, "env",
                                      kv_object(p->env, p->n_env), "cwd", p->cwd ? p->cwd : "/", "user",
                                      p->user ? p->user : "root", "restart",
                                      seed_restart_to_string(p->restart)));
    }
    return o;
}

/* {"http": "/healthz", "port": 8080, ...} or {"command": [...], ...}; durations in ms. */
static json_t *health_object(const seed_health *h) {
    if (!h)
        return json_null();
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (h->kind == SEED_HEALTH_HTTP) {
        json_object_set_new(o, "http", json_string(h->http_path));
        json_object_set_new(o, "port", json_integer(h->port));
    } else {
        json_t *cmd = json_array();
        for (size_t j = 0; cmd && j < h->n_command; j++)
            json_array_append_new(cmd, json_string(h->command[j]));
        json_object_set_new(o, "command", cmd);
    }
    json_object_set_new(o, "intervalMs", json_integer(h->interval_ms));
    json_object_set_new(o, "timeoutMs", json_integer(h->timeout_ms));
    json_object_set_new(o, "retries", json_integer(h->retries));
    return o;
}

json_t *seed_instance_meta(const seed_instance *inst, const char *namespace, bool with_identity) {
    json_t *expose = json_object(), *storage = json_object(), *connect = json_object();
    if (!expose || !storage || !connect) {
        json_decref(expose);
        json_decref(storage);
        json_decref(connect);
        return NULL;
    }
    for (size_t i = 0; i < inst->n_expose; i++)
        json_object_set_new(expose, inst->expose[i].name,
                            json_pack("{s:i, s:s}", "port", (int)inst->expose[i].port, "protocol",
                                      seed_protocol_to_string(inst->expose[i].protocol)));
    for (size_t i = 0; i < inst->n_storage; i++)
        json_object_set_new(storage, inst->storage[i].name,
                            json_pack("{s:s, s:I, s:s}", "size", inst->storage[i].size, "sizeBytes",
                                      (json_int_t)inst->storage[i].size_bytes, "mountPoint",
                                      inst->storage[i].mount_point));
    for (size_t i = 0; i < inst->n_connect; i++) {
        json_t *port = inst->connect[i].port ? json_integer(inst->connect[i].port) : json_null();
        json_object_set_new(connect, inst->connect[i].name,
                            json_pack("{s:s, s:o}", "service", inst->connect[i].service, "port", port));
    }

    json_t *m = json_pack("{s:s, s:s, s:s, s:{s:i, s:i}, s:o, s:o, s:o, s:s, s:I, s:o, s:{s:b, s:i}}", "name",
                          inst->name, "system", inst->system ? inst->system : "", "size",
                          seed_size_tier_to_string(inst->size), "resources", "vcpus", (int)inst->vcpus,
                          "memory", (int)inst->memory_mib, "expose", expose, "storage", storage, "connect",
                          connect, "rollout", seed_rollout_to_string(inst->rollout), "rolloutTimeoutMs",
                          (json_int_t)inst->rollout_timeout_ms, "health", health_object(inst->health),
                          "shoot", "enable", (int)inst->shoot_enable, "max", (int)inst->shoot_max);
    if (!m)
        return NULL;
    if (namespace)
        json_object_set_new(m, "namespace", json_string(namespace));
    if (with_identity)
        json_object_set_new(m, "identity", json_string(inst->identity));
    json_object_set_new(m, "root", inst->root ? json_string(inst->root) : json_null());
    json_object_set_new(m, "env", kv_object(inst->env, inst->n_env));
    json_object_set_new(m, "processes", processes_object(inst));
    json_object_set_new(m, "toplevel", inst->toplevel ? json_string(inst->toplevel) : json_null());
    return m;
}

json_t *seed_project_meta(const seed_project *p) {
    json_t *o = json_object();
    for (size_t i = 0; o && i < p->n_instances; i++) {
        json_t *m = seed_instance_meta(&p->instances[i], p->namespace, true);
        if (!m || json_object_set_new(o, p->instances[i].name, m) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}
