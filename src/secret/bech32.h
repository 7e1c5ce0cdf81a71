/* Bech32 (BIP 173) as age uses it: no length limit on the data part, all upper or all
 * lower case, the checksum computed over the lower-case string. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* hrp + "1" + data in 5-bit groups + checksum; upper selects the upper-case form.
 * Returns a malloc'd string or NULL when out of memory. */
char *seed_bech32_encode(const char *hrp, const uint8_t *data, size_t len, bool upper);

/* Decode s. The human-readable part is returned lower-cased in hrp (at most
 * hrp_size bytes with the NUL), the data in out (at most out_size bytes). Fails with
 * -EINVAL for a mixed-case string, a bad character or checksum, or non-zero padding,
 * and -ENOBUFS when hrp or data do not fit. */
int seed_bech32_decode(const char *s, char *hrp, size_t hrp_size, uint8_t *out, size_t out_size,
                       size_t *out_len);
