/* The node key sealed to a TPM 2.0 through tpm2-tss's ESAPI. */
#include "node/tpm.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "base/macro.h"

const char *seed_tpm_tcti(void) {
    const char *e = getenv("SEED_TPM_TCTI");
    if (e && *e)
        return streq(e, "none") ? NULL : e;
    return access("/dev/tpmrm0", R_OK | W_OK) == 0 ? "device:/dev/tpmrm0" : NULL;
}

typedef struct tpm {
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *esys;
    ESYS_TR primary;
} tpm;

static void tpm_close(tpm *t) {
    if (t->esys && t->primary != ESYS_TR_NONE)
        Esys_FlushContext(t->esys, t->primary);
    if (t->esys)
        Esys_Finalize(&t->esys);
    if (t->tcti)
        Tss2_TctiLdr_Finalize(&t->tcti);
}

static int tpm_fail(seed_error **err, const char *what, TSS2_RC rc) {
    return seed_error_set(err, EIO, "TPM: %s: %s", what, Tss2_RC_Decode(rc));
}

/* Connect, start the TPM if nobody has, and make the primary storage key. */
static int tpm_open(const char *conf, tpm *t, seed_error **err) {
    *t = (tpm){.primary = ESYS_TR_NONE};
    TSS2_RC rc = Tss2_TctiLdr_Initialize(conf, &t->tcti);
    if (rc != TSS2_RC_SUCCESS)
        return seed_error_set(err, ENODEV, "TPM: cannot reach %s: %s", conf, Tss2_RC_Decode(rc));
    if ((rc = Esys_Initialize(&t->esys, t->tcti, NULL)) != TSS2_RC_SUCCESS)
        return tpm_fail(err, "initialising", rc);
    rc = Esys_Startup(t->esys, TPM2_SU_CLEAR);
    if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE)
        return tpm_fail(err, "startup", rc);

    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_PUBLIC pub = {
        .publicArea =
            {
                .type = TPM2_ALG_ECC,
                .nameAlg = TPM2_ALG_SHA256,
                .objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT |
                                    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_NODA,
                .parameters.eccDetail =
                    {
                        .symmetric = {.algorithm = TPM2_ALG_AES,
                                      .keyBits.aes = 128,
                                      .mode.aes = TPM2_ALG_CFB},
                        .scheme = {.scheme = TPM2_ALG_NULL},
                        .curveID = TPM2_ECC_NIST_P256,
                        .kdf = {.scheme = TPM2_ALG_NULL},
                    },
            },
    };
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                            &pub, &outside, &pcrs, &t->primary, NULL, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(err, "creating the primary key (owner hierarchy, empty authorisation)", rc);
    return 0;
}

int seed_tpm_seal(const char *conf, const uint8_t key[32], uint8_t **ret, size_t *ret_len, seed_error **err) {
    tpm t;
    int r = tpm_open(conf, &t, err);
    if (r < 0) {
        tpm_close(&t);
        return r;
    }
    TPM2B_SENSITIVE_CREATE sens = {.sensitive.data.size = 32};
    memcpy(sens.sensitive.data.buffer, key, 32);
    TPM2B_PUBLIC tmpl = {
        .publicArea =
            {
                .type = TPM2_ALG_KEYEDHASH,
                .nameAlg = TPM2_ALG_SHA256,
                .objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_FIXEDTPM |
                                    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA,
                .parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
            },
    };
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TPM2B_PRIVATE *priv = NULL;
    TPM2B_PUBLIC *pub = NULL;
    TSS2_RC rc = Esys_Create(t.esys, t.primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                             &outside, &pcrs, &priv, &pub, NULL, NULL, NULL);
    OPENSSL_cleanse(&sens, sizeof(sens));
    if (rc != TSS2_RC_SUCCESS) {
        tpm_close(&t);
        return tpm_fail(err, "sealing the node key", rc);
    }
    size_t cap = sizeof(*priv) + sizeof(*pub), off = 0;
    uint8_t *blob = malloc(cap);
    if (!blob)
        r = -ENOMEM;
    else if ((rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, blob, cap, &off)) != TSS2_RC_SUCCESS ||
             (rc = Tss2_MU_TPM2B_PRIVATE_Marshal(priv, blob, cap, &off)) != TSS2_RC_SUCCESS)
        r = tpm_fail(err, "marshalling the sealed object", rc);
    Esys_Free(priv);
    Esys_Free(pub);
    tpm_close(&t);
    if (r < 0) {
        free(blob);
        return r;
    }
    *ret = blob;
    *ret_len = off;
    return 0;
}

int seed_tpm_unseal(const char *conf, const uint8_t *blob, size_t len, uint8_t key[32], seed_error **err) {
    TPM2B_PUBLIC pub = {0};
    TPM2B_PRIVATE priv = {0};
    size_t off = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob, len, &off, &pub) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob, len, &off, &priv) != TSS2_RC_SUCCESS || off != len)
        return seed_error_set(err, EBADMSG, "TPM: the sealed node key is not a TPM object");
    tpm t;
    int r = tpm_open(conf, &t, err);
    if (r < 0) {
        tpm_close(&t);
        return r;
    }
    ESYS_TR obj = ESYS_TR_NONE;
    TPM2B_SENSITIVE_DATA *data = NULL;
    TSS2_RC rc =
        Esys_Load(t.esys, t.primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &obj);
    if (rc != TSS2_RC_SUCCESS)
        r = seed_error_set(
            err, EKEYREJECTED,
            "TPM: the sealed node key does not load on this TPM (%s): it was sealed by another one",
            Tss2_RC_Decode(rc));
    else if ((rc = Esys_Unseal(t.esys, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &data)) !=
             TSS2_RC_SUCCESS)
        r = tpm_fail(err, "unsealing the node key", rc);
    else if (data->size != 32)
        r = seed_error_set(err, EBADMSG, "TPM: the sealed node key is %u bytes (expected 32)", data->size);
    else
        memcpy(key, data->buffer, 32);
    if (data) {
        OPENSSL_cleanse(data, sizeof(*data));
        Esys_Free(data);
    }
    if (obj != ESYS_TR_NONE)
        Esys_FlushContext(t.esys, obj);
    tpm_close(&t);
    return r;
}
