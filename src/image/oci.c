/* The JSON documents of an image: the OCI image configuration (from the instance's
 * spec), the manifest, the layout's index, and docker-archive's manifest.json. Keys
 * sorted and compact, so that the same image gives the same bytes and digests. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "image/oci.h"
#include "init/config.h"

#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_LAYER "application/vnd.oci.image.layer.v1.tar+gzip"

static int dump(json_t *j, char **ret) {
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

const char *seed_oci_arch(const char *system) {
    static const struct {
        const char *system, *arch;
    } map[] = {{"x86_64-linux", "amd64"},
               {"aarch64-linux", "arm64"},
               {"i686-linux", "386"},
               {"riscv64-linux", "riscv64"},
               {"armv7l-linux", "arm"}};
    for (size_t i = 0; i < ELEMENTSOF(map); i++)
        if (streq(system, map[i].system))
            return map[i].arch;
    return NULL;
}

static void rfc3339(uint64_t epoch, char buf[32]) {
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int seed_oci_config(const seed_instance *s, const seed_image_opts *o, const seed_image_layer *layers,
                    size_t n, char **ret) {
    char created[32];
    rfc3339(o->epoch, created);
    char **env = NULL;
    if (seed_instance_init_env(s, o->ns, NULL, &env) < 0)
        return -ENOMEM;
    json_t *envj = json_array();
    for (char **e = env; envj && *e; e++)
        json_array_append_new(envj, json_string(*e));
    strv_free(env);

    json_t *ports = json_object();
    for (size_t i = 0; ports && i < s->n_expose; i++) {
        char key[32];
        seed_protocol p = s->expose[i].protocol;
        if (seed_protocol_uses_tcp(p)) {
            snprintf(key, sizeof(key), "%u/tcp", s->expose[i].port);
            json_object_set_new(ports, key, json_object());
        }
        if (seed_protocol_uses_udp(p)) {
            snprintf(key, sizeof(key), "%u/udp", s->expose[i].port);
            json_object_set_new(ports, key, json_object());
        }
    }
    json_t *vols = json_object();
    for (size_t i = 0; vols && i < s->n_storage; i++)
        json_object_set_new(vols, s->storage[i].mount_point, json_object());

    char mem[32], cpus[16];
    snprintf(mem, sizeof(mem), "%u", s->memory_mib);
    snprintf(cpus, sizeof(cpus), "%u", s->vcpus);
    /* Who it is, never where it was built: no path of the project. */
    json_t *labels =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "org.opencontainers.image.title", s->name,
                  "org.opencontainers.image.created", created, "dev.seed.instance", s->name,
                  "dev.seed.identity", s->identity, "dev.seed.size", seed_size_tier_to_string(s->size),
                  "dev.seed.system", s->system, "dev.seed.vcpus", cpus, "dev.seed.memory-mib", mem);
    if (labels && o->uri) {
        json_object_set_new(labels, "org.opencontainers.image.source", json_string(o->uri));
        json_object_set_new(labels, "dev.seed.namespace", json_string(o->ns));
    }
    json_t *diff_ids = json_array(), *history = json_array();
    for (size_t i = 0; diff_ids && history && i < n; i++) {
        json_array_append_new(diff_ids, json_string(layers[i].diff_id));
        char what[256] = "";
        size_t w = 0;
        for (size_t k = 0; k < layers[i].n_holds && w < sizeof(what) - 1; k++)
            w += (size_t)snprintf(what + w, sizeof(what) - w, "%s%s", k ? " " : "", layers[i].holds[k]);
        json_t *h = json_pack("{s:s, s:s}", "created", created, "created_by", "seed image build");
        if (h && *what)
            json_object_set_new(h, "comment", json_string(what));
        json_array_append_new(history, h);
    }
    json_t *cfg = json_pack("{s:[s], s:o, s:o, s:o, s:s, s:o, s:s}", "Entrypoint", "/seed/bin/seed-init",
                            "Env", envj, "ExposedPorts", ports, "Volumes", vols, "WorkingDir", "/", "Labels",
                            labels, "StopSignal", "SIGTERM");
    json_t *c = json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:o}, s:o}", "created", created, "architecture",
                          seed_oci_arch(s->system), "os", "linux", "config", cfg, "rootfs", "type", "layers",
                          "diff_ids", diff_ids, "history", history);
    return dump(c, ret);
}

static json_t *descriptor(const char *mt, const char *digest, uint64_t size) {
    return json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", digest, "size", (json_int_t)size);
}

int seed_oci_manifest(const char *config_digest, uint64_t config_size, const seed_image_layer *layers,
                      size_t n, char **ret) {
    json_t *ls = json_array();
    for (size_t i = 0; ls && i < n; i++)
        json_array_append_new(ls, descriptor(MT_LAYER, layers[i].digest, layers[i].size));
    return dump(json_pack("{s:i, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType", MT_MANIFEST, "config",
                          descriptor(MT_CONFIG, config_digest, config_size), "layers", ls),
                ret);
}

int seed_oci_index(const char *manifest_digest, uint64_t manifest_size, const char *tag, char **ret) {
    json_t *d = descriptor(MT_MANIFEST, manifest_digest, manifest_size);
    if (d)
        json_object_set_new(d, "annotations", json_pack("{s:s}", "org.opencontainers.image.ref.name", tag));
    return dump(json_pack("{s:i, s:s, s:[o]}", "schemaVersion", 2, "mediaType",
                          "application/vnd.oci.image.index.v1+json", "manifests", d),
                ret);
}

int seed_docker_manifest(const char *config_digest, const char *repo_tag, const seed_image_layer *layers,
                         size_t n, char **ret) {
    char path[128];
    json_t *ls = json_array();
    for (size_t i = 0; ls && i < n; i++) {
        snprintf(path, sizeof(path), "blobs/sha256/%s", layers[i].digest + 7);
        json_array_append_new(ls, json_string(path));
    }
    snprintf(path, sizeof(path), "blobs/sha256/%s", config_digest + 7);
    return dump(json_pack("[{s:s, s:[s], s:o}]", "Config", path, "RepoTags", repo_tag, "Layers", ls), ret);
}
