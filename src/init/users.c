/* Resolving the users of a sandbox's root: see users.h. */
#include "init/users.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static FILE *open_db(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "re");
    if (!f)
        close(fd);
    return f;
}

int seed_resolve_user(const char *spec, seed_user_ids *id, char *msg, size_t len) {
    char user[256], group[256] = "", name[256] = "";
    snprintf(user, sizeof(user), "%s", spec ? spec : "0");
    char *colon = strchr(user, ':');
    if (colon) {
        *colon = 0;
        snprintf(group, sizeof(group), "%s", colon + 1);
    }
    *id = (seed_user_ids){0};
    strcpy(id->home, "/");
    unsigned num = 0;
    bool numeric = parse_id(user, &num), found = false;
    FILE *f = open_db("/etc/passwd");
    for (struct passwd *pw; f && (pw = fgetpwent(f));)
        if (numeric ? pw->pw_uid == num : streq(pw->pw_name, user)) {
            id->uid = pw->pw_uid;
            id->gid = pw->pw_gid;
            snprintf(id->home, sizeof(id->home), "%s", pw->pw_dir);
            snprintf(name, sizeof(name), "%s", pw->pw_name);
            found = true;
            break;
        }
    if (f)
        fclose(f);
    if (!found && streq(user, "root")) {
        numeric = true;
        num = 0;
        strcpy(id->home, "/root");
    }
    if (!found) {
        if (!numeric) {
            snprintf(msg, len, "user \"%s\" does not exist in the instance's /etc/passwd", user);
            return -ENOENT;
        }
        id->uid = id->gid = num;
    }
    if (*group) {
        bool gfound = parse_id(group, &num);
        if (gfound)
            id->gid = num;
        f = gfound ? NULL : open_db("/etc/group");
        for (struct group *gr; f && (gr = fgetgrent(f));)
            if (streq(gr->gr_name, group)) {
                id->gid = gr->gr_gid;
                gfound = true;
                break;
            }
        if (f)
            fclose(f);
        if (!gfound) {
            snprintf(msg, len, "group \"%s\" does not exist in the instance's /etc/group", group);
            return -ENOENT;
        }
    }
    id->groups[id->n_groups++] = id->gid;
    f = *name ? open_db("/etc/group") : NULL;
    for (struct group *gr; f && (gr = fgetgrent(f)) && id->n_groups < SEED_USER_MAX_GROUPS;)
        for (char **m = gr->gr_mem; m && *m; m++)
            if (streq(*m, name) && gr->gr_gid != id->gid) {
                id->groups[id->n_groups++] = gr->gr_gid;
                break;
            }
    if (f)
        fclose(f);
    return 0;
}
