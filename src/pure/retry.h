/* Retry policy: error classification (business code first, HTTP status
 * second), Retry-After parsing, full-jitter exponential backoff and the
 * decision whether and when to try again. Pure: the clock and the randomness
 * are arguments. No provider's business codes live here: each dialect hands
 * its own table in (struct kling_codes). */
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
/* After a rate limit (a code the dialect calls rate_limited, or a bare 429)
 * the next attempt waits at least a second unless Retry-After says otherwise. */
#define KLING_RATE_LIMIT_FLOOR_MS INT64_C(1000)

struct kling_class {
    enum kling_kind kind;
    int retryable;
};

/* One range of a provider's business codes, lo..hi inclusive, and what they
 * mean to the decision. */
struct kling_code_range {
    int64_t lo, hi;
    struct kling_class cls;
};

/* A provider's code table: ranges sorted by lo, none overlapping
 * (kling_codes_check). n = 0 (or a NULL table) means "no business codes":
 * the HTTP status decides. */
struct kling_codes {
    const struct kling_code_range *v;
    size_t n;
};

/* Sorts v[0..n) by lo and checks it: returns -1 when fine, else the index (in
 * the sorted order) of the first range with lo > hi or overlapping the one
 * before it. */
long kling_codes_check(struct kling_code_range *v, size_t n);

/* Looks a code up (binary search); 1 and *out set when found, else 0. */
int kling_codes_find(const struct kling_codes *codes, int64_t code, struct kling_class *out);

const char *kling_kind_name(enum kling_kind kind);

/* Parses a kind name; returns 0, or -1 for an unknown name. */
int kling_kind_parse(const char *s, size_t n, enum kling_kind *out);

/* Parses a transport category name; returns 0, or -1 for an unknown name. */
int kling_transport_parse(const char *s, size_t n, enum kling_transport *out);

/* Classifies a provider error: a business code found in the provider's table
 * (codes may be NULL) wins, else the HTTP status decides (0 = no status).
 * Statuses that are not errors (no status, 1xx-3xx, >= 600) are protocol
 * errors, not retryable. */
struct kling_class kling_classify(const struct kling_codes *codes, int http_status, int has_code,
                                  int64_t code);

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
    const struct kling_codes *codes; /* the provider's table, or NULL */
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
