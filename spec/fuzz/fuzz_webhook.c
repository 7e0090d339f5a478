/* Standard Webhooks: the signature header and timestamp as any bytes, checked
 * against a message under any secret; and a message signed here must verify.
 * Invariants: verify never reads past a header (exactly-sized buffers), its
 * status is a known one, a forged header verifies only if it carries the real
 * signature, and sign-then-verify succeeds within the tolerance. */
#include "fuzz.h"
#include "webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    int64_t now = fuzz_int(&in), tol = fuzz_int(&in);
    struct kling_webhook_msg m;
    size_t slen, hlen;
    char *secret, *id, *ts, *body, *header, sig[KLING_WEBHOOK_SIG_SIZE];
    enum kling_webhook_status st, signed_st;

    secret = fuzz_bytes(&in, 128, &m.secret_len);
    id = fuzz_bytes(&in, 64, &m.id_len);
    ts = fuzz_bytes(&in, 32, &m.timestamp_len);
    header = fuzz_bytes(&in, 512, &hlen);
    body = fuzz_bytes(&in, 4096, &m.body_len);
    m.secret = secret;
    m.id = id;
    m.timestamp = ts;
    m.body = body;

    st = kling_webhook_verify(&m, header, hlen, now, tol);
    FUZZ_CHECK(st >= KLING_WH_OK && st <= KLING_WH_ECRYPTO);
    FUZZ_CHECK(kling_webhook_strerror(st) != NULL);
    signed_st = kling_webhook_sign(&m, sig);
    if (st == KLING_WH_OK) {
        FUZZ_CHECK(signed_st == KLING_WH_OK);
        FUZZ_CHECK(hlen >= strlen(sig)); /* it carries a whole "v1,<mac>" entry */
    }
    if (signed_st == KLING_WH_OK) {
        slen = strlen(sig);
        FUZZ_CHECK(slen == KLING_WEBHOOK_SIG_SIZE - 1 && memcmp(sig, "v1,", 3) == 0);
        st = kling_webhook_verify(&m, sig, slen, now, tol);
        FUZZ_CHECK(st != KLING_WH_MISMATCH && st != KLING_WH_NO_SIGNATURE);
        if (st == KLING_WH_OK) {
            /* One flipped character of the signature must be refused. */
            sig[3 + (size_t)(now & 31)] ^= 1;
            FUZZ_CHECK(kling_webhook_verify(&m, sig, slen, now, tol) != KLING_WH_OK);
        }
    }
    free(secret);
    free(id);
    free(ts);
    free(header);
    free(body);
    return 0;
}
