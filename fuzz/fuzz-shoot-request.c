/* libFuzzer harness for the shoot API's request parser: any body a caller could POST.
 * A request that parses must satisfy the contract the pool relies on (a non-empty
 * argv whose program is not empty, an absolute cwd, a timeout within bounds), and its
 * response must serialise. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shoot/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    seed_shoot_request r;
    char *msg = NULL;
    int rc = seed_shoot_request_parse((const char *)data, size, &r, &msg);
    if (rc < 0) {
        if (rc == -EINVAL && !msg)
            abort();
        free(msg);
        return 0;
    }
    if (!r.argv || r.argc == 0 || !r.argv[0] || !*r.argv[0] || r.argv[r.argc] || !r.cwd || r.cwd[0] != '/' ||
        r.timeout_ms < 1 || r.timeout_ms > SEED_SHOOT_MAX_TIMEOUT_MS || (r.has_stdin && !r.stdin_data))
        abort();
    for (size_t i = 0; i < r.envc; i++)
        if (!strchr(r.env[i], '='))
            abort();
    seed_shoot_output o = {.out = r.stdin_data ? r.stdin_data : "",
                           .out_len = r.stdin_len,
                           .err = "e",
                           .err_len = 1,
                           .exit_code = 1};
    json_t *j = seed_shoot_response(&o, r.base64);
    if (!j)
        abort();
    json_decref(j);
    seed_shoot_request_clear(&r);
    return 0;
}
