/* Retry policy for the official Kling API and the gateways (docs/internals.md).
 * The business code decides before the HTTP status because a provider may
 * answer 429 for a quota that never comes back; which codes mean what is the
 * provider's table, handed in by its dialect. */
#include "retry.h"

#include <stdlib.h>
#include <string.h>

static const char *const KIND_NAMES[] = {
    "auth", "rate_limited", "quota", "content_policy", "not_found",
    "server", "validation", "protocol", "timeout", "network"
};

const char *kling_kind_name(enum kling_kind kind) {
    if ((unsigned)kind < sizeof(KIND_NAMES) / sizeof(KIND_NAMES[0])) {
        return KIND_NAMES[kind];
    }
    return "protocol";
}

int kling_kind_parse(const char *s, size_t n, enum kling_kind *out) {
    size_t i;
    for (i = 0; i < sizeof(KIND_NAMES) / sizeof(KIND_NAMES[0]); i++) {
        if (strlen(KIND_NAMES[i]) == n && memcmp(KIND_NAMES[i], s, n) == 0) {
            *out = (enum kling_kind)i;
            return 0;
        }
    }
    return -1;
}

static const struct {
    const char *name;
    enum kling_transport t;
} TRANSPORTS[] = {
    {"connect", KLING_TR_CONNECT}, {"tls", KLING_TR_TLS},         {"timeout", KLING_TR_TIMEOUT},
    {"reset", KLING_TR_RESET},     {"partial", KLING_TR_PARTIAL}, {"too_large", KLING_TR_TOO_LARGE},
    {"other", KLING_TR_OTHER},     {"protocol", KLING_TR_PROTOCOL}
};

int kling_transport_parse(const char *s, size_t n, enum kling_transport *out) {
    size_t i;
    for (i = 0; i < sizeof(TRANSPORTS) / sizeof(TRANSPORTS[0]); i++) {
        if (strlen(TRANSPORTS[i].name) == n && memcmp(TRANSPORTS[i].name, s, n) == 0) {
            *out = TRANSPORTS[i].t;
            return 0;
        }
    }
    return -1;
}

static struct kling_class mk(enum kling_kind kind, int retryable) {
    struct kling_class c;
    c.kind = kind;
    c.retryable = retryable;
    return c;
}

static int by_lo(const void *a, const void *b) {
    const struct kling_code_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

long kling_codes_check(struct kling_code_range *v, size_t n) {
    size_t i;
    if (n > 1) {
        qsort(v, n, sizeof(*v), by_lo);
    }
    for (i = 0; i < n; i++) {
        if (v[i].lo > v[i].hi || (i > 0 && v[i].lo <= v[i - 1].hi)) {
            return (long)i;
        }
    }
    return -1;
}

int kling_codes_find(const struct kling_codes *codes, int64_t code, struct kling_class *out) {
    size_t lo = 0, hi;
    if (codes == NULL || codes->v == NULL) {
        return 0;
    }
    hi = codes->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct kling_code_range *r = &codes->v[mid];
        if (code < r->lo) {
            hi = mid;
        } else if (code > r->hi) {
            lo = mid + 1;
        } else {
            *out = r->cls;
            return 1;
        }
    }
    return 0;
}

struct kling_class kling_classify(const struct kling_codes *codes, int http_status, int has_code,
                                  int64_t code) {
    struct kling_class c;
    if (has_code && kling_codes_find(codes, code, &c)) {
        return c;
    }
    switch (http_status) {
    case 400: case 422: return mk(KLING_KIND_VALIDATION, 0);
    case 401: case 403: return mk(KLING_KIND_AUTH, 0);
    case 402: return mk(KLING_KIND_QUOTA, 0);
    case 404: return mk(KLING_KIND_NOT_FOUND, 0);
    case 408: return mk(KLING_KIND_TIMEOUT, 1);
    case 429: return mk(KLING_KIND_RATE_LIMITED, 1);
    default: break;
    }
    if (http_status >= 500 && http_status <= 599) {
        return mk(KLING_KIND_SERVER, 1);
    }
    if (http_status >= 400 && http_status <= 499) {
        return mk(KLING_KIND_VALIDATION, 0);
    }
    /* No status, or a status that is not an error, yet the caller has an
     * error in hand: the response is not what the protocol promises. */
    return mk(KLING_KIND_PROTOCOL, 0);
}

struct kling_class kling_classify_transport(enum kling_transport t) {
    switch (t) {
    case KLING_TR_CONNECT: case KLING_TR_RESET: case KLING_TR_PARTIAL:
        return mk(KLING_KIND_NETWORK, 1);
    /* A certificate the peer cannot prove will not prove itself on the next try (issue 11.13). */
    case KLING_TR_TLS: return mk(KLING_KIND_NETWORK, 0);
    case KLING_TR_TIMEOUT: return mk(KLING_KIND_TIMEOUT, 1);
    case KLING_TR_PROTOCOL: return mk(KLING_KIND_PROTOCOL, 1);
    case KLING_TR_TOO_LARGE: return mk(KLING_KIND_PROTOCOL, 0);
    case KLING_TR_OTHER: case KLING_TR_NONE: break;
    }
    return mk(KLING_KIND_NETWORK, 0);
}

/* ---- Retry-After ------------------------------------------------------- */

struct cursor {
    const char *p, *end;
};

static int at_end(const struct cursor *c) {
    return c->p >= c->end;
}

static int eat(struct cursor *c, char ch) {
    if (!at_end(c) && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* Reads between min and max decimal digits into *v. */
static int digits(struct cursor *c, int min, int max, int *v) {
    int n = 0;
    *v = 0;
    while (n < max && !at_end(c) && *c->p >= '0' && *c->p <= '9') {
        *v = *v * 10 + (*c->p - '0');
        c->p++;
        n++;
    }
    return n >= min;
}

static int lower(int ch) {
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* Reads a run of letters and returns its index in names (case-insensitive),
 * or -1. */
static int name(struct cursor *c, const char *const *names, int count) {
    const char *start = c->p;
    size_t len;
    int i;
    while (!at_end(c) && lower(*c->p) >= 'a' && lower(*c->p) <= 'z') {
        c->p++;
    }
    len = (size_t)(c->p - start);
    for (i = 0; i < count; i++) {
        size_t k;
        if (strlen(names[i]) != len) continue;
        for (k = 0; k < len && lower(start[k]) == names[i][k]; k++) {
        }
        if (k == len) return i;
    }
    return -1;
}

static const char *const MONTHS[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                     "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const DAYS[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun",
                                   "monday", "tuesday", "wednesday", "thursday",
                                   "friday", "saturday", "sunday"};

static int is_leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Year of the day now_s falls on, kept within 1970..9999: it only resolves
 * RFC 850's two-digit years. */
static int64_t year_of(int64_t now_s) {
    int64_t y = 1970, days;
    if (now_s <= 0) return 1970;
    if (now_s >= INT64_C(253402300799)) return 9999;
    days = now_s / 86400;
    while (days >= (is_leap(y) ? 366 : 365)) {
        days -= is_leap(y) ? 366 : 365;
        y++;
    }
    return y;
}

static int time_of_day(struct cursor *c, int *h, int *mi, int *s) {
    return digits(c, 2, 2, h) && eat(c, ':') && digits(c, 2, 2, mi) && eat(c, ':') &&
           digits(c, 2, 2, s) && *h <= 23 && *mi <= 59 && *s <= 60;
}

static int gmt(struct cursor *c) {
    static const char *const zone[] = {"gmt"};
    return eat(c, ' ') && name(c, zone, 1) == 0;
}

/* Parses an HTTP-date into seconds since the epoch. */
static int http_date(struct cursor *c, int64_t now_s, int64_t *out) {
    int day, mon, h, mi, s, y2;
    int64_t year;
    if (name(c, DAYS, 14) < 0) return -1;
    if (eat(c, ',')) {
        /* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" or
         * RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT". */
        if (!eat(c, ' ') || !digits(c, 1, 2, &day)) return -1;
        if (eat(c, ' ')) {
            int y4;
            if ((mon = name(c, MONTHS, 12)) < 0 || !eat(c, ' ') || !digits(c, 4, 4, &y4)) return -1;
            year = y4;
        } else if (eat(c, '-')) {
            int64_t now_year, century;
            if ((mon = name(c, MONTHS, 12)) < 0 || !eat(c, '-') || !digits(c, 2, 2, &y2)) return -1;
            /* RFC 9110: a year more than 50 years ahead is in the past century. */
            now_year = year_of(now_s);
            century = now_year - now_year % 100;
            year = century + y2;
            if (year > now_year + 50) year -= 100;
        } else {
            return -1;
        }
        if (!eat(c, ' ') || !time_of_day(c, &h, &mi, &s) || !gmt(c)) return -1;
    } else {
        /* asctime "Sun Nov  6 08:49:37 1994". */
        int y4;
        if (!eat(c, ' ') || (mon = name(c, MONTHS, 12)) < 0 || !eat(c, ' ')) return -1;
        eat(c, ' ');
        if (!digits(c, 1, 2, &day) || !eat(c, ' ') || !time_of_day(c, &h, &mi, &s) ||
            !eat(c, ' ') || !digits(c, 4, 4, &y4)) {
            return -1;
        }
        year = y4;
    }
    if (!at_end(c) || day < 1 || day > month_days(year, mon + 1)) return -1;
    *out = days_from_civil(year, mon + 1, day) * 86400 + h * 3600 + mi * 60 + s;
    return 0;
}

/* delta-seconds, saturating at the cap; a leading '-' means "now". */
static int delta_seconds(struct cursor *c, int64_t *delay_ms) {
    int negative = eat(c, '-');
    int64_t ms = 0, scale = 100;
    const char *start = c->p;
    while (!at_end(c) && *c->p >= '0' && *c->p <= '9') {
        if (ms <= KLING_RETRY_AFTER_MAX_MS) ms = ms * 10 + (*c->p - '0') * 1000;
        c->p++;
    }
    if (c->p == start) return -1;
    if (eat(c, '.')) {
        const char *frac = c->p;
        while (!at_end(c) && *c->p >= '0' && *c->p <= '9') {
            ms += (*c->p - '0') * scale;
            scale /= 10;
            c->p++;
        }
        if (c->p == frac) return -1;
    }
    if (!at_end(c)) return -1;
    *delay_ms = negative ? 0 : ms > KLING_RETRY_AFTER_MAX_MS ? KLING_RETRY_AFTER_MAX_MS : ms;
    return 0;
}

static int ows(char ch) {
    return ch == ' ' || ch == '\t';
}

int kling_retry_after(const char *s, size_t n, int64_t now_s, int64_t *delay_ms) {
    struct cursor c;
    int64_t when;
    c.p = s;
    c.end = s + n;
    while (c.p < c.end && ows(*c.p)) c.p++;
    while (c.end > c.p && ows(c.end[-1])) c.end--;
    if (at_end(&c)) return -1;
    if (*c.p == '-' || (*c.p >= '0' && *c.p <= '9')) {
        return delta_seconds(&c, delay_ms);
    }
    if (http_date(&c, now_s, &when) != 0) return -1;
    /* Compare before subtracting: now_s may be anywhere in int64. */
    if (now_s >= when) {
        *delay_ms = 0;
    } else if (now_s < when - KLING_RETRY_AFTER_MAX_MS / 1000) {
        *delay_ms = KLING_RETRY_AFTER_MAX_MS;
    } else {
        *delay_ms = (when - now_s) * 1000;
    }
    return 0;
}

/* ---- backoff and the decision ----------------------------------------- */

int64_t kling_backoff(int64_t attempt, int64_t base_ms, int64_t cap_ms, uint32_t r) {
    uint64_t hi, q, rem;
    int64_t i;
    if (base_ms <= 0 || cap_ms <= 0) return 0;
    hi = (uint64_t)(base_ms < cap_ms ? base_ms : cap_ms);
    /* Double until the cap: at most 63 rounds, whatever attempt is. */
    for (i = 0; i < attempt && hi < (uint64_t)cap_ms; i++) {
        hi = hi > (uint64_t)cap_ms / 2 ? (uint64_t)cap_ms : hi * 2;
    }
    /* hi * r / (2^32 - 1) without a 128-bit product. */
    q = hi / UINT32_MAX;
    rem = hi % UINT32_MAX;
    return (int64_t)(q * r + rem * r / UINT32_MAX);
}

int kling_method_idempotent(const char *m, size_t n) {
    static const char *const SAFE[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
    size_t i, k;
    for (i = 0; i < sizeof(SAFE) / sizeof(SAFE[0]); i++) {
        if (strlen(SAFE[i]) != n) continue;
        for (k = 0; k < n && (m[k] & ~0x20) == SAFE[i][k]; k++) {
        }
        if (k == n) return 1;
    }
    return 0;
}

struct kling_retry_out kling_decide(const struct kling_retry_in *in) {
    struct kling_retry_out out;
    struct kling_class cls;
    int sent = in->sent || in->received;
    int complete = in->transport == KLING_TR_NONE && in->http_status > 0;
    int64_t attempt = in->attempt < 0 ? 0 : in->attempt;
    int64_t delay = 0;
    int allowed;

    cls = in->transport != KLING_TR_NONE ? kling_classify_transport(in->transport)
                                         : kling_classify(in->codes, in->http_status, in->has_code,
                                                          in->code);
    if (cls.retryable) {
        if (in->has_retry_after) {
            delay = in->retry_after_ms < 0 ? 0
                  : in->retry_after_ms > KLING_RETRY_AFTER_MAX_MS ? KLING_RETRY_AFTER_MAX_MS
                  : in->retry_after_ms;
        } else {
            delay = kling_backoff(attempt, in->base_ms, in->cap_ms, in->r);
            if (cls.kind == KLING_KIND_RATE_LIMITED && delay < KLING_RATE_LIMIT_FLOOR_MS) {
                delay = KLING_RATE_LIMIT_FLOOR_MS;
            }
        }
    }
    /* A create that reached the server is never repeated here: a duplicate
     * would be billed twice. Only a lookup by external id may resolve it. */
    allowed = cls.retryable && (in->idempotent || !sent) && in->max_attempts > 0 &&
              attempt < in->max_attempts - 1 &&
              (!in->has_budget || (in->budget_ms > 0 && delay < in->budget_ms));

    out.retry = allowed;
    out.delay_ms = delay;
    out.kind = cls.kind;
    out.retryable = cls.retryable;
    /* A create whose answer was lost, or that the server failed part-way (5xx: a gateway
     * may time out after the task exists), may have made a task: look it up, never resend. */
    out.uncertain = !in->idempotent && sent && (!complete || cls.kind == KLING_KIND_SERVER);
    return out;
}
