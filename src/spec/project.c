/* A seed project: seeds.json, the instance files it points to, and the checks that
 * span instances (host ports). Produces a seed_project and every diagnostic. */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "spec/flake.h"
#include "spec/names.h"
#include "spec/parse.h"

#define SEEDS_JSON "seeds.json"

static void json_load_error(parse_ctx *c, const json_error_t *e) {
    /* jansson reports line/column; a parse error has no option path. */
    parse_error(c, "invalid JSON at line %d, column %d: %s", e->line, e->column, e->text);
}

static json_t *load_json(parse_ctx *c, const char *buf, size_t len) {
    json_error_t e;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        json_load_error(c, &e);
    return j;
}

/* Read a spec file rel beneath dirfd, never leaving it. 0, or: -EXDEV (it leads
 * outside), -ENOENT, -EINVAL (not a regular file), -EFBIG (over SEED_SPEC_MAX_FILE),
 * or another errno of the step *what ("opened", "read"). */
static int read_spec_file(int dirfd, const char *rel, char **buf, size_t *len, const char **what) {
    _cleanup_close_ int fd = -1;
    *what = "opened";
    int r = seed_open_beneath(dirfd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK, &fd);
    if (r < 0)
        return r;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return -EINVAL;
    *what = "read";
    return seed_read_fd(fd, SEED_SPEC_MAX_FILE, buf, len);
}

/* Read an instance file named in seeds.json, confined to the project directory. */
static json_t *load_instance_file(parse_ctx *c, const char *rel) {
    if (c->dirfd < 0) {
        parse_error(c, "instance file \"%s\" cannot be read: no project directory", rel);
        return NULL;
    }
    if (rel[0] == 0 || rel[0] == '/') {
        parse_error(c, "instance file \"%s\" must be a path relative to the project directory", rel);
        return NULL;
    }
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    const char *what;
    int r = read_spec_file(c->dirfd, rel, &buf, &len, &what);
    if (r == -EXDEV)
        parse_error(c, "instance file \"%s\" leads outside the project directory", rel);
    else if (r == -ENOENT)
        parse_error(c, "instance file \"%s\" does not exist", rel);
    else if (r == -EINVAL)
        parse_error(c, "instance file \"%s\" is not a regular file", rel);
    else if (r == -EFBIG)
        parse_error(c, "instance file \"%s\" is larger than %u MiB", rel, SEED_SPEC_MAX_FILE >> 20);
    else if (r < 0)
        parse_error(c, "instance file \"%s\" cannot be %s: %s", rel, what, strerror(-r));
    if (r < 0)
        return NULL;
    /* Errors inside the file are reported against the file itself. */
    const char *saved = c->file;
    c->file = rel;
    json_t *j = load_json(c, buf, len);
    c->file = saved;
    return j;
}

static int cmp_instance(const void *a, const void *b) {
    return strcmp(((const seed_instance *)a)->name, ((const seed_instance *)b)->name);
}

typedef struct port_use {
    unsigned port;
    size_t inst, expose; /* position in name order: the earlier use is kept */
} port_use;

static int cmp_port_use(const void *a, const void *b) {
    const port_use *x = a, *y = b;
    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    if (x->inst != y->inst)
        return x->inst < y->inst ? -1 : 1;
    return x->expose < y->expose ? -1 : x->expose > y->expose;
}

/* The same host port (per transport) exposed twice, in one instance or two. Sorting
 * by port keeps this O(n log n) for projects with thousands of exposed ports. */
static void check_host_ports(parse_ctx *c, seed_project *p) {
    size_t n = 0;
    for (size_t i = 0; i < p->n_instances; i++)
        n += p->instances[i].n_expose;
    _cleanup_free_ port_use *uses = calloc(n ? n : 1, sizeof(port_use));
    if (!uses) {
        parse_error(c, "out of memory");
        return;
    }
    n = 0;
    for (size_t i = 0; i < p->n_instances; i++)
        for (size_t x = 0; x < p->instances[i].n_expose; x++)
            uses[n++] = (port_use){p->instances[i].expose[x].port, i, x};
    qsort(uses, n, sizeof(port_use), cmp_port_use);

    for (size_t k = 0; k < n; k++) {
        seed_instance *a = &p->instances[uses[k].inst];
        seed_expose *ea = &a->expose[uses[k].expose];
        /* Look back over earlier uses of the same port for one that shares a transport. */
        for (size_t j = k; j-- > 0 && uses[j].port == ea->port;) {
            seed_instance *b = &p->instances[uses[j].inst];
            seed_expose *eb = &b->expose[uses[j].expose];
            bool tcp = seed_protocol_uses_tcp(ea->protocol) && seed_protocol_uses_tcp(eb->protocol);
            bool udp = seed_protocol_uses_udp(ea->protocol) && seed_protocol_uses_udp(eb->protocol);
            if (!tcp && !udp)
                continue;
            const char *saved_file = c->file;
            c->file = a->file;
            seed_jpath_pop(&c->path, 0);
            seed_jpath_push_key(&c->path, a->name);
            seed_jpath_push_key(&c->path, "expose");
            seed_jpath_push_key(&c->path, ea->name);
            seed_jpath_push_key(&c->path, "port");
            parse_error(c,
                        "host port %u/%s is already exposed by %s.expose.%s: each port can be "
                        "exposed once per node",
                        ea->port, tcp ? "tcp" : "udp", b->name, eb->name);
            seed_jpath_pop(&c->path, 0);
            c->file = saved_file;
            break;
        }
    }
}

/* file: where the text came from, for messages (seeds.json, flake.nix). */
static int project_parse(const char *buf, size_t len, int dirfd, const char *dir, const char *uri,
                         const char *file, seed_project **ret, seed_diags *diags) {
    _cleanup_(seed_project_freep) seed_project *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->dir = dir ? strdup(dir) : NULL;
    p->uri = strdup(uri);
    if (!p->uri || (dir && !p->dir))
        return -ENOMEM;
    int r = seed_namespace_from_uri(uri, p->namespace);
    if (r < 0)
        return r;

    parse_ctx c = {.diags = diags, .file = file, .dirfd = dirfd, .dir = dir};
    json_t *top = load_json(&c, buf, len);
    if (!top)
        goto done;
    if (!json_is_object(top)) {
        char found[96];
        seed_json_describe(top, found, sizeof(found));
        parse_error(&c,
                    "expected an object mapping instance names to instances or instance files, "
                    "found %s",
                    found);
        goto done;
    }
    if (json_object_size(top) > SEED_SPEC_MAX_INSTANCES) {
        parse_error(&c, "declares %zu instances: at most %d are allowed", json_object_size(top),
                    SEED_SPEC_MAX_INSTANCES);
        goto done;
    }

    p->instances = calloc(json_object_size(top) + 1, sizeof(seed_instance));
    if (!p->instances) {
        r = -ENOMEM;
        goto done;
    }
    const char *name;
    json_t *v;
    json_object_foreach (top, name, v) {
        seed_jpath_pop(&c.path, 0);
        seed_jpath_push_key(&c.path, name);
        c.file = file;
        const char *why = seed_check_dns_label(name, SEED_SPEC_MAX_NAME);
        if (why) {
            parse_error(&c, "instance name %s", why);
            continue;
        }
        json_t *obj = NULL;
        const char *ifile = file;
        if (json_is_string(v)) {
            ifile = json_string_value(v);
            obj = load_instance_file(&c, ifile);
            if (!obj)
                continue;
        } else if (json_is_object(v)) {
            obj = json_incref(v);
        } else {
            char found[96];
            seed_json_describe(v, found, sizeof(found));
            parse_error(&c, "expected an instance object or the path of an instance file, found %s", found);
            continue;
        }
        seed_instance *inst = &p->instances[p->n_instances++];
        inst->name = strdup(name);
        inst->file = strdup(ifile);
        c.file = inst->file;
        parse_instance(&c, obj, inst);
        json_decref(obj);
    }
    seed_jpath_pop(&c.path, 0);
    qsort(p->instances, p->n_instances, sizeof(seed_instance), cmp_instance);
    check_host_ports(&c, p);

    for (size_t i = 0; i < p->n_instances; i++) {
        r = seed_instance_identity(&p->instances[i], p->instances[i].identity);
        if (r < 0)
            break;
    }
    if (r >= 0)
        r = seed_project_generation(p, p->generation);

done:
    json_decref(top);
    for (size_t i = 0; i < c.n_roots; i++)
        free(c.roots[i].error);
    free(c.roots);
    if (r < 0)
        return r;
    seed_diags_sort(diags);
    *ret = TAKE_PTR(p);
    return 0;
}

int seed_project_parse(const char *buf, size_t len, int dirfd, const char *dir, const char *uri,
                       seed_project **ret, seed_diags *diags) {
    return project_parse(buf, len, dirfd, dir, uri, SEEDS_JSON, ret, diags);
}

/* A flake's seeds, evaluated by Nix, as a project; dirfd/dir: where it lies, or -1/NULL. */
static int load_flake(const char *ref, int dirfd, const char *dir, const char *uri, seed_project **ret,
                      seed_diags *diags) {
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = seed_flake_eval(ref, dir, &text, &len, diags);
    if (r <= 0)
        return r;
    return project_parse(text, len, dirfd, dir, uri, "flake.nix", ret, diags);
}

bool seed_is_flake_ref(const char *s) {
    static const char *const schemes[] = {
        "path:", "git+", "github:", "gitlab:", "sourcehut:", "flake:", "tarball+", "file+"};
    for (size_t i = 0; i < ELEMENTSOF(schemes); i++)
        if (strncmp(s, schemes[i], strlen(schemes[i])) == 0)
            return true;
    return false;
}

int seed_project_load(const char *source, const char *uri, seed_project **ret, seed_diags *diags) {
    if (!source)
        source = ".";
    /* A flake reference; path:/dir is the directory itself, so that its roots and
     * messages refer to it. */
    if (seed_is_flake_ref(source)) {
        struct stat dst;
        const char *path = strncmp(source, "path:", 5) == 0 ? source + 5 : NULL;
        if (!path || strchr(path, '?') || stat(path, &dst) < 0 || !S_ISDIR(dst.st_mode))
            return load_flake(source, -1, NULL, uri ? uri : source, ret, diags);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char real[PATH_MAX];
        if (fd < 0 || !realpath(path, real)) {
            seed_diags_add(diags, NULL, "", "project directory \"%s\" cannot be opened: %s", path,
                           strerror(errno));
            return 0;
        }
        return load_flake(source, fd, real, uri ? uri : source, ret, diags);
    }
    _cleanup_free_ char *dir = NULL;
    const char *file = SEEDS_JSON;
    bool named_file = false; /* the path of a seeds.json given, not a directory */
    struct stat st;
    if (stat(source, &st) == 0 && S_ISREG(st.st_mode)) {
        named_file = true;
        /* A path to the seeds.json itself: the project is its directory. */
        const char *slash = strrchr(source, '/');
        dir = slash ? strndup(source, (size_t)(slash - source) + (slash == source)) : strdup(".");
        file = slash ? slash + 1 : source;
    } else {
        dir = strdup(source);
    }
    if (!dir)
        return -ENOMEM;

    _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        seed_diags_add(diags, NULL, "", "project directory \"%s\" cannot be opened: %s", dir,
                       strerror(errno));
        return 0;
    }
    char real[PATH_MAX];
    if (!realpath(dir, real))
        return negative_errno();

    _cleanup_free_ char *default_uri = NULL;
    if (!uri) {
        if (asprintf(&default_uri, "path:%s", real) < 0)
            return -ENOMEM;
        uri = default_uri;
    }

    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    const char *what;
    int r = read_spec_file(dirfd, file, &buf, &len, &what);
    /* No seeds.json but a flake.nix: the flake is the project. */
    if (r == -ENOENT && !named_file && faccessat(dirfd, "flake.nix", F_OK, 0) == 0) {
        _cleanup_free_ char *ref = NULL;
        if (asprintf(&ref, "path:%s", real) < 0)
            return -ENOMEM;
        return load_flake(ref, dirfd, real, uri, ret, diags);
    }
    if (r == -ENOENT)
        seed_diags_add(
            diags, file, "",
            "missing: a seed project needs a %s (or a flake.nix) at its root mapping instance names to "
            "instances (looked in %s)",
            file, real);
    else if (r == -EINVAL)
        seed_diags_add(diags, file, "", "is not a regular file");
    else if (r == -EFBIG)
        seed_diags_add(diags, file, "", "is larger than %u MiB", SEED_SPEC_MAX_FILE >> 20);
    else if (r < 0)
        seed_diags_add(diags, file, "", "cannot be %s: %s", what, strerror(-r));
    if (r < 0)
        return 0;
    return seed_project_parse(buf, len, dirfd, real, uri, ret, diags);
}

void seed_project_free(seed_project *p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->n_instances; i++)
        seed_instance_clear(&p->instances[i]);
    free(p->instances);
    free(p->dir);
    free(p->uri);
    free(p);
}

const seed_instance *seed_project_find(const seed_project *p, const char *name) {
    for (size_t i = 0; i < p->n_instances; i++)
        if (streq(p->instances[i].name, name))
            return &p->instances[i];
    return NULL;
}
