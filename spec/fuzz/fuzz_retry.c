/* Retry decisions over any failure (status, business code, transport, method,
 * attempts, Retry-After, budget, backoff). Kept in one file against the
 * kling_decide API so that a change of its inputs is one edit here.
 * Invariants: the delay is in [0, max(cap, Retry-After cap, rate floor)];
 * nothing is retried that is not retryable, past its attempts, beyond its
 * budget, or a non-idempotent request that was sent; backoff stays within its
 * ceiling; the classification agrees with kling_classify* over the same
 * code table (built from the input, as a dialect hands one in). */
#include "fuzz.h"
#include "retry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    static const char *const METHODS[] = {"GET", "POST", "put", "DELETE", "PATCH", "HEAD", "OPTIONS", "get "};
    struct kling_retry_in r;
    struct kling_retry_out o;
    struct kling_class c;
    const char *m = METHODS[fuzz_u8(&in) & 7];
    int64_t ceiling, b;
    size_t tlen;
    char *tname;
    enum kling_transport t;
    struct kling_code_range ranges[4];
    struct kling_codes codes = {ranges, 0};
    size_t i, n;

    memset(&r, 0, sizeof r);
    /* A dialect's code table from the input: up to 4 ranges, kept only when well formed. */
    n = fuzz_u8(&in) % 5;
    for (i = 0; i < n; i++) {
        ranges[i].lo = 1000 + (int64_t)(fuzz_u64(&in, 2) % 5000);
        ranges[i].hi = ranges[i].lo + (int64_t)(fuzz_u8(&in) % 8);
        ranges[i].cls.kind = (enum kling_kind)(fuzz_u8(&in) % (KLING_KIND_NETWORK + 1));
        ranges[i].cls.retryable = fuzz_u8(&in) & 1;
    }
    codes.n = kling_codes_check(ranges, n) == -1 ? n : 0;
    r.codes = fuzz_u8(&in) & 1 ? &codes : NULL;
    r.idempotent = kling_method_idempotent(m, strlen(m));
    r.attempt = fuzz_int(&in);
    r.max_attempts = fuzz_int(&in);
    r.http_status = (int)(fuzz_u64(&in, 2) % 1000);
    r.has_code = fuzz_u8(&in) & 1;
    r.code = fuzz_u8(&in) & 1 ? 1000 + (int64_t)(fuzz_u64(&in, 2) % 5000) : fuzz_int(&in);
    r.transport = (enum kling_transport)(fuzz_u8(&in) % (KLING_TR_PROTOCOL + 1));
    r.sent = fuzz_u8(&in) & 1;
    r.received = fuzz_u8(&in) & 1;
    r.has_retry_after = fuzz_u8(&in) & 1;
    r.retry_after_ms = fuzz_int(&in);
    r.has_budget = fuzz_u8(&in) & 1;
    r.budget_ms = fuzz_int(&in);
    r.base_ms = fuzz_int(&in);
    r.cap_ms = fuzz_int(&in);
    r.r = (uint32_t)fuzz_u64(&in, 4);

    o = kling_decide(&r);
    c = r.transport != KLING_TR_NONE ? kling_classify_transport(r.transport)
                                     : kling_classify(r.codes, r.http_status, r.has_code, r.code);
    FUZZ_CHECK(o.kind == c.kind && o.retryable == c.retryable);
    FUZZ_CHECK(kling_kind_name(o.kind) != NULL);
    ceiling = r.cap_ms > KLING_RETRY_AFTER_MAX_MS ? r.cap_ms : KLING_RETRY_AFTER_MAX_MS;
    FUZZ_CHECK(o.delay_ms >= 0 && o.delay_ms <= ceiling);
    FUZZ_CHECK(o.retryable || o.delay_ms == 0);
    if (o.retry) {
        FUZZ_CHECK(o.retryable);
        FUZZ_CHECK(r.max_attempts > 0 && (r.attempt < 0 ? 0 : r.attempt) < r.max_attempts - 1);
        FUZZ_CHECK(r.idempotent || !(r.sent || r.received));
        FUZZ_CHECK(!r.has_budget || o.delay_ms < r.budget_ms);
        FUZZ_CHECK(!o.uncertain);
    }
    if (o.uncertain) {
        FUZZ_CHECK(!r.idempotent && (r.sent || r.received));
    }

    b = kling_backoff(r.attempt, r.base_ms, r.cap_ms, r.r);
    FUZZ_CHECK(b >= 0 && (r.cap_ms <= 0 || b <= r.cap_ms));
    FUZZ_CHECK(r.r != 0 || b == 0);

    tname = fuzz_bytes(&in, 16, &tlen);
    if (kling_transport_parse(tname, tlen, &t) == 0) {
        FUZZ_CHECK(t >= KLING_TR_NONE && t <= KLING_TR_PROTOCOL);
    }
    FUZZ_CHECK(kling_method_idempotent(tname, tlen) == 0 || kling_method_idempotent(tname, tlen) == 1);
    free(tname);
    return 0;
}
