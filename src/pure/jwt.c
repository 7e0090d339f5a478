/* HS256 JWT for the official Kling API. The JSON is written by hand so that
 * the claim order is fixed and the access key is escaped exactly once. */
#include "jwt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "codec.h"

static const char JWT_HEADER[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Bytes the JSON string body of s takes once escaped (without quotes). */
static size_t json_escaped_len(const char *s, size_t n) {
    size_t i, len = 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') {
            len += 2;
        } else if (c < 0x20) {
            len += 6;
        } else {
            len += 1;
        }
    }
    return len;
}

static size_t json_escape(const char *s, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    size_t i, o = 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e = 0;
        switch (c) {
        case '"': e = '"'; break;
        case '\\': e = '\\'; break;
        case '\b': e = 'b'; break;
        case '\f': e = 'f'; break;
        case '\n': e = 'n'; break;
        case '\r': e = 'r'; break;
        case '\t': e = 't'; break;
        default: break;
        }
        if (e) {
            out[o++] = '\\';
            out[o++] = e;
        } else if (c < 0x20) {
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = digits[c >> 4];
            out[o++] = digits[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

const char *kling_jwt_strerror(enum kling_jwt_status st) {
    switch (st) {
    case KLING_JWT_OK: return "ok";
    case KLING_JWT_ENOMEM: return "out of memory";
    case KLING_JWT_ERANGE: return "ttl_s must be positive and now_s + ttl_s must fit in 64 bits";
    case KLING_JWT_ECRYPTO: return "HMAC-SHA256 failed in libcrypto";
    }
    return "unknown error";
}

enum kling_jwt_status kling_jwt_hs256(const char *ak, size_t aklen, const unsigned char *sk,
                                      size_t sklen, int64_t now_s, int64_t ttl_s, char **out,
                                      size_t *outlen) {
    /* 2 * 20 digits and sign for the two numbers, plus the fixed JSON text. */
    enum { CLAIMS_FIXED = sizeof("{\"iss\":\"\",\"exp\":,\"nbf\":}") + 2 * 21 };
    size_t esc, claims_cap, claims_len, hlen, plen, total, pos;
    char *claims = NULL, *tok = NULL;
    unsigned char mac[KLING_SHA256_LEN];
    int n;

    *out = NULL;
    *outlen = 0;
    if (ttl_s <= 0 || now_s > INT64_MAX - ttl_s || now_s < INT64_MIN + KLING_JWT_SKEW_S) {
        return KLING_JWT_ERANGE;
    }
    esc = json_escaped_len(ak, aklen);
    if (esc > SIZE_MAX / 4 - CLAIMS_FIXED) { /* keeps the base64 sizes below in range */
        return KLING_JWT_ENOMEM;
    }
    claims_cap = esc + CLAIMS_FIXED;
    claims = malloc(claims_cap);
    if (claims == NULL) {
        return KLING_JWT_ENOMEM;
    }
    memcpy(claims, "{\"iss\":\"", 8);
    pos = 8 + json_escape(ak, aklen, claims + 8);
    n = snprintf(claims + pos, claims_cap - pos, "\",\"exp\":%" PRId64 ",\"nbf\":%" PRId64 "}",
                 now_s + ttl_s, now_s - KLING_JWT_SKEW_S);
    if (n < 0 || (size_t)n >= claims_cap - pos) {
        free(claims);
        return KLING_JWT_ENOMEM;
    }
    claims_len = pos + (size_t)n;

    hlen = kling_b64_encoded_len(sizeof(JWT_HEADER) - 1, 1);
    plen = kling_b64_encoded_len(claims_len, 1);
    total = hlen + 1 + plen + 1 + kling_b64_encoded_len(KLING_SHA256_LEN, 1);
    tok = malloc(total + 1);
    if (tok == NULL) {
        free(claims);
        return KLING_JWT_ENOMEM;
    }
    pos = kling_b64_encode((const unsigned char *)JWT_HEADER, sizeof(JWT_HEADER) - 1, tok, 1);
    tok[pos++] = '.';
    pos += kling_b64_encode((const unsigned char *)claims, claims_len, tok + pos, 1);
    free(claims);
    if (kling_hmac_sha256(sk, sklen, tok, pos, mac) != 0) {
        free(tok);
        return KLING_JWT_ECRYPTO;
    }
    tok[pos++] = '.';
    pos += kling_b64_encode(mac, sizeof(mac), tok + pos, 1);
    OPENSSL_cleanse(mac, sizeof(mac));
    *out = tok;
    *outlen = pos;
    return KLING_JWT_OK;
}
