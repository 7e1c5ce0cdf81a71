/* libFuzzer harness for the webhook judge (seed_webhook_parse): any headers and body a
 * client could send. The first byte picks the provider, whether the harness signs the
 * body correctly (so that the payload checks behind the signature are reached), the
 * content type and whether the source tracks a ref; then come newline-ended header
 * values (event, signature, delivery, tracked ref) and the body. A verdict must keep the
 * contract the server relies on. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fuzz-secret"

/* The next newline-ended field, as a string (NULL when the input ran out). */
static char *field(const uint8_t **p, const uint8_t *end) {
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl)
        return NULL;
    char *s = strndup((const char *)*p, (size_t)(nl - *p));
    *p = nl + 1;
    return s;
}

static bool hex_string(const char *s) {
    size_t n = strlen(s);
    if (n != 40 && n != 64)
        return false;
    return strspn(s, "0123456789abcdefABCDEF") == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    char *event = field(&p, end), *sig = field(&p, end), *delivery = field(&p, end),
         *tracked = field(&p, end);
    const char *body = (const char *)p;
    size_t len = (size_t)(end - p);

    seed_webhook_request req = {.body = body, .len = len};
    static const char *const types[] = {
        "application/json", "application/x-www-form-urlencoded; charset=utf-8", "text/plain", NULL};
    req.h[SEED_WEBHOOK_H_CONTENT_TYPE] = types[(flags >> 3) & 3];
    char good[80];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)body, len, md, &n);
    for (unsigned i = 0; i < n; i++)
        sprintf(good + 2 * i, "%02x", md[i]);
    const char *signature = (flags & 4) ? sig : good;
    switch (flags & 3) {
    case 0:
        req.h[SEED_WEBHOOK_H_GITHUB_EVENT] = event ? event : "push";
        if (!(flags & 4)) {
            memmove(good + 7, good, 65);
            memcpy(good, "sha256=", 7);
        }
        req.h[SEED_WEBHOOK_H_GITHUB_SIGNATURE] = signature;
        req.h[SEED_WEBHOOK_H_GITHUB_DELIVERY] = delivery;
        break;
    case 1:
        req.h[SEED_WEBHOOK_H_GITEA_EVENT] = event ? event : "push";
        req.h[SEED_WEBHOOK_H_GITEA_SIGNATURE] = signature;
        req.h[SEED_WEBHOOK_H_GITEA_DELIVERY] = delivery;
        req.h[SEED_WEBHOOK_H_GITHUB_EVENT] = "push";
        break;
    case 2:
        req.h[SEED_WEBHOOK_H_FORGEJO_EVENT] = event ? event : "push";
        req.h[SEED_WEBHOOK_H_FORGEJO_SIGNATURE] = signature;
        req.h[SEED_WEBHOOK_H_FORGEJO_DELIVERY] = delivery;
        break;
    default:
        req.h[SEED_WEBHOOK_H_GITLAB_EVENT] = event ? event : "Push Hook";
        req.h[SEED_WEBHOOK_H_GITLAB_TOKEN] = (flags & 4) ? sig : SECRET;
        req.h[SEED_WEBHOOK_H_GITLAB_UUID] = delivery;
        break;
    }
    const char *secret = (flags & 0x80) ? NULL : SECRET;
    const char *ref = (flags & 0x40) ? NULL : tracked;

    seed_webhook_verdict v;
    if (seed_webhook_parse(&req, secret, ref, &v) < 0)
        abort(); /* no allocation fails under the fuzzer */
    switch (v.kind) {
    case SEED_WEBHOOK_PUSH:
        if (v.status != 202 || !v.ref || strncmp(v.ref, "refs/", 5) != 0 || !v.after ||
            !hex_string(v.after) || !secret || strspn(v.after, "0") == strlen(v.after))
            abort();
        break;
    case SEED_WEBHOOK_PING:
        if (v.status != 200 || !secret)
            abort();
        break;
    case SEED_WEBHOOK_IGNORED:
        if (v.status != 202 || !v.reason || !secret)
            abort();
        break;
    case SEED_WEBHOOK_REJECTED:
        if (!v.reason || (v.status != 400 && v.status != 401 && v.status != 403 && v.status != 415))
            abort();
        break;
    default:
        abort();
    }
    if (!v.provider || (v.delivery && strlen(v.delivery) > 128))
        abort();
    seed_webhook_verdict_clear(&v);
    free(event);
    free(sig);
    free(delivery);
    free(tracked);
    return 0;
}
