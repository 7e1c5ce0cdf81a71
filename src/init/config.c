/* The init's configuration and the instance environment, from the spec alone: see
 * config.h. Used by the node (node/files.c) and by image builds (image/build.c). */
#include "init/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "spec/names.h"

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

static int instance_env(const seed_instance *s, const char *ns, const char *shoot_url, strv *env) {
    int r = env_set(env, "PATH",
                    s->shoot_enable ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/seed/bin"
                                    : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    if (r >= 0)
        r = env_set(env, "HOSTNAME", s->name);
    if (r >= 0)
        r = env_set(env, "SEED_INSTANCE", s->name);
    if (r >= 0 && ns)
        r = env_set(env, "SEED_NAMESPACE", ns);
    if (r >= 0 && s->shoot_enable && shoot_url)
        r = env_set(env, "SEED_SHOOT_URL", shoot_url);
    for (size_t i = 0; r >= 0 && i < s->n_connect; i++) {
        _cleanup_free_ char *key = seed_connect_env_name(s->connect[i].name);
        r = key ? env_set(env, key, s->connect[i].service) : -ENOMEM;
    }
    for (size_t i = 0; r >= 0 && i < s->n_env; i++)
        r = env_set(env, s->env[i].key, s->env[i].value);
    /* nix.daemon: every nix command goes through the instance's nix-daemon. */
    if (r >= 0 && s->nix_enable && s->nix_daemon)
        r = env_set(env, "NIX_REMOTE", "daemon");
    return r;
}

int seed_instance_init_env(const seed_instance *s, const char *ns, const char *shoot_url, char ***ret) {
    strv env = {0};
    int r = instance_env(s, ns, shoot_url, &env);
    if (r >= 0 && !env.v)
        r = -ENOMEM;
    if (r < 0) {
        strv_free(env.v);
        return r;
    }
    *ret = env.v;
    return 0;
}

static json_t *strv_json(char **v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

int seed_instance_init_config(const seed_instance *s, const char *ns, const char *shoot_url,
                              unsigned grace_ms, char **ret) {
    strv base = {0};
    int r = instance_env(s, ns, shoot_url, &base);
    json_t *procs = json_array();
    for (size_t i = 0; r >= 0 && procs && i < s->n_processes; i++) {
        const seed_process *p = &s->processes[i];
        strv env = {0};
        for (size_t j = 0; r >= 0 && j < base.n; j++)
            r = strv_push(&env, strdup(base.v[j]));
        for (size_t j = 0; r >= 0 && j < p->n_env; j++)
            r = env_set(&env, p->env[j].key, p->env[j].value);
        json_t *cmd = strv_json(p->command, p->n_command);
        json_array_append_new(procs, json_pack("{s:s, s:o, s:o, s:s, s:s, s:s, s:b}", "name", p->name, "argv",
                                               cmd, "env", strv_json(env.v, env.n), "cwd",
                                               p->cwd ? p->cwd : "/", "user", p->user ? p->user : "root",
                                               "restart", seed_restart_to_string(p->restart), "foreground",
                                               (int)p->foreground));
        strv_free(env.v);
    }
    /* nix.daemon: the daemon itself, a process like the others (restarted always), on
     * the store itself rather than on itself. */
    if (r >= 0 && procs && s->nix_enable && s->nix_daemon) {
        strv env = {0};
        for (size_t j = 0; r >= 0 && j < base.n; j++)
            r = strv_push(&env, strdup(base.v[j]));
        if (r >= 0)
            r = env_set(&env, "NIX_REMOTE", "local");
        json_t *argv = json_pack("[s]", "nix-daemon");
        json_array_append_new(procs, json_pack("{s:s, s:o, s:o, s:s, s:s, s:s, s:b}", "name", "nix-daemon",
                                               "argv", argv, "env", strv_json(env.v, env.n), "cwd", "/",
                                               "user", "root", "restart", "always", "foreground", 0));
        strv_free(env.v);
    }
    json_t *users = json_array();
    for (size_t i = 0; users && i < s->n_users; i++) {
        const seed_user *u = &s->users[i];
        json_array_append_new(users, json_pack("{s:s, s:I, s:I, s:s, s:s}", "name", u->name, "uid",
                                               (json_int_t)u->uid, "gid", (json_int_t)u->gid, "shell",
                                               u->shell, "home", u->home));
    }
    /* Image mode's boot tasks keep state (SSH host keys) on the first volume, and run
     * sshd on the port exposed as "ssh" (else 22). */
    json_t *volumes = json_array();
    for (size_t i = 0; volumes && i < s->n_storage; i++)
        json_array_append_new(volumes, json_string(s->storage[i].mount_point));
    unsigned ssh_port = 22;
    for (size_t i = 0; i < s->n_expose; i++)
        if (streq(s->expose[i].name, "ssh"))
            ssh_port = s->expose[i].port;
    json_t *c = r >= 0 && procs && users && volumes
                    ? json_pack("{s:s, s:i, s:o, s:o, s:o, s:o, s:i}", "name", s->name, "grace_ms",
                                (int)grace_ms, "env_file", strv_json(base.v, base.n), "processes", procs,
                                "users", users, "volumes", volumes, "ssh_port", (int)ssh_port)
                    : NULL;
    if (r < 0 || !procs || !users || !volumes) {
        json_decref(procs); /* not handed to json_pack */
        json_decref(users);
        json_decref(volumes);
    }
    /* boot.required: image mode stops when one of these boot tasks fails. */
    if (c && s->n_boot_required) {
        json_t *req = json_array();
        for (size_t i = 0; req && i < s->n_boot_required; i++)
            json_array_append_new(req, json_string(s->boot_required[i]));
        if (!req || json_object_set_new(c, "required", req) < 0) {
            json_decref(c);
            c = NULL;
        }
    }
    /* A NixOS system: the init runs its <toplevel>/init in its place. */
    if (c && s->toplevel && json_object_set_new(c, "toplevel", json_string(s->toplevel)) < 0) {
        json_decref(c);
        c = NULL;
    }
    strv_free(base.v);
    char *text = c ? json_dumps(c, JSON_COMPACT) : NULL;
    json_decref(c);
    if (!text)
        return -ENOMEM;
    *ret = text;
    return 0;
}
