/* Bech32 encoding and decoding (BIP 173, without its 90-character limit). */
#include "secret/bech32.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t polymod_step(uint32_t chk, uint8_t v) {
    static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
    uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (int i = 0; i < 5; i++)
        if ((top >> i) & 1)
            chk ^= gen[i];
    return chk;
}

/* The checksum state after the expanded human-readable part (lower case). */
static uint32_t polymod_hrp(const char *hrp, size_t n) {
    uint32_t chk = 1;
    for (size_t i = 0; i < n; i++)
        chk = polymod_step(chk, (uint8_t)(tolower((unsigned char)hrp[i]) >> 5));
    chk = polymod_step(chk, 0);
    for (size_t i = 0; i < n; i++)
        chk = polymod_step(chk, (uint8_t)(tolower((unsigned char)hrp[i]) & 31));
    return chk;
}

char *seed_bech32_encode(const char *hrp, const uint8_t *data, size_t len, bool upper) {
    size_t hlen = strlen(hrp), groups = (len * 8 + 4) / 5;
    char *out = malloc(hlen + 1 + groups + 6 + 1);
    if (!out)
        return NULL;
    uint8_t *v = malloc(groups + 6);
    if (!v) {
        free(out);
        return NULL;
    }
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            v[n++] = (acc >> bits) & 31;
        }
        acc &= (1u << bits) - 1;
    }
    if (bits)
        v[n++] = (uint8_t)((acc << (5 - bits)) & 31);
    uint32_t chk = polymod_hrp(hrp, hlen);
    for (size_t i = 0; i < n; i++)
        chk = polymod_step(chk, v[i]);
    for (int i = 0; i < 6; i++)
        chk = polymod_step(chk, 0);
    chk ^= 1;
    for (int i = 0; i < 6; i++)
        v[n++] = (chk >> (5 * (5 - i))) & 31;

    size_t o = 0;
    for (size_t i = 0; i < hlen; i++)
        out[o++] = upper ? (char)toupper((unsigned char)hrp[i]) : (char)tolower((unsigned char)hrp[i]);
    out[o++] = '1';
    for (size_t i = 0; i < n; i++)
        out[o++] = upper ? (char)toupper((unsigned char)charset[v[i]]) : charset[v[i]];
    out[o] = 0;
    free(v);
    return out;
}

int seed_bech32_decode(const char *s, char *hrp, size_t hrp_size, uint8_t *out, size_t out_size,
                       size_t *out_len) {
    size_t len = strlen(s);
    bool lower = false, upper = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126)
            return -EINVAL;
        lower |= islower(c) != 0;
        upper |= isupper(c) != 0;
    }
    if (lower && upper)
        return -EINVAL;
    const char *sep = strrchr(s, '1');
    if (!sep || sep == s || (size_t)(s + len - sep) < 7)
        return -EINVAL;
    size_t hlen = (size_t)(sep - s);
    if (hlen + 1 > hrp_size)
        return -ENOBUFS;
    for (size_t i = 0; i < hlen; i++)
        hrp[i] = (char)tolower((unsigned char)s[i]);
    hrp[hlen] = 0;

    uint32_t chk = polymod_hrp(s, hlen);
    size_t n_data = (size_t)(s + len - sep - 1); /* 5-bit groups, checksum included */
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n_data; i++) {
        const char *p = strchr(charset, tolower((unsigned char)sep[1 + i]));
        if (!p || !*p)
            return -EINVAL;
        uint8_t v = (uint8_t)(p - charset);
        chk = polymod_step(chk, v);
        if (i >= n_data - 6)
            continue;
        acc = (acc << 5) | v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (o >= out_size)
                return -ENOBUFS;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (chk != 1)
        return -EINVAL;
    /* The padding is fewer than five bits, all zero. */
    if (bits >= 5 || acc != 0)
        return -EINVAL;
    *out_len = o;
    return 0;
}
