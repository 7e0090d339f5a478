/* JWT signing with any access key, secret, time and lifetime, and the token
 * parsed back. Invariants: a token fits kling_jwt_size(); it is three
 * base64url parts; the header is the fixed HS256 one; the claims are JSON that
 * starts with the iss claim; the signature is the HMAC of "header.claims"
 * under the secret. Out-of-range times are refused, never wrapped. */
#include "codec.h"
#include "fuzz.h"
#include "jwt.h"

static unsigned char *part(const char *s, size_t n, size_t *len) {
    unsigned char *b = malloc(kling_b64_decoded_max(n));
    if (b == NULL) {
        abort();
    }
    FUZZ_CHECK(kling_b64_decode(s, n, b, len, 1) == 0);
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    int64_t now = fuzz_int(&in), ttl = fuzz_int(&in);
    size_t aklen, sklen, cap, toklen = 0, hlen, clen, slen;
    char *ak = fuzz_bytes(&in, 4096, &aklen), *sk = fuzz_bytes(&in, 256, &sklen), *tok;
    const char *dot1, *dot2;
    unsigned char *h, *c, *sig, mac[KLING_SHA256_LEN];
    enum kling_jwt_status st;

    cap = kling_jwt_size(aklen);
    tok = malloc(cap ? cap : 1);
    if (tok == NULL) {
        abort();
    }
    st = kling_jwt_hs256(ak, aklen, (const unsigned char *)sk, sklen, now, ttl, tok, cap, &toklen);
    if (ttl <= 0 || now > INT64_MAX - ttl || now < INT64_MIN + KLING_JWT_SKEW_S) {
        FUZZ_CHECK(st == KLING_JWT_ERANGE);
    } else if (st == KLING_JWT_OK) {
        FUZZ_CHECK(toklen + 1 <= cap && tok[toklen] == '\0' && strlen(tok) == toklen);
        dot1 = memchr(tok, '.', toklen);
        FUZZ_CHECK(dot1 != NULL);
        dot2 = memchr(dot1 + 1, '.', toklen - (size_t)(dot1 + 1 - tok));
        FUZZ_CHECK(dot2 != NULL && memchr(dot2 + 1, '.', toklen - (size_t)(dot2 + 1 - tok)) == NULL);
        h = part(tok, (size_t)(dot1 - tok), &hlen);
        c = part(dot1 + 1, (size_t)(dot2 - dot1 - 1), &clen);
        sig = part(dot2 + 1, toklen - (size_t)(dot2 + 1 - tok), &slen);
        FUZZ_CHECK(hlen == 27 && memcmp(h, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27) == 0);
        FUZZ_CHECK(clen > 9 && memcmp(c, "{\"iss\":\"", 8) == 0 && c[clen - 1] == '}');
        FUZZ_CHECK(kling_hmac_sha256(sk, sklen, tok, (size_t)(dot2 - tok), mac) == 0);
        FUZZ_CHECK(slen == KLING_SHA256_LEN && memcmp(sig, mac, slen) == 0);
        free(h);
        free(c);
        free(sig);
    } else {
        FUZZ_CHECK(st == KLING_JWT_ENOMEM && cap == 0);
    }
    free(tok);
    free(ak);
    free(sk);
    return 0;
}
