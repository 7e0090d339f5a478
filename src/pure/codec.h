/* Byte codecs and primitives the security core is built from: base64
 * (standard and url-safe), hex, SHA-256, HMAC-SHA256 and a constant-time
 * compare. Pure: no I/O, no global state; OpenSSL libcrypto does the hashing. */
#ifndef KLING_CODEC_H
#define KLING_CODEC_H

#include <stddef.h>

#define KLING_SHA256_LEN 32

/* Length of the base64 text for n bytes (without the NUL). Standard base64
 * pads to a multiple of 4; the url-safe form never pads (as JWT wants).
 * Returns 0 when the length would overflow size_t. */
size_t kling_b64_encoded_len(size_t n, int url);

/* Encode n bytes into out (room for kling_b64_encoded_len(n, url) + 1 bytes);
 * out is NUL-terminated. Returns the text length. */
size_t kling_b64_encode(const unsigned char *in, size_t n, char *out, int url);

/* Largest decoded length for n text bytes: out needs this much room. */
size_t kling_b64_decoded_max(size_t n);

/* Decode n bytes of base64 text. Standard: '=' padding is optional but when
 * present must complete the last quantum; url-safe: the '-' '_' alphabet,
 * padding tolerated. No whitespace. Returns 0 and sets *outlen, or -1 when
 * the text is not valid base64 of that alphabet. */
int kling_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen, int url);

/* Lower-case hex of n bytes into out (room for 2n + 1); NUL-terminated. */
void kling_hex(const unsigned char *in, size_t n, char *out);

/* SHA-256 of n bytes. Returns 0, or -1 when libcrypto fails. */
int kling_sha256(const void *data, size_t n, unsigned char out[KLING_SHA256_LEN]);

/* One piece of a message that is hashed without being concatenated first. */
struct kling_span {
    const void *p;
    size_t n;
};

/* HMAC-SHA256 over the concatenation of nparts spans. An empty key is allowed.
 * Returns 0, or -1 when libcrypto fails. */
int kling_hmac_sha256_parts(const void *key, size_t klen, const struct kling_span *parts,
                            size_t nparts, unsigned char out[KLING_SHA256_LEN]);

/* HMAC-SHA256 of one contiguous message. */
int kling_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                      unsigned char out[KLING_SHA256_LEN]);

/* 1 when a and b hold the same bytes. The time taken depends only on the
 * lengths (which are not secret here: MACs have a fixed length). */
int kling_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
