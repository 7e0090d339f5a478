/* Base64, hex, SHA-256, HMAC-SHA256 and constant-time compare over libcrypto.
 * Base64 is written by hand: OpenSSL's EVP_EncodeBlock has no url-safe
 * alphabet and its decoder accepts whitespace and mis-reports lengths. */
#include "codec.h"

#include <stdint.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t kling_b64_encoded_len(size_t n, int url) {
    size_t full = n / 3, rest = n % 3;
    if (full > (SIZE_MAX - 5) / 4) {
        return 0;
    }
    if (url) {
        return full * 4 + (rest ? rest + 1 : 0);
    }
    return full * 4 + (rest ? 4 : 0);
}

size_t kling_b64_encode(const unsigned char *in, size_t n, char *out, int url) {
    const char *abc = url ? B64_URL : B64_STD;
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        if (!url) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        if (!url) {
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return o;
}

size_t kling_b64_decoded_max(size_t n) {
    return n / 4 * 3 + 3;
}

/* Value of one base64 character, or -1 when it is outside the alphabet. */
static int b64_value(unsigned char c, int url) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url ? '-' : '+')) return 62;
    if (c == (url ? '_' : '/')) return 63;
    return -1;
}

int kling_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen, int url) {
    size_t pad = 0, i, o = 0;
    uint32_t acc = 0;
    int bits = 0;
    /* Padding may only close the text and only complete the last quantum. */
    while (pad < n && pad < 2 && in[n - 1 - pad] == '=') {
        pad++;
    }
    if (pad && n % 4 != 0) {
        return -1;
    }
    n -= pad;
    if (n % 4 == 1) {
        return -1; /* one character carries only 6 bits: never a whole byte */
    }
    for (i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i], url);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
#ifdef KLING_FUZZ_HARNESS_CHECK
    /* A deliberate off-by-one, compiled only into spec/fuzz's harness check
     * (fuzz_base64_broken): the leftover bits are stored as one byte more. */
    if (bits > 0) {
        out[o] = (unsigned char)acc;
    }
#endif
    *outlen = o;
    return 0;
}

void kling_hex(const unsigned char *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int kling_sha256(const void *data, size_t n, unsigned char out[KLING_SHA256_LEN]) {
    unsigned int len = 0;
    if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1 || len != KLING_SHA256_LEN) {
        return -1;
    }
    return 0;
}

int kling_hmac_sha256_parts(const void *key, size_t klen, const struct kling_span *parts,
                            size_t nparts, unsigned char out[KLING_SHA256_LEN]) {
    static const unsigned char empty_key[1] = {0};
    char digest[] = "SHA256";
    OSSL_PARAM params[2];
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx = NULL;
    size_t outl = 0, i;
    int rc = -1;

    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        return -1;
    }
    ctx = EVP_MAC_CTX_new(mac);
    if (ctx == NULL) {
        goto done;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    /* A NULL key would mean "keep the previous key": pass a real pointer. */
    if (EVP_MAC_init(ctx, klen ? key : empty_key, klen, params) != 1) {
        goto done;
    }
    for (i = 0; i < nparts; i++) {
        if (parts[i].n && EVP_MAC_update(ctx, parts[i].p, parts[i].n) != 1) {
            goto done;
        }
    }
    if (EVP_MAC_final(ctx, out, &outl, KLING_SHA256_LEN) != 1 || outl != KLING_SHA256_LEN) {
        goto done;
    }
    rc = 0;
done:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

int kling_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                      unsigned char out[KLING_SHA256_LEN]) {
    struct kling_span part;
    part.p = msg;
    part.n = mlen;
    return kling_hmac_sha256_parts(key, klen, &part, 1, out);
}

int kling_ct_equal(const void *a, size_t alen, const void *b, size_t blen) {
    if (alen != blen) {
        return 0;
    }
    if (alen == 0) {
        return 1;
    }
    return CRYPTO_memcmp(a, b, alen) == 0;
}
