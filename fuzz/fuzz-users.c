/* libFuzzer harness for the user resolver: the input is split into a user spec, an
 * /etc/passwd and an /etc/group (at NUL bytes), all of which an instance controls.
 * The same pieces go through the image-mode editors of those databases (a root
 * password set, accounts appended) and the SSH key list splitter. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "init/users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 3);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = 0;
    const char *spec = buf;
    const char *passwd = spec + strlen(spec) + 1;
    const char *group = passwd + strlen(passwd) + 1;
    seed_user_ids id;
    char msg[256];
    msg[0] = 0;
    int r = seed_users_lookup(passwd, group, spec, &id, msg, sizeof(msg));
    if (r < 0 && r != -ENOMEM && !msg[0])
        abort();
    if (r == 0 && (id.n_groups == 0 || id.n_groups > SEED_USER_MAX_GROUPS))
        abort();
    char *out = NULL;
    bool changed;
    if (seed_db_set_field(passwd, spec, 1, "x", size & 1, "root:x:0:0::/root:/bin/sh", &out, &changed) == 0) {
        if (changed && !strstr(out, "x"))
            abort();
        free(out);
    }
    seed_account a = {.name = spec[0] ? spec : "u", .uid = 1, .gid = 1, .shell = "/bin/sh", .home = "/h"};
    size_t added;
    if (seed_accounts_merge(SEED_DB_SHADOW, group, &a, 1, &out, &added) == 0) {
        if (added > 1)
            abort();
        free(out);
    }
    char *keys[16];
    size_t n = seed_ssh_keys_split(passwd, keys, 16);
    for (size_t i = 0; i < n; i++) {
        if (!keys[i][0] || strchr(keys[i], '\n') || strchr(keys[i], ','))
            abort();
        free(keys[i]);
    }
    free(buf);
    return 0;
}
