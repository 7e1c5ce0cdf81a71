/* Image mode's boot tasks: see boot.h. */
#include "init/boot.h"

#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"

/* What each task said: lines, and lines that were warnings (a task fails soft by
 * logging "warning: ..."); boot.required turns those into a stop. */
static struct {
    const char *task;
    unsigned lines, warnings;
    char last_warning[200];
} tally[] = {{"users"}, {"password"}, {"ssh"}, {"tailscale"}, {"gpu"}, {"persist"}, {"nix"}};

bool seed_boot_task_done(const char *task, char *why, size_t why_len) {
    for (size_t i = 0; i < ELEMENTSOF(tally); i++) {
        if (!streq(tally[i].task, task))
            continue;
        if (tally[i].warnings) {
            snprintf(why, why_len, "%s", tally[i].last_warning);
            return false;
        }
        if (!tally[i].lines) {
            snprintf(why, why_len, "it had nothing to do here");
            return false;
        }
        return true;
    }
    snprintf(why, why_len, "there is no such task");
    return false;
}

void seed_boot_log(const char *task, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < ELEMENTSOF(tally); i++)
        if (streq(tally[i].task, task)) {
            tally[i].lines++;
            if (strncmp(msg, "warning: ", 9) == 0) {
                tally[i].warnings++;
                snprintf(tally[i].last_warning, sizeof(tally[i].last_warning), "%.199s", msg + 9);
            }
        }
    char line[1200];
    int n = snprintf(line, sizeof(line), "seed-init: %s: %s\n", task, msg);
    if (n < 0)
        return;
    ssize_t w;
    do
        w = write(STDERR_FILENO, line, MIN((size_t)n, sizeof(line) - 1));
    while (w < 0 && errno == EINTR);
}

#define MAX_DB (4u << 20)

/* The content of a regular file (NULL: absent or not regular), at most 4 MiB. */
static char *read_small(const char *path) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || seed_read_fd(fd, MAX_DB, &buf, NULL) < 0)
        return NULL;
    return buf;
}

static int write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write content to path through a temporary file renamed over it, keeping the owner
 * and mode of the file there (mode when there is none). */
static int replace_file(const char *path, const char *content, mode_t mode) {
    struct stat st;
    uid_t uid = 0;
    gid_t gid = 0;
    if (stat(path, &st) == 0) {
        mode = st.st_mode & 07777;
        uid = st.st_uid;
        gid = st.st_gid;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.seed-new", path);
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, content, strlen(content));
    if (r == 0 && (fchmod(fd, mode) < 0 || (fchown(fd, uid, gid) < 0 && errno != EPERM)))
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

/* Where /etc cannot be written (a read-only image or `--read-only`), the new file goes
 * to /run/seed/etc and is bind-mounted over the image's (which must exist for that). */
static int replace_or_overlay(const char *path, const char *content, mode_t mode) {
    int r = replace_file(path, content, mode);
    if (r == 0 || (r != -EROFS && r != -EACCES && r != -EPERM))
        return r;
    const char *base = strrchr(path, '/') + 1;
    char alt[256];
    snprintf(alt, sizeof(alt), "/run/seed/etc/%s", base);
    if (seed_mkdir_p("/run/seed/etc", 0755) < 0 || replace_file(alt, content, mode) < 0)
        return r;
    if (mount(alt, path, NULL, MS_BIND, NULL) < 0)
        return r; /* the original error says more than the mount's */
    return 0;
}

static const struct {
    enum seed_account_db db;
    const char *path;
    mode_t mode;
} dbs[] = {
    {SEED_DB_PASSWD, "/etc/passwd", 0644},
    {SEED_DB_GROUP, "/etc/group", 0644},
    {SEED_DB_SHADOW, "/etc/shadow", 0600},
};

static void make_home(const seed_account *a) {
    struct stat st;
    if (streq(a->home, "/") || stat(a->home, &st) == 0)
        return;
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s", a->home);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        seed_mkdir_p(parent, 0755);
    }
    if (mkdir(a->home, 0700) < 0 || chown(a->home, a->uid, a->gid) < 0)
        seed_boot_log("users", "warning: cannot create the home directory %s of %s: %s", a->home, a->name,
                      strerror(errno));
}

/* Add the accounts missing from the databases; how many were added to /etc/passwd. */
static size_t add_accounts(const seed_account *a, size_t n) {
    size_t added_total = 0;
    for (size_t i = 0; i < ELEMENTSOF(dbs); i++) {
        _cleanup_free_ char *old = read_small(dbs[i].path), *merged = NULL;
        size_t added = 0;
        /* The root account first where the image has no passwd (or group) at all. */
        if (!old && dbs[i].db != SEED_DB_SHADOW)
            old = strdup(dbs[i].db == SEED_DB_PASSWD ? "root:x:0:0:root:/root:/bin/sh\n" : "root:x:0:\n");
        if (seed_accounts_merge(dbs[i].db, old, a, n, &merged, &added) < 0) {
            seed_boot_log("users", "warning: out of memory");
            return added_total;
        }
        if (added == 0)
            continue;
        bool absent = access(dbs[i].path, F_OK) < 0;
        int r = replace_or_overlay(dbs[i].path, merged, dbs[i].mode);
        if (r < 0 && absent && dbs[i].db == SEED_DB_SHADOW)
            /* nothing to bind over; without an entry the accounts have no password, as
             * with one */
            seed_boot_log("users",
                          "the image has no /etc/shadow and cannot get one (%s): the accounts have no "
                          "shadow entry",
                          strerror(-r));
        else if (r < 0)
            seed_boot_log("users", "warning: cannot write %s: %s", dbs[i].path, strerror(-r));
        else if (dbs[i].db == SEED_DB_PASSWD)
            added_total = added;
    }
    return added_total;
}

void seed_boot_accounts(const seed_account *a, size_t n) {
    if (n == 0)
        return;
    size_t added = add_accounts(a, n);
    for (size_t i = 0; i < n; i++)
        make_home(&a[i]);
    char names[512];
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof(names); i++)
        o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "", a[i].name);
    seed_boot_log("users", "%zu of %zu accounts added to /etc/passwd (%s)", added, n, names);
}

static bool has_account(const char *passwd, const char *name) {
    size_t n = strlen(name);
    for (const char *l = passwd; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, name, n) == 0 && l[n] == ':')
            return true;
    return false;
}

static bool uid_taken(const char *passwd, unsigned uid) {
    char needle[32];
    snprintf(needle, sizeof(needle), ":%u:", uid);
    for (const char *l = passwd; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        const char *c = strchr(l, ':'); /* the name, then the password field */
        c = c ? strchr(c + 1, ':') : NULL;
        if (c && strncmp(c, needle, strlen(needle)) == 0)
            return true;
    }
    return false;
}

/* ---- secrets from the environment ---- */

char *seed_boot_take_env(const char *name) {
    extern char **environ;
    size_t n = strlen(name);
    char *value = NULL;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') {
            if (!value)
                value = strdup(*e + n + 1);
            /* The block the kernel shows as /proc/1/environ is this memory. */
            explicit_bzero(*e + n + 1, strlen(*e + n + 1));
        }
    unsetenv(name);
    return value;
}

/* ---- running the image's tools ---- */

static const char *const tool_dirs[] = {
    "/usr/local/sbin",           "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
    "/run/current-system/sw/bin"};

/* The image's program name (NULL: not there). */
static char *find_tool(const char *name) {
    for (size_t i = 0; i < ELEMENTSOF(tool_dirs); i++) {
        char *p = NULL;
        if (asprintf(&p, "%s/%s", tool_dirs[i], name) < 0)
            return NULL;
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

/* Run argv to its end, its output on our stderr. Its exit status, or -errno. */
static int run_tool(char *const argv[]) {
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- root's password ---- */

static char *hash_password(const char *password, const char **method) {
    *method = "yescrypt";
    _cleanup_free_ char *salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
    if (!salt) {
        *method = "SHA-512 crypt";
        salt = crypt_gensalt_ra("$6$", 0, NULL, 0);
    }
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (!salt || !cd) {
        free(cd);
        return NULL;
    }
    const char *h = crypt_r(password, salt, cd);
    char *r = h && h[0] != '*' ? strdup(h) : NULL;
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return r;
}

/* Set field 1 (the password) of root's line in the database at path. */
static int set_root_field(const char *path, const char *value, bool when_empty, const char *fallback,
                          mode_t mode, bool *changed) {
    _cleanup_free_ char *old = read_small(path), *new = NULL;
    if (seed_db_set_field(old, "root", 1, value, when_empty, fallback, &new, changed) < 0)
        return -ENOMEM;
    return *changed ? replace_or_overlay(path, new, mode) : 0;
}

void seed_boot_password(const char *password) {
    bool changed;
    int r;
    if (!password) {
        /* An image whose root has an empty password would let anyone in. */
        bool c2 = false;
        r = set_root_field("/etc/passwd", "*", true, NULL, 0644, &changed);
        if (r == 0 && access("/etc/shadow", F_OK) == 0)
            r = set_root_field("/etc/shadow", "*", true, NULL, 0600, &c2);
        if (r < 0)
            seed_boot_log("password", "warning: cannot lock root's empty password: %s", strerror(-r));
        else
            seed_boot_log("password", "ROOT_PASSWORD not set: root has no password%s",
                          changed || c2 ? " (its empty one was removed)" : "");
        return;
    }
    const char *method;
    _cleanup_free_ char *hash = hash_password(password, &method), *line = NULL;
    if (!hash) {
        seed_boot_log("password", "warning: cannot hash ROOT_PASSWORD: %s", strerror(errno ?: EINVAL));
        return;
    }
    if (asprintf(&line, "root:%s:19000:0:99999:7:::", hash) < 0)
        return;
    /* "x": the password is in /etc/shadow. */
    r = set_root_field("/etc/passwd", "x", false, "root:x:0:0:root:/root:/bin/sh", 0644, &changed);
    if (r == 0)
        r = set_root_field("/etc/shadow", hash, false, line, 0600, &changed);
    explicit_bzero(hash, strlen(hash));
    if (r < 0)
        seed_boot_log("password", "warning: cannot set root's password: %s", strerror(-r));
    else
        seed_boot_log("password", "root's password set from ROOT_PASSWORD (%s)", method);
}

/* ---- SSH keys ---- */

#define MAX_KEYS 256

/* The keys into <home>/.ssh/authorized_keys, opened without following links below the
 * home: a home belongs to its user, who could leave a link there. (The home itself may
 * be a link: to the volume, see persist_homes.) */
static int install_keys(const char *home, uid_t uid, gid_t gid, char **keys, size_t n) {
    _cleanup_close_ int hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (hfd < 0 && errno == ENOENT && seed_mkdir_p(home, 0700) == 0) {
        hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (hfd >= 0 && fchown(hfd, uid, gid) < 0) {
            /* best effort: a home we made is ours to hand over */
        }
    }
    if (hfd < 0)
        return -errno;
    if (mkdirat(hfd, ".ssh", 0700) < 0 && errno != EEXIST)
        return -errno;
    _cleanup_close_ int sfd = openat(hfd, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0 || fchown(sfd, uid, gid) < 0 || fchmod(sfd, 0700) < 0)
        return -errno;
    _cleanup_free_ char *old = NULL;
    {
        _cleanup_close_ int fd =
            openat(sfd, "authorized_keys", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            seed_read_fd(fd, MAX_DB, &old, NULL);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    if (old && *old) {
        fputs(old, f);
        if (old[strlen(old) - 1] != '\n')
            fputc('\n', f);
    }
    for (size_t i = 0; i < n; i++) {
        bool have = false;
        size_t kl = strlen(keys[i]);
        for (const char *l = old; l && *l && !have; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
            have = strncmp(l, keys[i], kl) == 0 && (l[kl] == '\n' || l[kl] == 0);
        if (!have)
            fprintf(f, "%s\n", keys[i]);
    }
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return -ENOMEM;
    }
    _cleanup_free_ char *content = buf;
    _cleanup_close_ int fd =
        openat(sfd, "authorized_keys.seed-new", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, content, strlen(content));
    if (r == 0 && (fchown(fd, uid, gid) < 0 || fchmod(fd, 0600) < 0))
        r = -errno;
    if (r == 0 && renameat(sfd, "authorized_keys.seed-new", sfd, "authorized_keys") < 0)
        r = -errno;
    if (r < 0)
        unlinkat(sfd, "authorized_keys.seed-new", 0);
    return r;
}

void seed_boot_ssh_keys(const char *keys, const char *keys_file, const seed_account *users, size_t n_users) {
    if (!keys && !keys_file)
        return;
    _cleanup_free_ char *file = NULL;
    if (keys_file && !(file = read_small(keys_file)))
        seed_boot_log("ssh", "warning: cannot read SSH_PUBLIC_KEYS_FILE %s", keys_file);
    char *list[MAX_KEYS];
    size_t n = keys ? seed_ssh_keys_split(keys, list, MAX_KEYS) : 0;
    n += file ? seed_ssh_keys_split(file, list + n, MAX_KEYS - n) : 0;
    if (n == 0) {
        seed_boot_log("ssh", "warning: SSH_PUBLIC_KEYS holds no key");
        return;
    }
    seed_user_ids root;
    char err[256];
    if (seed_resolve_user("root", &root, err, sizeof(err)) < 0 || streq(root.home, "/"))
        snprintf(root.home, sizeof(root.home), "/root");
    int r = install_keys(root.home, 0, 0, list, n);
    if (r < 0)
        seed_boot_log("ssh", "warning: cannot install the keys for root in %s/.ssh: %s", root.home,
                      strerror(-r));
    else
        seed_boot_log("ssh", "%zu key%s installed for root", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n_users; i++) {
        r = install_keys(users[i].home, users[i].uid, users[i].gid, list, n);
        if (r < 0)
            seed_boot_log("ssh", "warning: cannot install the keys for %s in %s/.ssh: %s", users[i].name,
                          users[i].home, strerror(-r));
        else
            seed_boot_log("ssh", "%zu key%s installed for %s", n, n == 1 ? "" : "s", users[i].name);
    }
    for (size_t i = 0; i < n; i++)
        free(list[i]);
}

/* ---- sshd ---- */

/* sshd's privilege separation needs an unprivileged account "sshd" and an empty
 * directory (Debian's build: /run/sshd). */
static void sshd_privsep(void) {
    seed_mkdir_p("/run/sshd", 0755);
    _cleanup_free_ char *passwd = read_small("/etc/passwd");
    if (passwd && has_account(passwd, "sshd"))
        return;
    unsigned uid = 100;
    while (uid < 1000 && passwd && uid_taken(passwd, uid))
        uid++;
    seed_account a = {
        .name = "sshd", .uid = uid, .gid = 65534, .shell = "/usr/sbin/nologin", .home = "/run/sshd"};
    add_accounts(&a, 1);
}

static char **strv_new(size_t cap) {
    return calloc(cap + 1, sizeof(char *));
}

char **seed_boot_sshd(const char *persist, unsigned port) {
    _cleanup_free_ char *sshd = find_tool("sshd"), *keygen = find_tool("ssh-keygen");
    if (!sshd)
        return NULL;
    char prefix[4096] = "", keydir[4200];
    if (persist)
        snprintf(prefix, sizeof(prefix), "%s/.seed/ssh", persist);
    snprintf(keydir, sizeof(keydir), "%s/etc/ssh", prefix);
    if (seed_mkdir_p(keydir, 0755) < 0)
        seed_boot_log("ssh", "warning: cannot create %s: %s", keydir, strerror(errno));
    if (!keygen) {
        seed_boot_log("ssh", "warning: the image has sshd but no ssh-keygen: host keys cannot be generated");
    } else {
        char *argv[] = {keygen, "-A", persist ? "-f" : NULL, persist ? prefix : NULL, NULL};
        int r = run_tool(argv);
        if (r != 0)
            seed_boot_log("ssh", "warning: ssh-keygen -A failed (%d)", r);
    }
    static const char *const types[] = {"ed25519", "ecdsa", "rsa"};
    char **argv = strv_new(32);
    if (!argv)
        return NULL;
    size_t n = 0, keys = 0;
    char portbuf[16];
    snprintf(portbuf, sizeof(portbuf), "%u", port);
    argv[n++] = strdup(sshd);
    argv[n++] = strdup("-D");
    argv[n++] = strdup("-e");
    if (access("/etc/ssh/sshd_config", F_OK) < 0) {
        /* sshd refuses to start without a configuration file: an empty one. */
        seed_mkdir_p("/run/seed", 0755);
        replace_file("/run/seed/sshd_config", "", 0644);
        argv[n++] = strdup("-f");
        argv[n++] = strdup("/run/seed/sshd_config");
    }
    argv[n++] = strdup("-p");
    argv[n++] = strdup(portbuf);
    /* Options given with -o win over the configuration file. PAM stays off: its
     * account modules (pam_loginuid) refuse logins in many containers. */
    static const char *const opts[] = {"PasswordAuthentication=no", "KbdInteractiveAuthentication=no",
                                       "PermitRootLogin=prohibit-password", "UsePAM=no"};
    for (size_t i = 0; i < ELEMENTSOF(opts); i++) {
        argv[n++] = strdup("-o");
        argv[n++] = strdup(opts[i]);
    }
    for (size_t i = 0; i < ELEMENTSOF(types); i++) {
        char *path = NULL;
        if (asprintf(&path, "HostKey=%s/ssh_host_%s_key", keydir, types[i]) < 0)
            break;
        if (access(strchr(path, '=') + 1, R_OK) < 0) {
            free(path);
            continue;
        }
        argv[n++] = strdup("-o");
        argv[n++] = path;
        keys++;
    }
    for (size_t i = 0; i < n; i++)
        if (!argv[i]) {
            strv_free(argv);
            return NULL;
        }
    if (keys == 0) {
        seed_boot_log("ssh", "warning: no host keys in %s: sshd not started", keydir);
        strv_free(argv);
        return NULL;
    }
    sshd_privsep();
    seed_boot_log("ssh", "sshd on port %u, password login off, host keys in %s%s", port, keydir,
                  persist ? "" : " (no persistent volume: new keys on each new container)");
    return argv;
}

/* ---- Tailscale ---- */

static char **argv_of(const char *const *args, size_t n) {
    char **v = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; v && i < n; i++)
        if (!(v[i] = strdup(args[i]))) {
            strv_free(v);
            return NULL;
        }
    return v;
}

int seed_boot_tailscale(const char *key, const char *persist, const char *hostname, char ***daemon,
                        char ***up) {
    *daemon = *up = NULL;
    _cleanup_free_ char *tailscaled = find_tool("tailscaled"), *tailscale = find_tool("tailscale");
    if (!tailscaled || !tailscale) {
        seed_boot_log("tailscale", "warning: TAILSCALE_AUTHKEY is set but the image has no %s: not joining",
                      tailscaled ? "tailscale" : "tailscaled");
        return -ENOENT;
    }
    char dir[4096], statedir[4200], state[4300], key_arg[256], host_arg[320];
    snprintf(dir, sizeof(dir), "%s", persist ? persist : "/var/lib");
    snprintf(statedir, sizeof(statedir), "%s/%s", dir, persist ? ".seed/tailscale" : "tailscale");
    snprintf(state, sizeof(state), "--state=%s/tailscaled.state", statedir);
    int r = seed_mkdir_p(statedir, 0700);
    if (r == 0)
        r = seed_mkdir_p("/run/tailscale", 0755);
    if (r == 0)
        r = seed_mkdir_p("/run/seed", 0755);
    /* umask-proof: created 0600 by replace_file (mode of a new file), owned by root. */
    if (r == 0) {
        unlink(SEED_TAILSCALE_KEY_FILE);
        r = replace_file(SEED_TAILSCALE_KEY_FILE, key, 0600);
    }
    if (r < 0) {
        seed_boot_log("tailscale", "warning: cannot prepare %s: %s", statedir, strerror(-r));
        return r;
    }
    snprintf(key_arg, sizeof(key_arg), "--authkey=file:%s", SEED_TAILSCALE_KEY_FILE);
    snprintf(host_arg, sizeof(host_arg), "--hostname=%s", hostname);
    char statedir_arg[4300];
    snprintf(statedir_arg, sizeof(statedir_arg), "--statedir=%s", statedir);
    bool tun = access("/dev/net/tun", R_OK | W_OK) == 0;
    const char *d[] = {tailscaled, state, statedir_arg, "--socket=/run/tailscale/tailscaled.sock",
                       tun ? NULL : "--tun=userspace-networking"};
    const char *u[] = {tailscale, "--socket=/run/tailscale/tailscaled.sock", "up", key_arg, host_arg};
    *daemon = argv_of(d, tun ? 4 : 5);
    *up = argv_of(u, ELEMENTSOF(u));
    if (!*daemon || !*up) {
        strv_free(*daemon);
        strv_free(*up);
        *daemon = *up = NULL;
        return -ENOMEM;
    }
    seed_boot_log("tailscale", "starting tailscaled (state in %s%s) and joining as %s", statedir,
                  tun ? "" : ", userspace networking: no /dev/net/tun", hostname);
    return 0;
}

/* ---- GPU driver libraries ---- */

/* Where nvidia-container-runtime (and CDI specs) put the driver's libraries. */
static const char *const gpu_dirs[] = {
    "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
    "/lib/x86_64-linux-gnu",     "/lib/aarch64-linux-gnu",     "/lib64",     "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib"};

static bool gpu_present(void) {
    const char *v = getenv("NVIDIA_VISIBLE_DEVICES");
    if (v && *v && !streq(v, "void") && !streq(v, "none"))
        return true;
    return access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0;
}

static bool driver_lib(const char *name) {
    static const char *const prefixes[] = {
        "libcuda.so",          "libnvidia-",         "libnvcuvid.so",
        "libEGL_nvidia.so",    "libGLX_nvidia.so",   "libGLESv1_CM_nvidia.so",
        "libGLESv2_nvidia.so", "libcudadebugger.so", "libnvoptix.so"};
    for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0 && strstr(name, ".so"))
            return true;
    return false;
}

/* The directory of gpu_dirs that holds libcuda.so.1 (NULL: none yet). */
static const char *find_libcuda(void) {
    for (size_t i = 0; i < ELEMENTSOF(gpu_dirs); i++) {
        char p[256];
        snprintf(p, sizeof(p), "%s/libcuda.so.1", gpu_dirs[i]);
        struct stat st;
        /* a bind mount over an empty placeholder is only complete once it has content */
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
            return gpu_dirs[i];
    }
    return NULL;
}

/* The NixOS convention: /run/opengl-driver/lib holds (links to) the driver's
 * libraries, and Nix-built CUDA programs carry it in their RUNPATH. How many links. */
static size_t link_farm(void) {
    size_t n = 0;
    if (seed_mkdir_p("/run/opengl-driver/lib", 0755) < 0)
        return 0;
    for (size_t i = 0; i < ELEMENTSOF(gpu_dirs); i++) {
        DIR *d = opendir(gpu_dirs[i]);
        if (!d)
            continue;
        for (struct dirent *e; (e = readdir(d));) {
            if (!driver_lib(e->d_name))
                continue;
            char target[512], link[512];
            snprintf(target, sizeof(target), "%s/%s", gpu_dirs[i], e->d_name);
            snprintf(link, sizeof(link), "/run/opengl-driver/lib/%s", e->d_name);
            if (access(link, F_OK) == 0)
                continue; /* the first directory wins */
            if (symlink(target, link) == 0)
                n++;
        }
        closedir(d);
    }
    return n;
}

/* A Nix-style image has nvidia-smi's loader (/lib64/ld-linux-x86-64.so.2) nowhere: the
 * link to the loader of the image's own glibc makes the injected nvidia-smi run. */
static void loader_link(void) {
    static const char loader[] = "/lib64/ld-linux-x86-64.so.2";
    if (access(loader, F_OK) == 0 || access("/usr/bin/nvidia-smi", X_OK) < 0)
        return;
    DIR *d = opendir("/nix/store");
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        char p[512];
        if (!strstr(e->d_name, "-glibc-"))
            continue;
        snprintf(p, sizeof(p), "/nix/store/%s/lib/ld-linux-x86-64.so.2", e->d_name);
        if (access(p, X_OK) == 0 && seed_mkdir_p("/lib64", 0755) == 0 && symlink(p, loader) == 0) {
            seed_boot_log("gpu", "nvidia-smi: its loader %s linked to %s", loader, p);
            break;
        }
    }
    closedir(d);
}

void seed_boot_gpu(void) {
    if (!gpu_present())
        return;
    unsigned wait_s = 30;
    const char *w = getenv("SEED_GPU_WAIT");
    if (w && *w && strspn(w, "0123456789") == strlen(w) && strlen(w) < 6)
        wait_s = (unsigned)atoi(w);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *dir;
    /* A bind mount makes no inotify event: look every 100 ms, for a bounded time. */
    for (;;) {
        dir = find_libcuda();
        clock_gettime(CLOCK_MONOTONIC, &now);
        double waited = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        if (dir || waited >= wait_s) {
            if (!dir) {
                seed_boot_log("gpu",
                              "warning: an NVIDIA GPU is assigned but no libcuda.so.1 appeared within %u s",
                              wait_s);
                return;
            }
            _cleanup_free_ char *ldconfig = find_tool("ldconfig");
            if (ldconfig) {
                /* An FHS image: the loader cache, with the directory added for good. */
                if (access("/etc/ld.so.conf.d", F_OK) == 0) {
                    char conf[300];
                    snprintf(conf, sizeof(conf), "%s\n", dir);
                    replace_file("/etc/ld.so.conf.d/000-seed-gpu.conf", conf, 0644);
                }
                char *argv[] = {ldconfig, (char *)dir, NULL};
                int r = run_tool(argv);
                seed_boot_log("gpu", "libcuda.so.1 in %s after %.1f s; loader cache refreshed (ldconfig%s)",
                              dir, waited, r == 0 ? "" : ": failed");
            } else {
                size_t n = link_farm();
                loader_link();
                seed_boot_log("gpu",
                              "libcuda.so.1 in %s after %.1f s; %zu driver libraries linked in "
                              "/run/opengl-driver/lib",
                              dir, waited, n);
            }
            return;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---- persistence: /nix and homes on the volume ---- */

static int copy_tree(int sfd, int dfd, int merge_depth);

static int copy_file(int sfd, const char *name, int dfd, const struct stat *st) {
    _cleanup_close_ int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (in < 0 || out < 0)
        return -errno;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        int r = write_all(out, buf, (size_t)n);
        if (r < 0)
            return r;
    }
    /* the owner first: chown clears setuid bits that fchmod then restores */
    if ((fchown(out, st->st_uid, st->st_gid) < 0 && errno != EPERM) || fchmod(out, st->st_mode & 07777) < 0)
        return -errno;
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    futimens(out, ts);
    return 0;
}

/* Copy what sfd holds into dfd: what dfd has already is kept, and entered (to add what
 * is missing below) only merge_depth levels deep. Files, directories and symlinks with
 * owners, modes and mtimes; anything else is skipped. */
static int copy_tree(int sfd, int dfd, int merge_depth) {
    int dup_fd = fcntl(sfd, F_DUPFD_CLOEXEC, 3);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return -errno;
    }
    int r = 0;
    for (struct dirent *e; r == 0 && (e = readdir(d));) {
        if (streq(e->d_name, ".") || streq(e->d_name, ".."))
            continue;
        struct stat st, dst;
        if (fstatat(sfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        bool exists = fstatat(dfd, e->d_name, &dst, AT_SYMLINK_NOFOLLOW) == 0;
        if (exists && !(S_ISDIR(st.st_mode) && S_ISDIR(dst.st_mode) && merge_depth > 0))
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (!exists && mkdirat(dfd, e->d_name, 0700) < 0) {
                r = -errno;
                break;
            }
            _cleanup_close_ int s2 = openat(sfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            _cleanup_close_ int d2 = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (s2 < 0 || d2 < 0) {
                r = -errno;
                break;
            }
            r = copy_tree(s2, d2, exists ? merge_depth - 1 : 0);
            if (r == 0 && !exists) {
                if ((fchown(d2, st.st_uid, st.st_gid) < 0 && errno != EPERM) ||
                    fchmod(d2, st.st_mode & 07777) < 0)
                    r = -errno;
                struct timespec ts[2] = {st.st_atim, st.st_mtim};
                futimens(d2, ts);
            }
        } else if (S_ISREG(st.st_mode)) {
            r = copy_file(sfd, e->d_name, dfd, &st);
        } else if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t n = readlinkat(sfd, e->d_name, target, sizeof(target) - 1);
            if (n < 0) {
                r = -errno;
                break;
            }
            target[n] = 0;
            if (symlinkat(target, dfd, e->d_name) < 0)
                r = -errno;
            else if (fchownat(dfd, e->d_name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 &&
                     errno != EPERM)
                r = -errno;
        }
    }
    closedir(d);
    return r;
}

static int copy_path(const char *src, const char *dst, int merge_depth) {
    _cleanup_close_ int s = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int d = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s < 0 || d < 0)
        return -errno;
    return copy_tree(s, d, merge_depth);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Put the volume's directory vol at path: a bind mount, or without the right to
 * mount, a symlink in place of the image's directory (moved aside, or removed where
 * the container's filesystem cannot move it: its content is on the volume already).
 * How it was done, or NULL with errno. */
static const char *place(const char *vol, const char *path) {
    struct stat st;
    bool made = false;
    if (lstat(path, &st) < 0) {
        char parent[4096];
        snprintf(parent, sizeof(parent), "%s", path);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = 0;
            seed_mkdir_p(parent, 0755);
        }
        made = mkdir(path, 0755) == 0;
    }
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && mount(vol, path, NULL, MS_BIND | MS_REC, NULL) == 0)
        return "bind mount";
    if (made)
        rmdir(path);
    else if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        unlink(path);
    else if (lstat(path, &st) == 0) {
        char aside[4200];
        snprintf(aside, sizeof(aside), "%s.seed-image", path);
        nftw(aside, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        if (rename(path, aside) < 0 && nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0)
            return NULL;
    }
    return symlink(vol, path) == 0 ? "symlink" : NULL;
}

/* Whether path was put in place already (seed-init --boot run again): a symlink, or a
 * mount point in /proc/self/mountinfo (a bind mount of the same filesystem keeps its
 * st_dev). */
static bool placed(const char *path) {
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return true;
    _cleanup_free_ char *info = read_small("/proc/self/mountinfo");
    for (const char *l = info; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        /* "id parent major:minor root mountpoint ..." */
        const char *f = l;
        for (int i = 0; i < 4 && f; i++)
            f = strchr(f, ' '), f = f ? f + 1 : NULL;
        size_t n = strlen(path);
        if (f && strncmp(f, path, n) == 0 && f[n] == ' ')
            return true;
    }
    return false;
}

static void persist_nix(const char *persist) {
    struct stat st;
    if (lstat("/nix", &st) < 0 || !S_ISDIR(st.st_mode) || placed("/nix"))
        return; /* no /nix, or on the volume already (seed-init --boot again) */
    char base[4200], upper[4300], work[4300], copy[4300], tmp[4300], opts[13000];
    snprintf(base, sizeof(base), "%s/.seed/nix", persist);
    snprintf(upper, sizeof(upper), "%s/upper", base);
    snprintf(work, sizeof(work), "%s/work", base);
    snprintf(copy, sizeof(copy), "%s/copy", base);
    snprintf(tmp, sizeof(tmp), "%s/copy.tmp", base);
    int r = seed_mkdir_p(upper, 0755);
    if (r == 0)
        r = seed_mkdir_p(work, 0755);
    snprintf(opts, sizeof(opts), "lowerdir=/nix,upperdir=%s,workdir=%s", upper, work);
    if (r == 0 && access(copy, F_OK) < 0 && mount("overlay", "/nix", "overlay", 0, opts) == 0) {
        seed_boot_log("persist", "/nix: an overlay, the image's below, %s above", upper);
        return;
    }
    int why = r < 0 ? -r : errno;
    /* No overlay (no CAP_SYS_ADMIN, or the kernel refuses it here): a copy on the
     * volume, whole on first boot, the store paths of a newer image added later. */
    bool first = access(copy, F_OK) < 0;
    if (first) {
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        r = seed_mkdir_p(tmp, 0755);
        if (r == 0)
            r = copy_path("/nix", tmp, 0);
        if (r == 0 && rename(tmp, copy) < 0)
            r = -errno;
    } else {
        r = copy_path("/nix", copy, 2); /* /nix, /nix/store, /nix/store/<path> */
    }
    if (r < 0) {
        seed_boot_log("persist",
                      "warning: /nix stays the image's: no overlay (%s), and copying it to %s failed: %s",
                      strerror(why), copy, strerror(-r));
        return;
    }
    const char *how = place(copy, "/nix");
    if (!how) {
        seed_boot_log("persist", "warning: /nix stays the image's: cannot put %s there: %s", copy,
                      strerror(errno));
        return;
    }
    if (streq(how, "symlink"))
        setenv("NIX_IGNORE_SYMLINK_STORE", "1", 1); /* Nix refuses a linked store otherwise */
    seed_boot_log("persist", "/nix: no overlay (%s): %s %s (%s)", strerror(why), how, copy,
                  first ? "copied on this first boot" : "new store paths of the image added");
}

static uid_t chown_uid;
static gid_t chown_gid;

static int chown_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return lchown(path, chown_uid, chown_gid) < 0 ? -1 : 0;
}

/* A new home, copied from root-owned files (/etc/skel), handed to its user. */
static int chown_tree(const char *path, uid_t uid, gid_t gid) {
    chown_uid = uid;
    chown_gid = gid;
    return nftw(path, chown_entry, 16, FTW_PHYS | FTW_MOUNT);
}

/* The spec users' homes from <persist>/homes/<user>. */
static void persist_homes(const char *persist, const seed_account *users, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const seed_account *a = &users[i];
        if (streq(a->home, "/") || placed(a->home))
            continue;
        char vol[4200], tmp[4300];
        snprintf(vol, sizeof(vol), "%s/homes/%s", persist, a->name);
        snprintf(tmp, sizeof(tmp), "%s.seed-tmp", vol);
        bool first = access(vol, F_OK) < 0;
        if (first) {
            /* from the image's home, else its skeleton */
            nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
            char homes[4200];
            snprintf(homes, sizeof(homes), "%s/homes", persist);
            int r = seed_mkdir_p(homes, 0755); /* each user must pass through it */
            if (r == 0 && mkdir(tmp, 0700) < 0)
                r = -errno;
            const char *from = access(a->home, F_OK) == 0 ? a->home : "/etc/skel";
            if (r == 0 && access(from, F_OK) == 0)
                r = copy_path(from, tmp, 0);
            if (r == 0 && (chown_tree(tmp, a->uid, a->gid) < 0 || chmod(tmp, 0700) < 0))
                r = -errno;
            if (r == 0 && rename(tmp, vol) < 0)
                r = -errno;
            if (r < 0) {
                seed_boot_log("persist", "warning: cannot make %s: %s", vol, strerror(-r));
                continue;
            }
        }
        const char *how = place(vol, a->home);
        if (how)
            seed_boot_log("persist", "home of %s: %s %s%s", a->name, how, vol,
                          first ? " (made on this first boot)" : "");
        else
            seed_boot_log("persist", "warning: cannot put %s at %s: %s", vol, a->home, strerror(errno));
    }
}

/* The Nix sandbox needs new mount, PID, IPC, UTS and network namespaces. */
static bool can_sandbox(void) {
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0)
        _exit(unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET) == 0 ? 0 : 1);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void nix_sandbox(void) {
    if (access("/nix/store", F_OK) < 0 || can_sandbox())
        return;
    _cleanup_free_ char *conf = read_small("/etc/nix/nix.conf");
    if (conf && strstr(conf, "sandbox"))
        return; /* the image decided */
    char *text = NULL;
    if (asprintf(&text,
                 "%s%s# seed-init: this container cannot make the namespaces the Nix sandbox needs\nsandbox "
                 "= false\n",
                 conf ? conf : "", conf && *conf && conf[strlen(conf) - 1] != '\n' ? "\n" : "") < 0)
        return;
    int r = seed_mkdir_p("/etc/nix", 0755);
    if (r == 0)
        r = replace_or_overlay("/etc/nix/nix.conf", text, 0644);
    free(text);
    if (r < 0)
        seed_boot_log("nix", "warning: cannot write sandbox = false to /etc/nix/nix.conf: %s", strerror(-r));
    else
        seed_boot_log("nix", "sandbox = false in /etc/nix/nix.conf: no namespaces for the Nix sandbox here");
}

void seed_boot_persist(const char *persist, const seed_account *users, size_t n) {
    if (persist) {
        persist_nix(persist);
        persist_homes(persist, users, n);
    }
    nix_sandbox();
}

char **seed_boot_nix_daemon(void) {
    _cleanup_free_ char *path = find_tool("nix-daemon");
    if (!path && access("/nix/var/nix/profiles/default/bin/nix-daemon", X_OK) == 0)
        path = strdup("/nix/var/nix/profiles/default/bin/nix-daemon");
    if (!path)
        return NULL;
    const char *argv[] = {path};
    seed_boot_log("nix", "starting %s for multi-user Nix", path);
    return argv_of(argv, 1);
}
