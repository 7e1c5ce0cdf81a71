/* UTF-8 validation per RFC 3629. */
#include "base/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if the bytes there are not one.
 * Overlong forms, surrogates and code points above U+10FFFF are invalid. */
static size_t valid_at(const unsigned char *p, size_t n) {
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp, min;
    if ((c & 0xe0) == 0xc0) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool seed_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = p[i] ? valid_at(p + i, n - i) : 0;
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

size_t seed_utf8_sanitize(const char *s, size_t n, char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = p[i] ? valid_at(p + i, n - i) : 0;
        if (k == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, p + i, k);
        o += k;
        i += k;
    }
    out[o] = 0;
    return o;
}

char *seed_utf8_dup(const char *s) {
    size_t n = strlen(s);
    if (seed_utf8_valid(s, n))
        return strdup(s);
    char *out = malloc(3 * n + 1);
    if (out)
        seed_utf8_sanitize(s, n, out);
    return out;
}

char *seed_utf8_vasprintf(const char *fmt, va_list ap) {
    char *raw = NULL;
    if (vasprintf(&raw, fmt, ap) < 0)
        return NULL;
    if (seed_utf8_valid(raw, strlen(raw)))
        return raw;
    char *out = seed_utf8_dup(raw);
    free(raw);
    return out;
}
