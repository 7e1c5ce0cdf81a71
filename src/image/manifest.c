/* Manifest, index and configuration JSON (see manifest.h). Everything is checked
 * before use: a registry or an archive may send anything. */
#include "image/manifest.h"

#include <string.h>

#include "base/hash.h"

bool seed_image_digest_valid(const char *d) {
    if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + SEED_SHA256_HEX_LEN)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

int seed_image_digest(const void *data, size_t n, char out[SEED_DIGEST_LEN]) {
    memcpy(out, "sha256:", 7);
    return seed_sha256_hex(data, n, out + 7);
}

static void desc_done(seed_image_desc *d) {
    free(d->media_type);
    free(d->platform);
    free(d->ref_name);
    *d = (seed_image_desc){0};
}

void seed_image_manifest_done(seed_image_manifest *m) {
    free(m->media_type);
    desc_done(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        desc_done(&m->layers[i]);
    free(m->layers);
    for (size_t i = 0; i < m->n_manifests; i++)
        desc_done(&m->manifests[i]);
    free(m->manifests);
    *m = (seed_image_manifest){0};
}

static int desc_parse(json_t *j, const char *where, seed_image_desc *d, seed_error **err) {
    if (!json_is_object(j))
        return seed_error_set(err, EINVAL, "%s is not an object", where);
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    const char *digest = json_string_value(json_object_get(j, "digest"));
    json_t *size = json_object_get(j, "size");
    if (!mt || !*mt)
        return seed_error_set(err, EINVAL, "%s has no mediaType", where);
    if (!seed_image_digest_valid(digest))
        return seed_error_set(err, EINVAL, "%s: digest '%.80s' is not sha256:<64 hex digits>", where,
                              digest ? digest : "(none)");
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return seed_error_set(err, EINVAL, "%s: size must be a non-negative integer", where);
    d->media_type = strdup(mt);
    if (!d->media_type)
        return -ENOMEM;
    memcpy(d->digest, digest, SEED_DIGEST_LEN);
    d->size = json_integer_value(size);
    json_t *pl = json_object_get(j, "platform");
    const char *os = json_string_value(json_object_get(pl, "os"));
    const char *arch = json_string_value(json_object_get(pl, "architecture"));
    const char *var = json_string_value(json_object_get(pl, "variant"));
    if (os && arch && asprintf(&d->platform, "%s/%s%s%s", os, arch, var ? "/" : "", var ? var : "") < 0) {
        d->platform = NULL;
        return -ENOMEM;
    }
    const char *rn = json_string_value(
        json_object_get(json_object_get(j, "annotations"), "org.opencontainers.image.ref.name"));
    if (rn && !(d->ref_name = strdup(rn)))
        return -ENOMEM;
    return 0;
}

static int desc_array(json_t *a, const char *name, seed_image_desc **ret, size_t *ret_n, seed_error **err) {
    if (!json_is_array(a))
        return seed_error_set(err, EINVAL, "manifest has no \"%s\" array", name);
    size_t n = json_array_size(a);
    seed_image_desc *v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    *ret = v;
    for (size_t i = 0; i < n; i++) {
        char where[64];
        snprintf(where, sizeof(where), "%s[%zu]", name, i);
        *ret_n = i + 1;
        int r = desc_parse(json_array_get(a, i), where, &v[i], err);
        if (r < 0)
            return r;
    }
    *ret_n = n;
    return 0;
}

int seed_image_manifest_parse(const char *data, size_t len, const char *content_type,
                              seed_image_manifest *ret, seed_error **err) {
    if (len > SEED_MANIFEST_MAX)
        return seed_error_set(err, EFBIG, "manifest of %zu bytes: at most %u are read", len,
                              SEED_MANIFEST_MAX);
    json_error_t je;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return seed_error_set(err, EINVAL, "manifest is not JSON: %s (line %d)", je.text, je.line);
    seed_image_manifest m = {0};
    int r;
    if (!json_is_object(j)) {
        r = seed_error_set(err, EINVAL, "manifest is not a JSON object");
        goto out;
    }
    json_t *sv = json_object_get(j, "schemaVersion");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
        r = seed_error_set(err, EINVAL,
                           "manifest schemaVersion must be 2 (Docker schema 1 is not supported)");
        goto out;
    }
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    if (!mt && content_type && *content_type)
        mt = content_type;
    if (!mt) /* OCI allows leaving it out: tell the kinds apart by their members */
        mt = json_object_get(j, "manifests") ? SEED_MT_OCI_INDEX : SEED_MT_OCI_MANIFEST;
    if (!(m.media_type = strdup(mt))) {
        r = -ENOMEM;
        goto out;
    }
    if (streq(mt, SEED_MT_OCI_INDEX) || streq(mt, SEED_MT_DOCKER_LIST)) {
        m.is_index = true;
        r = desc_array(json_object_get(j, "manifests"), "manifests", &m.manifests, &m.n_manifests, err);
    } else if (streq(mt, SEED_MT_OCI_MANIFEST) || streq(mt, SEED_MT_DOCKER_MANIFEST)) {
        r = desc_parse(json_object_get(j, "config"), "config", &m.config, err);
        if (r >= 0)
            r = desc_array(json_object_get(j, "layers"), "layers", &m.layers, &m.n_layers, err);
    } else {
        r = seed_error_set(err, EINVAL,
                           "unsupported manifest media type '%.100s' (expected an OCI or Docker v2 "
                           "manifest or index)",
                           mt);
    }
out:
    json_decref(j);
    if (r < 0)
        seed_image_manifest_done(&m);
    else
        *ret = m;
    return r < 0 ? r : 0;
}

/* Copy a member if it has the expected type. */
static void copy_if(json_t *dst, const char *key, json_t *src, const char *skey, json_type t) {
    json_t *v = json_object_get(src, skey);
    if (v && json_typeof(v) == t)
        json_object_set(dst, key, v);
}

/* {"80/tcp": {}} to ["80/tcp"]. */
static void copy_keys(json_t *dst, const char *key, json_t *src, const char *skey) {
    json_t *o = json_object_get(src, skey);
    if (!json_is_object(o))
        return;
    json_t *a = json_array();
    const char *k;
    json_t *v;
    json_object_foreach (o, k, v)
        json_array_append_new(a, json_string(k));
    json_object_set_new(dst, key, a);
}

int seed_image_config_summary(const char *data, size_t len, json_t **ret, seed_error **err) {
    if (len > SEED_CONFIG_MAX)
        return seed_error_set(err, EFBIG, "image configuration of %zu bytes: at most %u are read", len,
                              SEED_CONFIG_MAX);
    json_error_t je;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return seed_error_set(err, EINVAL, "image configuration is not JSON: %s (line %d)", je.text, je.line);
    if (!json_is_object(j)) {
        json_decref(j);
        return seed_error_set(err, EINVAL, "image configuration is not a JSON object");
    }
    json_t *s = json_object();
    copy_if(s, "os", j, "os", JSON_STRING);
    copy_if(s, "architecture", j, "architecture", JSON_STRING);
    copy_if(s, "created", j, "created", JSON_STRING);
    json_t *c = json_object_get(j, "config");
    if (json_is_object(c)) {
        copy_if(s, "user", c, "User", JSON_STRING);
        copy_if(s, "workingDir", c, "WorkingDir", JSON_STRING);
        copy_if(s, "entrypoint", c, "Entrypoint", JSON_ARRAY);
        copy_if(s, "cmd", c, "Cmd", JSON_ARRAY);
        copy_if(s, "env", c, "Env", JSON_ARRAY);
        copy_keys(s, "exposedPorts", c, "ExposedPorts");
        copy_keys(s, "volumes", c, "Volumes");
        copy_if(s, "labels", c, "Labels", JSON_OBJECT);
        copy_if(s, "stopSignal", c, "StopSignal", JSON_STRING);
    }
    json_decref(j);
    *ret = s;
    return 0;
}
