/* Standard Webhooks (https://www.standardwebhooks.com) as Kling's callbacks
 * use them: the signed content is "<id>.<timestamp>.<body>", the signature
 * "v1,<base64 HMAC-SHA256>", several space-separated during key rotation. */
#ifndef KLING_WEBHOOK_H
#define KLING_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

/* "v1," + 44 base64 characters + NUL. */
#define KLING_WEBHOOK_SIG_SIZE 48
#define KLING_WEBHOOK_SECRET_PREFIX "whsec_"

enum kling_webhook_status {
    KLING_WH_OK = 0,
    KLING_WH_BAD_SECRET,     /* empty, or "whsec_" followed by invalid base64 */
    KLING_WH_NO_ID,          /* empty webhook-id */
    KLING_WH_BAD_TIMESTAMP,  /* not a decimal number of seconds */
    KLING_WH_TOO_OLD,        /* older than the tolerance */
    KLING_WH_TOO_NEW,        /* further in the future than the tolerance */
    KLING_WH_NO_SIGNATURE,   /* no "v1," entry in the signature header */
    KLING_WH_MISMATCH,       /* no v1 entry matches */
    KLING_WH_ENOMEM,
    KLING_WH_ECRYPTO
};

struct kling_webhook_msg {
    const char *secret;
    size_t secret_len;
    const char *id;
    size_t id_len;
    const char *timestamp;   /* the header text exactly as received */
    size_t timestamp_len;
    const char *body;        /* the raw body, unchanged */
    size_t body_len;
};

/* Writes "v1,<base64>" (NUL-terminated) into sig. */
enum kling_webhook_status kling_webhook_sign(const struct kling_webhook_msg *m,
                                             char sig[KLING_WEBHOOK_SIG_SIZE]);

/* Checks the timestamp against now_s +- tolerance_s and the signature header
 * (space-separated "version,signature" entries; only v1 counts) in
 * constant time. */
enum kling_webhook_status kling_webhook_verify(const struct kling_webhook_msg *m,
                                               const char *signature, size_t signature_len,
                                               int64_t now_s, int64_t tolerance_s);

/* Why a check failed, for the caller's error message (never the secret). */
const char *kling_webhook_strerror(enum kling_webhook_status st);

#endif
