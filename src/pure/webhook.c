/* Standard Webhooks signing and verification. The key is the base64-decoded
 * part after "whsec_", else the secret's raw bytes; it lives only for the
 * duration of one call and is wiped afterwards. */
#include "webhook.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "codec.h"

const char *kling_webhook_strerror(enum kling_webhook_status st) {
    switch (st) {
    case KLING_WH_OK: return "ok";
    case KLING_WH_BAD_SECRET: return "secret must be non-empty (after whsec_, valid base64)";
    case KLING_WH_NO_ID: return "webhook-id is missing";
    case KLING_WH_BAD_TIMESTAMP: return "webhook-timestamp must be integer seconds";
    case KLING_WH_TOO_OLD: return "webhook-timestamp is too old";
    case KLING_WH_TOO_NEW: return "webhook-timestamp is too far in the future";
    case KLING_WH_NO_SIGNATURE: return "webhook-signature has no v1 signature";
    case KLING_WH_MISMATCH: return "webhook-signature does not match";
    case KLING_WH_ENOMEM: return "out of memory";
    case KLING_WH_ECRYPTO: return "HMAC-SHA256 failed in libcrypto";
    }
    return "unknown error";
}

/* HMAC-SHA256(key, id "." timestamp "." body) into sig as "v1,<base64>". */
static enum kling_webhook_status sign(const struct kling_webhook_msg *m,
                                      char sig[KLING_WEBHOOK_SIG_SIZE]) {
    static const size_t plen = sizeof(KLING_WEBHOOK_SECRET_PREFIX) - 1;
    unsigned char mac[KLING_SHA256_LEN];
    unsigned char *key = NULL;
    const void *k = m->secret;
    size_t klen = m->secret_len;
    struct kling_span parts[5];
    int rc;

    if (m->secret_len == 0) return KLING_WH_BAD_SECRET;
    if (m->secret_len > plen && memcmp(m->secret, KLING_WEBHOOK_SECRET_PREFIX, plen) == 0) {
        key = malloc(kling_b64_decoded_max(m->secret_len - plen));
        if (key == NULL) return KLING_WH_ENOMEM;
        if (kling_b64_decode(m->secret + plen, m->secret_len - plen, key, &klen, 0) != 0 ||
            klen == 0) {
            free(key);
            return KLING_WH_BAD_SECRET;
        }
        k = key;
    }
    parts[0].p = m->id;
    parts[0].n = m->id_len;
    parts[1].p = ".";
    parts[1].n = 1;
    parts[2].p = m->timestamp;
    parts[2].n = m->timestamp_len;
    parts[3].p = ".";
    parts[3].n = 1;
    parts[4].p = m->body;
    parts[4].n = m->body_len;
    rc = kling_hmac_sha256_parts(k, klen, parts, 5, mac);
    if (key != NULL) {
        OPENSSL_cleanse(key, klen);
        free(key);
    }
    if (rc != 0) return KLING_WH_ECRYPTO;
    memcpy(sig, "v1,", 3);
    kling_b64_encode(mac, sizeof(mac), sig + 3, 0);
    OPENSSL_cleanse(mac, sizeof(mac));
    return KLING_WH_OK;
}

enum kling_webhook_status kling_webhook_sign(const struct kling_webhook_msg *m,
                                             char sig[KLING_WEBHOOK_SIG_SIZE]) {
    if (m->id_len == 0) return KLING_WH_NO_ID;
    if (m->timestamp_len == 0) return KLING_WH_BAD_TIMESTAMP;
    return sign(m, sig);
}

/* Integer seconds, digits only, at most 18 of them (fits in int64). */
static int parse_timestamp(const char *s, size_t n, int64_t *out) {
    size_t i;
    int64_t v = 0;
    if (n == 0 || n > 18) return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

enum kling_webhook_status kling_webhook_verify(const struct kling_webhook_msg *m,
                                               const char *signature, size_t signature_len,
                                               int64_t now_s, int64_t tolerance_s) {
    char expected[KLING_WEBHOOK_SIG_SIZE];
    size_t i = 0, elen;
    int64_t ts;
    int seen = 0, match = 0;
    enum kling_webhook_status st;

    if (m->id_len == 0) return KLING_WH_NO_ID;
    if (parse_timestamp(m->timestamp, m->timestamp_len, &ts) != 0) return KLING_WH_BAD_TIMESTAMP;
    /* Sign first: a bad secret is reported whatever the timestamp says. */
    st = sign(m, expected);
    if (st != KLING_WH_OK) return st;
    if (tolerance_s < 0) tolerance_s = 0;
    /* ts is in [0, 10^18): compare without overflowing for any now_s. */
    if (now_s > ts && now_s - ts > tolerance_s) {
        st = KLING_WH_TOO_OLD;
    } else if (ts > now_s && now_s < ts - tolerance_s) {
        st = KLING_WH_TOO_NEW;
    }
    if (st != KLING_WH_OK) {
        OPENSSL_cleanse(expected, sizeof(expected));
        return st;
    }
    elen = strlen(expected);
    while (i < signature_len) {
        size_t start, len;
        while (i < signature_len && signature[i] == ' ') i++;
        start = i;
        while (i < signature_len && signature[i] != ' ') i++;
        len = i - start;
        if (len > 3 && memcmp(signature + start, "v1,", 3) == 0) {
            seen = 1;
            /* Check every entry: the time spent does not tell which matched. */
            match |= kling_ct_equal(signature + start, len, expected, elen);
        }
    }
    OPENSSL_cleanse(expected, sizeof(expected));
    if (!seen) return KLING_WH_NO_SIGNATURE;
    return match ? KLING_WH_OK : KLING_WH_MISMATCH;
}
