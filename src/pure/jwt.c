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

/* 2 * 20 digits and a sign for the two numbers, plus the fixed JSON text. */
#define CLAIMS_FIXED (sizeof("{\"iss\":\"\",\"exp\":,\"nbf\":}") + 2 * 21)

/* Worst-case escaped length is 6 bytes per key byte; keys are short. */
#define AK_MAX (SIZE_MAX / 16)

size_t kling_jwt_size(size_t aklen) {
    if (aklen > AK_MAX) {
        return 0;
    }
    return kling_b64_encoded_len(sizeof(JWT_HEADER) - 1, 1) + 1 +
           kling_b64_encoded_len(6 * aklen + CLAIMS_FIXED, 1) + 1 +
           kling_b64_encoded_len(KLING_SHA256_LEN, 1) + 1;
}

enum kling_jwt_status kling_jwt_hs256(const char *ak, size_t aklen, const unsigned char *sk,
                                      size_t sklen, int64_t now_s, int64_t ttl_s, char *out,
                                      size_t cap, size_t *outlen) {
    size_t claims_cap, claims_len, pos;
    char *claims;
    unsigned char mac[KLING_SHA256_LEN];
    int n;

    *outlen = 0;
    if (ttl_s <= 0 || now_s > INT64_MAX - ttl_s || now_s < INT64_MIN + KLING_JWT_SKEW_S) {
        return KLING_JWT_ERANGE;
    }
    if (kling_jwt_size(aklen) == 0 || cap < kling_jwt_size(aklen)) {
        return KLING_JWT_ENOMEM;
    }
    claims_cap = json_escaped_len(ak, aklen) + CLAIMS_FIXED;
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

    pos = kling_b64_encode((const unsigned char *)JWT_HEADER, sizeof(JWT_HEADER) - 1, out, 1);
    out[pos++] = '.';
    pos += kling_b64_encode((const unsigned char *)claims, claims_len, out + pos, 1);
    free(claims);
    if (kling_hmac_sha256(sk, sklen, out, pos, mac) != 0) {
        out[0] = '\0';
        return KLING_JWT_ECRYPTO;
    }
    out[pos++] = '.';
    pos += kling_b64_encode(mac, sizeof(mac), out + pos, 1);
    OPENSSL_cleanse(mac, sizeof(mac));
    *outlen = pos;
    return KLING_JWT_OK;
}
