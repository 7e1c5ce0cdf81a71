/* Sealing the node key to a TPM 2.0 (tpm2-tss ESAPI): a keyed-hash object holding the
 * 32 bytes, created under a primary ECC P-256 storage key of the owner hierarchy
 * (made again from its fixed template at every use, never stored), so the sealed blob
 * only opens on the TPM that made it. The TPM is reached through a TCTI: the
 * SEED_TPM_TCTI environment variable ("swtpm:path=...", "device:/dev/tpmrm0"; "none"
 * for no TPM), else /dev/tpmrm0 when it exists. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* The TCTI configuration to use, or NULL when the node has no TPM. */
const char *seed_tpm_tcti(void);

/* Seal key on the TPM: a malloc'd blob (the object's public and private parts). */
int seed_tpm_seal(const char *tcti, const uint8_t key[32], uint8_t **ret, size_t *ret_len, seed_error **err);
/* Unseal a blob from seed_tpm_seal on the same TPM. */
int seed_tpm_unseal(const char *tcti, const uint8_t *blob, size_t len, uint8_t key[32], seed_error **err);
