/* The child side of sandbox security: drop capabilities, set no_new_privs, load the
 * compiled seccomp filter. Raw system calls only, so the static seed-init can use it
 * (it applies the same restrictions to every shoot). */
#include <errno.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/security.h"

static int last_cap(void) {
    /* /proc may not be mounted yet: probe the bounding set instead. */
    int c = 40;
    while (c < 64 && prctl(PR_CAPBSET_READ, c + 1, 0, 0, 0) >= 0)
        c++;
    while (c > 0 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) < 0)
        c--;
    return c;
}

int seed_security_apply_caps(uint64_t keep, const char **what) {
    int last = last_cap();
    for (int c = 0; c <= last; c++) {
        if (keep & (1ull << c))
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) {
            *what = "dropping capabilities from the bounding set";
            return -errno;
        }
    }
    /* The inheritable set stays empty: a non-empty one lets a file with inheritable
     * capabilities gain them back (CVE-2022-24769). */
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2] = {
        {.effective = (uint32_t)keep, .permitted = (uint32_t)keep, .inheritable = 0},
        {.effective = (uint32_t)(keep >> 32), .permitted = (uint32_t)(keep >> 32), .inheritable = 0},
    };
    if (syscall(SYS_capset, &h, d) < 0) {
        *what = "setting the capability sets";
        return -errno;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
        *what = "clearing ambient capabilities";
        return -errno;
    }
    return 0;
}

int seed_security_apply_filter(const struct sock_fprog *prog, const char **what) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        *what = "setting no_new_privs";
        return -errno;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog) < 0) {
        *what = "loading the seccomp filter";
        return -errno;
    }
    return 0;
}

int seed_security_apply(const seed_security *s, const char **what) {
    int r = seed_security_apply_caps(s->keep_caps, what);
    if (r < 0)
        return r;
    return seed_security_apply_filter(&s->prog, what);
}
