/* HS256 JWT against vectors made independently with python3:
 *   h = b'{"alg":"HS256","typ":"JWT"}'
 *   p = ('{"iss":' + json.dumps(ak) + ',"exp":%d,"nbf":%d}' % (now+ttl, now-5)).encode()
 *   si = b64u(h) + '.' + b64u(p)        # b64u = urlsafe_b64encode without '='
 *   token = si + '.' + b64u(hmac.new(sk, si.encode(), hashlib.sha256).digest())
 * with now = 1700000000 and ttl = 1800. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "jwt.h"

static void check_token(const char *ak, const char *sk, int64_t now, int64_t ttl,
                        const char *want) {
    size_t cap = kling_jwt_size(strlen(ak)), len = 0;
    char *tok = malloc(cap);
    if (tok == NULL) abort();
    CHECK_INT(kling_jwt_hs256(ak, strlen(ak), (const unsigned char *)sk, strlen(sk), now, ttl, tok,
                              cap, &len),
              KLING_JWT_OK);
    CHECK_STR(tok, want);
    CHECK_INT(len, strlen(tok));
    CHECK(len < cap);
    /* One byte short of the documented room is refused, not overrun. */
    CHECK_INT(kling_jwt_hs256(ak, strlen(ak), (const unsigned char *)sk, strlen(sk), now, ttl, tok,
                              cap - 1, &len),
              KLING_JWT_ENOMEM);
    free(tok);
}

static void test_vectors(void) {
    /* ak = "AKdemo1234567890", sk = b"SKdemo-secret-0987654321" */
    check_token("AKdemo1234567890", "SKdemo-secret-0987654321", 1700000000, 1800,
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                "eyJpc3MiOiJBS2RlbW8xMjM0NTY3ODkwIiwiZXhwIjoxNzAwMDAxODAwLCJuYmYiOjE2OTk5OTk5OTV9."
                "z0NeTsM8L8SjT49sotlirvFN_G-iZYn_iupJWB3HZUg");
    /* ak = 'we"ird\\key\n\x01' (quote, backslash, newline, control byte), sk = b"s":
     * the claims carry "we\"ird\\key\n\u0001". */
    check_token("we\"ird\\key\n\x01", "s", 1700000000, 1800,
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                "eyJpc3MiOiJ3ZVwiaXJkXFxrZXlcblx1MDAwMSIsImV4cCI6MTcwMDAwMTgwMCwibmJmIjoxNjk5OTk5OTk1fQ."
                "h5DvmSIjeWfkdwr8gFRfLcGoq9FWPhBOyyGqtCj-pfg");
}

static enum kling_jwt_status sign(const char *ak, const char *sk, int64_t now, int64_t ttl,
                                  char *buf, size_t cap, size_t *len) {
    return kling_jwt_hs256(ak, strlen(ak), (const unsigned char *)sk, strlen(sk), now, ttl, buf,
                           cap, len);
}

static void test_range(void) {
    char buf[512];
    size_t len = 99;
    CHECK_INT(sign("a", "s", 0, 0, buf, sizeof(buf), &len), KLING_JWT_ERANGE);
    CHECK_INT(len, 0);
    CHECK_INT(sign("a", "s", 0, -1, buf, sizeof(buf), &len), KLING_JWT_ERANGE);
    CHECK_INT(sign("a", "s", INT64_MAX - 10, 11, buf, sizeof(buf), &len), KLING_JWT_ERANGE);
    CHECK_INT(sign("a", "s", INT64_MIN + 4, 1, buf, sizeof(buf), &len), KLING_JWT_ERANGE);
    /* The extremes that do fit produce a token (the widest numbers). */
    CHECK_INT(sign("a", "s", INT64_MAX - 10, 10, buf, sizeof(buf), &len), KLING_JWT_OK);
    CHECK_INT(sign("", "", INT64_MIN + 5, 1, buf, sizeof(buf), &len), KLING_JWT_OK);
    CHECK(len == strlen(buf) && strchr(buf, '.') != NULL);
    /* Every key byte escaped to \u00XX still fits the documented room. */
    {
        char ak[64], *tok;
        size_t cap = kling_jwt_size(sizeof(ak));
        memset(ak, 1, sizeof(ak));
        tok = malloc(cap);
        if (tok == NULL) abort();
        CHECK_INT(kling_jwt_hs256(ak, sizeof(ak), (const unsigned char *)"s", 1, INT64_MIN + 5,
                                  INT64_MAX, tok, cap, &len),
                  KLING_JWT_OK);
        CHECK(len + 1 <= cap);
        free(tok);
    }
    CHECK_INT(kling_jwt_size(SIZE_MAX), 0);
    CHECK(strstr(kling_jwt_strerror(KLING_JWT_ERANGE), "ttl_s") != NULL);
}

int main(void) {
    test_vectors();
    test_range();
    return check_done();
}
