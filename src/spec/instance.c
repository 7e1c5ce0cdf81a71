/* One instance object: every Seed option with its coercions and defaults, and our
 * payload fields. Problems are reported with their full option path and parsing
 * continues, so one run lists every error. */
#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/hash.h"
#include "secret/age.h"
#include "secret/sops.h"
#include "spec/names.h"
#include "spec/parse.h"

#ifndef SEED_DEFAULT_SYSTEM
#if defined(__x86_64__)
#define SEED_DEFAULT_SYSTEM "x86_64-linux"
#elif defined(__aarch64__)
#define SEED_DEFAULT_SYSTEM "aarch64-linux"
#elif defined(__riscv) && __riscv_xlen == 64
#define SEED_DEFAULT_SYSTEM "riscv64-linux"
#elif defined(__i386__)
#define SEED_DEFAULT_SYSTEM "i686-linux"
#else
#define SEED_DEFAULT_SYSTEM "unknown-linux"
#endif
#endif

static const char *const systems[] = {"x86_64-linux", "aarch64-linux", "i686-linux", "riscv64-linux",
                                      "armv7l-linux"};
static const char *const sizes[] = {"xs", "s", "m", "l", "xl"};
static const char *const protocols[] = {"tcp", "udp", "dns", "http", "grpc"};
static const char *const rollouts[] = {"recreate", "rolling"};
static const char *const restarts[] = {"always", "on-failure", "no"};

const char *seed_size_tier_to_string(seed_size_tier t) {
    return t < _SEED_SIZE_MAX ? sizes[t] : NULL;
}
const char *seed_protocol_to_string(seed_protocol p) {
    return p < _SEED_PROTO_MAX ? protocols[p] : NULL;
}
const char *seed_rollout_to_string(seed_rollout r) {
    return r < _SEED_ROLLOUT_MAX ? rollouts[r] : NULL;
}
const char *seed_restart_to_string(seed_restart r) {
    return r < _SEED_RESTART_MAX ? restarts[r] : NULL;
}

void seed_size_tier_resources(seed_size_tier t, unsigned *vcpus, unsigned *memory_mib) {
    static const unsigned cpu[] = {1, 1, 2, 4, 8};
    static const unsigned mem[] = {512, 1024, 2048, 4096, 8192};
    *vcpus = cpu[t];
    *memory_mib = mem[t];
}

bool seed_protocol_uses_tcp(seed_protocol p) {
    return p != SEED_PROTO_UDP;
}
bool seed_protocol_uses_udp(seed_protocol p) {
    return p == SEED_PROTO_UDP || p == SEED_PROTO_DNS;
}

void parse_error(parse_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    seed_diags_vadd(c->diags, c->file, c->path.buf, fmt, ap);
    va_end(ap);
}

/* "expected X, found Y" for a value of the wrong type. */
static void type_error(parse_ctx *c, const json_t *v, const char *expected) {
    char found[96];
    seed_json_describe(v, found, sizeof(found));
    parse_error(c, "expected %s, found %s", expected, found);
}

static void list_words(const char *const *words, size_t n, char *buf, size_t size) {
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "", words[i]);
}

/* Report keys of obj that are not in allowed[], suggesting the nearest. */
static void check_keys(parse_ctx *c, json_t *obj, const char *const *allowed, size_t n) {
    const char *key;
    json_t *v;
    json_object_foreach (obj, key, v) {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = streq(key, allowed[i]);
        if (ok)
            continue;
        size_t saved = seed_jpath_push_key(&c->path, key);
        const char *near = seed_nearest(key, allowed, n);
        char list[256];
        list_words(allowed, n, list, sizeof(list));
        if (near)
            parse_error(c, "unknown option; did you mean \"%s\"? (expected one of: %s)", near, list);
        else
            parse_error(c, "unknown option (expected one of: %s)", list);
        seed_jpath_pop(&c->path, saved);
    }
}

/* Match a string against a table of words; report unknown ones with a suggestion. */
static int parse_enum(parse_ctx *c, json_t *v, const char *what, const char *const *words, size_t n) {
    char list[160]; /* for the messages only */
    if (!json_is_string(v)) {
        list_words(words, n, list, sizeof(list));
        char expected[224];
        snprintf(expected, sizeof(expected), "a %s (one of: %s)", what, list);
        type_error(c, v, expected);
        return -1;
    }
    const char *s = json_string_value(v);
    for (size_t i = 0; i < n; i++)
        if (streq(s, words[i]))
            return (int)i;
    char found[96];
    seed_json_describe(v, found, sizeof(found));
    list_words(words, n, list, sizeof(list));
    const char *near = seed_nearest(s, words, n);
    if (near)
        parse_error(c, "unknown %s %s; did you mean \"%s\"? (expected one of: %s)", what, found, near, list);
    else
        parse_error(c, "unknown %s %s (expected one of: %s)", what, found, list);
    return -1;
}

static bool parse_string(parse_ctx *c, json_t *v, const char *expected, char **out) {
    if (!json_is_string(v)) {
        type_error(c, v, expected);
        return false;
    }
    char *s = strdup(json_string_value(v));
    if (!s) {
        parse_error(c, "out of memory");
        return false;
    }
    free(*out);
    *out = s;
    return true;
}

static bool parse_port(parse_ctx *c, json_t *v, unsigned *out) {
    if (!json_is_integer(v)) {
        type_error(c, v, "a port number (an integer from 1 to 65535)");
        return false;
    }
    json_int_t p = json_integer_value(v);
    if (p < 1 || p > 65535) {
        parse_error(c, "port %lld is out of range: expected an integer from 1 to 65535", (long long)p);
        return false;
    }
    *out = (unsigned)p;
    return true;
}

/* Common start of every map option: must be an object of bounded size. */
static bool check_map(parse_ctx *c, json_t *v, const char *expected) {
    if (!json_is_object(v)) {
        type_error(c, v, expected);
        return false;
    }
    if (json_object_size(v) > SEED_SPEC_MAX_ENTRIES) {
        parse_error(c, "has %zu entries: at most %d are allowed", json_object_size(v), SEED_SPEC_MAX_ENTRIES);
        return false;
    }
    return true;
}

static void *alloc_array(parse_ctx *c, size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p)
        parse_error(c, "out of memory");
    return p;
}

static int cmp_name(const void *a, const void *b) {
    /* Every element type below starts with its `char *name` (or key). */
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void parse_expose(parse_ctx *c, json_t *v, seed_instance *inst) {
    if (!check_map(c, v, "an object mapping names to ports, like {\"http\": 8080}"))
        return;
    inst->expose = alloc_array(c, json_object_size(v), sizeof(seed_expose));
    if (!inst->expose)
        return;
    const char *key;
    json_t *e;
    json_object_foreach (v, key, e) {
        size_t saved = seed_jpath_push_key(&c->path, key);
        const char *why = seed_check_dns_label(key, 63);
        seed_expose x = {.protocol = SEED_PROTO_HTTP};
        bool ok = true;
        if (why) {
            parse_error(c, "port name %s", why);
            ok = false;
        }
        if (json_is_integer(e)) {
            /* Shorthand for {"port": N}: report problems at the coerced path. */
            size_t s2 = seed_jpath_push_key(&c->path, "port");
            ok = parse_port(c, e, &x.port) && ok;
            seed_jpath_pop(&c->path, s2);
        } else if (json_is_object(e)) {
            static const char *const keys[] = {"port", "protocol"};
            check_keys(c, e, keys, ELEMENTSOF(keys));
            json_t *port = json_object_get(e, "port");
            json_t *proto = json_object_get(e, "protocol");
            size_t s2 = seed_jpath_push_key(&c->path, "port");
            if (!port) {
                parse_error(c, "missing: expected a port number (an integer from 1 to 65535)");
                ok = false;
            } else {
                ok = parse_port(c, port, &x.port) && ok;
            }
            seed_jpath_pop(&c->path, s2);
            if (proto) {
                s2 = seed_jpath_push_key(&c->path, "protocol");
                int p = parse_enum(c, proto, "protocol", protocols, ELEMENTSOF(protocols));
                if (p < 0)
                    ok = false;
                else
                    x.protocol = (seed_protocol)p;
                seed_jpath_pop(&c->path, s2);
            }
        } else {
            type_error(c, e, "a port number or an object {\"port\": ..., \"protocol\": ...}");
            ok = false;
        }
        if (ok && (x.name = strdup(key)))
            inst->expose[inst->n_expose++] = x;
        seed_jpath_pop(&c->path, saved);
    }
    qsort(inst->expose, inst->n_expose, sizeof(seed_expose), cmp_name);
}

static bool parse_size_value(parse_ctx *c, json_t *v, seed_volume *vol) {
    char buf[32];
    const char *s;
    if (json_is_string(v)) {
        s = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        s = buf;
    } else {
        type_error(c, v, "a size like \"1Gi\", \"500Mi\" or \"10G\"");
        return false;
    }
    _cleanup_free_ char *msg = NULL;
    if (seed_parse_quantity(s, &vol->size_bytes, &msg) < 0) {
        parse_error(c, "%s", msg ? msg : "malformed size");
        return false;
    }
    if (vol->size_bytes < SEED_SPEC_MIN_VOLUME) {
        parse_error(c, "size \"%s\" is %llu bytes: a volume needs at least 1Mi (1048576 bytes)", s,
                    (unsigned long long)vol->size_bytes);
        return false;
    }
    if (vol->size_bytes > SEED_SPEC_MAX_VOLUME) {
        parse_error(c, "size \"%s\" is %llu bytes: a volume can be at most 16Ti (%llu bytes)", s,
                    (unsigned long long)vol->size_bytes, (unsigned long long)SEED_SPEC_MAX_VOLUME);
        return false;
    }
    vol->size = strdup(s);
    return vol->size != NULL;
}

static void parse_storage(parse_ctx *c, json_t *v, seed_instance *inst) {
    if (!check_map(c, v, "an object mapping volume names to sizes, like {\"data\": \"1Gi\"}"))
        return;
    inst->storage = alloc_array(c, json_object_size(v), sizeof(seed_volume));
    if (!inst->storage)
        return;
    const char *key;
    json_t *e;
    json_object_foreach (v, key, e) {
        size_t saved = seed_jpath_push_key(&c->path, key);
        seed_volume x = {0};
        bool ok = true;
        const char *why = seed_check_dns_label(key, 63);
        if (why) {
            parse_error(c, "volume name %s", why);
            ok = false;
        }
        json_t *mp = NULL;
        if (json_is_object(e)) {
            static const char *const keys[] = {"size", "mountPoint"};
            check_keys(c, e, keys, ELEMENTSOF(keys));
            json_t *size = json_object_get(e, "size");
            mp = json_object_get(e, "mountPoint");
            size_t s2 = seed_jpath_push_key(&c->path, "size");
            if (!size) {
                parse_error(c, "missing: expected a size like \"1Gi\"");
                ok = false;
            } else {
                ok = parse_size_value(c, size, &x) && ok;
            }
            seed_jpath_pop(&c->path, s2);
        } else if (json_is_string(e) || json_is_integer(e)) {
            size_t s2 = seed_jpath_push_key(&c->path, "size");
            ok = parse_size_value(c, e, &x) && ok;
            seed_jpath_pop(&c->path, s2);
        } else {
            type_error(c, e, "a size like \"1Gi\" or an object {\"size\": ..., \"mountPoint\": ...}");
            ok = false;
        }
        if (mp) {
            size_t s2 = seed_jpath_push_key(&c->path, "mountPoint");
            if (!json_is_string(mp)) {
                type_error(c, mp, "an absolute path");
                ok = false;
            } else if ((why = seed_normalize_mount_point(json_string_value(mp), &x.mount_point))) {
                char found[96];
                seed_json_describe(mp, found, sizeof(found));
                parse_error(c, "mount point %s %s", found, why);
                ok = false;
            }
            seed_jpath_pop(&c->path, s2);
        } else if (ok && asprintf(&x.mount_point, "/seed/storage/%s", key) < 0) {
            x.mount_point = NULL;
            ok = false;
        }
        if (ok)
            x.name = strdup(key);
        if (ok && x.name) {
            inst->storage[inst->n_storage++] = x;
        } else {
            free(x.size);
            free(x.mount_point);
            free(x.name);
        }
        seed_jpath_pop(&c->path, saved);
    }
    qsort(inst->storage, inst->n_storage, sizeof(seed_volume), cmp_name);

    /* Two volumes on one mount point: report at the later one (in name order). */
    for (size_t i = 0; i < inst->n_storage; i++)
        for (size_t j = 0; j < i; j++)
            if (streq(inst->storage[i].mount_point, inst->storage[j].mount_point)) {
                size_t saved = seed_jpath_push_key(&c->path, inst->storage[i].name);
                seed_jpath_push_key(&c->path, "mountPoint");
                parse_error(c,
                            "mount point \"%s\" is already used by volume \"%s\": each volume needs "
                            "its own mount point",
                            inst->storage[i].mount_point, inst->storage[j].name);
                seed_jpath_pop(&c->path, saved);
                break;
            }
}

static void parse_connect(parse_ctx *c, json_t *v, seed_instance *inst) {
    if (!check_map(c, v, "an object mapping names to services, like {\"db\": \"seed-db\"}"))
        return;
    inst->connect = alloc_array(c, json_object_size(v), sizeof(seed_connect));
    if (!inst->connect)
        return;
    const char *key;
    json_t *e;
    json_object_foreach (v, key, e) {
        size_t saved = seed_jpath_push_key(&c->path, key);
        seed_connect x = {0};
        bool ok = true;
        const char *why = seed_check_connect_name(key);
        if (why) {
            parse_error(c, "connect name %s", why);
            ok = false;
        }
        json_t *service = e;
        if (json_is_object(e)) {
            static const char *const keys[] = {"service", "port"};
            check_keys(c, e, keys, ELEMENTSOF(keys));
            service = json_object_get(e, "service");
            json_t *port = json_object_get(e, "port");
            if (port && !json_is_null(port)) {
                size_t s2 = seed_jpath_push_key(&c->path, "port");
                ok = parse_port(c, port, &x.port) && ok;
                seed_jpath_pop(&c->path, s2);
            }
            if (!service) {
                size_t s2 = seed_jpath_push_key(&c->path, "service");
                parse_error(c, "missing: expected a service name like \"seed-db\"");
                seed_jpath_pop(&c->path, s2);
                ok = false;
            }
        } else if (!json_is_string(e)) {
            type_error(c, e, "a service name or an object {\"service\": ..., \"port\": ...}");
            ok = false;
            service = NULL;
        }
        if (service) {
            size_t s2 = seed_jpath_push_key(&c->path, "service");
            if (parse_string(c, service, "a service name like \"seed-db\"", &x.service) &&
                (why = seed_check_hostname(x.service))) {
                parse_error(c, "service name \"%s\" %s", x.service, why);
                ok = false;
            } else if (!x.service) {
                ok = false;
            }
            seed_jpath_pop(&c->path, s2);
        }
        if (ok && (x.name = strdup(key))) {
            inst->connect[inst->n_connect++] = x;
        } else {
            free(x.service);
        }
        seed_jpath_pop(&c->path, saved);
    }
    qsort(inst->connect, inst->n_connect, sizeof(seed_connect), cmp_name);
    /* "a-b" and "a_b" would both be $SEED_A_B_HOST. */
    char **env = calloc(inst->n_connect + 1, sizeof(char *));
    for (size_t i = 0; env && i < inst->n_connect; i++)
        env[i] = seed_connect_env_name(inst->connect[i].name);
    for (size_t i = 0; env && i < inst->n_connect; i++)
        for (size_t j = 0; j < i; j++)
            if (env[i] && env[j] && streq(env[i], env[j])) {
                size_t saved = seed_jpath_push_key(&c->path, inst->connect[i].name);
                parse_error(c, "gives $%s, which connect \"%s\" already sets", env[i], inst->connect[j].name);
                seed_jpath_pop(&c->path, saved);
            }
    for (size_t i = 0; env && i < inst->n_connect; i++)
        free(env[i]);
    free(env);
}

static void parse_env(parse_ctx *c, json_t *v, seed_kv **out, size_t *n_out) {
    if (!check_map(c, v, "an object mapping variable names to strings"))
        return;
    seed_kv *env = alloc_array(c, json_object_size(v), sizeof(seed_kv));
    if (!env)
        return;
    size_t n = 0;
    const char *key;
    json_t *e;
    json_object_foreach (v, key, e) {
        size_t saved = seed_jpath_push_key(&c->path, key);
        const char *why = seed_check_env_name(key);
        if (why) {
            parse_error(c, "variable name %s", why);
        } else if (!json_is_string(e)) {
            type_error(c, e, "a string");
        } else if (json_string_length(e) > 131071) {
            parse_error(c, "value is %zu bytes long: at most 131071 are allowed", json_string_length(e));
        } else {
            env[n].key = strdup(key);
            env[n].value = strdup(json_string_value(e));
            if (env[n].key && env[n].value) {
                n++;
            } else {
                free(env[n].key);
                free(env[n].value);
            }
        }
        seed_jpath_pop(&c->path, saved);
    }
    qsort(env, n, sizeof(seed_kv), cmp_name);
    *out = env;
    *n_out = n;
}

static bool parse_id_value(parse_ctx *c, json_t *v, const char *what, json_int_t min, unsigned *out) {
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > 4294967294ll) {
        char expected[96];
        snprintf(expected, sizeof(expected), "a %s (an integer from %lld to 4294967294)", what,
                 (long long)min);
        type_error(c, v, expected);
        return false;
    }
    *out = (unsigned)json_integer_value(v);
    return true;
}

/* A path that goes into a passwd field: absolute, and without ':' or a line break. */
static bool parse_account_path(parse_ctx *c, json_t *v, const char *what, char **out) {
    if (!parse_string(c, v, "an absolute path", out))
        return false;
    const char *why = seed_check_abs_path(*out);
    if (!why && strchr(*out, ':'))
        why = "must not contain ':' (it separates the fields of /etc/passwd)";
    if (why) {
        parse_error(c, "%s \"%s\" %s", what, *out, why);
        free(*out);
        *out = NULL;
        return false;
    }
    return true;
}

static void user_clear(seed_user *u) {
    free(u->name);
    free(u->shell);
    free(u->home);
}

/* users = {"app": {"uid": 1000, "gid"?: 1000, "shell"?: "/bin/sh", "home"?: "/home/app"}} */
static void parse_users(parse_ctx *c, json_t *v, seed_instance *inst) {
    if (!check_map(c, v, "an object mapping user names to {\"uid\": N, \"gid\"?, \"shell\"?, \"home\"?}"))
        return;
    inst->users = alloc_array(c, json_object_size(v), sizeof(seed_user));
    if (!inst->users)
        return;
    const char *key;
    json_t *e;
    json_object_foreach (v, key, e) {
        size_t saved = seed_jpath_push_key(&c->path, key);
        seed_user u = {0};
        const char *why = seed_check_user_name(key);
        bool ok = !why;
        if (why)
            parse_error(c, "user name %s", why);
        else if (streq(key, "root")) {
            parse_error(c, "root always exists: declare the other accounts here");
            ok = false;
        }
        if (!json_is_object(e)) {
            type_error(c, e, "an object {\"uid\": N, \"gid\"?, \"shell\"?, \"home\"?}");
            seed_jpath_pop(&c->path, saved);
            continue;
        }
        static const char *const keys[] = {"uid", "gid", "shell", "home"};
        check_keys(c, e, keys, ELEMENTSOF(keys));
        json_t *x;
        size_t s2 = seed_jpath_push_key(&c->path, "uid");
        if ((x = json_object_get(e, "uid")))
            ok = parse_id_value(c, x, "uid", 1, &u.uid) && ok;
        else {
            parse_error(c, "missing: every user needs a uid, like {\"uid\": 1000}");
            ok = false;
        }
        seed_jpath_pop(&c->path, s2);
        u.gid = u.uid;
        if ((x = json_object_get(e, "gid"))) {
            s2 = seed_jpath_push_key(&c->path, "gid");
            ok = parse_id_value(c, x, "gid", 0, &u.gid) && ok;
            seed_jpath_pop(&c->path, s2);
        }
        if ((x = json_object_get(e, "shell"))) {
            s2 = seed_jpath_push_key(&c->path, "shell");
            ok = parse_account_path(c, x, "shell", &u.shell) && ok;
            seed_jpath_pop(&c->path, s2);
        }
        if ((x = json_object_get(e, "home"))) {
            s2 = seed_jpath_push_key(&c->path, "home");
            ok = parse_account_path(c, x, "home", &u.home) && ok;
            seed_jpath_pop(&c->path, s2);
        }
        if (ok && !u.shell)
            ok = (u.shell = strdup("/bin/sh")) != NULL;
        if (ok && !u.home && asprintf(&u.home, "/home/%s", key) < 0) {
            u.home = NULL;
            ok = false;
        }
        if (ok && (u.name = strdup(key)))
            inst->users[inst->n_users++] = u;
        else
            user_clear(&u);
        seed_jpath_pop(&c->path, saved);
    }
    qsort(inst->users, inst->n_users, sizeof(seed_user), cmp_name);
    /* Two names for one uid: which one a process runs as would depend on the order of
     * /etc/passwd. Reported at the later one (in name order). */
    for (size_t i = 0; i < inst->n_users; i++)
        for (size_t j = 0; j < i; j++)
            if (inst->users[i].uid == inst->users[j].uid) {
                size_t saved = seed_jpath_push_key(&c->path, inst->users[i].name);
                seed_jpath_push_key(&c->path, "uid");
                parse_error(c, "uid %u is user \"%s\"'s already: each user needs its own uid",
                            inst->users[i].uid, inst->users[j].name);
                seed_jpath_pop(&c->path, saved);
                break;
            }
}

/* boot = {"required": ["ssh", "gpu"]}: image mode's boot tasks (init/boot.h) that must
 * succeed, or the container stops before its processes start. */
static void parse_boot(parse_ctx *c, json_t *v, seed_instance *inst) {
    static const char *const tasks[] = {"users", "password", "ssh", "tailscale", "gpu", "persist", "nix"};
    if (!json_is_object(v)) {
        type_error(c, v, "an object like {\"required\": [\"ssh\"]}");
        return;
    }
    static const char *const keys[] = {"required"};
    check_keys(c, v, keys, ELEMENTSOF(keys));
    json_t *req = json_object_get(v, "required");
    if (!req)
        return;
    size_t s2 = seed_jpath_push_key(&c->path, "required");
    if (!json_is_array(req)) {
        type_error(c, req, "a list of boot tasks, like [\"ssh\", \"gpu\"]");
        seed_jpath_pop(&c->path, s2);
        return;
    }
    inst->boot_required = calloc(json_array_size(req) + 1, sizeof(char *));
    size_t i;
    json_t *x;
    json_array_foreach (req, i, x) {
        size_t s3 = seed_jpath_push_index(&c->path, i);
        int t = parse_enum(c, x, "boot task", tasks, ELEMENTSOF(tasks));
        bool dup = false;
        for (size_t k = 0; t >= 0 && k < inst->n_boot_required; k++)
            dup = dup || streq(inst->boot_required[k], tasks[t]);
        if (dup)
            parse_error(c, "\"%s\" is listed twice", tasks[t]);
        else if (t >= 0 && inst->boot_required)
            inst->boot_required[inst->n_boot_required++] = strdup(tasks[t]);
        seed_jpath_pop(&c->path, s3);
    }
    seed_jpath_pop(&c->path, s2);
}

/* nix = {"enable": true, "volume"?: "data", "daemon"?: false, "minFree"?: "1Gi", "maxFree"?: "2Gi"} */
static void parse_nix_size(parse_ctx *c, json_t *v, char **text, uint64_t *bytes) {
    char buf[32];
    const char *s = json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        s = buf;
    }
    if (!s) {
        type_error(c, v, "a size like \"1Gi\" or \"500Mi\"");
        return;
    }
    _cleanup_free_ char *msg = NULL;
    if (seed_parse_quantity(s, bytes, &msg) < 0) {
        parse_error(c, "%s", msg ? msg : "malformed size");
        return;
    }
    *text = strdup(s);
}

static void parse_nix(parse_ctx *c, json_t *v, seed_instance *inst) {
    if (!json_is_object(v)) {
        type_error(c, v, "an object like {\"enable\": true}");
        return;
    }
    static const char *const keys[] = {"enable", "volume", "daemon", "minFree", "maxFree"};
    check_keys(c, v, keys, ELEMENTSOF(keys));
    json_t *x;
    size_t s2;
    if ((x = json_object_get(v, "enable"))) {
        s2 = seed_jpath_push_key(&c->path, "enable");
        if (json_is_boolean(x))
            inst->nix_enable = json_is_true(x);
        else
            type_error(c, x, "true or false");
        seed_jpath_pop(&c->path, s2);
    }
    if ((x = json_object_get(v, "daemon"))) {
        s2 = seed_jpath_push_key(&c->path, "daemon");
        if (json_is_boolean(x))
            inst->nix_daemon = json_is_true(x);
        else
            type_error(c, x, "true or false");
        seed_jpath_pop(&c->path, s2);
    }
    if ((x = json_object_get(v, "volume"))) {
        s2 = seed_jpath_push_key(&c->path, "volume");
        parse_string(c, x, "the name of one of this instance's volumes", &inst->nix_volume);
        seed_jpath_pop(&c->path, s2);
    }
    if ((x = json_object_get(v, "minFree"))) {
        s2 = seed_jpath_push_key(&c->path, "minFree");
        parse_nix_size(c, x, &inst->nix_min_free, &inst->nix_min_free_bytes);
        seed_jpath_pop(&c->path, s2);
    }
    if ((x = json_object_get(v, "maxFree"))) {
        s2 = seed_jpath_push_key(&c->path, "maxFree");
        parse_nix_size(c, x, &inst->nix_max_free, &inst->nix_max_free_bytes);
        if (inst->nix_min_free && inst->nix_max_free && inst->nix_max_free_bytes < inst->nix_min_free_bytes)
            parse_error(c, "maxFree %s is below minFree %s: garbage collection stops at maxFree free",
                        inst->nix_max_free, inst->nix_min_free);
        seed_jpath_pop(&c->path, s2);
    }
}

/* nix.enable keeps the store on a volume: one of the instance's. */
static void check_nix_volume(parse_ctx *c, seed_instance *inst) {
    if (!inst->nix_enable)
        return;
    size_t saved = seed_jpath_push_key(&c->path, "nix");
    if (inst->toplevel) {
        seed_jpath_push_key(&c->path, "enable");
        parse_error(c, "a NixOS instance (toplevel) brings its own Nix");
    } else if (inst->nix_volume) {
        bool found = false;
        for (size_t i = 0; i < inst->n_storage && !found; i++)
            found = streq(inst->storage[i].name, inst->nix_volume);
        seed_jpath_push_key(&c->path, "volume");
        if (!found)
            parse_error(c, "unknown volume \"%s\": expected one of this instance's storage volumes",
                        inst->nix_volume);
    } else if (inst->n_storage == 0) {
        seed_jpath_push_key(&c->path, "enable");
        parse_error(c, "keeps the Nix store on a volume, and this instance has none: declare one in storage");
    } else if (!(inst->nix_volume = strdup(inst->storage[0].name))) {
        parse_error(c, "out of memory");
    }
    seed_jpath_pop(&c->path, saved);
    for (size_t i = 0; inst->nix_daemon && i < inst->n_processes; i++)
        if (streq(inst->processes[i].name, "nix-daemon")) {
            saved = seed_jpath_push_key(&c->path, "processes");
            seed_jpath_push_key(&c->path, "nix-daemon");
            parse_error(c, "nix.daemon runs a process of this name: leave it to nix.daemon or rename it");
            seed_jpath_pop(&c->path, saved);
        }
}

/* Whether the root directory's /etc/passwd has an account named name. */
static bool root_has_account(const seed_instance *inst, const char *name) {
    if (inst->root_kind != SEED_ROOT_DIR || !inst->root_path)
        return false;
    _cleanup_close_ int rootfd = open(inst->root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *db = NULL;
    if (rootfd < 0 || seed_open_beneath(rootfd, "etc/passwd", O_RDONLY | O_NONBLOCK, &fd) < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || seed_read_fd(fd, 4u << 20, &db, NULL) < 0)
        return false;
    size_t n = strlen(name);
    for (const char *line = db; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            return true;
    return false;
}

/* With `users`, a process's user must be one of them, root, a number or an account of
 * the root directory: a typo is caught here rather than as a process that never starts.
 * (Without `users`, the root's /etc/passwd alone decides, when the process starts.) */
static void check_process_users(parse_ctx *c, seed_instance *inst) {
    if (inst->n_users == 0)
        return;
    for (size_t i = 0; i < inst->n_processes; i++) {
        const char *u = inst->processes[i].user;
        if (!u)
            continue;
        size_t n = strcspn(u, ":");
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)MIN(n, sizeof(name) - 1), u);
        bool known = streq(name, "root") || strspn(name, "0123456789") == strlen(name);
        for (size_t j = 0; j < inst->n_users && !known; j++)
            known = streq(inst->users[j].name, name);
        if (known || root_has_account(inst, name))
            continue;
        char list[256];
        size_t o = 0;
        for (size_t j = 0; j < inst->n_users && o < sizeof(list); j++)
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", j ? ", " : "", inst->users[j].name);
        size_t saved = seed_jpath_push_key(&c->path, "processes");
        seed_jpath_push_key(&c->path, inst->processes[i].name);
        seed_jpath_push_key(&c->path, "user");
        parse_error(c,
                    "unknown user \"%s\": expected one of this instance's users (%s), root, a uid, or an "
                    "account of the root directory's /etc/passwd",
                    name, list);
        seed_jpath_pop(&c->path, saved);
    }
}

static void secret_clear(seed_secret *x) {
    free(x->name);
    free(x->file);
    free(x->key);
    free(x->owner);
    free(x->env);
    free(x->format);
    free(x->data);
}

static void kv_free(seed_kv *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static void process_clear(seed_process *p) {
    free(p->name);
    strv_free(p->command);
    kv_free(p->env, p->n_env);
    free(p->cwd);
    free(p->user);
}

static void parse_command(parse_ctx *c, json_t *v, char ***command, size_t *n_command) {
    if (!json_is_array(v) || json_array_size(v) == 0) {
        type_error(c, v, "a non-empty array of strings, like [\"busybox\", \"httpd\", \"-f\"]");
        return;
    }
    size_t n = json_array_size(v);
    if (n > 4096) {
        parse_error(c, "has %zu arguments: at most 4096 are allowed", n);
        return;
    }
    char **argv = calloc(n + 1, sizeof(char *));
    if (!argv) {
        parse_error(c, "out of memory");
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(v, i);
        size_t saved = seed_jpath_push_index(&c->path, i);
        if (!json_is_string(a)) {
            type_error(c, a, "a string");
            ok = false;
        } else if (i == 0 && json_string_length(a) == 0) {
            parse_error(c, "the program name must not be empty");
            ok = false;
        } else if (!(argv[i] = strdup(json_string_value(a)))) {
            ok = false;
        }
        seed_jpath_pop(&c->path, saved);
    }
    if (!ok) {
        /* Not strv_free(): a failed element leaves a NULL hole before later ones. */
        for (size_t i = 0; i < n; i++)
            free(argv[i]);
        free(argv);
        return;
    }
    *command = argv;
    *n_command = n;
}

static void parse_processes(parse_ctx *c, json_t *v, seed_instance *inst) {
    if (!check_map(c, v, "an object mapping process names to {\"command\": [...]}"))
        return;
    inst->processes = alloc_array(c, json_object_size(v), sizeof(seed_process));
    if (!inst->processes)
        return;
    const char *key;
    json_t *e;
    char foreground[256] = ""; /* the process marked foreground so far */
    json_object_foreach (v, key, e) {
        size_t saved = seed_jpath_push_key(&c->path, key);
        const char *why = seed_check_process_name(key);
        if (why)
            parse_error(c, "process name %s", why);
        if (!json_is_object(e)) {
            type_error(c, e,
                       "an object {\"command\": [...], \"env\"?, \"cwd\"?, \"user\"?, \"restart\"?, "
                       "\"foreground\"?}");
            seed_jpath_pop(&c->path, saved);
            continue;
        }
        static const char *const keys[] = {"command", "env", "cwd", "user", "restart", "foreground"};
        check_keys(c, e, keys, ELEMENTSOF(keys));
        seed_process p = {.restart = SEED_RESTART_ALWAYS};
        bool ok = !why;
        json_t *x;
        size_t s2 = seed_jpath_push_key(&c->path, "command");
        if ((x = json_object_get(e, "command")))
            parse_command(c, x, &p.command, &p.n_command);
        else
            parse_error(c, "missing: every process needs a command, like [\"busybox\", \"httpd\"]");
        ok = ok && p.command;
        seed_jpath_pop(&c->path, s2);
        if ((x = json_object_get(e, "env"))) {
            s2 = seed_jpath_push_key(&c->path, "env");
            size_t before = seed_diags_count(c->diags);
            parse_env(c, x, &p.env, &p.n_env);
            ok = ok && seed_diags_count(c->diags) == before;
            seed_jpath_pop(&c->path, s2);
        }
        if ((x = json_object_get(e, "cwd"))) {
            s2 = seed_jpath_push_key(&c->path, "cwd");
            if (parse_string(c, x, "an absolute path", &p.cwd) && (why = seed_check_abs_path(p.cwd))) {
                parse_error(c, "working directory \"%s\" %s", p.cwd, why);
                ok = false;
            }
            ok = ok && p.cwd;
            seed_jpath_pop(&c->path, s2);
        }
        if ((x = json_object_get(e, "user"))) {
            s2 = seed_jpath_push_key(&c->path, "user");
            if (parse_string(c, x, "a user name or uid", &p.user) && (why = seed_check_user(p.user))) {
                parse_error(c, "user \"%s\" %s", p.user, why);
                ok = false;
            }
            ok = ok && p.user;
            seed_jpath_pop(&c->path, s2);
        }
        if ((x = json_object_get(e, "foreground"))) {
            s2 = seed_jpath_push_key(&c->path, "foreground");
            if (json_is_boolean(x))
                p.foreground = json_is_true(x);
            else
                type_error(c, x, "true or false");
            ok = ok && json_is_boolean(x);
            if (p.foreground && *foreground) {
                parse_error(c, "process \"%s\" is the foreground process already: only one may be",
                            foreground);
                ok = false;
            } else if (p.foreground) {
                snprintf(foreground, sizeof(foreground), "%s", key);
            }
            seed_jpath_pop(&c->path, s2);
        }
        if (p.foreground)
            p.restart = SEED_RESTART_NO; /* its exit ends the instance */
        if ((x = json_object_get(e, "restart"))) {
            s2 = seed_jpath_push_key(&c->path, "restart");
            int r = parse_enum(c, x, "restart policy", restarts, ELEMENTSOF(restarts));
            if (r < 0) {
                ok = false;
            } else if (p.foreground && r != SEED_RESTART_NO) {
                parse_error(c, "a foreground process is not restarted: its exit ends the instance with its "
                               "exit code (leave restart out or set it to \"no\")");
                ok = false;
            } else {
                p.restart = (seed_restart)r;
            }
            seed_jpath_pop(&c->path, s2);
        }
        if (ok && (p.name = strdup(key))) {
            inst->processes[inst->n_processes++] = p;
        } else {
            process_clear(&p);
        }
        seed_jpath_pop(&c->path, saved);
    }
    qsort(inst->processes, inst->n_processes, sizeof(seed_process), cmp_name);
}

/* A duration: a string with a unit ("500ms", "5s", "1m") or a JSON number of seconds,
 * within [min_ms, max_ms]. */
static bool parse_duration(parse_ctx *c, json_t *v, const char *what, unsigned min_ms, unsigned max_ms,
                           unsigned *out) {
    char text[64];
    uint64_t ms;
    if (json_is_string(v)) {
        _cleanup_free_ char *msg = NULL;
        if (seed_parse_duration(json_string_value(v), &ms, &msg) < 0) {
            parse_error(c, "%s", msg ? msg : "malformed duration");
            return false;
        }
        snprintf(text, sizeof(text), "\"%s\"", json_string_value(v));
    } else if (json_is_number(v) && json_number_value(v) >= 0) {
        /* A plain number counts seconds; fractions round to the millisecond. */
        ms = json_number_value(v) <= 1e9 ? (uint64_t)(json_number_value(v) * 1000 + 0.5) : UINT64_MAX;
        seed_json_describe(v, text, sizeof(text));
        snprintf(text + strlen(text), sizeof(text) - strlen(text), " seconds");
    } else {
        type_error(c, v, "a duration like \"500ms\", \"5s\" or \"1m\", or a number of seconds");
        return false;
    }
    if (ms < min_ms || ms > max_ms) {
        char lo[16], hi[16];
        seed_format_duration(min_ms, lo, sizeof(lo));
        seed_format_duration(max_ms, hi, sizeof(hi));
        parse_error(c, "%s %s is out of range: expected from %s to %s", what, text, lo, hi);
        return false;
    }
    *out = (unsigned)ms;
    return true;
}

static void health_free(seed_health *h) {
    if (!h)
        return;
    free(h->http_path);
    strv_free(h->command);
    free(h);
}

static void parse_health_port(parse_ctx *c, json_t *v, seed_instance *inst, bool check_exposed,
                              seed_health *h) {
    if (!parse_port(c, v, &h->port) || !check_exposed)
        return;
    char list[256] = "";
    size_t o = 0;
    for (size_t i = 0; i < inst->n_expose; i++) {
        if (!seed_protocol_uses_tcp(inst->expose[i].protocol))
            continue;
        if (inst->expose[i].port == h->port)
            return;
        if (o < sizeof(list))
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%u (%s)", o ? ", " : "",
                                  inst->expose[i].port, inst->expose[i].name);
    }
    if (o)
        parse_error(c, "port %u is not one of this instance's exposed TCP ports: expected one of %s", h->port,
                    list);
    else
        parse_error(c, "port %u is not exposed: this instance exposes no TCP port (declare it in expose)",
                    h->port);
    h->port = 0;
}

static void parse_health_path(parse_ctx *c, json_t *v, seed_health *h) {
    if (!parse_string(c, v, "a request path like \"/healthz\"", &h->http_path))
        return;
    const char *why = NULL;
    size_t n = strlen(h->http_path);
    if (h->http_path[0] != '/')
        why = "must start with '/'";
    else if (n > 1024)
        why = "is longer than 1024 bytes";
    for (size_t i = 0; !why && i < n; i++)
        if (h->http_path[i] <= ' ' || h->http_path[i] > '~')
            why = "may only hold printable ASCII characters without spaces";
    if (why) {
        char found[96];
        seed_json_describe(v, found, sizeof(found));
        parse_error(c, "request path %s %s: expected a path like \"/healthz\"", found, why);
        free(h->http_path);
        h->http_path = NULL;
    }
}

/* health = {"http": "/path", "port": N} or {"command": [...]}, plus interval, timeout and
 * retries. check_exposed is false when expose itself had errors, to report those only. */
static void parse_health(parse_ctx *c, json_t *v, seed_instance *inst, bool check_exposed) {
    if (!json_is_object(v)) {
        type_error(c, v, "an object like {\"http\": \"/healthz\", \"port\": 8080} or {\"command\": [...]}");
        return;
    }
    static const char *const keys[] = {"http", "port", "command", "interval", "timeout", "retries"};
    check_keys(c, v, keys, ELEMENTSOF(keys));
    seed_health *h = calloc(1, sizeof(*h));
    if (!h) {
        parse_error(c, "out of memory");
        return;
    }
    h->interval_ms = SEED_HEALTH_DEFAULT_INTERVAL_MS;
    h->timeout_ms = SEED_HEALTH_DEFAULT_TIMEOUT_MS;
    h->retries = SEED_HEALTH_DEFAULT_RETRIES;
    size_t before = seed_diags_count(c->diags);
    json_t *http = json_object_get(v, "http"), *port = json_object_get(v, "port");
    json_t *command = json_object_get(v, "command"), *x;
    size_t s2;
    if (http && command) {
        parse_error(c, "has both http and command: expected exactly one kind of check");
    } else if (http) {
        h->kind = SEED_HEALTH_HTTP;
        s2 = seed_jpath_push_key(&c->path, "http");
        parse_health_path(c, http, h);
        seed_jpath_pop(&c->path, s2);
        s2 = seed_jpath_push_key(&c->path, "port");
        if (port)
            parse_health_port(c, port, inst, check_exposed, h);
        else
            parse_error(c, "missing: an http check needs the exposed port to send it to");
        seed_jpath_pop(&c->path, s2);
    } else if (command) {
        h->kind = SEED_HEALTH_COMMAND;
        s2 = seed_jpath_push_key(&c->path, "command");
        parse_command(c, command, &h->command, &h->n_command);
        seed_jpath_pop(&c->path, s2);
        if (port) {
            s2 = seed_jpath_push_key(&c->path, "port");
            parse_error(c, "belongs to an http check: a command check runs inside the instance");
            seed_jpath_pop(&c->path, s2);
        }
    } else {
        parse_error(c, "has no check: expected {\"http\": \"/path\", \"port\": N} or {\"command\": [...]}");
    }
    if ((x = json_object_get(v, "interval"))) {
        s2 = seed_jpath_push_key(&c->path, "interval");
        parse_duration(c, x, "health.interval", 100, 3600 * 1000, &h->interval_ms);
        seed_jpath_pop(&c->path, s2);
    }
    if ((x = json_object_get(v, "timeout"))) {
        s2 = seed_jpath_push_key(&c->path, "timeout");
        parse_duration(c, x, "health.timeout", 100, 300 * 1000, &h->timeout_ms);
        seed_jpath_pop(&c->path, s2);
    }
    if ((x = json_object_get(v, "retries"))) {
        s2 = seed_jpath_push_key(&c->path, "retries");
        if (!json_is_integer(x))
            type_error(c, x, "a number of consecutive failures (an integer from 1 to 100)");
        else if (json_integer_value(x) < 1 || json_integer_value(x) > 100)
            parse_error(c, "health.retries %lld is out of range: expected an integer from 1 to 100",
                        (long long)json_integer_value(x));
        else
            h->retries = (unsigned)json_integer_value(x);
        seed_jpath_pop(&c->path, s2);
    }
    if (seed_diags_count(c->diags) != before) {
        health_free(h);
        return;
    }
    inst->health = h;
}

/* Join the directory of the declaring file and a relative path. */
static char *path_relative_to_file(const char *file, const char *rel) {
    const char *slash = file ? strrchr(file, '/') : NULL;
    char *r = NULL;
    if (!slash) {
        r = strdup(rel);
    } else if (asprintf(&r, "%.*s/%s", (int)(slash - file), file, rel) < 0) {
        r = NULL;
    }
    return r;
}

static bool valid_store_path(const char *s) {
    /* /nix/store/<32 nix-base32 characters>-<name> */
    static const char nixbase32[] = "0123456789abcdfghijklmnpqrsvwxyz";
    if (strncmp(s, "/nix/store/", 11) != 0)
        return false;
    const char *h = s + 11;
    for (int i = 0; i < 32; i++)
        if (!h[i] || !strchr(nixbase32, h[i]))
            return false;
    if (h[32] != '-' || !h[33])
        return false;
    for (const char *c = h + 33; *c; c++)
        if (!(isalnum((unsigned char)*c) || strchr("+-._?=", *c)))
            return false;
    return true;
}

static void parse_root(parse_ctx *c, json_t *v, seed_instance *inst) {
    if (!json_is_string(v)) {
        type_error(c, v, "\"host\" or a path to a root directory relative to this file");
        return;
    }
    const char *s = json_string_value(v);
    inst->root = strdup(s);
    if (streq(s, "host")) {
        inst->root_kind = SEED_ROOT_HOST;
        return;
    }
    /* A Nix store path (a buildEnv, any derivation's output): its closure, read-only,
     * is what the instance sees under /nix/store; the path names its content. */
    if (strncmp(s, "/nix/store/", 11) == 0) {
        inst->root_kind = SEED_ROOT_STORE;
        if (!valid_store_path(s))
            parse_error(c, "root \"%s\" is not a Nix store path: expected /nix/store/<hash>-<name>", s);
        else
            inst->root_path = strdup(s);
        return;
    }
    inst->root_kind = SEED_ROOT_DIR;
    if (s[0] == 0 || s[0] == '/') {
        parse_error(c,
                    "root \"%s\" must be \"host\", a relative path to a directory inside the project or a "
                    "Nix store path",
                    s);
        return;
    }
    if (c->dirfd < 0) {
        parse_error(c, "root \"%s\" cannot be read: no project directory", s);
        return;
    }
    _cleanup_free_ char *rel = path_relative_to_file(c->file, s);
    _cleanup_close_ int fd = -1;
    int r = rel ? seed_open_beneath(c->dirfd, rel, O_RDONLY | O_DIRECTORY, &fd) : -ENOMEM;
    if (r == -EXDEV) {
        parse_error(c, "root \"%s\" leads outside the project directory", s);
        return;
    }
    if (r == -ENOTDIR) {
        parse_error(c, "root \"%s\" is not a directory", s);
        return;
    }
    if (r < 0) {
        parse_error(c, "root \"%s\" cannot be opened: %s", s, strerror(-r));
        return;
    }
    char real[4096];
    if (seed_fd_path(fd, real, sizeof(real)) == 0)
        inst->root_path = strdup(real);

    struct stat st;
    if (fstat(fd, &st) < 0) {
        parse_error(c, "root \"%s\" cannot be read: %s", s, strerror(errno));
        return;
    }
    /* Many instances often share one root: digest each directory once per run. */
    for (size_t i = 0; i < c->n_roots; i++) {
        root_cache_entry *e = &c->roots[i];
        if (e->dev == st.st_dev && e->ino == st.st_ino) {
            if (e->error)
                parse_error(c, "root \"%s\": %s", s, e->error);
            else
                memcpy(inst->root_digest, e->digest, sizeof(e->digest));
            return;
        }
    }
    root_cache_entry e = {.dev = st.st_dev, .ino = st.st_ino};
    r = seed_tree_digest(fd, e.digest, &e.error);
    if (r < 0 && !e.error && asprintf(&e.error, "cannot be read: %s", strerror(-r)) < 0)
        e.error = NULL;
    if (e.error)
        parse_error(c, "root \"%s\": %s", s, e.error);
    else
        memcpy(inst->root_digest, e.digest, sizeof(e.digest));
    root_cache_entry *grown = realloc(c->roots, (c->n_roots + 1) * sizeof(*grown));
    if (grown) {
        c->roots = grown;
        c->roots[c->n_roots++] = e;
    } else {
        free(e.error);
    }
}

/* A secret's name is its file name under /run/secrets. */
static const char *check_secret_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return "must be 1 to 64 characters long";
    if (!isalnum((unsigned char)s[0]))
        return "must start with a letter or digit";
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
            return "may only contain letters, digits, '.', '_' and '-'";
    return NULL;
}

/* Read the encrypted file now: its digest goes into the identity, and the node
 * decrypts what was evaluated. */
static void read_secret_file(parse_ctx *c, seed_secret *x) {
    if (x->file[0] == 0 || x->file[0] == '/') {
        parse_error(c, "file \"%s\" must be a relative path to a file inside the project", x->file);
        return;
    }
    if (c->dirfd < 0) {
        parse_error(c, "file \"%s\" cannot be read: no project directory", x->file);
        return;
    }
    _cleanup_free_ char *rel = path_relative_to_file(c->file, x->file);
    _cleanup_close_ int fd = -1;
    int r = rel ? seed_open_beneath(c->dirfd, rel, O_RDONLY | O_NOCTTY, &fd) : -ENOMEM;
    char *data = NULL;
    size_t len = 0;
    if (r == 0)
        r = seed_read_fd(fd, SEED_SECRET_MAX_FILE, &data, &len);
    if (r == -EXDEV) {
        parse_error(c, "file \"%s\" leads outside the project directory", x->file);
        return;
    }
    if (r == -EFBIG) {
        parse_error(c, "file \"%s\" is larger than %u bytes", x->file, SEED_SECRET_MAX_FILE);
        return;
    }
    if (r < 0) {
        parse_error(c, "file \"%s\" cannot be read: %s", x->file, strerror(-r));
        return;
    }
    x->data = (unsigned char *)data;
    x->len = len;
    seed_sha256_hex(data, len, x->digest);
    seed_sops_format f = seed_sops_format_of(x->file);
    if (seed_age_is_age(x->data, len))
        x->format = strdup("age");
    else if (seed_sops_is_sops(x->data, len, f)) {
        static const char *const names[] = {"sops-yaml", "sops-json", "sops-dotenv", "sops-binary"};
        x->format = strdup(names[f]);
    } else {
        parse_error(c,
                    "file \"%s\" is neither an age file (age-encryption.org/v1, binary or armored) nor a "
                    "sops file (%s, by its extension) with sops metadata",
                    x->file, seed_sops_format_name(f));
        return;
    }
    if (x->key && (streq(x->format, "age") || streq(x->format, "sops-binary")))
        parse_error(c, "key \"%s\": only a sops YAML, JSON or dotenv document has keys; file \"%s\" is %s",
                    x->key, x->file, streq(x->format, "age") ? "an age file" : "a sops binary file");
}

static void parse_secret_mode(parse_ctx *c, json_t *v, unsigned *mode) {
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    char *end = NULL;
    unsigned long m = s && *s ? strtoul(s, &end, 8) : 0;
    if (!s || !*s || *end || strspn(s, "01234567") != strlen(s) || m > 0777 || strlen(s) > 4)
        type_error(c, v, "a file mode as an octal string from \"0000\" to \"0777\", like \"0440\"");
    else
        *mode = (unsigned)m;
}

static void parse_secrets(parse_ctx *c, json_t *v, seed_instance *inst) {
    if (!check_map(c, v, "an object mapping secret names to files, like {\"db\": \"secrets/db.age\"}"))
        return;
    inst->secrets = alloc_array(c, json_object_size(v), sizeof(seed_secret));
    if (!inst->secrets)
        return;
    const char *key;
    json_t *e;
    json_object_foreach (v, key, e) {
        size_t saved = seed_jpath_push_key(&c->path, key);
        size_t before = seed_diags_count(c->diags);
        seed_secret x = {.mode = 0400};
        const char *why = check_secret_name(key);
        if (why)
            parse_error(c, "secret name %s", why);
        if (json_is_string(e)) {
            parse_string(c, e, "a file", &x.file);
        } else if (json_is_object(e)) {
            static const char *const skeys[] = {"file", "key", "mode", "owner", "env"};
            check_keys(c, e, skeys, ELEMENTSOF(skeys));
            json_t *f;
            size_t s2;
#define WITH_SECRET_KEY(k)                                                                           \
    for (int _o = ((f = json_object_get(e, k)) && ((s2 = seed_jpath_push_key(&c->path, k)), 1)); _o; \
         _o = 0, seed_jpath_pop(&c->path, s2))
            WITH_SECRET_KEY("file")
            parse_string(c, f, "the path of an age or sops file, relative to this file", &x.file);
            WITH_SECRET_KEY("key") {
                if (parse_string(c, f, "a key of the sops document, like \"db.password\"", &x.key) &&
                    !x.key[0])
                    parse_error(c, "is empty: expected a key of the sops document, like \"db.password\"");
            }
            WITH_SECRET_KEY("mode")
            parse_secret_mode(c, f, &x.mode);
            WITH_SECRET_KEY("owner") {
                if (parse_string(c, f, "a user of the instance (\"name\", \"uid\", \"name:group\")",
                                 &x.owner) &&
                    (why = seed_check_user(x.owner)))
                    parse_error(c, "owner %s", why);
            }
            WITH_SECRET_KEY("env") {
                if (parse_string(c, f, "an environment variable name", &x.env) &&
                    (why = seed_check_env_name(x.env)))
                    parse_error(c, "variable name %s", why);
            }
#undef WITH_SECRET_KEY
            if (!x.file && !json_object_get(e, "file"))
                parse_error(c, "has no \"file\": expected {\"file\": \"secrets/db.age\", ...}");
        } else {
            type_error(
                c, e,
                "the path of an age or sops file, or {\"file\", \"key\", \"mode\", \"owner\", \"env\"}");
        }
        if (x.file && seed_diags_count(c->diags) == before) {
            size_t s2 = seed_jpath_push_key(&c->path, "file");
            read_secret_file(c, &x);
            seed_jpath_pop(&c->path, s2);
        }
        x.name = strdup(key);
        if (seed_diags_count(c->diags) == before && x.name && x.format)
            inst->secrets[inst->n_secrets++] = x;
        else
            secret_clear(&x);
        seed_jpath_pop(&c->path, saved);
    }
    qsort(inst->secrets, inst->n_secrets, sizeof(seed_secret), cmp_name);
    for (size_t i = 0; i < inst->n_secrets; i++)
        for (size_t k = i + 1; inst->secrets[i].env && k < inst->n_secrets; k++)
            if (inst->secrets[k].env && streq(inst->secrets[i].env, inst->secrets[k].env))
                parse_error(c, "secrets %s and %s both set the variable %s", inst->secrets[i].name,
                            inst->secrets[k].name, inst->secrets[i].env);
}

void parse_instance(parse_ctx *c, json_t *obj, seed_instance *inst) {
    static const char *const keys[] = {
        "name",  "system", "size", "expose",    "storage",  "connect", "rollout", "rolloutTimeout", "health",
        "shoot", "root",   "env",  "processes", "toplevel", "users",   "nix",     "secrets",        "boot"};
    inst->size = SEED_SIZE_S;
    inst->rollout = SEED_ROLLOUT_RECREATE;
    inst->rollout_timeout_ms = SEED_ROLLOUT_DEFAULT_TIMEOUT_MS;
    inst->root_kind = SEED_ROOT_HOST;

    if (!json_is_object(obj)) {
        type_error(c, obj, "an instance object");
        return;
    }
    check_keys(c, obj, keys, ELEMENTSOF(keys));

    json_t *v;
    size_t saved;
    /* Run the following statement with v = obj[k] and the path extended by k, when
     * the key is present; the path is restored afterwards. */
#define WITH_KEY(k)                                                                                      \
    for (int _once =                                                                                     \
             ((v = json_object_get(obj, k)) != NULL && ((saved = seed_jpath_push_key(&c->path, k)), 1)); \
         _once; _once = 0, seed_jpath_pop(&c->path, saved))

    WITH_KEY ("name") {
        if (!json_is_string(v) || !streq(json_string_value(v), inst->name)) {
            char expected[128];
            snprintf(expected, sizeof(expected), "the instance's own name \"%s\" (or no name)", inst->name);
            type_error(c, v, expected);
        }
    }
    WITH_KEY ("system") {
        int s = parse_enum(c, v, "system", systems, ELEMENTSOF(systems));
        if (s >= 0)
            inst->system = strdup(systems[s]);
    }
    WITH_KEY ("size") {
        int s = parse_enum(c, v, "size tier", sizes, ELEMENTSOF(sizes));
        if (s >= 0)
            inst->size = (seed_size_tier)s;
    }
    size_t expose_errors = seed_diags_count(c->diags);
    WITH_KEY ("expose")
        parse_expose(c, v, inst);
    expose_errors = seed_diags_count(c->diags) - expose_errors;
    WITH_KEY ("storage")
        parse_storage(c, v, inst);
    WITH_KEY ("connect")
        parse_connect(c, v, inst);
    WITH_KEY ("rollout") {
        int r = parse_enum(c, v, "rollout", rollouts, ELEMENTSOF(rollouts));
        if (r >= 0)
            inst->rollout = (seed_rollout)r;
    }
    WITH_KEY ("rolloutTimeout")
        parse_duration(c, v, "rolloutTimeout", 1000, 3600 * 1000, &inst->rollout_timeout_ms);
    WITH_KEY ("health")
        parse_health(c, v, inst, expose_errors == 0);
    WITH_KEY ("shoot") {
        if (!json_is_object(v)) {
            type_error(c, v, "an object like {\"enable\": true, \"max\": 4}");
        } else {
            static const char *const skeys[] = {"enable", "max"};
            check_keys(c, v, skeys, ELEMENTSOF(skeys));
            json_t *en = json_object_get(v, "enable");
            if (en) {
                size_t s2 = seed_jpath_push_key(&c->path, "enable");
                if (json_is_boolean(en))
                    inst->shoot_enable = json_is_true(en);
                else
                    type_error(c, en, "true or false");
                seed_jpath_pop(&c->path, s2);
            }
            json_t *mx = json_object_get(v, "max");
            if (mx) {
                size_t s2 = seed_jpath_push_key(&c->path, "max");
                json_int_t m = json_is_integer(mx) ? json_integer_value(mx) : 0;
                char expected[96];
                snprintf(expected, sizeof(expected),
                         "how many shoots may run at once (an integer from 1 to %d)", SEED_SHOOT_MAX_LIMIT);
                if (!json_is_integer(mx))
                    type_error(c, mx, expected);
                else if (m < 1 || m > SEED_SHOOT_MAX_LIMIT)
                    parse_error(c, "shoot.max %lld is out of range: expected an integer from 1 to %d",
                                (long long)m, SEED_SHOOT_MAX_LIMIT);
                else
                    inst->shoot_max = (unsigned)m;
                seed_jpath_pop(&c->path, s2);
            }
        }
    }
    if (!inst->shoot_max)
        inst->shoot_max = SEED_SHOOT_DEFAULT_MAX;
    WITH_KEY ("toplevel") {
        if (parse_string(c, v, "a Nix store path of a NixOS system", &inst->toplevel) &&
            !valid_store_path(inst->toplevel))
            parse_error(c, "toplevel \"%s\" is not a Nix store path: expected /nix/store/<hash>-<name>",
                        inst->toplevel);
        inst->root_kind = SEED_ROOT_NONE;
    }
    WITH_KEY ("root") {
        if (inst->toplevel)
            parse_error(c, "root and toplevel exclude each other: a NixOS instance (toplevel) brings its "
                           "own root");
        else
            parse_root(c, v, inst);
    }
    WITH_KEY ("env")
        parse_env(c, v, &inst->env, &inst->n_env);
    WITH_KEY ("secrets")
        parse_secrets(c, v, inst);
    WITH_KEY ("processes") {
        if (inst->toplevel)
            parse_error(c, "processes and toplevel exclude each other: a NixOS instance runs its "
                           "toplevel's init");
        else
            parse_processes(c, v, inst);
    }
    WITH_KEY ("users")
        parse_users(c, v, inst);
    WITH_KEY ("nix")
        parse_nix(c, v, inst);
    WITH_KEY ("boot")
        parse_boot(c, v, inst);
#undef WITH_KEY
    check_process_users(c, inst);
    check_nix_volume(c, inst);

    if (!inst->system)
        inst->system = strdup(SEED_DEFAULT_SYSTEM);
    if (inst->root_kind == SEED_ROOT_HOST && !inst->root)
        inst->root = strdup("host");
    seed_size_tier_resources(inst->size, &inst->vcpus, &inst->memory_mib);
}

void seed_instance_clear(seed_instance *inst) {
    strv_free(inst->boot_required);
    free(inst->nix_volume);
    free(inst->nix_min_free);
    free(inst->nix_max_free);
    free(inst->name);
    free(inst->file);
    free(inst->system);
    for (size_t i = 0; i < inst->n_expose; i++)
        free(inst->expose[i].name);
    free(inst->expose);
    for (size_t i = 0; i < inst->n_storage; i++) {
        free(inst->storage[i].name);
        free(inst->storage[i].size);
        free(inst->storage[i].mount_point);
    }
    free(inst->storage);
    for (size_t i = 0; i < inst->n_connect; i++) {
        free(inst->connect[i].name);
        free(inst->connect[i].service);
    }
    free(inst->connect);
    health_free(inst->health);
    free(inst->root);
    free(inst->root_path);
    kv_free(inst->env, inst->n_env);
    for (size_t i = 0; i < inst->n_processes; i++)
        process_clear(&inst->processes[i]);
    free(inst->processes);
    for (size_t i = 0; i < inst->n_users; i++)
        user_clear(&inst->users[i]);
    free(inst->users);
    free(inst->toplevel);
    for (size_t i = 0; i < inst->n_secrets; i++)
        secret_clear(&inst->secrets[i]);
    free(inst->secrets);
    memset(inst, 0, sizeof(*inst));
}
