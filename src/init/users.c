/* Resolving the users of a sandbox's root: see users.h. */
#include "init/users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"

static bool parse_id(const char *s, unsigned *ret) {
    if (!*s || strlen(s) > 10 || strspn(s, "0123456789") != strlen(s))
        return false;
    unsigned long v = strtoul(s, NULL, 10);
    if (v >= 0xffffffffUL)
        return false;
    *ret = (unsigned)v;
    return true;
}

#define MAX_DB (4u << 20) /* an account database larger than this is refused */

/* An account database of the root, read whole: a regular file only (a FIFO or a device
 * there must not stall the reader), of bounded size, and parsed here, in one pass
 * (glibc's fgetpwent takes quadratic time on a very long line). NULL when absent. */
static char *read_db(const char *path, char *msg, size_t len, int *err) {
    *err = 0;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return NULL;
    char *buf = NULL;
    if (seed_read_fd(fd, MAX_DB, &buf, NULL) < 0) {
        snprintf(msg, len, "the instance's %s is larger than %u MiB", path, MAX_DB >> 20);
        *err = -EFBIG;
        return NULL;
    }
    return buf;
}

/* Split one line of an account database into at most max fields at ':'. */
static size_t fields(char *line, char **f, size_t max) {
    size_t n = 0;
    for (char *save = line, *t; n < max && (t = strsep(&save, ":"));)
        f[n++] = t;
    return n;
}

/* Call fn for each line of the database db (NULL: none) until it returns true. */
static int each_line(const char *db, bool (*fn)(char *line, void *ctx), void *ctx) {
    if (!db)
        return 0;
    _cleanup_free_ char *copy = strdup(db);
    if (!copy)
        return -ENOMEM;
    for (char *save = copy, *line; (line = strsep(&save, "\n"));)
        if (*line && *line != '#' && fn(line, ctx))
            break;
    return 0;
}

typedef struct pw_query {
    const char *user;
    bool numeric;
    unsigned num;
    seed_user_ids *id;
    char name[256];
    bool found;
} pw_query;

static bool pw_line(char *line, void *ctx) {
    pw_query *q = ctx;
    char *f[7];
    unsigned uid, gid;
    if (fields(line, f, 7) < 7 || !parse_id(f[2], &uid) || !parse_id(f[3], &gid))
        return false;
    if (q->numeric ? uid != q->num : !streq(f[0], q->user))
        return false;
    q->id->uid = uid;
    q->id->gid = gid;
    snprintf(q->id->home, sizeof(q->id->home), "%s", f[5]);
    snprintf(q->name, sizeof(q->name), "%s", f[0]);
    q->found = true;
    return true;
}

typedef struct gr_query {
    const char *group;  /* look up this group's gid ... */
    const char *member; /* ... or the groups that list this member */
    seed_user_ids *id;
    bool found;
} gr_query;

static bool gr_line(char *line, void *ctx) {
    gr_query *q = ctx;
    char *f[4];
    unsigned gid;
    if (fields(line, f, 4) < 4 || !parse_id(f[2], &gid))
        return false;
    if (q->group) {
        if (!streq(f[0], q->group))
            return false;
        q->id->gid = gid;
        q->found = true;
        return true;
    }
    for (char *save = f[3], *m; (m = strsep(&save, ","));)
        if (streq(m, q->member) && gid != q->id->gid) {
            q->id->groups[q->id->n_groups++] = gid;
            break;
        }
    return q->id->n_groups == SEED_USER_MAX_GROUPS;
}

int seed_users_lookup(const char *passwd, const char *group_db, const char *spec, seed_user_ids *id,
                      char *msg, size_t len) {
    char user[256], group[256] = "";
    snprintf(user, sizeof(user), "%s", spec ? spec : "0");
    char *colon = strchr(user, ':');
    if (colon) {
        *colon = 0;
        snprintf(group, sizeof(group), "%s", colon + 1);
    }
    *id = (seed_user_ids){0};
    strcpy(id->home, "/");
    pw_query pq = {.user = user, .id = id};
    pq.numeric = parse_id(user, &pq.num);
    int r = each_line(passwd, pw_line, &pq);
    if (r < 0)
        return r;
    if (!pq.found && streq(user, "root")) {
        /* uid 0 needs no name */
        pq.numeric = true;
        pq.num = 0;
        strcpy(id->home, "/root");
    }
    if (!pq.found) {
        if (!pq.numeric) {
            snprintf(msg, len, "user \"%s\" does not exist in the instance's /etc/passwd", user);
            return -ENOENT;
        }
        id->uid = id->gid = pq.num;
    }
    if (*group) {
        unsigned num;
        gr_query gq = {.group = group, .id = id};
        if (parse_id(group, &num)) {
            id->gid = num;
        } else {
            if ((r = each_line(group_db, gr_line, &gq)) < 0)
                return r;
            if (!gq.found) {
                snprintf(msg, len, "group \"%s\" does not exist in the instance's /etc/group", group);
                return -ENOENT;
            }
        }
    }
    id->groups[id->n_groups++] = id->gid;
    if (*pq.name) {
        gr_query mq = {.member = pq.name, .id = id};
        if ((r = each_line(group_db, gr_line, &mq)) < 0)
            return r;
    }
    return 0;
}

int seed_resolve_user(const char *spec, seed_user_ids *id, char *msg, size_t len) {
    int r;
    _cleanup_free_ char *passwd = read_db("/etc/passwd", msg, len, &r);
    if (r < 0)
        return r;
    _cleanup_free_ char *group = read_db("/etc/group", msg, len, &r);
    if (r < 0)
        return r;
    return seed_users_lookup(passwd, group, spec, id, msg, len);
}

/* Whether content has a line for name (the first field). */
static bool has_entry(const char *content, const char *name) {
    size_t n = strlen(name);
    for (const char *line = content; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            return true;
    return false;
}

int seed_accounts_merge(enum seed_account_db db, const char *content, const seed_account *a, size_t n,
                        char **ret, size_t *added) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    *added = 0;
    if (content && *content) {
        fputs(content, f);
        if (content[strlen(content) - 1] != '\n')
            fputc('\n', f);
    }
    for (size_t i = 0; i < n; i++) {
        if (content && has_entry(content, a[i].name))
            continue;
        if (db == SEED_DB_PASSWD)
            fprintf(f, "%s:x:%u:%u::%s:%s\n", a[i].name, a[i].uid, a[i].gid, a[i].home, a[i].shell);
        else if (db == SEED_DB_GROUP)
            fprintf(f, "%s:x:%u:\n", a[i].name, a[i].gid);
        else /* '*': no password can match; '!' would lock the account, also for keys */
            fprintf(f, "%s:*:19000:0:99999:7:::\n", a[i].name);
        (*added)++;
    }
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return -ENOMEM;
    }
    *ret = buf;
    return 0;
}

int seed_db_set_field(const char *content, const char *name, unsigned field, const char *value,
                      bool when_empty, const char *fallback, char **ret, bool *changed) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    *changed = false;
    bool found = false;
    size_t n = strlen(name);
    for (const char *line = content; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) : strlen(line);
        if (found || strncmp(line, name, n) != 0 || line[n] != ':') {
            fwrite(line, 1, ll, f);
            fputc('\n', f);
        } else {
            found = true;
            /* the fields before, the one replaced, the rest as they are */
            const char *p = line, *stop = line + ll;
            for (unsigned i = 0; i < field && p < stop; i++) {
                const char *c = memchr(p, ':', (size_t)(stop - p));
                p = c ? c + 1 : stop;
            }
            const char *fe = memchr(p, ':', (size_t)(stop - p));
            fe = fe ? fe : stop;
            bool empty = fe == p;
            bool same = (size_t)(fe - p) == strlen(value) && strncmp(p, value, strlen(value)) == 0;
            if ((when_empty && !empty) || same) {
                fwrite(line, 1, ll, f);
            } else {
                fwrite(line, 1, (size_t)(p - line), f);
                fputs(value, f);
                fwrite(fe, 1, (size_t)(stop - fe), f);
                *changed = true;
            }
            fputc('\n', f);
        }
        line = end ? end + 1 : NULL;
    }
    if (!found && fallback) {
        fprintf(f, "%s\n", fallback);
        *changed = true;
    }
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return -ENOMEM;
    }
    *ret = buf;
    return 0;
}

size_t seed_ssh_keys_split(const char *text, char **keys, size_t max) {
    size_t n = 0;
    for (const char *p = text; p && *p && n < max;) {
        size_t len = strcspn(p, "\n,");
        const char *s = p, *e = p + len;
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (e > s && *s != '#' && (keys[n] = strndup(s, (size_t)(e - s))))
            n++;
        p += len;
        if (*p)
            p++;
    }
    return n;
}
