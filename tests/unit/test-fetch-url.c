/* Source URLs (what seed source add accepts, and the URI the namespace comes from) and
 * ref names, as tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source/fetch.h"

static char tmp[64];

static int make_dirs(void **state) {
    strcpy(tmp, "/tmp/seed-fetch-url-XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    char p[128];
    const char *dirs[] = {"plain",         "plain/sub", "bare.git",  "bare.git/objects",
                          "bare.git/refs", "work",      "work/.git", "my dir"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", tmp, dirs[i]);
        if (mkdir(p, 0755) < 0)
            return -1;
    }
    snprintf(p, sizeof(p), "%s/bare.git/HEAD", tmp);
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    fputs("ref: refs/heads/main\n", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/file", tmp);
    f = fopen(p, "w");
    if (!f)
        return -1;
    fclose(f);
    return 0;
}

static int remove_dirs(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* "@" in a table entry stands for the temporary directory. */
static char *expand(const char *s) {
    size_t n = strlen(s) + 64;
    char *out = malloc(n), *o = out;
    for (; *s; s++)
        if (*s == '@' && (s[1] == '/' || s[1] == 0) && (o == out || o[-1] == ':' || o[-1] == '/')) {
            strcpy(o, tmp);
            o += strlen(tmp);
        } else
            *o++ = *s;
    *o = 0;
    return out;
}

static const struct {
    const char *url, *ref;
    seed_fetch_kind kind;
    const char *git_url, *uri, *want_ref;
} good[] = {
    {"@/plain", NULL, SEED_FETCH_DIR, "@/plain", "path:@/plain", NULL},
    {"@//plain/./sub/", NULL, SEED_FETCH_DIR, "@/plain/sub", "path:@/plain/sub", NULL},
    {"path:@/plain", NULL, SEED_FETCH_DIR, "@/plain", "path:@/plain", NULL},
    {"path:@/work", NULL, SEED_FETCH_DIR, "@/work", "path:@/work", NULL},
    {"@/my dir", NULL, SEED_FETCH_DIR, "@/my dir", "path:@/my%20dir", NULL},
    {"@/bare.git", NULL, SEED_FETCH_GIT, "@/bare.git", "git+file://@/bare.git", NULL},
    {"@/bare.git/", "main", SEED_FETCH_GIT, "@/bare.git", "git+file://@/bare.git?ref=main", "main"},
    {"@/work", "v1.0", SEED_FETCH_GIT, "@/work", "git+file://@/work?ref=v1.0", "v1.0"},
    {"@/bare.git", "HEAD", SEED_FETCH_GIT, "@/bare.git", "git+file://@/bare.git", NULL},
    {"@/bare.git", "feature/x+y", SEED_FETCH_GIT, "@/bare.git", "git+file://@/bare.git?ref=feature/x%2By",
     "feature/x+y"},
    {"file:///srv/repo.git", NULL, SEED_FETCH_GIT, "file:///srv/repo.git", "git+file:///srv/repo.git", NULL},
    {"git+file:///srv/repo.git", "dev", SEED_FETCH_GIT, "file:///srv/repo.git",
     "git+file:///srv/repo.git?ref=dev", "dev"},
    {"git+file:///srv/repo.git?ref=dev", NULL, SEED_FETCH_GIT, "file:///srv/repo.git",
     "git+file:///srv/repo.git?ref=dev", "dev"},
    {"git+file:///srv/r?ref=refs%2Fheads%2Fa", "refs/heads/a", SEED_FETCH_GIT, "file:///srv/r",
     "git+file:///srv/r?ref=refs/heads/a", "refs/heads/a"},
    {"https://example.com/x.git", NULL, SEED_FETCH_GIT, "https://example.com/x.git",
     "git+https://example.com/x.git", NULL},
    {"HTTPS://example.com/x", "main", SEED_FETCH_GIT, "https://example.com/x",
     "git+https://example.com/x?ref=main", "main"},
    {"http://127.0.0.1:8080/x.git", NULL, SEED_FETCH_GIT, "http://127.0.0.1:8080/x.git",
     "git+http://127.0.0.1:8080/x.git", NULL},
    {"https://bot:s3cret@example.com/x.git", NULL, SEED_FETCH_GIT, "https://bot:s3cret@example.com/x.git",
     "git+https://bot@example.com/x.git", NULL},
    {"git+https://example.com/o/r", NULL, SEED_FETCH_GIT, "https://example.com/o/r",
     "git+https://example.com/o/r", NULL},
    {"ssh://git@example.com/srv/x.git", NULL, SEED_FETCH_GIT, "ssh://git@example.com/srv/x.git",
     "git+ssh://git@example.com/srv/x.git", NULL},
    {"ssh://git@[::1]:2222/x.git", NULL, SEED_FETCH_GIT, "ssh://git@[::1]:2222/x.git",
     "git+ssh://git@[::1]:2222/x.git", NULL},
    {"git+ssh://example.com/~/x.git", NULL, SEED_FETCH_GIT, "ssh://example.com/~/x.git",
     "git+ssh://example.com/~/x.git", NULL},
    {"git@github.com:owner/repo.git", "main", SEED_FETCH_GIT, "git@github.com:owner/repo.git",
     "git+ssh://git@github.com/owner/repo.git?ref=main", "main"},
    {"host:/srv/x.git", NULL, SEED_FETCH_GIT, "host:/srv/x.git", "git+ssh://host/srv/x.git", NULL},
    {"git@[::1]:x.git", NULL, SEED_FETCH_GIT, "git@[::1]:x.git", "git+ssh://git@[::1]/x.git", NULL},
};

static void test_accepted(void **state) {
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *url = expand(good[i].url), *git_url = expand(good[i].git_url), *uri = expand(good[i].uri);
        seed_fetch_url u = {0};
        seed_error *err = NULL;
        if (seed_fetch_url_parse(url, good[i].ref, &u, &err) < 0)
            fail_msg("\"%s\" refused: %s", url, err->msg);
        if (u.kind != good[i].kind || strcmp(u.url, git_url) || strcmp(u.uri, uri) ||
            (good[i].want_ref ? !u.ref || strcmp(u.ref, good[i].want_ref) : u.ref != NULL))
            fail_msg("\"%s\": kind %d url \"%s\" uri \"%s\" ref \"%s\"; wanted %d \"%s\" \"%s\" \"%s\"", url,
                     u.kind, u.url, u.uri, u.ref ? u.ref : "(null)", good[i].kind, git_url, uri,
                     good[i].want_ref ? good[i].want_ref : "(null)");
        seed_fetch_url_clear(&u);
        free(url);
        free(git_url);
        free(uri);
    }
}

static const struct {
    const char *url, *ref, *needle;
} bad[] = {
    {"", NULL, "empty"},
    {"-oProxyCommand=x", NULL, "begins with '-'"},
    {"--upload-pack=touch /x", NULL, "begins with '-'"},
    {"ext::sh -c touch% /tmp/x", NULL, "remote helper"},
    {"fd::17", NULL, "remote helper"},
    {"https::example.com", NULL, "remote helper"},
    {"ftp://example.com/x.git", NULL, "scheme 'ftp' is not supported"},
    {"rsync://example.com/x.git", NULL, "scheme 'rsync' is not supported"},
    {"git://example.com/x.git", NULL, "git:// is neither authenticated"},
    {"git+git://example.com/x.git", NULL, "git:// is neither authenticated"},
    {"https://example.com/x\n.git", NULL, "control character"},
    {"https://example.com/a b.git", NULL, "contains a space"},
    {"https:///x.git", NULL, "no host"},
    {"https://example.com", NULL, "no repository path"},
    {"https://example.com/", NULL, "no repository path"},
    {"https://-oProxy/x.git", NULL, "host begins with '-'"},
    {"ssh://-oProxyCommand=touch%20x/y", NULL, "host begins with '-'"},
    {"ssh://-u@host/y", NULL, "user name begins with '-'"},
    {"ssh://host:22x/y", NULL, "port '22x' is not a number"},
    {"ssh://ho$t/y", NULL, "contains '$'"},
    {"https://example.com/x?foo=1", NULL, "query"},
    {"https://example.com/x#frag", NULL, "fragment"},
    {"git+https://example.com/x?rev=abc", NULL, "parameter 'rev=abc' is not supported"},
    {"git+https://example.com/x?ref=a", "b", "names ref 'a' but --ref is 'b'"},
    {"git+https://example.com/x?ref=a..b", NULL, "contains '..'"},
    {"git+https://example.com/x?ref=%zz", NULL, "malformed"},
    {"file://host/srv/x.git", NULL, "takes no host"},
    {"git+file://srv/x.git", NULL, "takes no host"},
    {"user@host with space:x", NULL, "contains a space"},
    {"host:", NULL, "no repository path"},
    {"host:-x", NULL, "path begins with '-'"},
    {"relative/dir", NULL, "neither an absolute path nor a URL"},
    {"proj", NULL, "neither an absolute path nor a URL"},
    {"./proj", NULL, "neither an absolute path nor a URL"},
    {"path:relative", NULL, "absolute path"},
    {"@/nothere", NULL, "No such file"},
    {"@/file", NULL, "is not a directory"},
    {"@/plain/../work", NULL, "contains '..'"},
    {"@/plain", "main", "--ref applies to git sources only"},
    {"path:@/work", "main", "--ref applies to git sources only"},
    {"@/bare.git", "-b", "begins with '-'"},
    {"@/bare.git", "a b", "contains a space"},
};

static void test_refused(void **state) {
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *url = expand(bad[i].url);
        seed_fetch_url u = {0};
        seed_error *err = NULL;
        if (seed_fetch_url_parse(url, bad[i].ref, &u, &err) >= 0)
            fail_msg("\"%s\" accepted as \"%s\"", url, u.uri);
        assert_int_equal(u.url, NULL);
        if (!strstr(err->msg, bad[i].needle))
            fail_msg("\"%s\": \"%s\" lacks \"%s\"", url, err->msg, bad[i].needle);
        if (err->code == 2 ? false : err->code != 22 && err->code != 20)
            fail_msg("\"%s\": code %d", url, err->code);
        seed_error_free(err);
        free(url);
    }
}

static void test_refs(void **state) {
    const char *ok[] = {"main", "v1.0", "feature/x", "refs/heads/main", "refs/tags/v2", "a-b_c",
                        "HEAD", "x@y",  "ü"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *why = NULL;
        if (!seed_fetch_ref_valid(ok[i], &why))
            fail_msg("\"%s\" refused: %s", ok[i], why);
    }
    static const struct {
        const char *ref, *needle;
    } no[] = {
        {"", "empty"},
        {"-x", "begins with '-'"},
        {"@", "is '@'"},
        {"a..b", "'..'"},
        {"a b", "space"},
        {"a~1", "~"},
        {"a^", "~"},
        {"a:b", "~"},
        {"a?", "~"},
        {"a*", "~"},
        {"a[b", "~"},
        {"a\\b", "~"},
        {"a\tb", "control character"},
        {"a\x7f", "control character"},
        {"/a", "begins or ends with '/'"},
        {"a/", "begins or ends with '/'"},
        {"a//b", "'//'"},
        {"a.", "ends with '.'"},
        {".a", "component beginning with '.'"},
        {"a/.b", "component beginning with '.'"},
        {"a.lock", "ending with '.lock'"},
        {"a.lock/b", "ending with '.lock'"},
        {"a@{1}", "'@{'"},
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        const char *why = NULL;
        if (seed_fetch_ref_valid(no[i].ref, &why))
            fail_msg("\"%s\" accepted", no[i].ref);
        if (!strstr(why, no[i].needle))
            fail_msg("\"%s\": \"%s\" lacks \"%s\"", no[i].ref, why, no[i].needle);
    }
    char long_ref[300];
    memset(long_ref, 'a', 299);
    long_ref[299] = 0;
    assert_false(seed_fetch_ref_valid(long_ref, NULL));
}

static void test_redact(void **state) {
    char *r = seed_fetch_url_redact("https://bot:s3cret@example.com/x.git");
    assert_string_equal(r, "https://bot:***@example.com/x.git");
    free(r);
    r = seed_fetch_url_redact("https://bot@example.com/x.git");
    assert_string_equal(r, "https://bot@example.com/x.git");
    free(r);
    r = seed_fetch_url_redact("git@github.com:o/r");
    assert_string_equal(r, "git@github.com:o/r");
    free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests(tests, make_dirs, remove_dirs);
}
