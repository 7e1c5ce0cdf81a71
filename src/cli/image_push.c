/* `seed image push SRC REF` and `seed image inspect SRC|REF`: thin over image/push.c,
 * image/registry.c and image/layout.c. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/units.h"
#include "cli/image.h"
#include "image/push.h"

typedef struct net_opts {
    const char *creds, *authfile, *ca_cert;
    bool insecure;
    unsigned timeout_s;
} net_opts;

enum { OPT_CREDS = 256, OPT_AUTHFILE, OPT_INSECURE, OPT_CA_CERT, OPT_JSON, OPT_TIMEOUT, OPT_CHUNK };

static const struct option net_options[] = {
    {"creds", required_argument, NULL, OPT_CREDS},
    {"authfile", required_argument, NULL, OPT_AUTHFILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"ca-cert", required_argument, NULL, OPT_CA_CERT},
    {"json", no_argument, NULL, OPT_JSON},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"chunk-size", required_argument, NULL, OPT_CHUNK},
    {"help", no_argument, NULL, 'h'},
    {0},
};

/* A size with an optional K/M/G suffix (powers of 1024). */
static bool parse_size(const char *s, uint64_t *ret) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return false;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (*end == 'i')
        end++;
    if (*end || v > (UINT64_MAX >> shift))
        return false;
    *ret = (uint64_t)v << shift;
    return true;
}

/* Options shared by push and inspect; 0, 1 (--help) or EXIT_USAGE. */
static int parse_opts(const char *verb, int argc, char **argv, net_opts *n, bool *json, uint64_t *chunk,
                      char **pos, size_t npos, size_t *ret_npos) {
    int c;
    size_t k = 0;
    optind = 0; /* 0: a full reset of GNU getopt, which main() used before */
    /* "-" first: options anywhere, operands returned in order as 1. */
    while ((c = getopt_long(argc, argv, "-h", net_options, NULL)) != -1) {
        switch (c) {
        case 1:
            if (k == npos)
                return cli_usage_error(verb, "unexpected argument '%s'", optarg);
            pos[k++] = optarg;
            break;
        case OPT_CREDS:
            n->creds = optarg;
            break;
        case OPT_AUTHFILE:
            n->authfile = optarg;
            break;
        case OPT_INSECURE:
            n->insecure = true;
            break;
        case OPT_CA_CERT:
            n->ca_cert = optarg;
            break;
        case OPT_JSON:
            *json = true;
            break;
        case OPT_TIMEOUT: {
            uint64_t t;
            if (!parse_size(optarg, &t) || t == 0 || t > 3600)
                return cli_usage_error(verb, "--timeout takes seconds from 1 to 3600, got '%s'", optarg);
            n->timeout_s = (unsigned)t;
            break;
        }
        case OPT_CHUNK:
            if (!chunk)
                return cli_usage_error(verb, "--chunk-size is an option of 'image push'");
            if (!parse_size(optarg, chunk))
                return cli_usage_error(
                    verb, "--chunk-size takes a size (4M, 65536; 0: never chunked), got '%s'", optarg);
            break;
        case 'h':
            return 1;
        default:
            return cli_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (n->creds && n->authfile)
        return cli_usage_error(verb, "--creds and --authfile exclude each other");
    *ret_npos = k;
    return 0;
}

typedef struct progress {
    bool tty;
    uint64_t last_us, start_us;
    char digest[SEED_DIGEST_LEN];
} progress;

static void on_progress(void *userdata, const char *digest, uint64_t done, uint64_t total) {
    progress *p = userdata;
    uint64_t now = seed_now_usec();
    if (!streq(p->digest, digest)) {
        snprintf(p->digest, sizeof(p->digest), "%s", digest);
        p->start_us = now;
        p->last_us = 0;
    }
    if (done < total && now - p->last_us < 100000)
        return;
    p->last_us = now;
    char d[32], t[32], rate[32];
    seed_format_bytes(done, d, sizeof(d));
    seed_format_bytes(total, t, sizeof(t));
    double secs = (double)(now - p->start_us) / 1e6;
    seed_format_bytes(secs > 0.01 ? (uint64_t)((double)done / secs) : 0, rate, sizeof(rate));
    fprintf(stderr, "\r%.19s  %s / %s  %s/s\033[K%s", digest, d, t, rate, done >= total ? "\n" : "");
}

/* Credentials for ref: --creds, else the auth files. */
static int find_creds(const char *verb, const net_opts *n, const seed_image_ref *ref, seed_creds *c) {
    _cleanup_error_ seed_error *err = NULL;
    if (n->creds) {
        if (seed_creds_parse(n->creds, c, &err) < 0) {
            fprintf(stderr, "seed %s: --creds: %s\n", verb, err ? err->msg : "out of memory");
            return -1;
        }
        return 0;
    }
    int r = seed_creds_lookup(n->authfile, ref->name, ref->repo, c, NULL, &err);
    if (r == 0 && !streq(ref->name, ref->host))
        r = seed_creds_lookup(n->authfile, ref->host, ref->repo, c, NULL, &err);
    if (r < 0) {
        fprintf(stderr, "seed %s: %s\n", verb, err ? err->msg : strerror(-r));
        return -1;
    }
    return 0;
}

static int open_registry(const char *verb, const net_opts *n, const seed_image_ref *ref, seed_creds *creds,
                         progress *p, seed_registry **ret) {
    if (find_creds(verb, n, ref, creds) < 0)
        return -1;
    seed_registry_opts o = {.ca_cert = n->ca_cert,
                            .insecure = n->insecure,
                            .creds = creds,
                            .timeout_s = n->timeout_s,
                            .progress = p && p->tty ? on_progress : NULL,
                            .userdata = p};
    _cleanup_error_ seed_error *err = NULL;
    int r = seed_registry_open(ref->host, &o, ret, &err);
    if (r < 0) {
        fprintf(stderr, "seed %s: %s\n", verb, err ? err->msg : strerror(-r));
        return -1;
    }
    return 0;
}

static void mount_cache_path(char *buf, size_t n) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(buf, n, "%s/seed/registry-blobs.json", xdg);
    else if (home && *home)
        snprintf(buf, n, "%s/.cache/seed/registry-blobs.json", home);
    else
        buf[0] = '\0';
}

static const char push_usage[] =
    "Usage: seed image push SRC REF [--creds USER:PASS | --authfile FILE] [--insecure]\n"
    "                       [--ca-cert FILE] [--timeout S] [--chunk-size SIZE] [--json]\n"
    "\n"
    "Push a local image to a registry (the OCI distribution API; no daemon). SRC is an OCI\n"
    "layout directory (DIR or DIR:TAG), an oci-archive or a docker-archive; REF is\n"
    "registry[:port]/repository[:tag|@digest] (docker.io names may be short: user/app).\n"
    "Blobs the registry has are skipped, blobs it has in another repository pushed to\n"
    "before are mounted, the rest uploaded; the manifest last.\n"
    "\n"
    "  --creds USER:PASS  credentials (Basic, or for a Bearer token server)\n"
    "  --authfile FILE    credentials from FILE (auth.json: {\"auths\": {HOST: {\"auth\": "
    "base64(USER:PASS)}}});\n"
    "                     default $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,\n"
    "                     ~/.docker/config.json\n"
    "  --insecure         do not verify TLS certificates; use plain HTTP when the registry has no TLS\n"
    "  --ca-cert FILE     trust the CA certificates in FILE (PEM) instead of the system's\n"
    "  --timeout S        fail a request that moves no byte for S seconds (default 30)\n"
    "  --chunk-size SIZE  upload blobs larger than SIZE in chunks of SIZE (default 64M; 0: never)\n"
    "  --json             print {ref digest uploaded skipped mounted}\n";

int cli_image_push(const cli_globals *g, int argc, char **argv) {
    net_opts n = {0};
    bool json = false;
    uint64_t chunk = 64u << 20;
    char *pos[2];
    size_t npos = 0;
    int r = parse_opts("image push", argc, argv, &n, &json, &chunk, pos, 2, &npos);
    if (r == 1) {
        fputs(push_usage, stdout);
        return 0;
    }
    if (r)
        return r;
    if (npos != 2)
        return cli_usage_error("image push", "expected SRC and REF (registry/repository:tag)");
    _cleanup_error_ seed_error *err = NULL;
    seed_image_ref ref = {0};
    if (seed_image_ref_parse(pos[1], &ref, &err) < 0) {
        r = cli_usage_error("image push", "%s", err ? err->msg : "out of memory");
        return r;
    }
    _cleanup_(seed_image_src_freep) seed_image_src *src = NULL;
    seed_creds creds = {0};
    _cleanup_(seed_registry_freep) seed_registry *reg = NULL;
    progress p = {.tty = isatty(STDERR_FILENO)};
    int ret = 1;
    json_t *res = NULL;
    if (seed_image_src_open(pos[0], &src, &err) < 0) {
        fprintf(stderr, "seed image push: %s\n", err ? err->msg : "out of memory");
        goto out;
    }
    if (open_registry("image push", &n, &ref, &creds, &p, &reg) < 0)
        goto out;
    char cache[4200];
    mount_cache_path(cache, sizeof(cache));
    seed_image_push_opts po = {.chunk_size = chunk, .mount_cache = cache[0] ? cache : NULL};
    if (seed_image_push(src, &ref, reg, &po, &res, &err) < 0) {
        if (p.tty)
            fputc('\n', stderr);
        fprintf(stderr, "seed image push: %s: %s\n", json_string_value(json_object_get(res, "ref")) ?: pos[1],
                err ? err->msg : "out of memory");
        fprintf(stderr, "seed image push: nothing was tagged: %s/%s:%s is unchanged\n", ref.name, ref.repo,
                ref.tag ? ref.tag : ref.digest);
        goto out;
    }
    if (json)
        cli_print_json(res);
    else
        printf("pushed %s (%zu uploaded, %zu mounted, %zu already there)\ndigest: %s\n",
               json_string_value(json_object_get(res, "ref")),
               json_array_size(json_object_get(res, "uploaded")),
               json_array_size(json_object_get(res, "mounted")),
               json_array_size(json_object_get(res, "skipped")),
               json_string_value(json_object_get(res, "digest")));
    ret = 0;
out:
    json_decref(res);
    seed_creds_done(&creds);
    seed_image_ref_done(&ref);
    return ret;
}

static void print_config(json_t *cfg) {
    static const char *const keys[] = {"entrypoint", "cmd", "env", "exposedPorts", "volumes"};
    const char *os = json_string_value(json_object_get(cfg, "os"));
    const char *arch = json_string_value(json_object_get(cfg, "architecture"));
    if (os || arch)
        printf("platform:   %s/%s\n", os ? os : "?", arch ? arch : "?");
    const char *s;
    if ((s = json_string_value(json_object_get(cfg, "user"))))
        printf("user:       %s\n", s);
    if ((s = json_string_value(json_object_get(cfg, "workingDir"))))
        printf("workdir:    %s\n", s);
    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        json_t *a = json_object_get(cfg, keys[i]);
        if (!json_array_size(a))
            continue;
        printf("%s:%*s", keys[i], (int)(11 - strlen(keys[i])), "");
        size_t k;
        json_t *v;
        json_array_foreach (a, k, v)
            printf("%s%s", k ? (streq(keys[i], "env") ? "\n            " : " ") : "", json_string_value(v));
        putchar('\n');
    }
    json_t *labels = json_object_get(cfg, "labels");
    const char *k;
    json_t *v;
    json_object_foreach (labels, k, v)
        printf("label:      %s=%s\n", k, json_string_value(v) ? json_string_value(v) : "");
}

static json_t *layers_json(const seed_image_manifest *m) {
    json_t *a = json_array();
    for (size_t i = 0; i < m->n_layers; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "digest", m->layers[i].digest, "mediaType",
                                           m->layers[i].media_type, "size", (json_int_t)m->layers[i].size));
    return a;
}

static int inspect_print(bool json, const char *name, const char *digest, const seed_image_manifest *m,
                         const char *config, size_t config_len) {
    _cleanup_error_ seed_error *err = NULL;
    json_t *out = json_pack("{s:s, s:s, s:s}", "name", name, "digest", digest, "mediaType", m->media_type);
    if (m->is_index) {
        json_t *a = json_array();
        for (size_t i = 0; i < m->n_manifests; i++) {
            json_t *e = json_pack("{s:s, s:s, s:I}", "digest", m->manifests[i].digest, "mediaType",
                                  m->manifests[i].media_type, "size", (json_int_t)m->manifests[i].size);
            if (m->manifests[i].platform)
                json_object_set_new(e, "platform", json_string(m->manifests[i].platform));
            json_array_append_new(a, e);
        }
        json_object_set_new(out, "manifests", a);
    } else {
        json_t *cfg = NULL;
        if (seed_image_config_summary(config, config_len, &cfg, &err) < 0) {
            fprintf(stderr, "seed image inspect: %s: config %s: %s\n", name, m->config.digest,
                    err ? err->msg : "out of memory");
            json_decref(out);
            return 1;
        }
        json_object_set_new(cfg, "digest", json_string(m->config.digest));
        json_object_set_new(out, "config", cfg);
        json_object_set_new(out, "layers", layers_json(m));
    }
    if (json) {
        cli_print_json(out);
        json_decref(out);
        return 0;
    }
    printf("name:       %s\ndigest:     %s\nmediaType:  %s\n", name, digest, m->media_type);
    if (m->is_index) {
        for (size_t i = 0; i < m->n_manifests; i++)
            printf("manifest:   %s  %s\n", m->manifests[i].digest,
                   m->manifests[i].platform ? m->manifests[i].platform : "");
    } else {
        printf("config:     %s\n", m->config.digest);
        print_config(json_object_get(out, "config"));
        uint64_t total = 0;
        for (size_t i = 0; i < m->n_layers; i++) {
            char sz[32];
            seed_format_bytes((uint64_t)m->layers[i].size, sz, sizeof(sz));
            printf("layer %-4zu %s  %10s\n", i, m->layers[i].digest, sz);
            total += (uint64_t)m->layers[i].size;
        }
        char sz[32];
        seed_format_bytes(total, sz, sizeof(sz));
        printf("total:      %zu layers, %s\n", m->n_layers, sz);
    }
    json_decref(out);
    return 0;
}

static const char inspect_usage[] =
    "Usage: seed image inspect SRC|REF [--json] [--creds USER:PASS | --authfile FILE]\n"
    "                          [--insecure] [--ca-cert FILE] [--timeout S]\n"
    "\n"
    "Show an image's manifest digest, media type, configuration (entrypoint, env, ports,\n"
    "volumes, labels) and layers with their sizes. SRC is a local OCI layout, oci-archive\n"
    "or docker-archive (a path that exists); anything else is a registry reference\n"
    "(docker://REF always is). Registry options as for 'seed image push'.\n"
    "\n"
    "  --json  print {name digest mediaType config{...} layers[{digest mediaType size}]}\n"
    "          (an index: manifests[{digest mediaType size platform}])\n";

static int inspect_remote(const net_opts *n, bool json, const char *s) {
    _cleanup_error_ seed_error *err = NULL;
    seed_image_ref ref = {0};
    if (seed_image_ref_parse(s, &ref, &err) < 0)
        return cli_usage_error("image inspect", "'%s' is no local image and %s", s,
                               err ? err->msg : "out of memory");
    seed_creds creds = {0};
    _cleanup_(seed_registry_freep) seed_registry *reg = NULL;
    _cleanup_free_ char *body = NULL, *type = NULL, *config = NULL;
    size_t len = 0, config_len = 0;
    char digest[SEED_DIGEST_LEN];
    seed_image_manifest m = {0};
    int ret = 1;
    const char *reference = ref.digest ? ref.digest : ref.tag;
    if (open_registry("image inspect", n, &ref, &creds, NULL, &reg) < 0)
        goto out;
    if (seed_registry_manifest_get(reg, ref.repo, reference, &body, &len, &type, digest, &err) < 0 ||
        seed_image_manifest_parse(body, len, type, &m, &err) < 0 ||
        (!m.is_index && seed_registry_blob_get(reg, ref.repo, m.config.digest, SEED_CONFIG_MAX, &config,
                                               &config_len, &err) < 0)) {
        fprintf(stderr, "seed image inspect: %s: %s\n", s, err ? err->msg : "out of memory");
        goto out;
    }
    char name[1024];
    snprintf(name, sizeof(name), "%s/%s%s%s", ref.name, ref.repo, ref.digest ? "@" : ":", reference);
    ret = inspect_print(json, name, digest, &m, config, config_len);
out:
    seed_image_manifest_done(&m);
    seed_creds_done(&creds);
    seed_image_ref_done(&ref);
    return ret;
}

int cli_image_inspect(const cli_globals *g, int argc, char **argv) {
    net_opts n = {0};
    bool json = false;
    char *pos[1];
    size_t npos = 0;
    int r = parse_opts("image inspect", argc, argv, &n, &json, NULL, pos, 1, &npos);
    if (r == 1) {
        fputs(inspect_usage, stdout);
        return 0;
    }
    if (r)
        return r;
    if (npos != 1)
        return cli_usage_error("image inspect",
                               "expected one SRC (a local image) or REF (registry/repository:tag)");
    const char *s = pos[0];
    /* A path that exists (or PATH:TAG of one) is local; anything else a reference. */
    struct stat st;
    bool local = strncmp(s, "docker://", 9) != 0 && stat(s, &st) == 0;
    if (!local && strncmp(s, "docker://", 9) != 0) {
        const char *c = strrchr(s, ':');
        _cleanup_free_ char *p = c ? strndup(s, (size_t)(c - s)) : NULL;
        local = p && stat(p, &st) == 0;
    }
    if (!local)
        return inspect_remote(&n, json, s);
    _cleanup_error_ seed_error *err = NULL;
    _cleanup_(seed_image_src_freep) seed_image_src *src = NULL;
    if (seed_image_src_open(s, &src, &err) < 0) {
        fprintf(stderr, "seed image inspect: %s\n", err ? err->msg : "out of memory");
        return 1;
    }
    return inspect_print(json, src->path, src->manifest_digest, &src->m, src->config, src->config_len);
}
