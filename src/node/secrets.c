/* An instance's identity and secrets at start (issue 11): a tmpfs of its own in the
 * node's mount namespace, <run>/secrets/<ns>/<instance>.<a|b>, owned by the
 * instance's root and closed to everyone else, holding tpm/age-identity (the file
 * age-keygen writes, 0400) and secrets/<name> (decrypted here, mode and owner from the
 * spec). They are bound read-only at /seed/tpm and /run/secrets; shoots get neither.
 * Plaintext lives only there, in the init's sealed configuration (secret `env`) and
 * briefly in this process's memory: it is never logged, hashed or sent to a client.
 * Also the `identity` control operation (seed identity). */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/fileio.h"
#include "base/log.h"
#include "init/users.h"
#include "node/deploy.h"
#include "node/node-internal.h"
#include "secret/crypto.h"
#include "secret/sops.h"

int node_identity_key(node *n, seed_error **err) {
    if (n->have_key)
        return 0;
    int r = seed_node_key_open(n->state_dir, &n->key, err);
    if (r < 0)
        return r;
    n->have_key = true;
    return 0;
}

/* The instance's identity, made (and stored) when it has none. */
static int instance_identity(node *n, const char *ns, const char *name, seed_age_identity *id, bool *created,
                             seed_error **err) {
    int r = node_identity_key(n, err);
    if (r < 0)
        return r;
    r = seed_identity_load(n->state_dir, &n->key, ns, name, id, err);
    if (created)
        *created = false;
    if (r != -ENOENT)
        return r;
    if ((r = seed_age_identity_generate(id)) < 0)
        return seed_error_setp(err, -r, "generating an identity for %s/%s", ns, name);
    if ((r = seed_identity_store(n->state_dir, &n->key, ns, name, id, err)) < 0)
        return r;
    if (created)
        *created = true;
    _cleanup_free_ char *rcpt = seed_age_recipient_encode(id->recipient);
    log_info("%s/%s: new identity %s", ns, name, rcpt ? rcpt : "");
    return 0;
}

static void secrets_dir(const instance *in, char *buf, size_t size) {
    snprintf(buf, size, "%s/secrets/%s/%s.%s", in->node->run_dir, in->ns, in->spec->name,
             in->alt ? "b" : "a");
}

static void drop_env(instance *in) {
    for (size_t i = 0; i < in->n_secret_env; i++)
        seed_free_secret(in->secret_env[i], strlen(in->secret_env[i]));
    free(in->secret_env);
    in->secret_env = NULL;
    in->n_secret_env = 0;
}

static void unmount_dir(instance *in, const char *dir) {
    if (umount2(dir, MNT_DETACH) < 0 && in->secrets_mounted && errno != EINVAL && errno != ENOENT)
        log_warning("%s: unmounting its secrets: %s", in->spec->name, strerror(errno));
    rmdir(dir);
    in->secrets_mounted = false;
}

void instance_secrets_teardown(instance *in) {
    drop_env(in);
    /* The path is fixed by namespace, name and address: an instance adopted from a
     * previous daemon has its tmpfs there too, though this one did not mount it. */
    char dir[4200];
    secrets_dir(in, dir, sizeof(dir));
    unmount_dir(in, dir);
}

void instance_secrets_free(instance *in) {
    /* The node may be gone already (its teardown frees instances last): only what the
     * instance holds itself. */
    drop_env(in);
    if (in->secrets_mounted && in->secrets_path)
        unmount_dir(in, in->secrets_path);
    free(in->secrets_path);
    free(in->secrets_tpm);
    free(in->secrets_run);
    in->secrets_path = in->secrets_tpm = in->secrets_run = NULL;
}

/* Write one file of the tmpfs, owned by (uid, gid) of the host. */
static int put_file(int dirfd, const char *name, const void *data, size_t len, unsigned mode, uid_t uid,
                    gid_t gid) {
    _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return negative_errno();
    if (write(fd, data, len) != (ssize_t)len || fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0)
        return negative_errno();
    return 0;
}

static int make_dir(int parent, const char *name, uid_t uid, int *ret) {
    if (mkdirat(parent, name, 0755) < 0)
        return negative_errno();
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    if (fchown(fd, uid, uid) < 0) {
        int r = negative_errno();
        close(fd);
        return r;
    }
    *ret = fd;
    return 0;
}

/* The account databases of the instance's root: the node's filtered copies for a
 * host root, the directory's own otherwise. */
static char *root_file(const instance *in, const char *name) {
    if (in->spec->root_kind == SEED_ROOT_HOST)
        return strdup(streq(name, "passwd") ? in->node->host_passwd : in->node->host_group);
    if (!in->spec->root_path)
        return NULL;
    char p[4200];
    snprintf(p, sizeof(p), "%s/etc/%s", in->spec->root_path, name);
    _cleanup_close_ int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    char *d = NULL;
    size_t n = 0;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || seed_read_fd(fd, 4 << 20, &d, &n) < 0)
        return NULL;
    return d;
}

static int resolve_owner(instance *in, const seed_secret *x, uid_t *uid, gid_t *gid, seed_error **err) {
    *uid = *gid = 0;
    if (!x->owner)
        return 0;
    _cleanup_free_ char *passwd = root_file(in, "passwd"), *group = root_file(in, "group");
    seed_user_ids ids;
    char msg[256] = "";
    int r = seed_users_lookup(passwd, group, x->owner, &ids, msg, sizeof(msg));
    if (r < 0)
        return seed_error_set(err, -r, "secret %s: owner %s: %s", x->name, x->owner,
                              *msg ? msg : strerror(-r));
    if (ids.uid >= ID_RANGE || ids.gid >= ID_RANGE)
        return seed_error_set(err, ERANGE,
                              "secret %s: owner %s has uid %u, gid %u: an instance has ids 0 to %u", x->name,
                              x->owner, (unsigned)ids.uid, (unsigned)ids.gid, ID_RANGE - 1);
    *uid = ids.uid;
    *gid = ids.gid;
    return 0;
}

/* Decrypt one secret with the instance's identity. */
static int decrypt_secret(const seed_secret *x, const seed_age_identity *id, seed_age_plain *out,
                          seed_error **err) {
    _cleanup_error_ seed_error *e = NULL;
    int r;
    if (streq(x->format, "age")) {
        r = seed_age_decrypt(x->data, x->len, id, 1, out, &e);
    } else {
        seed_sops_format f = streq(x->format, "sops-yaml")     ? SEED_SOPS_YAML
                             : streq(x->format, "sops-json")   ? SEED_SOPS_JSON
                             : streq(x->format, "sops-dotenv") ? SEED_SOPS_DOTENV
                                                               : SEED_SOPS_BINARY;
        r = seed_sops_decrypt(x->data, x->len, f, id, 1, x->key, out, &e);
    }
    if (r < 0)
        return seed_error_set(err, -r, "secret %s (%s, %s) cannot be decrypted: %s", x->name, x->file,
                              x->format, e ? e->msg : strerror(-r));
    return 0;
}

int instance_secrets_setup(instance *in, seed_bind *binds, size_t *n_binds, seed_error **err) {
    node *n = in->node;
    const seed_instance *s = in->spec;
    seed_age_identity id;
    int r = instance_identity(n, in->ns, s->name, &id, NULL, err);
    if (r < 0)
        return seed_error_prefix(err, "identity: ");

    char dir[4200], parent[4200];
    secrets_dir(in, dir, sizeof(dir));
    snprintf(parent, sizeof(parent), "%s/secrets/%s", n->run_dir, in->ns);
    /* Parents traversable (the instance's root binds from here), the tmpfs closed. */
    if ((r = seed_mkdir_p(parent, 0711)) < 0)
        return seed_error_setp(err, -r, "creating %s", parent);
    char top[4200];
    snprintf(top, sizeof(top), "%s/secrets", n->run_dir);
    chmod(top, 0711);
    chmod(parent, 0711);
    umount2(dir, MNT_DETACH); /* a previous run's, should it have been left */
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return seed_error_setp(err, errno, "creating %s", dir);
    uint64_t size = 1 << 20;
    for (size_t i = 0; i < s->n_secrets; i++)
        size += 2 * (uint64_t)s->secrets[i].len + 4096;
    char opts[128];
    snprintf(opts, sizeof(opts), "mode=0700,uid=%u,gid=%u,size=%llu", (unsigned)in->id_base,
             (unsigned)in->id_base, (unsigned long long)size);
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
        return seed_error_setp(err, errno, "mounting the tmpfs for its identity and secrets at %s", dir);
    in->secrets_mounted = true;
    free(in->secrets_path);
    if (!(in->secrets_path = strdup(dir)))
        return seed_error_set(err, ENOMEM, "out of memory");

    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int tpm = -1, sec = -1;
    if (dfd < 0 || (r = make_dir(dfd, "tpm", in->id_base, &tpm)) < 0 ||
        (r = make_dir(dfd, "secrets", in->id_base, &sec)) < 0)
        return seed_error_setp(err, dfd < 0 ? errno : -r, "preparing %s", dir);

    /* The identity file, dated like the identity (stable across starts). */
    char ipath[4200];
    snprintf(ipath, sizeof(ipath), "%s/" SEED_IDENTITY_DIR "/%s/%s", n->state_dir, in->ns, s->name);
    struct stat st;
    time_t created = stat(ipath, &st) == 0 ? st.st_mtime : time(NULL);
    char *keyfile = NULL;
    if ((r = seed_age_keygen_file(&id, created, &keyfile)) < 0)
        return seed_error_setp(err, -r, "writing its identity");
    r = put_file(tpm, "age-identity", keyfile, strlen(keyfile), 0400, in->id_base, in->id_base);
    seed_free_secret(keyfile, strlen(keyfile));
    if (r < 0)
        return seed_error_setp(err, -r, "writing /seed/tpm/age-identity");

    for (size_t i = 0; i < s->n_secrets; i++) {
        const seed_secret *x = &s->secrets[i];
        uid_t uid;
        gid_t gid;
        if ((r = resolve_owner(in, x, &uid, &gid, err)) < 0)
            break;
        seed_age_plain p = {0};
        if ((r = decrypt_secret(x, &id, &p, err)) < 0)
            break;
        r = put_file(sec, x->name, p.data, p.len, x->mode, in->id_base + uid, in->id_base + gid);
        if (r < 0) {
            seed_age_plain_done(&p);
            r = seed_error_setp(err, -r, "secret %s: writing /run/secrets/%s", x->name, x->name);
            break;
        }
        if (x->env) {
            char *kv = NULL;
            if (memchr(p.data, 0, p.len)) {
                seed_age_plain_done(&p);
                r = seed_error_set(err, EINVAL,
                                   "secret %s: its value holds a NUL byte, which the variable %s "
                                   "cannot carry",
                                   x->name, x->env);
                break;
            }
            char **m = realloc(in->secret_env, (in->n_secret_env + 1) * sizeof(char *));
            if (!m || asprintf(&kv, "%s=%.*s", x->env, (int)p.len, (const char *)p.data) < 0) {
                if (m)
                    in->secret_env = m;
                seed_age_plain_done(&p);
                r = seed_error_set(err, ENOMEM, "out of memory");
                break;
            }
            in->secret_env = m;
            in->secret_env[in->n_secret_env++] = kv;
        }
        seed_age_plain_done(&p);
    }
    OPENSSL_cleanse(&id, sizeof(id));
    if (r < 0)
        return r;

    static char tpm_target[] = "/seed/tpm", run_target[] = "/run/secrets";
    free(in->secrets_tpm);
    free(in->secrets_run);
    if (asprintf(&in->secrets_tpm, "%s/tpm", dir) < 0 || asprintf(&in->secrets_run, "%s/secrets", dir) < 0)
        return seed_error_set(err, ENOMEM, "out of memory");
    binds[(*n_binds)++] = (seed_bind){.source = in->secrets_tpm, .target = tpm_target, .readonly = true};
    binds[(*n_binds)++] = (seed_bind){.source = in->secrets_run, .target = run_target, .readonly = true};
    return 0;
}

int instance_secrets_env(const instance *in, char **text) {
    if (!in->n_secret_env)
        return 0;
    json_t *c = json_loads(*text, 0, NULL);
    json_t *procs = json_object_get(c, "processes");
    size_t i;
    json_t *p;
    json_array_foreach (procs, i, p) {
        json_t *env = json_object_get(p, "env");
        for (size_t k = 0; k < in->n_secret_env; k++) {
            const char *kv = in->secret_env[k];
            size_t klen = (size_t)(strchr(kv, '=') - kv) + 1;
            /* The secret wins over a spec variable of the same name. */
            for (size_t j = 0; j < json_array_size(env); j++) {
                const char *e = json_string_value(json_array_get(env, j));
                if (e && strncmp(e, kv, klen) == 0)
                    json_array_remove(env, j--);
            }
            json_array_append_new(env, json_string(kv));
        }
    }
    char *out = c ? json_dumps(c, JSON_COMPACT) : NULL;
    json_decref(c);
    if (!out)
        return -ENOMEM;
    OPENSSL_cleanse(*text, strlen(*text));
    free(*text);
    *text = out;
    return 0;
}

json_t *node_identity_request(node *n, json_t *req, char *why, size_t why_size) {
    const char *name = json_string_value(json_object_get(req, "name"));
    const char *action = json_string_value(json_object_get(req, "action"));
    if (!name || !action) {
        snprintf(why, why_size, "expected \"name\" and \"action\"");
        return NULL;
    }
    instance *in = node_find(n, name, why, why_size);
    if (!in)
        return NULL;
    const char *ns = in->ns, *inst = in->spec->name;
    _cleanup_error_ seed_error *err = NULL;
    seed_age_identity id;
    json_t *reply = NULL;
    if (streq(action, "show")) {
        bool created = false;
        if (instance_identity(n, ns, inst, &id, &created, &err) < 0) {
            snprintf(why, why_size, "%s", err->msg);
            return NULL;
        }
        _cleanup_free_ char *r = seed_age_recipient_encode(id.recipient);
        reply = json_pack("{s:s, s:s, s:s, s:b}", "namespace", ns, "instance", inst, "recipient", r ? r : "",
                          "created", created);
    } else if (streq(action, "rotate")) {
        seed_age_identity old;
        if (node_identity_key(n, &err) < 0) {
            snprintf(why, why_size, "%s", err->msg);
            return NULL;
        }
        /* An unreadable old one is replaced all the same: that is what rotate is for. */
        bool had = seed_identity_load(n->state_dir, &n->key, ns, inst, &old, &err) == 0;
        seed_error_free(TAKE_PTR(err));
        if (seed_age_identity_generate(&id) < 0 ||
            seed_identity_store(n->state_dir, &n->key, ns, inst, &id, &err) < 0) {
            snprintf(why, why_size, "%s", err ? err->msg : "generating an identity failed");
            return NULL;
        }
        _cleanup_free_ char *r = seed_age_recipient_encode(id.recipient);
        _cleanup_free_ char *o = had ? seed_age_recipient_encode(old.recipient) : NULL;
        OPENSSL_cleanse(&old, sizeof(old));
        log_info("%s/%s: identity rotated: %s replaces %s", ns, inst, r ? r : "", o ? o : "none");
        node_event(n, "identity-rotated", in->src->name, inst, "new recipient %s", r ? r : "");
        reply = json_pack("{s:s, s:s, s:s, s:s?}", "namespace", ns, "instance", inst, "recipient", r ? r : "",
                          "previous", o);
    } else if (streq(action, "rm")) {
        int r = seed_identity_remove(n->state_dir, ns, inst);
        if (r < 0 && r != -ENOENT) {
            snprintf(why, why_size, "removing the identity of %s/%s: %s", ns, inst, strerror(-r));
            return NULL;
        }
        if (r == 0)
            log_info("%s/%s: identity removed", ns, inst);
        reply = json_pack("{s:s, s:s, s:b}", "namespace", ns, "instance", inst, "removed", r == 0);
    } else {
        snprintf(why, why_size, "unknown identity action \"%s\" (expected show, rotate or rm)", action);
        return NULL;
    }
    OPENSSL_cleanse(&id, sizeof(id));
    if (!reply)
        snprintf(why, why_size, "out of memory");
    return reply;
}
