/* Sources: parsing the URL a source is added with, and fetching a git source into the
 * state directory. git runs as a child process (see README "Sources"); the daemon only
 * watches it on its loop, so a slow or hung remote never blocks it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/event.h"

typedef enum { SEED_FETCH_DIR, SEED_FETCH_GIT } seed_fetch_kind;

typedef struct seed_fetch_url {
    seed_fetch_kind kind;
    char *url; /* what git is given, or the directory (absolute, normalized) */
    char *ref; /* NULL: the remote's HEAD branch */
    char *uri; /* flake-style: path:/abs, git+file:///srv/repo.git?ref=main, git+https://… */
} seed_fetch_url;

/* Parse and validate a source URL as given to `seed source add NAME URL [--ref REF]`:
 *   a directory: `path:/abs`, or an absolute path that is not a git repository -> DIR;
 *   a git repository: an absolute path to one (bare, or a work tree with .git: its
 *   committed refs are fetched, not the files on disk; `path:` forces the directory),
 *   `file:///abs`, `https://`, `http://`, `ssh://`, scp-like `[user@]host:path`, or
 *   `git+file://`, `git+https://`, `git+http://`, `git+ssh://` (whose `?ref=` is taken
 *   as the ref) -> GIT.
 * Anything else (`ext::`, `fd::`, other schemes, a leading '-', control characters, a
 * relative path, ...) fails with EINVAL and a message saying what is accepted. An
 * absolute path is looked at on disk (ENOENT when it does not exist). The password of
 * a URL is left out of uri (rotating a token does not change the namespace). */
int seed_fetch_url_parse(const char *url, const char *ref, seed_fetch_url *out, seed_error **err);
void seed_fetch_url_clear(seed_fetch_url *u);

/* A ref name as `git check-ref-format --allow-onelevel` accepts it (a branch, a tag,
 * or a full refs/...), and not beginning with '-'. On false, *why (if why is not NULL)
 * is set to a static explanation. */
bool seed_fetch_ref_valid(const char *ref, const char **why);

/* The URL with any password replaced by "***", for messages. */
char *seed_fetch_url_redact(const char *url);

typedef struct seed_fetch seed_fetch;

typedef struct seed_fetch_result {
    int error;           /* 0, or a positive errno: ENOENT (no such ref/repository), ETIMEDOUT, EIO, ... */
    const char *message; /* on failure: what failed, with git's own words; NULL on success */
    const char *commit;  /* 40 hex digits; "" for a directory source */
    const char *tree;    /* the exported tree (or the directory of a directory source) */
    const char *warning; /* NULL, or something the user should know (submodules, ...) */
} seed_fetch_result;

typedef void (*seed_fetch_fn)(void *userdata, const seed_fetch_result *r);

#define SEED_FETCH_TIMEOUT_DEFAULT 300u

/* The most a commit's exported tree may hold (its files' sizes summed), checked
 * before it is written; a tree must also take at most half the free space. */
#define SEED_FETCH_MAX_TREE_DEFAULT (4ull << 30)
void seed_fetch_set_max_tree(uint64_t bytes); /* 0: the default */

/* Fetch u into cache_dir (created: <state>/sources/<name>/) without blocking: a child
 * process (own process group, stdin /dev/null, no inherited fds, a sanitized
 * environment) runs git: the ref is resolved with ls-remote, fetched with a forced
 * refspec into the bare mirror cache_dir/repo.git (a force-push moves it), peeled to
 * its commit, and that commit's tree is exported once to cache_dir/trees/<commit>/
 * (through a temporary directory and a rename: a half-written tree is never seen).
 * After timeout_s seconds (0: SEED_FETCH_TIMEOUT_DEFAULT) the child's process group is
 * killed. fn is called once from the loop with the result; the handle is released
 * when fn returns. A directory source completes at once (on the next loop turn) with
 * tree = the directory. */
int seed_fetch_start(seed_loop *loop, const seed_fetch_url *u, const char *cache_dir, unsigned timeout_s,
                     seed_fetch_fn fn, void *userdata, seed_fetch **ret, seed_error **err);
/* Kill the child (and its git processes) and release f; fn is not called. NULL is fine. */
void seed_fetch_cancel(seed_fetch *f);

/* The same, waiting for the result (the CLI, tests). On success commit holds the id
 * ("" for a directory) and *tree (and *warning, possibly NULL) are allocated. */
int seed_fetch_run(const seed_fetch_url *u, const char *cache_dir, unsigned timeout_s, char commit[41],
                   char **tree, char **warning, seed_error **err);

/* Remove the exported trees under cache_dir/trees but the listed commits (those that
 * instances still run from). -EBUSY when a fetch holds the cache now. */
int seed_fetch_prune_trees(const char *cache_dir, const char *const *keep, size_t n_keep);
