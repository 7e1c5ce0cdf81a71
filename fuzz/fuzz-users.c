/* libFuzzer harness for the user resolver: the input is split into a user spec, an
 * /etc/passwd and an /etc/group (at NUL bytes), all of which an instance controls. */
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
    free(buf);
    return 0;
}
