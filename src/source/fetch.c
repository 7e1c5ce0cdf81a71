/* Source URLs and git fetches. The parser turns what a user typed into the URL git is
 * given and the flake-style URI the namespace is derived from. A fetch runs in a
 * forked worker (own process group) that runs git commands one after another and
 * writes one result record to a pipe; the daemon watches the worker's pidfd on its
 * loop and kills the whole group on timeout. */
#include "source/fetch.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/spawn.h"

#define ACCEPTED                                                                                                 \
    "accepted: an absolute path, path:/abs, file:///abs, https://…, http://…, ssh://…, [user@]host:path, " \
    "git+file://…, git+https://…, git+http://…, git+ssh://…"

/* Bounds on what git may hand back: ls-remote of a repository with very many refs,
 * and the end of its error output that a message quotes. */
#define MAX_STDOUT (64u << 20)
#define MAX_STDERR_KEPT (16u << 10)
#define MAX_MESSAGE_TAIL 2048u

/* ---- strings ---------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = MAX(b->cap * 2, b->len + n + 64);
        char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

static int buf_adds(buf *b, const char *s) {
    return buf_add(b, s, strlen(s));
}

static int buf_printf(buf *b, const char *fmt, ...) _printf_(2, 3);
static int buf_printf(buf *b, const char *fmt, ...) {
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    int r = buf_add(b, s, (size_t)n);
    free(s);
    return r;
}

/* Percent-encode as Nix renders URLs: unreserved characters and those in keep stay. */
static int buf_add_encoded(buf *b, const char *s, const char *keep) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                     strchr("-._~", *c) || strchr(keep, *c);
        char e[3] = {'%', hex[*c >> 4], hex[*c & 15]};
        int r = plain ? buf_add(b, (const char *)c, 1) : buf_add(b, e, 3);
        if (r < 0)
            return r;
    }
    return 0;
}

static int unhex(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decode %XX; fails on a malformed escape or an encoded NUL. */
static int percent_decode(const char *s, size_t n, char **ret) {
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int hi = i + 1 < n ? unhex(s[i + 1]) : -1;
        int lo = i + 2 < n ? unhex(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return -EINVAL;
        }
        *o++ = (char)(hi << 4 | lo);
        i += 2;
    }
    *o = 0;
    *ret = out;
    return 0;
}

static bool has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static bool has_space(const char *s) {
    return strpbrk(s, " \t") != NULL;
}

/* ---- refs --------------------------------------------------------------------- */

bool seed_fetch_ref_valid(const char *ref, const char **why) {
    const char *w = NULL;
    size_t n = ref ? strlen(ref) : 0;
    if (n == 0)
        w = "is empty";
    else if (n > 255)
        w = "is longer than 255 characters";
    else if (ref[0] == '-')
        w = "begins with '-'";
    else if (streq(ref, "@"))
        w = "is '@'";
    else if (has_control(ref))
        w = "contains a control character";
    else if (strpbrk(ref, " ~^:?*[\\"))
        w = "contains a space or one of ~ ^ : ? * [ \\";
    else if (ref[0] == '/' || ref[n - 1] == '/')
        w = "begins or ends with '/'";
    else if (strstr(ref, "//"))
        w = "contains '//'";
    else if (strstr(ref, ".."))
        w = "contains '..'";
    else if (strstr(ref, "@{"))
        w = "contains '@{'";
    else if (ref[n - 1] == '.')
        w = "ends with '.'";
    else
        for (const char *c = ref; *c;) {
            size_t l = strcspn(c, "/");
            if (c[0] == '.')
                w = "has a component beginning with '.'";
            else if (l >= 5 && strncmp(c + l - 5, ".lock", 5) == 0)
                w = "has a component ending with '.lock'";
            if (w)
                break;
            c += l;
            if (*c == '/')
                c++;
        }
    if (w && why)
        *why = w;
    return !w;
}

/* ---- URLs --------------------------------------------------------------------- */

void seed_fetch_url_clear(seed_fetch_url *u) {
    if (!u)
        return;
    free(u->url);
    free(u->ref);
    free(u->uri);
    *u = (seed_fetch_url){0};
}

/* Lexically clean an absolute path: no empty or "." components, no trailing '/'.
 * ".." is refused rather than resolved (a symlink makes resolving it lexically wrong). */
static int normalize_path(const char *in, char **ret, seed_error **err) {
    buf b = {0};
    for (const char *c = in; *c;) {
        while (*c == '/')
            c++;
        size_t l = strcspn(c, "/");
        if (l == 0)
            break;
        if (l == 2 && c[0] == '.' && c[1] == '.') {
            free(b.p);
            return seed_error_set(err, EINVAL, "source path '%s' contains '..'; give it without '..'", in);
        }
        if (!(l == 1 && c[0] == '.') && (buf_adds(&b, "/") < 0 || buf_add(&b, c, l) < 0)) {
            free(b.p);
            return seed_error_set(err, ENOMEM, "out of memory");
        }
        c += l;
    }
    if (!b.p && buf_adds(&b, "/") < 0)
        return seed_error_set(err, ENOMEM, "out of memory");
    *ret = b.p;
    return 0;
}

static bool exists_at(const char *dir, const char *name, mode_t type) {
    _cleanup_free_ char *p = NULL;
    struct stat st;
    if (asprintf(&p, "%s/%s", dir, name) < 0 || stat(p, &st) < 0)
        return false;
    return type == 0 || (st.st_mode & S_IFMT) == type;
}

/* A work tree (.git, a directory or a gitfile) or a bare repository. */
static bool is_git_repository(const char *dir) {
    if (exists_at(dir, ".git", 0))
        return true;
    return exists_at(dir, "HEAD", S_IFREG) && exists_at(dir, "objects", S_IFDIR) &&
           exists_at(dir, "refs", S_IFDIR);
}

static int add_ref_query(buf *b, const char *ref) {
    if (!ref)
        return 0;
    int r = buf_adds(b, "?ref=");
    return r < 0 ? r : buf_add_encoded(b, ref, ":@/?");
}

static int finish(seed_fetch_url *out, seed_fetch_kind kind, const char *url, const char *ref, buf *uri,
                  seed_error **err) {
    seed_fetch_url u = {
        .kind = kind, .url = strdup(url), .ref = ref ? strdup(ref) : NULL, .uri = TAKE_PTR(uri->p)};
    if (!u.url || (ref && !u.ref) || !u.uri) {
        seed_fetch_url_clear(&u);
        return seed_error_set(err, ENOMEM, "out of memory");
    }
    *out = u;
    return 0;
}

static int parse_local(const char *path, bool forced_dir, const char *ref, seed_fetch_url *out,
                       seed_error **err) {
    _cleanup_free_ char *p = NULL;
    int r = normalize_path(path, &p, err);
    if (r < 0)
        return r;
    struct stat st;
    if (stat(p, &st) < 0)
        return seed_error_setp(err, errno, "source directory or repository %s", p);
    if (!S_ISDIR(st.st_mode))
        return seed_error_set(
            err, ENOTDIR, "source %s is not a directory (expected a project directory or a git repository)",
            p);
    buf uri = {0};
    if (forced_dir || !is_git_repository(p)) {
        if (ref)
            return seed_error_set(
                err, EINVAL,
                "source %s is a directory, not a git repository: --ref applies to git sources only", p);
        if (buf_adds(&uri, "path:") < 0 || buf_add_encoded(&uri, p, ":@/") < 0)
            return free(uri.p), seed_error_set(err, ENOMEM, "out of memory");
        return finish(out, SEED_FETCH_DIR, p, NULL, &uri, err);
    }
    if (buf_adds(&uri, "git+file://") < 0 || buf_add_encoded(&uri, p, ":@/") < 0 ||
        add_ref_query(&uri, ref) < 0)
        return free(uri.p), seed_error_set(err, ENOMEM, "out of memory");
    return finish(out, SEED_FETCH_GIT, p, ref, &uri, err);
}

/* The query of a git+…:// URI: ref= is the ref; anything else is refused. */
static int parse_flake_query(const char *url, const char *q, const char *ref, char **ret_ref,
                             seed_error **err) {
    for (const char *c = q; *c;) {
        size_t l = strcspn(c, "&");
        if (l > 4 && strncmp(c, "ref=", 4) == 0) {
            _cleanup_free_ char *v = NULL;
            if (percent_decode(c + 4, l - 4, &v) < 0)
                return seed_error_set(err, EINVAL, "source URL '%s' has a malformed %%-escape in ref=", url);
            if (ref && !streq(ref, v))
                return seed_error_set(
                    err, EINVAL, "source URL '%s' names ref '%s' but --ref is '%s'; give one", url, v, ref);
            free(*ret_ref);
            *ret_ref = TAKE_PTR(v);
        } else if (l > 0)
            return seed_error_set(err, EINVAL,
                                  "source URL '%s': parameter '%.*s' is not supported (only ref= is)", url,
                                  (int)MIN(l, 64), c);
        c += l;
        if (*c == '&')
            c++;
    }
    return 0;
}

static bool host_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* [user[:password]@]host[:port], host a name, an IPv4 address or [IPv6]. Sets *pw_at
 * to the ':' before a password (NULL: none), so the URI can leave it out. */
static int check_authority(const char *url, const char *a, size_t n, const char **pw_at, seed_error **err) {
    *pw_at = NULL;
    const char *at = memrchr(a, '@', n);
    const char *host = at ? at + 1 : a;
    size_t hn = n - (size_t)(host - a);
    if (at) {
        const char *colon = memchr(a, ':', (size_t)(at - a));
        if (colon)
            *pw_at = colon;
        if (a[0] == '-')
            return seed_error_set(err, EINVAL, "source URL '%s': the user name begins with '-'", url);
    }
    if (hn == 0)
        return seed_error_set(err, EINVAL, "source URL '%s' has no host", url);
    if (host[0] == '-')
        return seed_error_set(err, EINVAL, "source URL '%s': the host begins with '-'", url);
    size_t i = 0;
    if (host[0] == '[') {
        const char *close = memchr(host, ']', hn);
        if (!close)
            return seed_error_set(err, EINVAL, "source URL '%s': an IPv6 host lacks its ']'", url);
        for (const char *c = host + 1; c < close; c++)
            if (!strchr("0123456789abcdefABCDEF:.", *c))
                return seed_error_set(err, EINVAL, "source URL '%s': '%.*s' is not an IPv6 address", url,
                                      (int)(close - host + 1), host);
        i = (size_t)(close - host) + 1;
    } else
        while (i < hn && host_char(host[i]))
            i++;
    if (i == 0)
        return seed_error_set(err, EINVAL, "source URL '%s' has no host", url);
    if (i < hn) {
        if (host[i] != ':' || i + 1 == hn)
            return seed_error_set(err, EINVAL, "source URL '%s': the host '%.*s' contains '%c'", url, (int)hn,
                                  host, host[i]);
        for (size_t j = i + 1; j < hn; j++)
            if (host[j] < '0' || host[j] > '9')
                return seed_error_set(err, EINVAL, "source URL '%s': the port '%.*s' is not a number", url,
                                      (int)(hn - i - 1), host + i + 1);
    }
    return 0;
}

static int parse_scheme(const char *url, const char *ref, seed_fetch_url *out, seed_error **err) {
    const char *sep = strstr(url, "://");
    bool flake = strncasecmp(url, "git+", 4) == 0;
    const char *scheme = flake ? url + 4 : url;
    size_t sn = (size_t)(sep - scheme);
    static const char *const schemes[] = {"file", "https", "http", "ssh"};
    const char *s = NULL;
    for (size_t i = 0; i < ELEMENTSOF(schemes); i++)
        if (strlen(schemes[i]) == sn && strncasecmp(scheme, schemes[i], sn) == 0)
            s = schemes[i];
    if (!s && sn == 3 && strncasecmp(scheme, "git", 3) == 0)
        return seed_error_set(
            err, EINVAL,
            "source URL '%s': git:// is neither authenticated nor encrypted; use https:// or ssh:// "
            "(" ACCEPTED ")",
            url);
    if (!s)
        return seed_error_set(err, EINVAL,
                              "source URL '%s': the scheme '%.*s' is not supported (" ACCEPTED ")", url,
                              (int)MIN(sep - url, 32), url);
    if (has_space(url))
        return seed_error_set(err, EINVAL, "source URL '%s' contains a space; write it as %%20", url);
    if (strchr(url, '#'))
        return seed_error_set(err, EINVAL, "source URL '%s' has a fragment (#…); leave it out", url);

    const char *rest = sep + 3;
    _cleanup_free_ char *flake_ref = NULL;
    size_t rn = strcspn(rest, "?");
    if (rest[rn] == '?') {
        if (!flake)
            return seed_error_set(err, EINVAL, "source URL '%s' has a query (?…); give the ref with --ref",
                                  url);
        int r = parse_flake_query(url, rest + rn + 1, ref, &flake_ref, err);
        if (r < 0)
            return r;
        if (flake_ref) {
            const char *why = NULL;
            if (!seed_fetch_ref_valid(flake_ref, &why))
                return seed_error_set(err, EINVAL, "source URL '%s': ref '%s' %s", url, flake_ref, why);
            ref = streq(flake_ref, "HEAD") ? NULL : flake_ref;
        }
    }

    size_t an = streq(s, "file") ? 0 : strcspn(rest, "/?");
    const char *path = rest + an;
    size_t pn = rn - an;
    const char *pw_at = NULL;
    if (streq(s, "file")) {
        if (rest[0] != '/')
            return seed_error_set(err, EINVAL, "source URL '%s': a file URL takes no host (file:///abs/path)",
                                  url);
    } else {
        int r = check_authority(url, rest, an, &pw_at, err);
        if (r < 0)
            return r;
    }
    if (pn == 0 || (pn == 1 && path[0] == '/'))
        return seed_error_set(err, EINVAL, "source URL '%s' names no repository path", url);

    /* What git gets: the URL without git+ and without the flake query. */
    _cleanup_free_ char *git_url = NULL;
    if (asprintf(&git_url, "%s://%.*s", s, (int)rn, rest) < 0)
        return seed_error_set(err, ENOMEM, "out of memory");
    buf uri = {0};
    int r = buf_printf(&uri, "git+%s://", s);
    if (r >= 0 && pw_at) {
        const char *at = memrchr(rest, '@', an);
        r = buf_add(&uri, rest, (size_t)(pw_at - rest));
        if (r >= 0)
            r = buf_add(&uri, at, an - (size_t)(at - rest));
    } else if (r >= 0)
        r = buf_add(&uri, rest, an);
    if (r >= 0)
        r = buf_add(&uri, path, pn);
    if (r >= 0)
        r = add_ref_query(&uri, ref);
    if (r < 0)
        return free(uri.p), seed_error_set(err, ENOMEM, "out of memory");
    return finish(out, SEED_FETCH_GIT, git_url, ref, &uri, err);
}

/* [user@]host:path, as scp and git write it. */
static int parse_scp(const char *url, const char *colon, const char *ref, seed_fetch_url *out,
                     seed_error **err) {
    if (has_space(url))
        return seed_error_set(err, EINVAL, "source URL '%s' contains a space (not allowed in user@host:path)",
                              url);
    const char *pw_at = NULL;
    int r = check_authority(url, url, (size_t)(colon - url), &pw_at, err);
    if (r < 0)
        return r;
    const char *path = colon + 1;
    if (!*path)
        return seed_error_set(err, EINVAL, "source URL '%s' names no repository path after ':'", url);
    if (path[0] == '-')
        return seed_error_set(err, EINVAL, "source URL '%s': the path begins with '-'", url);
    /* git+ssh://host/path, the form Nix and everyone write for GitHub's git@github.com:o/r. */
    buf uri = {0};
    r = buf_printf(&uri, "git+ssh://%.*s%s%s", (int)(colon - url), url, path[0] == '/' ? "" : "/", path);
    if (r >= 0)
        r = add_ref_query(&uri, ref);
    if (r < 0)
        return free(uri.p), seed_error_set(err, ENOMEM, "out of memory");
    return finish(out, SEED_FETCH_GIT, url, ref, &uri, err);
}

int seed_fetch_url_parse(const char *url, const char *ref, seed_fetch_url *out, seed_error **err) {
    if (!url || !*url)
        return seed_error_set(err, EINVAL, "the source URL is empty (" ACCEPTED ")");
    if (has_control(url))
        return seed_error_set(err, EINVAL, "the source URL contains a control character (" ACCEPTED ")");
    if (url[0] == '-')
        return seed_error_set(err, EINVAL, "source URL '%s' begins with '-' (" ACCEPTED ")", url);
    if (ref) {
        const char *why = NULL;
        if (!seed_fetch_ref_valid(ref, &why))
            return seed_error_set(err, EINVAL, "ref '%s' %s (expected a branch, a tag or refs/…)", ref, why);
        if (streq(ref, "HEAD"))
            ref = NULL;
    }

    if (strncmp(url, "path:", 5) == 0) {
        if (url[5] != '/')
            return seed_error_set(err, EINVAL, "source URL '%s': path: takes an absolute path (path:/abs)",
                                  url);
        return parse_local(url + 5, true, ref, out, err);
    }
    if (url[0] == '/')
        return parse_local(url, false, ref, out, err);

    /* <transport>::<address> runs a remote helper (ext:: runs any command): never. */
    size_t t = strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    if (t > 0 && url[t] == ':' && url[t + 1] == ':')
        return seed_error_set(
            err, EINVAL, "source URL '%s': the remote helper syntax '%.*s::' is not accepted (" ACCEPTED ")",
            url, (int)MIN(t, 32), url);
    if (t > 0 && strncmp(url + t, "://", 3) == 0)
        return parse_scheme(url, ref, out, err);
    const char *colon = strchr(url, ':'), *slash = strchr(url, '/');
    const char *bracket = strchr(url, '[');
    if (bracket && (!slash || bracket < slash) && strchr(bracket, ']')) /* [::1]:path */
        colon = strchr(strchr(bracket, ']'), ':');
    if (colon && (!slash || colon < slash))
        return parse_scp(url, colon, ref, out, err);
    return seed_error_set(err, EINVAL, "source URL '%s' is neither an absolute path nor a URL (" ACCEPTED ")",
                          url);
}

char *seed_fetch_url_redact(const char *url) {
    const char *sep = strstr(url, "://");
    if (!sep)
        return strdup(url);
    const char *a = sep + 3;
    size_t an = strcspn(a, "/?#");
    const char *at = memrchr(a, '@', an);
    const char *colon = at ? memchr(a, ':', (size_t)(at - a)) : NULL;
    char *r = NULL;
    if (!colon)
        return strdup(url);
    if (asprintf(&r, "%.*s:***%s", (int)(colon - url), url, at) < 0)
        return NULL;
    return r;
}

/* ---- the worker: git commands one after another --------------------------------- */

typedef struct job {
    const char *url;      /* for git */
    const char *display;  /* for messages: the password hidden */
    const char *password; /* to hide in git's output; NULL: none */
    const char *ref;
    const char *cache; /* absolute */
    char **env;
} job;

typedef struct result {
    int error;
    buf message, warning;
    char commit[41];
    char *tree;
} result;

static int fail(result *res, int code, const char *fmt, ...) _printf_(3, 4);
static int fail(result *res, int code, const char *fmt, ...) {
    if (res->error)
        return -res->error;
    res->error = code;
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    buf_adds(&res->message, s ? s : "out of memory");
    free(s);
    return -code;
}

/* The environment git runs with: nothing of the daemon's but what reaching a remote
 * needs (HOME for ~/.ssh and ~/.gitconfig, the agent, proxies, CA bundles), and
 * settings so that git never prompts, never runs a remote helper or hook, and speaks
 * C locale (its messages are quoted back to the user). */
static char **build_env(void) {
    static const char *const pass[] = {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "SSH_AUTH_SOCK",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_CONFIG_GLOBAL",
        "XDG_CONFIG_HOME",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
    };
    static const char *const fixed[] = {
        "LC_ALL=C",
        "LANG=C",
        "GIT_TERMINAL_PROMPT=0",
        "GIT_ASKPASS=/bin/false",
        "GIT_CONFIG_NOSYSTEM=1",
        "GIT_PROTOCOL_FROM_USER=0",
        "GIT_ALLOW_PROTOCOL=file:https:http:ssh",
    };
    /* +3: PATH or GIT_SSH_COMMAND defaults, a slot for GIT_INDEX_FILE, the NULL. */
    char **env = calloc(ELEMENTSOF(pass) + ELEMENTSOF(fixed) + 4, sizeof(char *));
    size_t n = 0;
    if (!env)
        return NULL;
    for (size_t i = 0; i < ELEMENTSOF(pass); i++) {
        const char *v = getenv(pass[i]);
        if (v && asprintf(&env[n], "%s=%s", pass[i], v) >= 0)
            n++;
    }
    for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
        env[n++] = strdup(fixed[i]);
    if (!getenv("PATH"))
        env[n++] = strdup("PATH=/usr/local/bin:/usr/bin:/bin");
    if (!getenv("GIT_SSH") && !getenv("GIT_SSH_COMMAND"))
        env[n++] = strdup("GIT_SSH_COMMAND=ssh -o BatchMode=yes -o ConnectTimeout=30");
    return env;
}

/* Run `git <common options> args...`, collecting stdout (bounded) and the end of
 * stderr. Returns the exit status (128 + N for signal N), or a negative errno when git
 * could not be started. git stays in the fetch's process group: ending that ends it. */
static int run_git(const job *j, const char *const *args, const char *extra_env, buf *out, buf *errb) {
    _cleanup_free_ char *git_dir = NULL;
    if (asprintf(&git_dir, "--git-dir=%s/repo.git", j->cache) < 0)
        return -ENOMEM;
    const char *argv[40] = {"git",
                            "-c",
                            "core.hooksPath=/dev/null",
                            "-c",
                            "gc.autoDetach=false",
                            "-c",
                            "maintenance.autoDetach=false",
                            git_dir};
    size_t n = 8;
    for (; *args && n < ELEMENTSOF(argv) - 1; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    seed_spawn_opts o = {.env_add = extra_env, .err_kept = MAX_STDERR_KEPT};
    seed_spawn_result res = {0};
    int r = seed_spawn_capture(argv, MAX_STDOUT, &o, &res);
    if (r < 0)
        return r;
    if (buf_add(out, res.out, res.out_len) < 0 || buf_adds(errb, res.err) < 0)
        r = -ENOMEM;
    else
        r = res.status;
    seed_spawn_result_clear(&res);
    return r;
}

/* git's own words from its stderr, one line after another ("; "), without the
 * boilerplate, the password hidden, bounded to the last MAX_MESSAGE_TAIL bytes. */
static void git_words(const job *j, const buf *errb, int status, buf *msg) {
    buf w = {0};
    for (const char *c = errb->p ? errb->p : ""; *c;) {
        size_t l = strcspn(c, "\n");
        const char *line = c;
        c += l;
        if (*c)
            c++;
        static const char *const strip[] = {"fatal: ", "error: ", "warning: "};
        for (size_t i = 0; i < ELEMENTSOF(strip); i++)
            if (l >= strlen(strip[i]) && strncmp(line, strip[i], strlen(strip[i])) == 0) {
                line += strlen(strip[i]);
                l -= strlen(strip[i]);
            }
        while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' '))
            l--;
        static const char *const skip[] = {"hint:", "Please make sure you have the correct access rights",
                                           "and the repository exists.",
                                           "Could not read from remote repository."};
        bool boring = l == 0;
        for (size_t i = 0; i < ELEMENTSOF(skip) && !boring; i++)
            boring = strncmp(line, skip[i], strlen(skip[i])) == 0;
        if (boring)
            continue;
        if (w.len)
            buf_adds(&w, "; ");
        buf_add(&w, line, l);
    }
    if (!w.len)
        buf_printf(&w, "git failed (exit status %d)", status);
    if (j->password && *j->password)
        for (char *p; (p = strstr(w.p, j->password));)
            memset(p, '*', strlen(j->password));
    if (w.len > MAX_MESSAGE_TAIL)
        buf_printf(msg, "…%s", w.p + w.len - MAX_MESSAGE_TAIL);
    else
        buf_adds(msg, w.p);
    free(w.p);
}

static int git_failed(const job *j, result *res, int status, const buf *errb, const char *what) {
    if (status == -ENOENT)
        return fail(res, ENOENT, "%s %s: git is not installed (install Debian's git package)", what,
                    j->display);
    if (status == -EFBIG)
        return fail(res, EFBIG, "%s %s: git's output is larger than %u MiB", what, j->display,
                    MAX_STDOUT >> 20);
    if (status < 0)
        return fail(res, -status, "%s %s: running git: %s", what, j->display, strerror(-status));
    buf m = {0};
    git_words(j, errb, status, &m);
    /* A repository that is not there is ENOENT: the user's to fix, not a fault. */
    int code = m.p && (strstr(m.p, "does not appear to be a git repository") || strstr(m.p, "not found") ||
                       strstr(m.p, "No such file"))
                   ? ENOENT
                   : EIO;
    fail(res, code, "%s %s: %s", what, j->display, m.p ? m.p : "");
    free(m.p);
    return -code;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Remove a tree; never follows symlinks nor crosses into a mount. */
static int rm_rf(const char *path) {
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
        return negative_errno();
    return 0;
}

typedef struct ls_ref {
    char oid[41];
    const char *name; /* into the ls-remote output */
} ls_ref;

/* ls-remote --symref lines: "<oid>\t<name>" and "ref: <target>\tHEAD". Edits out in place. */
static size_t parse_ls_remote(char *out, ls_ref *refs, size_t max, const char **head_target) {
    size_t n = 0;
    *head_target = NULL;
    for (char *c = out ? out : ""; *c;) {
        char *line = c, *nl = strchr(c, '\n');
        c = nl ? nl + 1 : c + strlen(c);
        if (nl)
            *nl = 0;
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = 0;
        if (strncmp(line, "ref: ", 5) == 0) {
            if (streq(tab + 1, "HEAD"))
                *head_target = line + 5;
        } else if (strlen(line) == 40 && n < max) {
            memcpy(refs[n].oid, line, 41);
            refs[n++].name = tab + 1;
        }
    }
    return n;
}

static const ls_ref *find_ref(const ls_ref *refs, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (streq(refs[i].name, name))
            return &refs[i];
    return NULL;
}

/* "branches: main, dev; tags: v1" for a message about a missing ref. */
static void list_refs(const ls_ref *refs, size_t n, buf *b) {
    static const struct {
        const char *prefix, *label;
    } kinds[] = {{"refs/heads/", "branches"}, {"refs/tags/", "tags"}};
    bool any = false;
    for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
        size_t shown = 0, total = 0, pl = strlen(kinds[k].prefix);
        for (size_t i = 0; i < n; i++) {
            const char *name = refs[i].name;
            if (strncmp(name, kinds[k].prefix, pl) != 0 || strstr(name, "^{}"))
                continue;
            total++;
            if (shown >= 20)
                continue;
            buf_printf(b, "%s%s%s",
                       shown ? ", "
                       : any ? "; "
                             : "",
                       shown ? "" : kinds[k].label, shown ? "" : ": ");
            buf_adds(b, name + pl);
            shown++;
        }
        if (total > shown)
            buf_printf(b, ", … (%zu in all)", total);
        any = any || total;
    }
    if (!any)
        buf_adds(b, "it has no branches or tags");
}

static uint64_t max_tree = SEED_FETCH_MAX_TREE_DEFAULT;

void seed_fetch_set_max_tree(uint64_t bytes) {
    max_tree = bytes ? bytes : SEED_FETCH_MAX_TREE_DEFAULT;
}

/* A commit's tree is written out whole: a push of little (git compresses a repeated
 * byte a thousandfold) must not fill the state directory. Its blobs' sizes are summed
 * before anything is written. */
static int check_tree_size(const job *j, result *res, const char *commit, const char *dir) {
    buf out = {0}, errb = {0};
    const char *ls[] = {"ls-tree", "-r", "-l", "--full-tree", commit, NULL};
    int r = run_git(j, ls, NULL, &out, &errb);
    if (r != 0) {
        git_failed(j, res, r, &errb, "listing the tree of");
        free(out.p);
        free(errb.p);
        return -res->error;
    }
    uint64_t total = 0;
    for (char *c = out.p ? out.p : ""; *c;) {
        char *nl = strchr(c, '\n');
        /* "<mode> blob <oid> <size>\t<path>"; trees and submodules have "-" */
        char mode[16], type[16], oid[80], size[32];
        if (sscanf(c, "%15s %15s %79s %31s", mode, type, oid, size) == 4 && streq(type, "blob"))
            total += strtoull(size, NULL, 10);
        c = nl ? nl + 1 : c + strlen(c);
    }
    free(out.p);
    free(errb.p);
    struct statvfs vfs;
    uint64_t avail = statvfs(dir, &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize : UINT64_MAX;
    if (total > max_tree)
        return fail(res, EFBIG,
                    "the tree of %.12s holds %llu bytes of files, more than the %llu a source may export "
                    "(seedd --max-tree)",
                    commit, (unsigned long long)total, (unsigned long long)max_tree);
    if (total > avail / 2)
        return fail(res, ENOSPC,
                    "the tree of %.12s holds %llu bytes of files, more than half of the %llu bytes free "
                    "in %s",
                    commit, (unsigned long long)total, (unsigned long long)avail, dir);
    return 0;
}

static int export_tree(const job *j, result *res, const char *commit) {
    _cleanup_free_ char *trees = NULL, *final = NULL, *tmp = NULL, *index = NULL, *work = NULL, *gm = NULL;
    if (asprintf(&trees, "%s/trees", j->cache) < 0 || asprintf(&final, "%s/%s", trees, commit) < 0 ||
        asprintf(&tmp, "%s/.tmp-%s", trees, commit) < 0 ||
        asprintf(&index, "GIT_INDEX_FILE=%s/index.tmp", j->cache) < 0 ||
        asprintf(&work, "--work-tree=%s", tmp) < 0 || asprintf(&gm, "%s/.gitmodules", final) < 0)
        return fail(res, ENOMEM, "out of memory");
    struct stat st;
    if (stat(final, &st) < 0) {
        /* Traversable (sandboxes read a tree's files), not listable. */
        if (mkdir(trees, 0711) < 0 && errno != EEXIST)
            return fail(res, errno, "creating %s: %s", trees, strerror(errno));
        int sr = check_tree_size(j, res, commit, trees);
        if (sr < 0)
            return sr;
        (void)rm_rf(tmp);
        if (mkdir(tmp, 0755) < 0)
            return fail(res, errno, "creating %s: %s", tmp, strerror(errno));
        /* A private index, so the mirror itself has none and concurrent readers see
         * nothing half-done; checkout-index writes modes and symlinks as git has them. */
        buf out = {0}, errb = {0};
        const char *rt[] = {"read-tree", commit, NULL};
        const char *co[] = {work, "checkout-index", "-a", "-f", NULL};
        int r = run_git(j, rt, index, &out, &errb);
        if (r == 0)
            r = run_git(j, co, index, &out, &errb);
        unlink(index + strlen("GIT_INDEX_FILE="));
        if (r != 0) {
            git_failed(j, res, r, &errb, "exporting the tree of");
            (void)rm_rf(tmp);
        }
        free(out.p);
        free(errb.p);
        if (r != 0)
            return -res->error;
        if (rename(tmp, final) < 0) {
            if (errno != EEXIST && errno != ENOTEMPTY)
                return fail(res, errno, "renaming %s: %s", tmp, strerror(errno));
            (void)rm_rf(tmp);
        }
    }
    if (stat(gm, &st) == 0)
        buf_adds(&res->warning,
                 "the repository has submodules (.gitmodules), which seed does not fetch: their "
                 "directories are empty");
    res->tree = TAKE_PTR(final);
    return 0;
}

static int do_fetch(const job *j, result *res) {
    _cleanup_free_ char *lock = NULL, *repo_head = NULL, *repo = NULL, *refspec = NULL, *peel = NULL;
    _cleanup_free_ ls_ref *refs = NULL;
    if (asprintf(&lock, "%s/lock", j->cache) < 0 || asprintf(&repo, "%s/repo.git", j->cache) < 0 ||
        asprintf(&repo_head, "%s/HEAD", repo) < 0)
        return fail(res, ENOMEM, "out of memory");
    /* One fetch per cache at a time (a webhook and a poll may overlap); pruning takes
     * the same lock. */
    _cleanup_close_ int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0 || flock(lfd, LOCK_EX) < 0)
        return fail(res, errno, "locking %s: %s", lock, strerror(errno));

    buf out = {0}, errb = {0};
    int r = 0;
    struct stat st;
    if (stat(repo_head, &st) < 0) {
        const char *a[] = {"init", "--bare", "-q", repo, NULL};
        r = run_git(j, a, NULL, &out, &errb);
        if (r != 0)
            goto git_fail_init;
    }
    /* The mirror holds the whole history of what may be a private repository: only
     * root needs it (the exported trees are what sandboxes read). */
    if (chmod(repo, 0700) < 0) {
        r = fail(res, errno, "protecting %s: %s", repo, strerror(errno));
        goto done;
    }

    out.len = errb.len = 0;
    const char *ls[] = {"ls-remote", "--symref", "--", j->url, NULL};
    r = run_git(j, ls, NULL, &out, &errb);
    if (r != 0) {
        git_failed(j, res, r, &errb, "fetching");
        goto done;
    }
    size_t cap = 1 + (out.p ? out.len / 42 : 0);
    refs = calloc(cap, sizeof(ls_ref));
    if (!refs) {
        r = fail(res, ENOMEM, "out of memory");
        goto done;
    }
    const char *head_target = NULL;
    size_t n = parse_ls_remote(out.p, refs, cap, &head_target);

    /* Which remote ref, and where it goes in the mirror (the same name; a forced
     * refspec, so a force-push just moves it). */
    const char *src = NULL;
    buf names = {0};
    if (!j->ref) {
        if (head_target && find_ref(refs, n, head_target))
            src = head_target;
        else if (head_target) {
            list_refs(refs, n, &names);
            r = fail(
                res, ENOENT,
                "the HEAD of %s names branch '%s', which does not exist (%s); give the branch with --ref",
                j->display, head_target + (strncmp(head_target, "refs/heads/", 11) ? 0 : 11), names.p);
        } else if (find_ref(refs, n, "HEAD"))
            src = "HEAD";
        else {
            list_refs(refs, n, &names);
            r = fail(res, ENOENT, "the HEAD of %s names no existing branch (%s); give the branch with --ref",
                     j->display, names.p);
        }
    } else {
        static const char *const prefixes[] = {"refs/heads/", "refs/tags/"};
        if (strncmp(j->ref, "refs/", 5) == 0 && find_ref(refs, n, j->ref))
            src = j->ref;
        for (size_t i = 0; !src && strncmp(j->ref, "refs/", 5) != 0 && i < ELEMENTSOF(prefixes); i++) {
            char full[300];
            snprintf(full, sizeof(full), "%s%s", prefixes[i], j->ref);
            const ls_ref *f = find_ref(refs, n, full);
            if (f)
                src = f->name;
        }
        if (!src) {
            list_refs(refs, n, &names);
            r = fail(res, ENOENT, "ref '%s' does not exist in %s (%s)", j->ref, j->display, names.p);
        }
    }
    free(names.p);
    if (!src)
        goto done;

    const char *dst = streq(src, "HEAD") ? "refs/seed/HEAD" : src;
    if (asprintf(&refspec, "+%s:%s", src, dst) < 0 || asprintf(&peel, "%s^{commit}", dst) < 0) {
        r = fail(res, ENOMEM, "out of memory");
        goto done;
    }
    out.len = errb.len = 0;
    const char *fetch[] = {"fetch",
                           "-q",
                           "--no-tags",
                           "--no-write-fetch-head",
                           "--no-recurse-submodules",
                           "--update-head-ok",
                           "--",
                           j->url,
                           refspec,
                           NULL};
    r = run_git(j, fetch, NULL, &out, &errb);
    if (r != 0) {
        git_failed(j, res, r, &errb, "fetching");
        goto done;
    }

    out.len = errb.len = 0;
    if (out.p)
        out.p[0] = 0;
    const char *rp[] = {"rev-parse", "--verify", "-q", peel, NULL};
    r = run_git(j, rp, NULL, &out, &errb);
    if (r == 0 && out.len >= 40 && strspn(out.p, "0123456789abcdef") == 40)
        memcpy(res->commit, out.p, 40);
    else {
        r = fail(res, EINVAL, "%s of %s does not point to a commit", src, j->display);
        goto done;
    }
    r = export_tree(j, res, res->commit);
    goto done;

git_fail_init:
    git_failed(j, res, r, &errb, "creating the mirror of");
done:
    free(out.p);
    free(errb.p);
    return r == 0 ? 0 : -res->error;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void on_parent_death(int sig) {
    kill(0, SIGKILL); /* the whole group: this worker and the git it runs */
}

/* The forked worker: a clean process (own group, stdin /dev/null, no fds of the
 * daemon, default signals) that does the fetch and writes one record to fd 3:
 * "<error>\0<message>\0<commit>\0<tree>\0<warning>\0". */
static _noreturn_ void worker(const job *j, int out_fd, pid_t parent) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < _NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    setpgid(0, 0);
    /* The daemon gone (crash, kill -9): nobody waits for this fetch any more. */
    struct sigaction sa = {.sa_handler = on_parent_death};
    sigaction(SIGTERM, &sa, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
        _exit(1);

    int o = fcntl(out_fd, F_DUPFD_CLOEXEC, 10);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (o < 0 || null < 0 || dup2(null, 0) < 0 || dup3(o, 3, O_CLOEXEC) < 0)
        _exit(1);
    syscall(SYS_close_range, 4, ~0u, 0);
    umask(022);

    extern char **environ;
    environ = j->env;
    result res = {0};
    (void)do_fetch(j, &res);
    buf rec = {0};
    buf_printf(&rec, "%d", res.error);
    buf_add(&rec, "", 1);
    buf_adds(&rec, res.message.p ? res.message.p : "");
    buf_add(&rec, "", 1);
    buf_adds(&rec, res.commit);
    buf_add(&rec, "", 1);
    buf_adds(&rec, res.tree ? res.tree : "");
    buf_add(&rec, "", 1);
    buf_adds(&rec, res.warning.p ? res.warning.p : "");
    buf_add(&rec, "", 1);
    _exit(rec.p && write_all(3, rec.p, rec.len) == 0 ? 0 : 1);
}

/* ---- the daemon's side ----------------------------------------------------------- */

struct seed_fetch {
    seed_loop *loop;
    pid_t pid;
    int pidfd, out_fd;
    seed_source *child, *timer;
    seed_fetch_fn fn;
    void *userdata;
    unsigned timeout_s;
    bool timed_out;
    char *display;
    char *dir; /* a directory source: no child */
};

static void fetch_free(seed_fetch *f) {
    seed_source_free(f->child);
    seed_source_free(f->timer);
    if (f->pidfd >= 0)
        close(f->pidfd);
    if (f->out_fd >= 0)
        close(f->out_fd);
    free(f->display);
    free(f->dir);
    free(f);
}

static void kill_and_reap(seed_fetch *f) {
    if (f->pid <= 0)
        return;
    kill(-f->pid, SIGKILL);
    kill(f->pid, SIGKILL); /* should it not have reached setpgid yet */
    while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    f->pid = 0;
}

void seed_fetch_cancel(seed_fetch *f) {
    if (!f)
        return;
    kill_and_reap(f);
    fetch_free(f);
}

static int on_child_exit(seed_source *s, int fd, uint32_t events, void *userdata) {
    seed_fetch *f = userdata;
    int status = 0;
    while (waitpid(f->pid, &status, 0) < 0 && errno == EINTR)
        ;
    f->pid = 0;

    /* The worker is gone and nothing else holds the pipe: all it wrote is there. */
    buf rec = {0};
    for (;;) {
        char chunk[4096];
        ssize_t k = read(f->out_fd, chunk, sizeof(chunk));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0 || rec.len > (1u << 20))
            break;
        buf_add(&rec, chunk, (size_t)k);
    }
    const char *field[5] = {0};
    size_t nf = 0;
    for (size_t i = 0; rec.p && i < rec.len && nf < 5; i += strlen(rec.p + i) + 1)
        field[nf++] = rec.p + i;

    seed_fetch_result r = {0};
    _cleanup_free_ char *msg = NULL;
    if (f->timed_out) {
        r.error = ETIMEDOUT;
        if (asprintf(&msg, "fetching %s: timed out after %u s", f->display, f->timeout_s) < 0)
            msg = NULL;
    } else if (nf < 5) {
        r.error = EIO;
        if (WIFSIGNALED(status)) {
            if (asprintf(&msg, "fetching %s: the fetch process was killed by signal %d", f->display,
                         WTERMSIG(status)) < 0)
                msg = NULL;
        } else if (asprintf(&msg, "fetching %s: the fetch process failed (exit status %d)", f->display,
                            WEXITSTATUS(status)) < 0)
            msg = NULL;
    } else {
        r.error = atoi(field[0]);
        r.message = r.error ? field[1] : NULL;
        r.commit = field[2];
        r.tree = *field[3] ? field[3] : NULL;
        r.warning = *field[4] ? field[4] : NULL;
    }
    if (msg)
        r.message = msg;
    else if (r.error && !r.message)
        r.message = "out of memory";
    f->fn(f->userdata, &r);
    free(rec.p);
    fetch_free(f);
    return 0;
}

static int on_timeout(seed_source *s, void *userdata) {
    seed_fetch *f = userdata;
    f->timed_out = true;
    if (f->pid > 0)
        kill(-f->pid, SIGKILL); /* the exit comes in through the pidfd */
    return 0;
}

static int on_dir_ready(seed_source *s, void *userdata) {
    seed_fetch *f = userdata;
    struct stat st;
    seed_fetch_result r = {.commit = "", .tree = f->dir};
    _cleanup_free_ char *msg = NULL;
    int e = stat(f->dir, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (e) {
        r.error = e;
        r.tree = NULL;
        if (asprintf(&msg, "source directory %s: %s", f->dir, strerror(e)) < 0)
            msg = NULL;
        r.message = msg ? msg : "out of memory";
    }
    f->fn(f->userdata, &r);
    fetch_free(f);
    return 0;
}

/* The password of scheme://user:password@host/..., or NULL. */
static char *url_password(const char *url) {
    const char *sep = strstr(url, "://");
    if (!sep)
        return NULL;
    const char *a = sep + 3;
    size_t an = strcspn(a, "/?#");
    const char *at = memrchr(a, '@', an);
    const char *colon = at ? memchr(a, ':', (size_t)(at - a)) : NULL;
    return colon ? strndup(colon + 1, (size_t)(at - colon - 1)) : NULL;
}

int seed_fetch_start(seed_loop *loop, const seed_fetch_url *u, const char *cache_dir, unsigned timeout_s,
                     seed_fetch_fn fn, void *userdata, seed_fetch **ret, seed_error **err) {
    seed_fetch *f = calloc(1, sizeof(*f));
    if (!f)
        return seed_error_set(err, ENOMEM, "out of memory");
    *f = (seed_fetch){.loop = loop,
                      .pidfd = -1,
                      .out_fd = -1,
                      .fn = fn,
                      .userdata = userdata,
                      .timeout_s = timeout_s ? timeout_s : SEED_FETCH_TIMEOUT_DEFAULT};
    int r;
    if (u->kind == SEED_FETCH_DIR) {
        f->dir = strdup(u->url);
        if (!f->dir || (r = seed_loop_add_timer(loop, 0, on_dir_ready, f, &f->timer)) < 0) {
            fetch_free(f);
            return seed_error_set(err, ENOMEM, "out of memory");
        }
        *ret = f;
        return 0;
    }

    f->display = seed_fetch_url_redact(u->url);
    _cleanup_free_ char *cache = NULL, *password = url_password(u->url);
    char **env = build_env();
    if (!f->display || !env) {
        strv_free(env);
        fetch_free(f);
        return seed_error_set(err, ENOMEM, "out of memory");
    }
    r = seed_mkdir_p(cache_dir, 0711);
    if (r >= 0 && !(cache = realpath(cache_dir, NULL)))
        r = negative_errno();
    if (r < 0) {
        strv_free(env);
        fetch_free(f);
        return seed_error_setp(err, -r, "creating the source cache %s", cache_dir);
    }
    job j = {.url = u->url,
             .display = f->display,
             .password = password,
             .ref = u->ref,
             .cache = cache,
             .env = env};

    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        r = -errno;
        strv_free(env);
        fetch_free(f);
        return seed_error_setp(err, -r, "creating a pipe");
    }
    pid_t parent = getpid();
    f->pid = fork();
    if (f->pid == 0) {
        close(p[0]);
        worker(&j, p[1], parent);
    }
    r = f->pid < 0 ? -errno : 0;
    close(p[1]);
    strv_free(env);
    f->out_fd = p[0];
    if (r < 0) {
        f->pid = 0;
        fetch_free(f);
        return seed_error_setp(err, -r, "starting the fetch of %s", u->url);
    }
    /* Also here: the timeout may strike before the worker ran its own setpgid. */
    (void)setpgid(f->pid, f->pid);
    f->pidfd = (int)syscall(SYS_pidfd_open, f->pid, 0);
    if (f->pidfd < 0)
        r = -errno;
    if (r >= 0 && fcntl(f->out_fd, F_SETFL, O_NONBLOCK) < 0)
        r = -errno;
    if (r >= 0)
        r = seed_loop_add_io(loop, f->pidfd, EPOLLIN, on_child_exit, f, &f->child);
    if (r >= 0)
        r = seed_loop_add_timer(loop, (uint64_t)f->timeout_s * 1000000u, on_timeout, f, &f->timer);
    if (r < 0) {
        seed_fetch_cancel(f);
        return seed_error_setp(err, -r, "watching the fetch of %s", u->url);
    }
    *ret = f;
    return 0;
}

typedef struct sync_state {
    bool done;
    int error;
    char *message, *tree, *warning;
    char commit[41];
} sync_state;

static void on_sync_done(void *userdata, const seed_fetch_result *r) {
    sync_state *s = userdata;
    s->done = true;
    s->error = r->error;
    s->message = r->message ? strdup(r->message) : NULL;
    s->tree = r->tree ? strdup(r->tree) : NULL;
    s->warning = r->warning ? strdup(r->warning) : NULL;
    snprintf(s->commit, sizeof(s->commit), "%s", r->commit ? r->commit : "");
}

int seed_fetch_run(const seed_fetch_url *u, const char *cache_dir, unsigned timeout_s, char commit[41],
                   char **tree, char **warning, seed_error **err) {
    seed_loop *loop = NULL;
    int r = seed_loop_new(&loop);
    if (r < 0)
        return seed_error_setp(err, -r, "creating an event loop");
    sync_state s = {0};
    seed_fetch *f = NULL;
    r = seed_fetch_start(loop, u, cache_dir, timeout_s, on_sync_done, &s, &f, err);
    while (r >= 0 && !s.done)
        r = seed_loop_run_once(loop, -1);
    if (r < 0 && !s.done) {
        seed_fetch_cancel(f);
        seed_error_setp(err, -r, "running the fetch");
    }
    seed_loop_free(loop);
    if (r >= 0 && s.error)
        r = seed_error_set(err, s.error, "%s", s.message ? s.message : "fetch failed");
    else if (r >= 0 && !s.tree)
        r = seed_error_set(err, ENOMEM, "out of memory");
    if (r >= 0) {
        memcpy(commit, s.commit, 41);
        *tree = TAKE_PTR(s.tree);
        if (warning)
            *warning = TAKE_PTR(s.warning);
    }
    free(s.message);
    free(s.tree);
    free(s.warning);
    return r < 0 ? r : 0;
}

int seed_fetch_prune_trees(const char *cache_dir, const char *const *keep, size_t n_keep) {
    _cleanup_free_ char *lock = NULL, *trees = NULL;
    if (asprintf(&lock, "%s/lock", cache_dir) < 0 || asprintf(&trees, "%s/trees", cache_dir) < 0)
        return -ENOMEM;
    _cleanup_close_ int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0)
        return errno == ENOENT ? 0 : negative_errno();
    if (flock(lfd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? -EBUSY : negative_errno();
    DIR *d = opendir(trees);
    if (!d)
        return errno == ENOENT ? 0 : negative_errno();
    int removed = 0, r = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (streq(e->d_name, ".") || streq(e->d_name, ".."))
            continue;
        bool kept = false;
        for (size_t i = 0; i < n_keep && !kept; i++)
            kept = keep[i] && streq(keep[i], e->d_name);
        if (kept)
            continue;
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", trees, e->d_name) < 0) {
            r = -ENOMEM;
            break;
        }
        int k = rm_rf(p);
        if (k < 0)
            r = k;
        else
            removed++;
    }
    closedir(d);
    return r < 0 ? r : removed;
}
