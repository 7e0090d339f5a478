/* The retry policy: a provider's code table handed in (the test's own copy of
 * Kling's, as lua/kling/providers/kling/codes.lua declares it), every row of
 * the classification, Retry-After in all three HTTP-date forms and its edge
 * cases, backoff bounds for attempts 0..100, and decide(). */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "retry.h"

#define NO_CODE 0, 0

#define RANGE(lo, hi, kind, r) {lo, hi, {KLING_KIND_##kind, r}}
/* Deliberately out of order: kling_codes_check sorts. */
static struct kling_code_range OFFICIAL[] = {
    RANGE(5000, 5002, SERVER, 1),       RANGE(1000, 1004, AUTH, 0),
    RANGE(1100, 1102, QUOTA, 0),        RANGE(1103, 1103, AUTH, 0),
    RANGE(1200, 1202, VALIDATION, 0),   RANGE(1203, 1203, NOT_FOUND, 0),
    RANGE(1300, 1301, CONTENT_POLICY, 0), RANGE(1302, 1303, RATE_LIMITED, 1),
    RANGE(1304, 1304, AUTH, 0),
};
static struct kling_codes codes = {OFFICIAL, sizeof(OFFICIAL) / sizeof(OFFICIAL[0])};

static void check_class(int status, int has_code, int64_t code, enum kling_kind kind, int retryable,
                        int line) {
    struct kling_class c = kling_classify(&codes, status, has_code, code);
    char what[96];
    snprintf(what, sizeof(what), "classify(%d, %lld) -> %s/%d (got %s/%d)", status,
             has_code ? (long long)code : -1LL, kling_kind_name(kind), retryable,
             kling_kind_name(c.kind), c.retryable);
    check_report(c.kind == kind && c.retryable == retryable, what, __FILE__, line);
}
#define CLASS(st, code, kind, r) check_class(st, 1, code, KLING_KIND_##kind, r, __LINE__)
#define CLASS_STATUS(st, kind, r) check_class(st, NO_CODE, KLING_KIND_##kind, r, __LINE__)

static void test_classify_codes(void) {
    int64_t c;
    /* Each official code with the status Kling sends it with. */
    for (c = 1000; c <= 1004; c++) CLASS(401, c, AUTH, 0);
    for (c = 1100; c <= 1102; c++) CLASS(429, c, QUOTA, 0); /* 429s that never succeed */
    CLASS(403, 1103, AUTH, 0);
    CLASS(400, 1200, VALIDATION, 0);
    CLASS(400, 1201, VALIDATION, 0);
    CLASS(404, 1202, VALIDATION, 0);
    CLASS(404, 1203, NOT_FOUND, 0);
    CLASS(400, 1300, CONTENT_POLICY, 0);
    CLASS(400, 1301, CONTENT_POLICY, 0);
    CLASS(429, 1302, RATE_LIMITED, 1);
    CLASS(429, 1303, RATE_LIMITED, 1);
    CLASS(429, 1304, AUTH, 0);
    CLASS(500, 5000, SERVER, 1);
    CLASS(503, 5001, SERVER, 1);
    CLASS(504, 5002, SERVER, 1);
    /* The code wins over a status that says otherwise. */
    CLASS(200, 1102, QUOTA, 0);
    CLASS(500, 1303, RATE_LIMITED, 1);
    CLASS(400, 5001, SERVER, 1);
    /* Codes just outside the table fall back to the status. */
    CLASS(429, 999, RATE_LIMITED, 1);
    CLASS(401, 1005, AUTH, 0);
    CLASS(429, 1099, RATE_LIMITED, 1);
    CLASS(500, 1104, SERVER, 1);
    CLASS(400, 1204, VALIDATION, 0);
    CLASS(503, 1305, SERVER, 1);
    CLASS(404, 4999, NOT_FOUND, 0);
    CLASS(400, 5003, VALIDATION, 0);
    CLASS(500, 0, SERVER, 1);
    CLASS(429, -1, RATE_LIMITED, 1);
}

/* The table is the caller's: without one (or empty) only the status counts,
 * and another provider's table means what it says. */
static void test_code_tables(void) {
    struct kling_code_range gw[] = {RANGE(429, 429, QUOTA, 0), RANGE(7, 9, SERVER, 1)};
    struct kling_codes other = {gw, 2};
    struct kling_codes empty = {NULL, 0};
    struct kling_code_range bad[] = {RANGE(10, 20, AUTH, 0), RANGE(15, 30, SERVER, 1)};
    struct kling_code_range inverted[] = {RANGE(30, 20, AUTH, 0)};
    struct kling_class c;
    struct kling_retry_in in;
    enum kling_kind k;
    CHECK(kling_codes_check(gw, 2) == -1 && gw[0].lo == 7);
    c = kling_classify(NULL, 429, 1, 1102);
    CHECK(c.kind == KLING_KIND_RATE_LIMITED && c.retryable);
    c = kling_classify(&empty, 429, 1, 1102);
    CHECK(c.kind == KLING_KIND_RATE_LIMITED && c.retryable);
    c = kling_classify(&other, 429, 1, 1102);
    CHECK(c.kind == KLING_KIND_RATE_LIMITED);
    c = kling_classify(&other, 429, 1, 429);
    CHECK(c.kind == KLING_KIND_QUOTA && !c.retryable);
    c = kling_classify(&other, 200, 1, 8);
    CHECK(c.kind == KLING_KIND_SERVER && c.retryable);
    CHECK(!kling_codes_find(&other, 10, &c) && !kling_codes_find(&other, 6, &c));
    CHECK(kling_codes_check(bad, 2) == 1);
    CHECK(kling_codes_check(inverted, 1) == 0);
    CHECK(kling_codes_check(NULL, 0) == -1);
    /* decide reads the table it is given. */
    memset(&in, 0, sizeof(in));
    in.idempotent = 1;
    in.max_attempts = 5;
    in.http_status = 429;
    in.has_code = 1;
    in.code = 429;
    in.sent = in.received = 1;
    CHECK(kling_decide(&in).retry);
    in.codes = &other;
    CHECK(!kling_decide(&in).retry && kling_decide(&in).kind == KLING_KIND_QUOTA);
    CHECK(kling_kind_parse("rate_limited", 12, &k) == 0 && k == KLING_KIND_RATE_LIMITED);
    CHECK(kling_kind_parse("network", 7, &k) == 0 && k == KLING_KIND_NETWORK);
    CHECK(kling_kind_parse("rate", 4, &k) == -1);
}

static void test_classify_status(void) {
    CLASS_STATUS(400, VALIDATION, 0);
    CLASS_STATUS(422, VALIDATION, 0);
    CLASS_STATUS(401, AUTH, 0);
    CLASS_STATUS(403, AUTH, 0);
    CLASS_STATUS(402, QUOTA, 0);
    CLASS_STATUS(404, NOT_FOUND, 0);
    CLASS_STATUS(408, TIMEOUT, 1);
    CLASS_STATUS(429, RATE_LIMITED, 1);
    CLASS_STATUS(500, SERVER, 1);
    CLASS_STATUS(502, SERVER, 1);
    CLASS_STATUS(503, SERVER, 1);
    CLASS_STATUS(504, SERVER, 1);
    CLASS_STATUS(599, SERVER, 1);
    CLASS_STATUS(405, VALIDATION, 0);
    CLASS_STATUS(409, VALIDATION, 0);
    CLASS_STATUS(499, VALIDATION, 0);
    CLASS_STATUS(0, PROTOCOL, 0);
    CLASS_STATUS(200, PROTOCOL, 0);
    CLASS_STATUS(302, PROTOCOL, 0);
    CLASS_STATUS(600, PROTOCOL, 0);
    CLASS_STATUS(-1, PROTOCOL, 0);
}

static void test_transport(void) {
    static const struct {
        const char *name;
        enum kling_kind kind;
        int retryable;
    } rows[] = {
        {"connect", KLING_KIND_NETWORK, 1}, {"tls", KLING_KIND_NETWORK, 0},
        {"timeout", KLING_KIND_TIMEOUT, 1}, {"reset", KLING_KIND_NETWORK, 1},
        {"partial", KLING_KIND_NETWORK, 1}, {"other", KLING_KIND_NETWORK, 0},
        {"too_large", KLING_KIND_PROTOCOL, 0}, {"protocol", KLING_KIND_PROTOCOL, 1},
    };
    size_t i;
    enum kling_transport t;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct kling_class c;
        int ok = kling_transport_parse(rows[i].name, strlen(rows[i].name), &t) == 0;
        c = kling_classify_transport(t);
        check_report(ok && c.kind == rows[i].kind && c.retryable == rows[i].retryable, rows[i].name,
                     __FILE__, __LINE__);
    }
    CHECK(kling_transport_parse("Connect", 7, &t) == -1);
    CHECK(kling_transport_parse("connec", 6, &t) == -1);
    CHECK(kling_transport_parse("", 0, &t) == -1);
    CHECK_STR(kling_kind_name(KLING_KIND_CONTENT_POLICY), "content_policy");
    CHECK_STR(kling_kind_name(KLING_KIND_RATE_LIMITED), "rate_limited");
}

/* Retry-After: want >= 0 is the delay in ms, -1 means unparseable. */
static void check_ra(const char *value, int64_t now, int64_t want, int line) {
    int64_t ms = -42;
    int rc = kling_retry_after(value, strlen(value), now, &ms);
    char what[128];
    snprintf(what, sizeof(what), "retry_after(\"%s\") = %lld (rc %d), expected %lld", value,
             (long long)ms, rc, (long long)want);
    check_report(want < 0 ? rc == -1 : (rc == 0 && ms == want), what, __FILE__, line);
}
#define RA(v, now, want) check_ra(v, now, want, __LINE__)

static void test_retry_after(void) {
    const int64_t t94 = 784111777; /* 1994-11-06 08:49:37 UTC */
    const int64_t day = 86400000;
    /* delta-seconds */
    RA("0", 0, 0);
    RA("5", 0, 5000);
    RA("  120\t", 0, 120000);
    RA("1.5", 0, 1500);
    RA("0.001", 0, 1);
    RA("86400", 0, day);
    RA("86401", 0, day);
    RA("99999999999999999999999999999", 0, day); /* huge: capped, no overflow */
    RA("-5", 0, 0);                              /* negative: now */
    RA("-99999999999999999999999", 0, 0);
    /* HTTP-date, each form, relative to now */
    RA("Sun, 06 Nov 1994 08:49:37 GMT", t94 - 120, 120000);
    RA("Sunday, 06-Nov-94 08:49:37 GMT", t94 - 120, 120000);
    RA("Sun Nov  6 08:49:37 1994", t94 - 120, 120000);
    RA("Sun Nov 06 08:49:37 1994", t94 - 1, 1000);
    RA("sun, 06 nov 1994 08:49:37 gmt", t94 - 3, 3000);
    RA("Wed, 02 Jan 2030 03:04:05 GMT", 1893553445 - 7, 7000);
    RA("Tue, 29 Feb 2028 00:00:00 GMT", 1835395200 - 60, 60000);
    RA("Tue, 29 Feb 2000 23:59:59 GMT", 951868799 - 2, 2000);
    /* RFC 850 two-digit years: more than 50 years ahead means the last century. */
    RA("Wednesday, 02-Jan-30 03:04:05 GMT", 1795239610, 86400000); /* 2030, from 2026 */
    RA("Sunday, 06-Nov-94 08:49:37 GMT", 1795239610, 0);           /* 1994, not 2094 */
    /* past dates and now itself give 0; far future is capped */
    RA("Sun, 06 Nov 1994 08:49:37 GMT", t94, 0);
    RA("Sun, 06 Nov 1994 08:49:37 GMT", 1795239610, 0);
    RA("Fri, 31 Dec 9999 23:59:59 GMT", 0, day);
    RA("Sun, 06 Nov 1994 08:49:37 GMT", INT64_MIN, day);
    RA("Sun, 06 Nov 1994 08:49:37 GMT", INT64_MAX, 0);
    /* unparseable */
    RA("", 0, -1);
    RA("   ", 0, -1);
    RA("soon", 0, -1);
    RA("-", 0, -1);
    RA("5s", 0, -1);
    RA("1.", 0, -1);
    RA("1e3", 0, -1);
    RA("0x10", 0, -1);
    RA("Sun, 06 Nov 1994 08:49:37", 0, -1);       /* no zone */
    RA("Sun, 06 Nov 1994 08:49:37 CET", 0, -1);
    RA("Sun, 06 Nov 1994 08:49:37 GMT x", 0, -1); /* trailing text */
    RA("Sun, 06 Nov 94 08:49:37 GMT", 0, -1);     /* IMF needs 4 digits */
    RA("Sun, 06 Foo 1994 08:49:37 GMT", 0, -1);
    RA("Xyz, 06 Nov 1994 08:49:37 GMT", 0, -1);
    RA("Sun, 31 Apr 1994 08:49:37 GMT", 0, -1);
    RA("Sun, 29 Feb 2027 08:49:37 GMT", 0, -1);
    RA("Sun, 29 Feb 1900 08:49:37 GMT", 0, -1);
    RA("Sun, 00 Nov 1994 08:49:37 GMT", 0, -1);
    RA("Sun, 06 Nov 1994 24:00:00 GMT", 0, -1);
    RA("Sun, 06 Nov 1994 08:60:00 GMT", 0, -1);
    RA("Sun, 06 Nov 1994 8:49:37 GMT", 0, -1);
    RA("Sunday, 06-Nov-1994 08:49:37 GMT", 0, -1);
    RA("Sun Nov  6 08:49:37 94", 0, -1);
    RA("Sun Nov  6 08:49:37 1994 GMT", 0, -1);
}

static void test_backoff(void) {
    int64_t a;
    int ok_zero = 1, ok_max = 1, ok_mid = 1, ok_big = 1;
    for (a = 0; a <= 100; a++) {
        int64_t ceiling = a < 6 ? (int64_t)500 << a : 20000;
        if (ceiling > 20000) ceiling = 20000;
        ok_zero &= kling_backoff(a, 500, 20000, 0) == 0;
        ok_max &= kling_backoff(a, 500, 20000, UINT32_MAX) == ceiling;
        ok_mid &= kling_backoff(a, 500, 20000, UINT32_MAX / 2) <= ceiling &&
                  kling_backoff(a, 500, 20000, UINT32_MAX / 2) >= ceiling / 2 - 1;
        /* Near-int64 parameters: still in range, never negative. */
        ok_big &= kling_backoff(a, INT64_MAX / 3, INT64_MAX, UINT32_MAX) ==
                  (a == 0 ? INT64_MAX / 3 : a == 1 ? INT64_MAX / 3 * 2 : INT64_MAX);
        ok_big &= kling_backoff(a, 1, INT64_MAX, 12345) >= 0;
    }
    CHECK(ok_zero);
    CHECK(ok_max);
    CHECK(ok_mid);
    CHECK(ok_big);
    CHECK_INT(kling_backoff(0, 500, 20000, UINT32_MAX), 500);
    CHECK_INT(kling_backoff(1, 500, 20000, UINT32_MAX), 1000);
    CHECK_INT(kling_backoff(5, 500, 20000, UINT32_MAX), 16000);
    CHECK_INT(kling_backoff(6, 500, 20000, UINT32_MAX), 20000);
    CHECK_INT(kling_backoff(INT64_MAX, 500, 20000, UINT32_MAX), 20000);
    CHECK_INT(kling_backoff(-3, 500, 20000, UINT32_MAX), 500);
    CHECK_INT(kling_backoff(3, 500, 300, UINT32_MAX), 300); /* base above cap */
    CHECK_INT(kling_backoff(3, 0, 20000, UINT32_MAX), 0);
    CHECK_INT(kling_backoff(3, -5, 20000, UINT32_MAX), 0);
    CHECK_INT(kling_backoff(3, 500, -1, UINT32_MAX), 0);
    CHECK_INT(kling_backoff(2, 500, 20000, UINT32_MAX / 2), 999); /* 2000 * 0.4999... */
}

static struct kling_retry_in get_req(void) {
    struct kling_retry_in in;
    memset(&in, 0, sizeof(in));
    in.idempotent = 1;
    in.max_attempts = 5;
    in.base_ms = 500;
    in.cap_ms = 20000;
    in.r = UINT32_MAX;
    in.codes = &codes;
    return in;
}

static struct kling_retry_in post_req(void) {
    struct kling_retry_in in = get_req();
    in.idempotent = 0;
    return in;
}

static void test_decide_post(void) {
    struct kling_retry_in in = post_req();
    struct kling_retry_out o;
    /* Never sent: safe to retry. */
    in.transport = KLING_TR_CONNECT;
    o = kling_decide(&in);
    CHECK(o.retry && !o.uncertain && o.kind == KLING_KIND_NETWORK && o.delay_ms == 500);
    in.transport = KLING_TR_TIMEOUT; /* a connect timeout: nothing left the host */
    o = kling_decide(&in);
    CHECK(o.retry && !o.uncertain && o.kind == KLING_KIND_TIMEOUT);
    /* Sent, no complete answer: never repeated, and the task may exist. */
    in.sent = 1;
    o = kling_decide(&in);
    CHECK(!o.retry && o.uncertain && o.retryable && o.kind == KLING_KIND_TIMEOUT);
    in.transport = KLING_TR_RESET;
    o = kling_decide(&in);
    CHECK(!o.retry && o.uncertain && o.kind == KLING_KIND_NETWORK);
    in.transport = KLING_TR_PARTIAL;
    in.received = 1;
    o = kling_decide(&in);
    CHECK(!o.retry && o.uncertain);
    in.transport = KLING_TR_PROTOCOL; /* 200 with a body we cannot read */
    in.http_status = 200;
    o = kling_decide(&in);
    CHECK(!o.retry && o.uncertain && o.kind == KLING_KIND_PROTOCOL);
    /* Complete answers: the outcome is known, nothing is uncertain, nothing resent. */
    in.transport = KLING_TR_NONE;
    in.http_status = 500;
    in.has_code = 1;
    in.code = 5000;
    o = kling_decide(&in);
    CHECK(!o.retry && o.uncertain && o.retryable && o.kind == KLING_KIND_SERVER);
    in.http_status = 429;
    in.code = 1303;
    o = kling_decide(&in);
    CHECK(!o.retry && !o.uncertain && o.retryable && o.kind == KLING_KIND_RATE_LIMITED);
    in.code = 1102;
    o = kling_decide(&in);
    CHECK(!o.retry && !o.uncertain && !o.retryable && o.kind == KLING_KIND_QUOTA && o.delay_ms == 0);
    /* A driver that saw response bytes has sent the request, whatever it says. */
    in = post_req();
    in.transport = KLING_TR_RESET;
    in.received = 1;
    o = kling_decide(&in);
    CHECK(!o.retry && o.uncertain);
    /* Not sent but not retryable either. */
    in = post_req();
    in.transport = KLING_TR_OTHER;
    o = kling_decide(&in);
    CHECK(!o.retry && !o.uncertain && !o.retryable);
}

static void test_decide_get(void) {
    struct kling_retry_in in = get_req();
    struct kling_retry_out o;
    int64_t a;
    in.http_status = 503;
    in.sent = in.received = 1;
    /* Without Retry-After: the backoff, growing with the attempt. */
    for (a = 0; a < 4; a++) {
        in.attempt = a;
        o = kling_decide(&in);
        CHECK(o.retry && !o.uncertain && o.kind == KLING_KIND_SERVER && o.delay_ms == 500 << a);
    }
    in.r = 0;
    in.attempt = 0;
    o = kling_decide(&in);
    CHECK(o.retry && o.delay_ms == 0);
    /* Retry-After wins over the backoff, shorter or longer. */
    in.has_retry_after = 1;
    in.retry_after_ms = 7000;
    o = kling_decide(&in);
    CHECK(o.retry && o.delay_ms == 7000);
    in.retry_after_ms = 0;
    in.r = UINT32_MAX;
    in.attempt = 3;
    o = kling_decide(&in);
    CHECK(o.retry && o.delay_ms == 0);
    in.retry_after_ms = -5; /* never negative */
    o = kling_decide(&in);
    CHECK(o.retry && o.delay_ms == 0);
    in.retry_after_ms = INT64_MAX;
    o = kling_decide(&in);
    CHECK(o.retry && o.delay_ms == KLING_RETRY_AFTER_MAX_MS);
    /* Budget: the delay must fit in what is left. */
    in.retry_after_ms = 7000;
    in.has_budget = 1;
    in.budget_ms = 7001;
    o = kling_decide(&in);
    CHECK(o.retry && o.delay_ms == 7000);
    in.budget_ms = 7000;
    o = kling_decide(&in);
    CHECK(!o.retry && o.retryable && o.delay_ms == 7000);
    in.budget_ms = 0;
    in.retry_after_ms = 0;
    o = kling_decide(&in);
    CHECK(!o.retry);
    in.budget_ms = -100;
    o = kling_decide(&in);
    CHECK(!o.retry);
    /* Max attempts: attempt is 0-based, max_attempts counts the first one. */
    in = get_req();
    in.transport = KLING_TR_RESET;
    in.sent = 1;
    in.attempt = 3;
    CHECK(kling_decide(&in).retry);
    in.attempt = 4;
    CHECK(!kling_decide(&in).retry);
    in.attempt = 400;
    CHECK(!kling_decide(&in).retry);
    in.attempt = 0;
    in.max_attempts = 1;
    CHECK(!kling_decide(&in).retry);
    in.max_attempts = 0;
    CHECK(!kling_decide(&in).retry);
    in.max_attempts = -1;
    CHECK(!kling_decide(&in).retry);
}

static void test_decide_codes(void) {
    struct kling_retry_in in = get_req();
    struct kling_retry_out o;
    in.sent = in.received = 1;
    in.http_status = 429;
    in.has_code = 1;
    /* 1102 is never retried, not even with Retry-After. */
    in.code = 1102;
    in.has_retry_after = 1;
    in.retry_after_ms = 1000;
    o = kling_decide(&in);
    CHECK(!o.retry && !o.retryable && o.kind == KLING_KIND_QUOTA && o.delay_ms == 0);
    /* 1303 is retried, at least 1 s apart. */
    in.code = 1303;
    in.has_retry_after = 0;
    in.r = 0;
    o = kling_decide(&in);
    CHECK(o.retry && o.kind == KLING_KIND_RATE_LIMITED && o.delay_ms == KLING_RATE_LIMIT_FLOOR_MS);
    in.r = UINT32_MAX;
    in.attempt = 3;
    o = kling_decide(&in);
    CHECK(o.retry && o.delay_ms == 4000);
    in.has_retry_after = 1;
    in.retry_after_ms = 250; /* the server's word wins, even below the floor */
    o = kling_decide(&in);
    CHECK(o.retry && o.delay_ms == 250);
    /* Not retryable errors on GET. */
    in.has_retry_after = 0;
    in.code = 1004;
    in.http_status = 401;
    CHECK(!kling_decide(&in).retry);
    in.has_code = 0;
    in.http_status = 404;
    o = kling_decide(&in);
    CHECK(!o.retry && o.kind == KLING_KIND_NOT_FOUND);
    /* Transport categories on GET. */
    in = get_req();
    in.sent = 1;
    in.transport = KLING_TR_PROTOCOL;
    in.http_status = 200;
    o = kling_decide(&in);
    CHECK(o.retry && !o.uncertain && o.kind == KLING_KIND_PROTOCOL);
    in.transport = KLING_TR_TLS; /* issue 11.13: a certificate failure is not retried */
    CHECK(!kling_decide(&in).retry && kling_decide(&in).kind == KLING_KIND_NETWORK);
    in.transport = KLING_TR_OTHER;
    CHECK(!kling_decide(&in).retry);
    in.transport = KLING_TR_TOO_LARGE;
    CHECK(!kling_decide(&in).retry);
}

static void test_methods(void) {
    CHECK(kling_method_idempotent("GET", 3));
    CHECK(kling_method_idempotent("get", 3));
    CHECK(kling_method_idempotent("DELETE", 6));
    CHECK(kling_method_idempotent("HEAD", 4));
    CHECK(!kling_method_idempotent("POST", 4));
    CHECK(!kling_method_idempotent("PATCH", 5));
    CHECK(!kling_method_idempotent("GETX", 4));
    CHECK(!kling_method_idempotent("", 0));
}

int main(void) {
    CHECK(kling_codes_check(OFFICIAL, codes.n) == -1);
    test_classify_codes();
    test_code_tables();
    test_classify_status();
    test_transport();
    test_retry_after();
    test_backoff();
    test_decide_post();
    test_decide_get();
    test_decide_codes();
    test_methods();
    return check_done();
}
