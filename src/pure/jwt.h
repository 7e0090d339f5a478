/* HS256 JSON Web Tokens as Kling's official API wants them: header
 * {"alg":"HS256","typ":"JWT"}, claims {"iss":<access key>,"exp":now+ttl,
 * "nbf":now-5} in that key order, signed with the secret key. */
#ifndef KLING_JWT_H
#define KLING_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Seconds the token is valid before now_s, for clocks a little behind ours. */
#define KLING_JWT_SKEW_S 5

enum kling_jwt_status {
    KLING_JWT_OK = 0,
    KLING_JWT_ENOMEM,   /* allocation failed, or out is smaller than kling_jwt_size() */
    KLING_JWT_ERANGE,   /* now_s + ttl_s or now_s - 5 overflows, or ttl_s <= 0 */
    KLING_JWT_ECRYPTO   /* libcrypto failed */
};

/* Room a token for an access key of aklen bytes needs, NUL included; 0 when
 * the key is too long to sign. */
size_t kling_jwt_size(size_t aklen);

/* Writes the token, NUL-terminated, into out (cap bytes, at least
 * kling_jwt_size(aklen)) and its length into *outlen. The access key is
 * JSON-escaped. The caller owns out, so nothing is left to free. */
enum kling_jwt_status kling_jwt_hs256(const char *ak, size_t aklen, const unsigned char *sk,
                                      size_t sklen, int64_t now_s, int64_t ttl_s, char *out,
                                      size_t cap, size_t *outlen);

/* A short English description of a status, for error messages. */
const char *kling_jwt_strerror(enum kling_jwt_status st);

#endif
