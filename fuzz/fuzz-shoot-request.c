/* libFuzzer harness for the shoot API's request parser: any body a caller could POST.
 * A request that parses must satisfy the contract the pool relies on (a non-empty
 * argv whose program is not empty, an absolute cwd, a timeout within bounds), and an
 * answer with its stdin as output must stay within its bound and parse. */
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
    /* Its stdin as output, in two reads: the answer stays within its bound and parses. */
    seed_shoot_output o = {.exit_code = 1, .base64 = r.base64};
    seed_shoot_stream_init(&o.out, 4096, r.base64);
    seed_shoot_stream_init(&o.err, 4096, r.base64);
    size_t half = r.stdin_len / 2;
    seed_shoot_stream_add(&o.out, r.stdin_data ? r.stdin_data : "", half);
    seed_shoot_stream_add(&o.out, r.stdin_data ? r.stdin_data + half : "", r.stdin_len - half);
    seed_shoot_stream_add(&o.err, "e", 1);
    seed_shoot_stream_end(&o.out);
    seed_shoot_stream_end(&o.err);
    seed_shoot_reply *reply = seed_shoot_reply_new(&o);
    if (!reply)
        abort();
    size_t n_reply = seed_shoot_reply_size(reply);
    char *buf = malloc(n_reply);
    if (n_reply > 2 * 4096 + SEED_SHOOT_REPLY_OVERHEAD || !buf ||
        seed_shoot_reply_read(reply, 0, buf, n_reply) != n_reply)
        abort();
    json_t *j = json_loadb(buf, n_reply, 0, NULL);
    if (!j)
        abort();
    json_decref(j);
    free(buf);
    seed_shoot_reply_free(reply);
    seed_shoot_request_clear(&r);
    return 0;
}
