/* Retry policy: error classification (business code first, HTTP status
 * second), Retry-After parsing, full-jitter exponential backoff and the
 * decision whether and when to try again. Pure: the clock and the randomness
 * are arguments. */
#ifndef KLING_RETRY_H
#define KLING_RETRY_H

#include <stddef.h>
#include <stdint.h>

enum kling_kind {
    KLING_KIND_AUTH,
    KLING_KIND_RATE_LIMITED,
    KLING_KIND_QUOTA,
    KLING_KIND_CONTENT_POLICY,
    KLING_KIND_NOT_FOUND,
    KLING_KIND_SERVER,
    KLING_KIND_VALIDATION,
    KLING_KIND_PROTOCOL,
    KLING_KIND_TIMEOUT,
    KLING_KIND_NETWORK
};

/* The driver's error category (docs/internals.md), plus "protocol" which the
 * caller reports for a complete response it cannot use (bad JSON or type). */
enum kling_transport {
    KLING_TR_NONE,
    KLING_TR_CONNECT,
    KLING_TR_TLS,
    KLING_TR_TIMEOUT,
    KLING_TR_RESET,
    KLING_TR_PARTIAL,
    KLING_TR_TOO_LARGE,
    KLING_TR_OTHER,
    KLING_TR_PROTOCOL
};

/* Delays never exceed a day, whatever a server asks for. */
#define KLING_RETRY_AFTER_MAX_MS INT64_C(86400000)
/* Kling asks for at least 1 s between attempts after a rate limit (1302/1303). */
#define KLING_RATE_LIMIT_FLOOR_MS INT64_C(1000)

struct kling_class {
    enum kling_kind kind;
    int retryable;
};

const char *kling_kind_name(enum kling_kind kind);

/* Parses a transport category name; returns 0, or -1 for an unknown name. */
int kling_transport_parse(const char *s, size_t n, enum kling_transport *out);

/* Classifies a provider error: the official business code wins when known,
 * else the HTTP status decides (0 = no status). Statuses that are not errors
 * (no status, 1xx-3xx, >= 600) are protocol errors, not retryable. */
struct kling_class kling_classify(int http_status, int has_code, int64_t code);

/* Classifies a transport failure (category other than KLING_TR_NONE). */
struct kling_class kling_classify_transport(enum kling_transport t);

/* Parses a Retry-After value: delta-seconds (a fraction is tolerated) or an
 * HTTP-date in IMF-fixdate, RFC 850 or asctime form, relative to now_s. Sets
 * *delay_ms to a value in [0, KLING_RETRY_AFTER_MAX_MS] (past dates and
 * negative numbers give 0) and returns 0, or returns -1 when unparseable. */
int kling_retry_after(const char *s, size_t n, int64_t now_s, int64_t *delay_ms);

/* Full-jitter backoff: a delay in [0, min(cap_ms, base_ms * 2^attempt)],
 * scaled by r / (2^32 - 1), so r = 0 gives 0 and r = UINT32_MAX the ceiling.
 * Negative arguments count as 0; nothing overflows for any attempt. */
int64_t kling_backoff(int64_t attempt, int64_t base_ms, int64_t cap_ms, uint32_t r);

/* 1 for methods that may be repeated safely (GET, HEAD, PUT, DELETE, OPTIONS);
 * POST, PATCH and anything unknown are not. */
int kling_method_idempotent(const char *m, size_t n);

struct kling_retry_in {
    int idempotent;          /* kling_method_idempotent(method) */
    int64_t attempt;         /* 0-based index of the attempt that just failed */
    int64_t max_attempts;    /* attempts allowed in all, first one included */
    int http_status;         /* 0 when no response arrived */
    int has_code;
    int64_t code;            /* provider business code */
    enum kling_transport transport;
    int sent;                /* any request byte was written */
    int received;            /* any response byte arrived */
    int has_retry_after;
    int64_t retry_after_ms;  /* parsed Retry-After */
    int has_budget;
    int64_t budget_ms;       /* time left before the caller's deadline */
    int64_t base_ms, cap_ms; /* backoff parameters */
    uint32_t r;              /* randomness for the jitter */
};

struct kling_retry_out {
    int retry;
    int64_t delay_ms;        /* wait before the retry; 0 when not retryable */
    enum kling_kind kind;
    int retryable;           /* the error is transient (even if no retry now) */
    int uncertain;           /* a non-idempotent request was sent and no usable
                                response came back: the task may exist */
};

/* A non-idempotent request is retried only when it was never sent. Otherwise
 * a retry needs a retryable error, an attempt left and a delay that fits in
 * the budget. Retry-After, when given, replaces the backoff. */
struct kling_retry_out kling_decide(const struct kling_retry_in *in);

#endif
