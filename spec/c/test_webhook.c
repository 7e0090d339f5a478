/* Standard Webhooks signing and verification. Expected signatures were made
 * independently with python3:
 *   key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
 *   "v1," + base64.b64encode(hmac.new(key, f"{id}.{ts}.{body}".encode(), hashlib.sha256).digest())
 * The first vector is also the Standard Webhooks reference example. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "webhook.h"

#define SECRET1 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define ID1 "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define TS1 "1614265330"
#define BODY1 "{\"test\": 2432232314}"
#define SIG1 "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

#define SECRET2 "whsec_dGhpcyBpcyBhIHNlY3JldCBrZXkgZm9yIHJvdGF0aW9u"
#define BODY2 "{\"task_id\":\"t1\",\"task_status\":\"succeed\"}"
#define SIG2 "v1,mSVatn6eEUaZLcQ48tZUhAtBMhx6umIXqPopRDlacgE="
#define SECRET3 "plain-raw-secret" /* no prefix: used as raw bytes */
#define SIG3 "v1,amH9QbgoyowBXktakuTJqCcwL7/in24+pw4VhusCEeo="

static struct kling_webhook_msg msg(const char *secret, const char *id, const char *ts,
                                    const char *body) {
    struct kling_webhook_msg m;
    m.secret = secret;
    m.secret_len = strlen(secret);
    m.id = id;
    m.id_len = strlen(id);
    m.timestamp = ts;
    m.timestamp_len = strlen(ts);
    m.body = body;
    m.body_len = strlen(body);
    return m;
}

static enum kling_webhook_status verify(const struct kling_webhook_msg *m, const char *sig,
                                        int64_t now) {
    return kling_webhook_verify(m, sig, strlen(sig), now, 300);
}

static void test_sign(void) {
    char sig[KLING_WEBHOOK_SIG_SIZE];
    struct kling_webhook_msg m = msg(SECRET1, ID1, TS1, BODY1);
    CHECK_INT(kling_webhook_sign(&m, sig), KLING_WH_OK);
    CHECK_STR(sig, SIG1);
    m = msg(SECRET2, "msg_2", "1700000000", BODY2);
    CHECK_INT(kling_webhook_sign(&m, sig), KLING_WH_OK);
    CHECK_STR(sig, SIG2);
    m = msg(SECRET3, "msg_3", "1700000000", BODY2);
    CHECK_INT(kling_webhook_sign(&m, sig), KLING_WH_OK);
    CHECK_STR(sig, SIG3);
    m = msg("", "msg_3", "1700000000", BODY2);
    CHECK_INT(kling_webhook_sign(&m, sig), KLING_WH_BAD_SECRET);
    m = msg("whsec_not*base64", "msg_3", "1700000000", BODY2);
    CHECK_INT(kling_webhook_sign(&m, sig), KLING_WH_BAD_SECRET);
    m = msg("whsec_", "msg_3", "1700000000", BODY2); /* just the prefix: a raw secret */
    CHECK_INT(kling_webhook_sign(&m, sig), KLING_WH_OK);
    m = msg(SECRET1, "", TS1, BODY1);
    CHECK_INT(kling_webhook_sign(&m, sig), KLING_WH_NO_ID);
}

static void test_verify(void) {
    struct kling_webhook_msg m = msg(SECRET1, ID1, TS1, BODY1);
    const int64_t now = 1614265330;
    CHECK_INT(verify(&m, SIG1, now), KLING_WH_OK);
    /* Rotation: several entries, any v1 match counts, other versions ignored. */
    CHECK_INT(verify(&m, "v1,bm90IHRoZSByaWdodCBvbmU= " SIG1, now), KLING_WH_OK);
    CHECK_INT(verify(&m, SIG1 " v1,bm90IHRoZSByaWdodCBvbmU=", now), KLING_WH_OK);
    CHECK_INT(verify(&m, "v1a,xyz  " SIG1 "   v2,abc", now), KLING_WH_OK);
    CHECK_INT(verify(&m, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", now),
              KLING_WH_NO_SIGNATURE);
    /* Bad signatures: another key, a changed body, id or timestamp, a cut one. */
    CHECK_INT(verify(&m, SIG2, now), KLING_WH_MISMATCH);
    CHECK_INT(verify(&m, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", now), KLING_WH_MISMATCH);
    CHECK_INT(verify(&m, "v1,G0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", now), KLING_WH_MISMATCH);
    m = msg(SECRET1, ID1, TS1, "{\"test\": 2432232315}");
    CHECK_INT(verify(&m, SIG1, now), KLING_WH_MISMATCH);
    m = msg(SECRET1, "msg_other", TS1, BODY1);
    CHECK_INT(verify(&m, SIG1, now), KLING_WH_MISMATCH);
    m = msg(SECRET1, ID1, "1614265331", BODY1);
    CHECK_INT(verify(&m, SIG1, now), KLING_WH_MISMATCH);
    /* Raw secrets verify too. */
    m = msg(SECRET3, "msg_3", "1700000000", BODY2);
    CHECK_INT(verify(&m, SIG3, 1700000000), KLING_WH_OK);
    m = msg(SECRET2, "msg_2", "1700000000", BODY2);
    CHECK_INT(verify(&m, SIG2, 1700000000), KLING_WH_OK);
}

static void test_timestamps(void) {
    struct kling_webhook_msg m = msg(SECRET1, ID1, TS1, BODY1);
    const int64_t ts = 1614265330;
    CHECK_INT(verify(&m, SIG1, ts + 300), KLING_WH_OK);
    CHECK_INT(verify(&m, SIG1, ts - 300), KLING_WH_OK);
    CHECK_INT(verify(&m, SIG1, ts + 301), KLING_WH_TOO_OLD);
    CHECK_INT(verify(&m, SIG1, ts - 301), KLING_WH_TOO_NEW);
    CHECK_INT(verify(&m, SIG1, INT64_MAX), KLING_WH_TOO_OLD);
    CHECK_INT(verify(&m, SIG1, INT64_MIN), KLING_WH_TOO_NEW);
    /* A stale timestamp is refused even when the signature is right. */
    CHECK_INT(kling_webhook_verify(&m, SIG1, strlen(SIG1), ts + 10, 5), KLING_WH_TOO_OLD);
    CHECK_INT(kling_webhook_verify(&m, SIG1, strlen(SIG1), ts, 0), KLING_WH_OK);
    CHECK_INT(kling_webhook_verify(&m, SIG1, strlen(SIG1), ts + 1, -7), KLING_WH_TOO_OLD);
    CHECK_INT(kling_webhook_verify(&m, SIG1, strlen(SIG1), ts + 1000000, INT64_MAX), KLING_WH_OK);
    /* ts - INT64_MIN exceeds even the largest tolerance. */
    CHECK_INT(kling_webhook_verify(&m, SIG1, strlen(SIG1), INT64_MIN, INT64_MAX), KLING_WH_TOO_NEW);
    CHECK_INT(kling_webhook_verify(&m, SIG1, strlen(SIG1), -1000000, INT64_MAX), KLING_WH_OK);
}

static void test_malformed(void) {
    static const char *const bad_ts[] = {"", "-1614265330", "1614265330.5", " 1614265330",
                                         "16142653x0", "1234567890123456789", "0x10"};
    struct kling_webhook_msg m;
    size_t i;
    for (i = 0; i < sizeof(bad_ts) / sizeof(bad_ts[0]); i++) {
        m = msg(SECRET1, ID1, bad_ts[i], BODY1);
        check_report(verify(&m, SIG1, 1614265330) == KLING_WH_BAD_TIMESTAMP, bad_ts[i], __FILE__,
                     __LINE__);
    }
    m = msg(SECRET1, "", TS1, BODY1);
    CHECK_INT(verify(&m, SIG1, 1614265330), KLING_WH_NO_ID);
    m = msg(SECRET1, ID1, TS1, BODY1);
    CHECK_INT(verify(&m, "", 1614265330), KLING_WH_NO_SIGNATURE);
    CHECK_INT(verify(&m, "   ", 1614265330), KLING_WH_NO_SIGNATURE);
    CHECK_INT(verify(&m, "v1,", 1614265330), KLING_WH_NO_SIGNATURE);
    CHECK_INT(verify(&m, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", 1614265330),
              KLING_WH_NO_SIGNATURE);
    CHECK_INT(verify(&m, "v1,garbage", 1614265330), KLING_WH_MISMATCH);
    m = msg("whsec_@@@", ID1, TS1, BODY1);
    CHECK_INT(verify(&m, SIG1, 1614265330), KLING_WH_BAD_SECRET);
    CHECK_INT(verify(&m, SIG1, 1914265330), KLING_WH_BAD_SECRET); /* even when stale */
    m = msg("", ID1, TS1, BODY1);
    CHECK_INT(verify(&m, SIG1, 1614265330), KLING_WH_BAD_SECRET);
    CHECK(strstr(kling_webhook_strerror(KLING_WH_TOO_OLD), "too old") != NULL);
}

int main(void) {
    test_sign();
    test_verify();
    test_timestamps();
    test_malformed();
    return check_done();
}
