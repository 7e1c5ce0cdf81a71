/* Name and path validation for the spec. */
#include "spec/names.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "spec/spec.h"

const char *seed_check_dns_label(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0)
        return "must not be empty";
    if (n > max)
        return max == SEED_SPEC_MAX_NAME
                   ? "is too long: at most 58 characters, so that seed-<name> is a DNS label"
                   : "is too long for a DNS label";
    for (const char *c = s; *c; c++) {
        if (isupper((unsigned char)*c))
            return "must be lower-case (a DNS label: a-z, 0-9 and '-')";
        if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-'))
            return "may only contain a-z, 0-9 and '-' (a DNS label)";
    }
    if (s[0] == '-' || s[n - 1] == '-')
        return "must start and end with a letter or digit (a DNS label)";
    return NULL;
}

const char *seed_check_hostname(const char *s) {
    size_t n = strlen(s);
    if (n == 0)
        return "must not be empty";
    if (n > 253)
        return "is too long for a DNS name (at most 253 characters)";
    const char *label = s;
    for (const char *c = s;; c++) {
        if (*c == '.' || *c == 0) {
            size_t len = (size_t)(c - label);
            if (len == 0)
                return "has an empty label (a DNS name like seed-db or db.example.com)";
            if (len > 63)
                return "has a label longer than 63 characters";
            if (label[0] == '-' || label[len - 1] == '-')
                return "has a label that starts or ends with '-'";
            if (*c == 0)
                break;
            label = c + 1;
            continue;
        }
        if (!(isalnum((unsigned char)*c) || *c == '-'))
            return "may only contain letters, digits, '-' and '.' (a DNS name)";
    }
    return NULL;
}

const char *seed_check_process_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0)
        return "must not be empty";
    if (n > 63)
        return "is too long (at most 63 characters)";
    if (!isalnum((unsigned char)s[0]))
        return "must start with a letter or digit";
    for (const char *c = s; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.'))
            return "may only contain letters, digits, '-', '_' and '.'";
    return NULL;
}

const char *seed_check_connect_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0)
        return "must not be empty";
    if (n > 63)
        return "is too long (at most 63 characters)";
    if (!isalpha((unsigned char)s[0]))
        return "must start with a letter (it becomes $SEED_<NAME>_HOST)";
    for (const char *c = s; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_'))
            return "may only contain letters, digits, '-' and '_' (it becomes $SEED_<NAME>_HOST)";
    return NULL;
}

const char *seed_check_env_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0)
        return "must not be empty";
    if (n > 255)
        return "is too long (at most 255 characters)";
    if (isdigit((unsigned char)s[0]))
        return "must not start with a digit";
    for (const char *c = s; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '.' || *c == '-'))
            return "may only contain letters, digits, '_', '.' and '-'";
    if (strncmp(s, "SEED_", 5) == 0)
        return "uses the prefix SEED_, which is reserved for variables seed sets";
    return NULL;
}

static bool valid_user_part(const char *s, size_t n) {
    if (n == 0 || n > 32)
        return false;
    bool numeric = true;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            numeric = false;
    if (numeric)
        return n <= 10 && strtoull(s, NULL, 10) < 4294967295ull;
    if (!(islower((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' || s[i] == '-' ||
              (s[i] == '$' && i == n - 1)))
            return false;
    return true;
}

const char *seed_check_user(const char *s) {
    const char *colon = strchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    if (!valid_user_part(s, n) || (colon && !valid_user_part(colon + 1, strlen(colon + 1))))
        return "must be a user name or uid, optionally followed by :group or :gid (like "
               "\"www-data\", \"1000\" or \"1000:1000\")";
    return NULL;
}

const char *seed_check_user_name(const char *s) {
    size_t n = strlen(s);
    if (strspn(s, "0123456789") == n || !valid_user_part(s, n) || s[n - 1] == '$')
        return "must be 1 to 32 lower-case letters, digits, '_' or '-', starting with a letter or '_' (like "
               "\"app\")";
    return NULL;
}

const char *seed_check_abs_path(const char *s) {
    if (s[0] != '/')
        return "must be an absolute path";
    if (strlen(s) >= 4096)
        return "is too long (at most 4095 bytes)";
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20)
            return "must not contain control characters";
    return NULL;
}

const char *seed_normalize_mount_point(const char *s, char **out) {
    const char *why = seed_check_abs_path(s);
    if (why)
        return why;
    char *buf = malloc(strlen(s) + 2);
    if (!buf)
        return "could not be checked (out of memory)";
    size_t o = 0;
    const char *p = s;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchrnul(p, '/');
        size_t len = (size_t)(e - p);
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
            free(buf);
            return "must not contain \".\" or \"..\" components";
        }
        buf[o++] = '/';
        memcpy(buf + o, p, len);
        o += len;
        p = e;
    }
    if (o == 0)
        buf[o++] = '/';
    buf[o] = 0;

    /* Paths the sandbox owns: a volume there would hide or replace them. */
    static const char *const reserved_tree[] = {"/proc",     "/sys",      "/dev",     "/run/seed",
                                                "/etc/seed", "/seed/bin", "/seed/tpm"};
    static const char *const reserved_exact[] = {"/", "/run", "/etc", "/seed", "/seed/storage"};
    /* Files the node writes into every sandbox: a directory mounted there would make
     * every start fail. */
    static const char *const generated[] = {"/etc/hosts",  "/etc/hostname", "/etc/resolv.conf",
                                            "/etc/passwd", "/etc/group",    "/etc/nsswitch.conf"};
    const char *why_reserved = NULL;
    for (size_t i = 0; !why_reserved && i < ELEMENTSOF(reserved_exact); i++)
        if (streq(buf, reserved_exact[i]))
            why_reserved = "is reserved: the sandbox needs that directory itself";
    for (size_t i = 0; !why_reserved && i < ELEMENTSOF(reserved_tree); i++)
        if (seed_path_under(buf, reserved_tree[i]))
            why_reserved = "is reserved: /proc, /sys, /dev, /run/seed, /etc/seed, /seed/bin and "
                           "/seed/tpm belong to the sandbox";
    for (size_t i = 0; !why_reserved && i < ELEMENTSOF(generated); i++)
        if (seed_path_under(buf, generated[i]))
            why_reserved = "is a file the node writes into every instance (/etc/hosts, /etc/hostname, "
                           "/etc/resolv.conf, /etc/passwd, /etc/group, /etc/nsswitch.conf): expected a "
                           "directory of the instance's own";
    if (why_reserved) {
        free(buf);
        return why_reserved;
    }
    *out = buf;
    return NULL;
}

char *seed_connect_env_name(const char *name) {
    size_t n = strlen(name);
    char *r = malloc(n + sizeof("SEED__HOST"));
    if (!r)
        return NULL;
    char *o = stpcpy(r, "SEED_");
    for (const char *c = name; *c; c++)
        *o++ = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
    strcpy(o, "_HOST");
    return r;
}
