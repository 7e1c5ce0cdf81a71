/* Users of a sandbox's root: USER[:GROUP] (names or numbers) looked up in its
 * /etc/passwd and /etc/group, as seed-init does for a process's `user` and the node's
 * exec helper for `seed exec -u`. Both run inside the sandbox, whose root the instance
 * controls: the files are read directly (no NSS, which a static init has not), only
 * if they are regular files (a FIFO there must not stall the reader) of at most 4 MiB,
 * and parsed in one pass. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SEED_USER_MAX_GROUPS 64

typedef struct seed_user_ids {
    uid_t uid;
    gid_t gid;
    gid_t groups[SEED_USER_MAX_GROUPS]; /* the primary group first */
    size_t n_groups;
    char home[256];
} seed_user_ids;

/* 0, or -ENOENT (-EFBIG for a database over 4 MiB) with what is wrong in msg. A number needs no entry, and
 * neither does "root": uid 0 runs without a name. */
int seed_resolve_user(const char *spec, seed_user_ids *out, char *msg, size_t len);
/* The same over the contents of the two databases (NULL: absent), for tests and the
 * fuzzer; -ENOMEM when memory ran out. */
int seed_users_lookup(const char *passwd, const char *group, const char *spec, seed_user_ids *out, char *msg,
                      size_t len);

/* An account to create (spec `users`), for the account databases of an image. */
typedef struct seed_account {
    const char *name;
    unsigned uid, gid;
    const char *shell, *home;
} seed_account;

enum seed_account_db { SEED_DB_PASSWD, SEED_DB_GROUP, SEED_DB_SHADOW };

/* The database db (its content; NULL: absent) with a line for each of the n accounts
 * it has no line for (by name) appended: passwd "name:x:uid:gid::home:shell", group
 * "name:x:gid:", shadow "name:*:..." (no password, but not locked: key logins work).
 * The new content in *ret (malloc'd), how many lines were added in *added. 0 or
 * -ENOMEM. */
int seed_accounts_merge(enum seed_account_db db, const char *content, const seed_account *a, size_t n,
                        char **ret, size_t *added);

/* content (NULL: absent) with field `field` (0-based) of name's line set to value, or
 * with `fallback` appended as a new line when there is no line for name (NULL: nothing
 * appended). With when_empty, a field that is not empty is left as it is. The result
 * in *ret (malloc'd), whether anything changed in *changed. 0 or -ENOMEM. */
int seed_db_set_field(const char *content, const char *name, unsigned field, const char *value,
                      bool when_empty, const char *fallback, char **ret, bool *changed);

/* The keys of SSH_PUBLIC_KEYS: split at newlines and commas, blanks trimmed, empty
 * entries and lines starting with '#' dropped. Up to max keys into keys[] (malloc'd);
 * how many. */
size_t seed_ssh_keys_split(const char *text, char **keys, size_t max);
