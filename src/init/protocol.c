/* Parsing of init channel messages (see protocol.h). */
#include "init/protocol.h"

#include <errno.h>
#include <string.h>

int seed_init_msg_parse(const char *buf, size_t n, seed_init_hdr *h, char name[256], const char **data,
                        size_t *data_len) {
    if (n < sizeof(*h))
        return -EBADMSG;
    memcpy(h, buf, sizeof(*h));
    if (h->name_len > 255 || sizeof(*h) + h->name_len > n)
        return -EBADMSG;
    memcpy(name, buf + sizeof(*h), h->name_len);
    name[h->name_len] = 0;
    *data = buf + sizeof(*h) + h->name_len;
    *data_len = n - sizeof(*h) - h->name_len;
    return 0;
}
