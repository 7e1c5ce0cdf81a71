/* `seed image build|push|inspect`: the verb, and `seed image build NAME [SOURCE]`,
 * which writes an instance as a reproducible, layered OCI image (image/build.c). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/image.h"
#include "image/image.h"
#include "spec/spec.h"

static const char image_usage[] =
    "Usage: seed image build NAME [SOURCE] [OPTIONS]\n"
    "       seed image push SRC REF [OPTIONS]\n"
    "       seed image inspect SRC|REF [--json]\n"
    "\n"
    "Run 'seed image build --help' (or push, inspect) for the options of one.\n";

static const char build_usage[] =
    "Usage: seed image build NAME [SOURCE] [-o PATH] [--format oci|oci-archive|docker-archive]\n"
    "                        [--tag T] [--max-layers N] [--uri URI] [--json]\n"
    "\n"
    "Build instance NAME of the seed project at SOURCE (default '.') as an OCI image: its\n"
    "root directory in layers, seed-init and seed-shoot under /seed/bin, the instance's\n"
    "processes, env, exposed ports and volumes as the image's configuration. The same\n"
    "input gives the same digests anywhere (mtimes from SOURCE_DATE_EPOCH, else 1).\n"
    "\n"
    "  -o, --output PATH  where to write it (default NAME.oci, NAME.oci.tar or\n"
    "                     NAME.docker.tar in the current directory); replaced atomically\n"
    "  --format F         oci: an OCI image layout directory (default); oci-archive: a\n"
    "                     tar of it; docker-archive: what 'docker load' takes\n"
    "  --tag T            the tag in the layout (default latest)\n"
    "  --max-layers N     at most N layers, seed's own included (default 100, 2..127)\n"
    "  --uri URI          the project's stable source URI: recorded in the labels, and the\n"
    "                     namespace derived from it (never from the project's path)\n"
    "  --json             print the result as JSON\n";

static int print_json(const seed_image_result *res, const char *output, const char *format, const char *tag) {
    json_t *layers = json_array();
    for (size_t i = 0; layers && i < res->n_layers; i++) {
        const seed_image_layer *l = &res->layers[i];
        json_t *holds = json_array();
        for (size_t k = 0; holds && k < l->n_holds; k++)
            json_array_append_new(holds, json_string(l->holds[k]));
        json_array_append_new(layers, json_pack("{s:s, s:s, s:I, s:I, s:I, s:o}", "digest", l->digest,
                                                "diff_id", l->diff_id, "size", (json_int_t)l->size,
                                                "content_bytes", (json_int_t)l->content_bytes, "entries",
                                                (json_int_t)l->n_entries, "holds", holds));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:o}", "output", output, "format", format, "tag",
                          tag, "manifest", res->manifest_digest, "manifest_size",
                          (json_int_t)res->manifest_size, "config", res->config_digest, "layers", layers);
    int r = cli_print_json(o);
    json_decref(o);
    return r;
}

static void human_size(uint64_t n, char buf[16]) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u < ELEMENTSOF(units) - 1) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, 16, "%" PRIu64 " B", n);
    else
        snprintf(buf, 16, "%.1f %s", v, units[u]);
}

static void print_text(const seed_image_result *res, const char *output, const char *format) {
    printf("%-4s %-19s %10s %10s  %s\n", "#", "DIGEST", "SIZE", "CONTENT", "HOLDS");
    uint64_t total = 0;
    for (size_t i = 0; i < res->n_layers; i++) {
        const seed_image_layer *l = &res->layers[i];
        char size[16], content[16];
        human_size(l->size, size);
        human_size(l->content_bytes, content);
        total += l->size;
        printf("%-4zu %.19s %10s %10s  ", i + 1, l->digest, size, content);
        for (size_t k = 0; k < l->n_holds && k < 4; k++)
            printf("%s%s", k ? " " : "", l->holds[k]);
        if (l->n_holds > 4)
            printf(" and %zu more", l->n_holds - 4);
        putchar('\n');
    }
    char t[16];
    human_size(total, t);
    printf("\n%s (%s): %zu layers, %s, manifest %s\n", output, format, res->n_layers, t,
           res->manifest_digest);
}

/* seed-init and seed-shoot: $SEED_INIT / $SEED_SHOOT_CLIENT, else next to this binary. */
static int helper_path(const char *env, const char *name, char *path, size_t size) {
    const char *e = getenv(env);
    if (e && *e) {
        snprintf(path, size, "%s", e);
        return 0;
    }
    ssize_t l = readlink("/proc/self/exe", path, size - 32);
    if (l < 0)
        return -errno;
    path[l] = 0;
    char *slash = strrchr(path, '/');
    snprintf(slash + 1, size - (size_t)(slash + 1 - path), "%s", name);
    return 0;
}

static int image_build(int argc, char **argv) {
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, {"format", required_argument, NULL, 'f'},
        {"tag", required_argument, NULL, 't'},    {"max-layers", required_argument, NULL, 'm'},
        {"uri", required_argument, NULL, 'u'},    {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {0},
    };
    seed_image_opts o = {.format = SEED_IMAGE_OCI, .max_layers = SEED_IMAGE_DEFAULT_MAX_LAYERS, .epoch = 1};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (!*optarg)
                return cli_usage_error("image build", "-o needs a non-empty path");
            o.output = optarg;
            break;
        case 'f': {
            int f = seed_image_format_from_string(optarg);
            if (f < 0)
                return cli_usage_error("image build",
                                       "--format '%s': expected oci, oci-archive or docker-archive", optarg);
            o.format = (seed_image_format)f;
            break;
        }
        case 't':
            /* The tag grammar of the OCI distribution spec. */
            if (!*optarg || strlen(optarg) > 128 || strchr(".-", optarg[0]) ||
                strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
                    strlen(optarg))
                return cli_usage_error("image build",
                                       "--tag '%s': expected letters, digits, '_', '.' and '-' (at most 128, "
                                       "not starting with '.' or '-')",
                                       optarg);
            o.tag = optarg;
            break;
        case 'm': {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || !*optarg || optarg[0] == '-' || v < SEED_IMAGE_MIN_MAX_LAYERS ||
                v > SEED_IMAGE_MAX_MAX_LAYERS)
                return cli_usage_error("image build", "--max-layers '%s': expected a number from %d to %d",
                                       optarg, SEED_IMAGE_MIN_MAX_LAYERS, SEED_IMAGE_MAX_MAX_LAYERS);
            o.max_layers = (unsigned)v;
            break;
        }
        case 'u':
            if (!*optarg)
                return cli_usage_error("image build", "--uri needs a non-empty URI");
            o.uri = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            fputs(build_usage, stdout);
            return 0;
        case ':':
            return cli_usage_error("image build", "option '%s' needs an argument", argv[optind - 1]);
        default:
            return cli_usage_error("image build", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("image build", "expected the NAME of an instance");
    if (argc - optind > 2)
        return cli_usage_error("image build", "expected NAME and at most one SOURCE, got %d arguments",
                               argc - optind);
    const char *name = argv[optind];
    const char *source = optind + 1 < argc ? argv[optind + 1] : ".";
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(sde, &end, 10);
        if (errno || *end || sde[0] == '-' || v > 253402300799ull) /* 9999-12-31 */
            return cli_usage_error("image build", "SOURCE_DATE_EPOCH='%s': expected seconds since 1970", sde);
        o.epoch = v;
    }
    char init[PATH_MAX], shoot[PATH_MAX];
    if (helper_path("SEED_INIT", "seed-init", init, sizeof(init)) < 0 ||
        helper_path("SEED_SHOOT_CLIENT", "seed-shoot", shoot, sizeof(shoot)) < 0) {
        fprintf(stderr, "seed image build: cannot find the seed binary: %s\n", strerror(errno));
        return 1;
    }
    o.init_path = init;
    o.shoot_path = shoot;

    seed_diags diags = {0};
    _cleanup_(seed_project_freep) seed_project *p = NULL;
    int r = seed_project_load(source, o.uri, &p, &diags);
    if (r < 0) {
        fprintf(stderr, "seed image build: %s: %s\n", source, strerror(-r));
        seed_diags_clear(&diags);
        return 1;
    }
    if (seed_diags_count(&diags) > 0) {
        fprintf(stderr, "seed image build: %s has errors (see 'seed eval %s'):\n", source, source);
        for (size_t i = 0; i < diags.n; i++) {
            const seed_diag *x = &diags.items[i];
            fprintf(stderr, "  %s%s%s%s%s\n", x->file ? x->file : "", x->file ? ": " : "", x->path,
                    *x->path ? ": " : "", x->message);
        }
        seed_diags_clear(&diags);
        return 1;
    }
    const seed_instance *s = seed_project_find(p, name);
    if (!s) {
        fprintf(stderr, "seed image build: %s has no instance '%s'\n", source, name);
        return 1;
    }
    if (o.uri)
        o.ns = p->namespace;
    static const char *const suffix[] = {".oci", ".oci.tar", ".docker.tar"};
    _cleanup_free_ char *def = NULL;
    if (!o.output) {
        if (asprintf(&def, "%s%s", name, suffix[o.format]) < 0)
            return 1;
        o.output = def;
    }
    _cleanup_error_ seed_error *err = NULL;
    seed_image_result res;
    r = seed_image_build(s, &o, &res, &err);
    if (r < 0) {
        fprintf(stderr, "seed image build: %s\n", err ? err->msg : strerror(-r));
        return 1;
    }
    if (json)
        r = print_json(&res, o.output, seed_image_format_to_string(o.format), o.tag ?: "latest");
    else
        print_text(&res, o.output, seed_image_format_to_string(o.format));
    seed_image_result_clear(&res);
    return r < 0 || fflush(stdout) != 0 ? 1 : 0;
}

int cli_image(const cli_globals *g, int argc, char **argv) {
    if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
        fputs(image_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    /* The sub-verb's own argv, with it as argv[0]. */
    if (streq(argv[1], "build"))
        return image_build(argc - 1, argv + 1);
    if (streq(argv[1], "push"))
        return cli_image_push(g, argc - 1, argv + 1);
    if (streq(argv[1], "inspect"))
        return cli_image_inspect(g, argc - 1, argv + 1);
    return cli_usage_error("image", "unknown command '%s': expected build, push or inspect", argv[1]);
}
