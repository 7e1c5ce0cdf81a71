/* libFuzzer harness for the init channel parser: what a sandbox sends the node. A
 * message that parses must lie within the input. */
#include <stdint.h>
#include <stdlib.h>

#include "init/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    seed_init_hdr h;
    char name[256];
    const char *d;
    size_t len;
    if (seed_init_msg_parse((const char *)data, size, &h, name, &d, &len) == 0) {
        if (d < (const char *)data || d + len != (const char *)data + size || h.name_len > 255)
            abort();
        volatile char sink = 0;
        for (size_t i = 0; i < len; i++)
            sink ^= d[i];
        (void)sink;
    }
    return 0;
}
