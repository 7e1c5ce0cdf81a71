/* Flakes as seed projects: `seeds.<name>` of a flake, evaluated by Nix in one
 * `nix eval --json` for the whole project (each a seed.lib.mkSeed result, whose `spec`
 * is what seeds.json would hold, or a plain attribute set of the same), then checked
 * by the same C code as seeds.json. Nix's own errors (syntax, types, abort, infinite
 * recursion, unfetchable inputs) come back with Nix's message and position, store
 * paths of the flake's source shown as the files they came from. The evaluator runs
 * with a time and a memory limit. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/macro.h"
#include "base/spawn.h"
#include "spec/diag.h"
#include "spec/flake.h"

#define MAX_JSON (256u << 20)
#define DEFAULT_TIMEOUT_S 120
#define DEFAULT_MEMORY_MIB 4096
#define MAX_MESSAGE 2048

/* Where the flake's own source lies in the store (nix flake metadata: "path"), or NULL:
 * positions and roots there are the project directory's files. Other inputs (the seed
 * library itself) have store paths of their own, left as they are. */
static char *flake_source(const char *ref, const seed_spawn_opts *opts) {
    const char *argv[] = {"nix",
                          "--extra-experimental-features",
                          "nix-command flakes",
                          "flake",
                          "metadata",
                          "--json",
                          "--no-write-lock-file",
                          "--",
                          ref,
                          NULL};
    seed_spawn_result res = {0};
    char *path = NULL;
    if (seed_spawn_capture(argv, 1u << 20, opts, &res) == 0 && res.status == 0) {
        json_t *j = json_loadb(res.out, res.out_len, 0, NULL);
        const char *p = json_string_value(json_object_get(j, "path"));
        if (p && strncmp(p, "/nix/store/", 11) == 0)
            path = strdup(p);
        json_decref(j);
    }
    seed_spawn_result_clear(&res);
    return path;
}

/* Length of the flake's source path at s ("<source>" then '/' or the end), else 0. */
static size_t source_prefix(const char *s, const char *source) {
    size_t n = source ? strlen(source) : 0;
    return n && strncmp(s, source, n) == 0 && (s[n] == '/' || s[n] == 0 || s[n] == ':') ? n : 0;
}

static unsigned env_number(const char *name, unsigned dflt) {
    const char *v = getenv(name);
    char *end;
    unsigned long n = v && *v ? strtoul(v, &end, 10) : 0;
    return v && *v && !*end && n > 0 && n < 1000000 ? (unsigned)n : dflt;
}

/* Nix's stderr as one message: the error lines without the code excerpt and the
 * hints, the source's store paths replaced by dir. */
static char *nix_message(const char *text, const char *dir, const char *source) {
    char *out = calloc(1, MAX_MESSAGE + 64);
    if (!out)
        return NULL;
    size_t o = 0;
    bool in_error = false;
    for (const char *s = text; *s && o < MAX_MESSAGE;) {
        size_t l = strcspn(s, "\n");
        const char *line = s;
        s += l + (s[l] ? 1 : 0);
        while (l > 0 && isspace((unsigned char)*line))
            line++, l--;
        while (l > 0 && isspace((unsigned char)line[l - 1]))
            l--;
        if (strncmp(line, "error:", 6) == 0) {
            in_error = true;
            line += 6, l -= 6;
            while (l > 0 && *line == ' ')
                line++, l--;
        }
        /* warnings, lock file notes, code excerpts ("12| ...", "|   ^") and hints */
        if (!in_error || l == 0 || strncmp(line, "warning:", 8) == 0 || strchr("|0123456789", *line) ||
            strncmp(line, "(use '--show-trace'", 19) == 0 || strncmp(line, "… ", 4) == 0)
            continue;
        if (o)
            o += (size_t)snprintf(out + o, MAX_MESSAGE + 64 - o, " ");
        for (size_t i = 0; i < l && o < MAX_MESSAGE;) {
            size_t sp = dir ? source_prefix(line + i, source) : 0;
            if (sp) {
                o += (size_t)snprintf(out + o, MAX_MESSAGE + 64 - o, "%s", dir);
                i += sp;
                continue;
            }
            out[o++] = line[i++];
        }
    }
    while (o > 0 && out[o - 1] == ':')
        out[--o] = 0;
    if (!o)
        snprintf(out, MAX_MESSAGE, "nix eval failed without saying why");
    return out;
}

/* The file a message's position names ("at /dir/web.nix:1:58"), relative to dir when
 * it lies there; NULL when there is none. */
static char *message_file(const char *msg, const char *dir) {
    const char *at = NULL;
    for (const char *p = strstr(msg, " at /"); p; p = strstr(p + 1, " at /"))
        at = p + 4;
    if (!at || !dir)
        return NULL;
    size_t dl = strlen(dir);
    if (strncmp(at, dir, dl) != 0 || at[dl] != '/')
        return NULL;
    const char *f = at + dl + 1, *colon = strchr(f, ':');
    return colon && colon > f ? strndup(f, (size_t)(colon - f)) : NULL;
}

/* A path of the flake (./rootfs, ./secrets/db.age) arrives as a store path of its
 * source: back to the file it names in the project. */
static void relative_path(json_t *holder, const char *key, const char *source) {
    const char *s = json_string_value(json_object_get(holder, key));
    size_t sp = s ? source_prefix(s, source) : 0;
    if (sp && s[sp] == '/' && s[sp + 1])
        json_object_set_new(holder, key, json_string(s + sp + 1));
}

static void relative_paths(json_t *top, const char *ref, const seed_spawn_opts *opts) {
    const char *name;
    json_t *inst;
    _cleanup_free_ char *source = flake_source(ref, opts);
    if (!source)
        return;
    json_object_foreach (top, name, inst) {
        relative_path(inst, "root", source);
        const char *sname;
        json_t *sec, *secrets = json_object_get(inst, "secrets");
        json_object_foreach (secrets, sname, sec) {
            if (json_is_string(sec))
                relative_path(secrets, sname, source);
            else
                relative_path(sec, "file", source);
        }
    }
}

/* Each instance's spec; a root that is a derivation (pkgs.buildEnv, ...) as its output
 * path, with the derivation beside it so that a root not built yet can be. */
#define APPLY                                                                                        \
    "ss: builtins.mapAttrs (n: s: let sp = if s ? spec then s.spec else s; r = sp.root or null; in " \
    "if builtins.isAttrs sp && builtins.isAttrs r && r ? drvPath "                                   \
    "then sp // { root = r.outPath; \"$rootDrv\" = r.drvPath; } else sp) ss"

/* Build the roots that are derivations and not in the store yet; the "$rootDrv" keys go. */
static int build_roots(json_t *top, const seed_spawn_opts *opts, seed_diags *diags) {
    const char *name;
    json_t *inst;
    json_object_foreach (top, name, inst) {
        const char *drv = json_string_value(json_object_get(inst, "$rootDrv"));
        const char *out = json_string_value(json_object_get(inst, "root"));
        if (!drv)
            continue;
        struct stat st;
        if (out && lstat(out, &st) < 0) {
            const char *argv[] = {"nix-store", "--realise", "--", drv, NULL};
            seed_spawn_result res = {0};
            int r = seed_spawn_capture(argv, 1u << 20, opts, &res);
            if (r < 0 && r != -ENOENT) {
                seed_spawn_result_clear(&res);
                return r;
            }
            if (r == -ENOENT || res.timed_out || res.status != 0) {
                _cleanup_free_ char *msg = r == -ENOENT ? NULL : nix_message(res.err, NULL, NULL);
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s.root", name) < 0)
                    path = NULL;
                seed_diags_add(diags, "flake.nix", path ? path : name, "building the root %s failed: %s", drv,
                               r == -ENOENT    ? "nix-store is not installed (Debian's nix-bin package)"
                               : res.timed_out ? "it did not finish in time (SEED_NIX_EVAL_TIMEOUT)"
                               : msg           ? msg
                                               : "out of memory");
            }
            seed_spawn_result_clear(&res);
        }
        json_object_del(inst, "$rootDrv");
    }
    return 0;
}

int seed_flake_eval(const char *ref, const char *dir, char **ret, size_t *ret_len, seed_diags *diags) {
    _cleanup_free_ char *attr = NULL;
    if (asprintf(&attr, "%s#seeds", ref) < 0)
        return -ENOMEM;
    const char *argv[] = {"nix",
                          "--extra-experimental-features",
                          "nix-command flakes",
                          "eval",
                          "--json",
                          "--no-write-lock-file",
                          "--apply",
                          APPLY,
                          "--",
                          attr,
                          NULL};
    unsigned timeout_s = env_number("SEED_NIX_EVAL_TIMEOUT", DEFAULT_TIMEOUT_S);
    unsigned memory_mib = env_number("SEED_NIX_EVAL_MEMORY", DEFAULT_MEMORY_MIB);
    seed_spawn_opts opts = {.timeout_ms = timeout_s * 1000, .max_memory = (uint64_t)memory_mib << 20};
    seed_spawn_result res = {0};
    int r = seed_spawn_capture(argv, MAX_JSON, &opts, &res);
    if (r == -ENOENT) {
        seed_diags_add(diags, "flake.nix", "",
                       "%s is a flake: evaluating it needs nix, which is not installed (Debian's nix-bin "
                       "package)",
                       ref);
        return 0;
    }
    if (r == -EFBIG) {
        seed_diags_add(diags, "flake.nix", "", "nix eval of %s printed more than %u MiB", ref,
                       MAX_JSON >> 20);
        return 0;
    }
    if (r < 0)
        return r;
    if (res.timed_out) {
        seed_diags_add(diags, "flake.nix", "",
                       "nix eval of %s did not finish within %u s (SEED_NIX_EVAL_TIMEOUT): an evaluation "
                       "that never ends, or inputs that cannot be fetched",
                       ref, timeout_s);
        seed_spawn_result_clear(&res);
        return 0;
    }
    if (res.status != 0) {
        _cleanup_free_ char *source = dir && strstr(res.err, "/nix/store/") ? flake_source(ref, &opts) : NULL;
        _cleanup_free_ char *msg = nix_message(res.err, dir, source);
        if (!msg) {
            seed_spawn_result_clear(&res);
            return -ENOMEM;
        }
        _cleanup_free_ char *file = message_file(msg, dir);
        bool oom = strstr(res.err, "out of memory") || strstr(res.err, "std::bad_alloc");
        if (oom)
            seed_diags_add(diags, file ?: "flake.nix", "",
                           "%s (nix eval of %s ran out of its %u MiB: SEED_NIX_EVAL_MEMORY)", msg, ref,
                           memory_mib);
        else
            seed_diags_add(diags, file ?: "flake.nix", "", "%s", msg);
        seed_spawn_result_clear(&res);
        return 0;
    }
    /* Without a store path in it there is no root to map or build: the text is the spec. */
    if (!memmem(res.out, res.out_len, "\"/nix/store/", 12)) {
        *ret = TAKE_PTR(res.out);
        *ret_len = res.out_len;
        seed_spawn_result_clear(&res);
        return 1;
    }
    json_error_t je;
    json_t *top = json_loadb(res.out, res.out_len, 0, &je);
    seed_spawn_result_clear(&res);
    if (!json_is_object(top)) {
        seed_diags_add(diags, "flake.nix", "seeds",
                       "expected an attribute set of instances (seeds.<name> = seed.lib.mkSeed { ... })");
        json_decref(top);
        return 0;
    }
    if (dir)
        relative_paths(top, ref, &opts);
    size_t before = seed_diags_count(diags);
    r = build_roots(top, &opts, diags);
    if (r < 0 || seed_diags_count(diags) != before) {
        json_decref(top);
        return r < 0 ? r : 0;
    }
    char *text = json_dumps(top, JSON_COMPACT);
    json_decref(top);
    if (!text)
        return -ENOMEM;
    *ret = text;
    *ret_len = strlen(text);
    return 1;
}
