/* Nix store closures: see nix.h. The store is asked through its own command line
 * (nix-store --query --requisites, then --dump-db for the references), as a user
 * would; nothing reads Nix's database directly. */
#include "image/nix.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "base/spawn.h"

#define NONE ((size_t)-1)
#define MAX_NIX_OUTPUT (256u << 20)
#define MAX_CLOSURE 100000

static const char nixbase32[] = "0123456789abcdfghijklmnpqrsvwxyz";

/* Length of the store path at s (/nix/store/<hash>-<name>), 0 when there is none. */
static size_t store_path_len(const char *s) {
    static const char prefix[] = SEED_NIX_STORE "/";
    size_t pl = sizeof(prefix) - 1;
    if (strncmp(s, prefix, pl) != 0)
        return 0;
    const char *h = s + pl;
    for (int i = 0; i < 32; i++)
        if (!h[i] || !strchr(nixbase32, h[i]))
            return 0;
    if (h[32] != '-')
        return 0;
    size_t n = 33;
    while (h[n] && (isalnum((unsigned char)h[n]) || strchr("+-._?=", h[n])))
        n++;
    return n == 33 ? 0 : pl + n;
}

bool seed_nix_is_store_path(const char *s) {
    size_t n = store_path_len(s);
    return n > 0 && s[n] == 0;
}

void seed_nix_closure_free(seed_nix_closure *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->p[i].path);
        free(c->p[i].refs);
    }
    free(c->p);
    free(c->registration);
    free(c);
}

static int cmp_path(const void *a, const void *b) {
    return strcmp(((const seed_nix_path *)a)->path, ((const seed_nix_path *)b)->path);
}

static size_t find_exact(const seed_nix_closure *c, const char *path, size_t len) {
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strncmp(c->p[mid].path, path, len);
        if (d == 0 && c->p[mid].path[len])
            d = 1;
        if (d == 0)
            return mid;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NONE;
}

size_t seed_nix_find(const seed_nix_closure *c, const char *path) {
    size_t n = store_path_len(path);
    if (n == 0 || (path[n] && path[n] != '/'))
        return NONE;
    return find_exact(c, path, n);
}

/* The next line of the dump: [*pos, end of line), moved past it. */
static bool next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *l) {
    if (*pos >= len)
        return false;
    const char *s = text + *pos, *nl = memchr(s, '\n', len - *pos);
    *line = s;
    *l = nl ? (size_t)(nl - s) : len - *pos;
    *pos += *l + (nl ? 1 : 0);
    return true;
}

static bool parse_u64(const char *s, size_t l, uint64_t *ret) {
    if (l == 0 || l > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < l; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *ret = v;
    return true;
}

/* The references are read as names first and turned into indices once the paths are
 * sorted. */
typedef struct raw_refs {
    char **v;
    size_t n;
} raw_refs;

int seed_nix_parse_registration(const char *text, size_t len, seed_nix_closure **ret, seed_error **err) {
    _cleanup_(seed_nix_closure_freep) seed_nix_closure *c = calloc(1, sizeof(*c));
    raw_refs *raw = NULL;
    size_t cap = 0, pos = 0, lineno = 0;
    int r = 0;
    if (!c)
        return seed_error_set(err, ENOMEM, "out of memory");
    const char *line;
    size_t l;
    while (r == 0 && next_line(text, len, &pos, &line, &l)) {
        lineno++;
        if (l == 0 && pos >= len)
            break;
        /* path, hash, NAR size, deriver, reference count, references */
        _cleanup_free_ char *path = strndup(line, l);
        if (!path) {
            r = seed_error_set(err, ENOMEM, "out of memory");
            break;
        }
        if (!seed_nix_is_store_path(path)) {
            r = seed_error_set(err, EINVAL,
                               "nix-store --dump-db line %zu: expected a store path, got \"%.*s\"", lineno,
                               (int)MIN(l, (size_t)200), line);
            break;
        }
        const char *f[4];
        size_t fl[4];
        size_t k = 0;
        for (; k < 4 && next_line(text, len, &pos, &f[k], &fl[k]); k++)
            lineno++;
        uint64_t nar = 0, nrefs = 0;
        if (k < 4 || !parse_u64(f[1], fl[1], &nar) || !parse_u64(f[3], fl[3], &nrefs) ||
            nrefs > MAX_CLOSURE) {
            r = seed_error_set(err, EINVAL,
                               "nix-store --dump-db line %zu: the entry of %s is cut short or malformed "
                               "(expected its hash, NAR size, deriver and reference count)",
                               lineno, path);
            break;
        }
        if (c->n == MAX_CLOSURE) {
            r = seed_error_set(err, E2BIG, "a closure of more than %u store paths", MAX_CLOSURE);
            break;
        }
        if (c->n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            seed_nix_path *np = reallocarray(c->p, ncap, sizeof(*np));
            raw_refs *nr = np ? reallocarray(raw, ncap, sizeof(*nr)) : NULL;
            if (np)
                c->p = np;
            if (!nr) {
                r = seed_error_set(err, ENOMEM, "out of memory");
                break;
            }
            raw = nr;
            cap = ncap;
        }
        raw[c->n] = (raw_refs){.v = nrefs ? calloc(nrefs, sizeof(char *)) : NULL};
        c->p[c->n] = (seed_nix_path){.path = TAKE_PTR(path), .nar_size = nar};
        c->n++;
        if (nrefs && !raw[c->n - 1].v) {
            r = seed_error_set(err, ENOMEM, "out of memory");
            break;
        }
        for (uint64_t i = 0; r == 0 && i < nrefs; i++) {
            const char *rl;
            size_t rn;
            if (!next_line(text, len, &pos, &rl, &rn)) {
                r = seed_error_set(err, EINVAL,
                                   "nix-store --dump-db: the entry of %s names %llu references but ends "
                                   "after %llu",
                                   c->p[c->n - 1].path, (unsigned long long)nrefs, (unsigned long long)i);
                break;
            }
            lineno++;
            char *ref = strndup(rl, rn);
            if (!ref) {
                r = seed_error_set(err, ENOMEM, "out of memory");
                break;
            }
            raw[c->n - 1].v[raw[c->n - 1].n++] = ref;
            if (!seed_nix_is_store_path(ref))
                r = seed_error_set(
                    err, EINVAL, "nix-store --dump-db line %zu: reference \"%.*s\" of %s is not a store path",
                    lineno, (int)MIN(rn, (size_t)200), rl, c->p[c->n - 1].path);
        }
    }
    if (r == 0 && c->n == 0)
        r = seed_error_set(err, EINVAL, "nix-store --dump-db printed no store path");

    /* Sort, carrying each path's references along, then resolve them. */
    size_t *order = r == 0 ? malloc(c->n * sizeof(size_t)) : NULL;
    if (r == 0 && !order)
        r = seed_error_set(err, ENOMEM, "out of memory");
    if (r == 0) {
        for (size_t i = 0; i < c->n; i++) {
            /* the original index rides in refs until the sort is done */
            c->p[i].n_refs = i;
        }
        qsort(c->p, c->n, sizeof(*c->p), cmp_path);
        for (size_t i = 0; i < c->n; i++) {
            order[i] = c->p[i].n_refs;
            c->p[i].n_refs = 0;
        }
        for (size_t i = 0; r == 0 && i + 1 < c->n; i++)
            if (streq(c->p[i].path, c->p[i + 1].path))
                r = seed_error_set(err, EINVAL, "nix-store --dump-db names %s twice", c->p[i].path);
    }
    for (size_t i = 0; r == 0 && i < c->n; i++) {
        raw_refs *rr = &raw[order[i]];
        c->p[i].refs = rr->n ? calloc(rr->n, sizeof(size_t)) : NULL;
        if (rr->n && !c->p[i].refs) {
            r = seed_error_set(err, ENOMEM, "out of memory");
            break;
        }
        for (size_t k = 0; k < rr->n; k++) {
            size_t j = find_exact(c, rr->v[k], strlen(rr->v[k]));
            if (j == NONE) {
                r = seed_error_set(err, EINVAL,
                                   "%s refers to %s, which is not in the closure nix-store gave: the "
                                   "store's database is inconsistent (nix-store --verify)",
                                   c->p[i].path, rr->v[k]);
                break;
            }
            if (j != i)
                c->p[i].refs[c->p[i].n_refs++] = j;
        }
    }
    free(order);
    for (size_t i = 0; raw && i < c->n; i++) {
        for (size_t k = 0; k < raw[i].n; k++)
            free(raw[i].v[k]);
        free(raw[i].v);
    }
    free(raw);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(c);
    return 0;
}

/* nix's own words: the last non-empty line of stderr, without its "error: ". */
static void nix_words(const char *errtext, char *buf, size_t size) {
    const char *best = NULL;
    size_t bl = 0;
    for (const char *s = errtext; *s;) {
        size_t l = strcspn(s, "\n");
        size_t t = 0;
        while (t < l && isspace((unsigned char)s[t]))
            t++;
        if (t < l) {
            best = s + t;
            bl = l - t;
        }
        s += l + (s[l] ? 1 : 0);
    }
    if (best && bl > 7 && strncmp(best, "error: ", 7) == 0)
        best += 7, bl -= 7;
    snprintf(buf, size, "%.*s", best ? (int)MIN(bl, size - 1) : 0, best ? best : "");
}

static int nix_store(const char *what, const char *path, const char *const *argv, seed_spawn_result *res,
                     seed_error **err) {
    int r = seed_spawn_capture(argv, MAX_NIX_OUTPUT, NULL, res);
    if (r == -ENOENT)
        return seed_error_set(err, ENOENT,
                              "%s %s is a Nix store path: reading its closure needs nix-store, which is "
                              "not installed (Debian's nix-bin package)",
                              what, path);
    if (r < 0)
        return seed_error_setp(err, -r, "running nix-store for %s %s", what, path);
    if (res->status != 0) {
        char words[512];
        nix_words(res->err, words, sizeof(words));
        return seed_error_set(err, EINVAL,
                              "%s %s is not a valid path of this machine's Nix store (%s): "
                              "build it or copy it here first (nix-build, nix copy)",
                              what, path, *words ? words : "nix-store failed");
    }
    return 0;
}

int seed_nix_closure_of(const char *what, const char *path, seed_nix_closure **ret, seed_error **err) {
    if (!seed_nix_is_store_path(path))
        return seed_error_set(err, EINVAL, "%s \"%s\" is not a Nix store path: expected %s/<hash>-<name>",
                              what, path, SEED_NIX_STORE);
    seed_spawn_result q = {0}, d = {0};
    const char *qargv[] = {"nix-store", "--query", "--requisites", "--", path, NULL};
    int r = nix_store(what, path, qargv, &q, err);
    size_t n = 0;
    for (size_t i = 0; r == 0 && i < q.out_len; i++)
        n += q.out[i] == '\n';
    const char **dargv = r == 0 ? calloc(n + 5, sizeof(char *)) : NULL;
    if (r == 0 && !dargv)
        r = seed_error_set(err, ENOMEM, "out of memory");
    if (r == 0) {
        size_t k = 0;
        dargv[k++] = "nix-store";
        dargv[k++] = "--dump-db";
        dargv[k++] = "--";
        for (char *s = q.out, *save = NULL, *t; (t = strtok_r(s, "\n", &save)); s = NULL) {
            if (!seed_nix_is_store_path(t)) {
                r = seed_error_set(err, EINVAL,
                                   "nix-store --query --requisites %s printed \"%.200s\": not a store path",
                                   path, t);
                break;
            }
            if (k < n + 3)
                dargv[k++] = t;
        }
        if (r == 0 && k == 3)
            r = seed_error_set(err, EINVAL, "nix-store --query --requisites %s printed no path", path);
        if (r == 0)
            r = nix_store(what, path, dargv, &d, err);
        n = k - 3;
    }
    free(dargv);
    seed_nix_closure *c = NULL;
    if (r == 0)
        r = seed_nix_parse_registration(d.out, d.out_len, &c, err);
    if (r == 0) {
        c->registration = TAKE_PTR(d.out);
        d.out_len = 0;
    }
    if (r == 0 && (c->n != n || seed_nix_find(c, path) == NONE)) {
        r = seed_error_set(err, EINVAL,
                           "nix-store gave %zu paths for the closure of %s but the references of %zu", n,
                           path, c->n);
        seed_nix_closure_free(c);
    }
    seed_spawn_result_clear(&q);
    seed_spawn_result_clear(&d);
    if (r < 0)
        return r;
    *ret = c;
    return 0;
}

typedef struct rank_ctx {
    const seed_nix_closure *c;
    const size_t *pop;
} rank_ctx;

static int cmp_rank(const void *a, const void *b, void *arg) {
    const rank_ctx *x = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (x->pop[i] != x->pop[j])
        return x->pop[i] > x->pop[j] ? -1 : 1;
    return strcmp(x->c->p[i].path, x->c->p[j].path);
}

int seed_nix_rank(const seed_nix_closure *c, size_t **ret) {
    /* From every path, walk what it needs; each path reached counts one more for it. */
    _cleanup_free_ size_t *pop = calloc(c->n, sizeof(size_t)), *stack = malloc(c->n * sizeof(size_t)),
                          *seen = calloc(c->n, sizeof(size_t));
    size_t *order = malloc(c->n * sizeof(size_t));
    if (!pop || !stack || !seen || !order) {
        free(order);
        return -ENOMEM;
    }
    for (size_t from = 0; from < c->n; from++) {
        size_t sp = 0, mark = from + 1;
        stack[sp++] = from;
        seen[from] = mark;
        while (sp) {
            size_t i = stack[--sp];
            pop[i]++;
            for (size_t k = 0; k < c->p[i].n_refs; k++) {
                size_t j = c->p[i].refs[k];
                if (seen[j] != mark) {
                    seen[j] = mark;
                    stack[sp++] = j;
                }
            }
        }
    }
    for (size_t i = 0; i < c->n; i++)
        order[i] = i;
    rank_ctx x = {c, pop};
    qsort_r(order, c->n, sizeof(size_t), cmp_rank, &x);
    *ret = order;
    return 0;
}

int seed_nix_first_outside(const seed_nix_closure *c, const char *text, char **ret) {
    *ret = NULL;
    for (const char *s = text ? strstr(text, SEED_NIX_STORE "/") : NULL; s;
         s = strstr(s + 1, SEED_NIX_STORE "/")) {
        size_t n = store_path_len(s);
        if (n == 0 || find_exact(c, s, n) != NONE)
            continue;
        *ret = strndup(s, n);
        return *ret ? 0 : -ENOMEM;
    }
    return 0;
}
