/* Decimal strings <-> int64 micro-units and the evaluation of price rules.
 * Every multiply and add is checked: an amount that does not fit is an
 * error, never a wrapped or saturated number. */
#include "money.h"

static const int64_t POW10[] = {
    INT64_C(1),          INT64_C(10),          INT64_C(100),          INT64_C(1000),
    INT64_C(10000),      INT64_C(100000),      INT64_C(1000000),      INT64_C(10000000),
    INT64_C(100000000),  INT64_C(1000000000),
};

const char *kling_money_strerror(enum kling_money_err e) {
    switch (e) {
    case KLING_MONEY_OK: return "ok";
    case KLING_MONEY_SYNTAX: return "not a decimal number";
    case KLING_MONEY_PRECISION: return "too many decimals";
    case KLING_MONEY_OVERFLOW: return "amount out of range";
    case KLING_MONEY_NEGATIVE: return "must not be negative";
    case KLING_MONEY_MISSING: return "required by the price rule";
    case KLING_MONEY_NO_TIER: return "no price tier for this duration";
    case KLING_MONEY_RANGE: return "duration outside the priced range";
    case KLING_MONEY_BAD_RULE: return "inconsistent price rule";
    }
    return "unknown error";
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* mag = mag * 10 + d, checked against INT64_MAX. */
static int push_digit(int64_t *mag, int d) {
    if (*mag > (INT64_MAX - d) / 10) {
        return 0;
    }
    *mag = *mag * 10 + d;
    return 1;
}

enum kling_money_err kling_decimal_parse(const char *s, size_t len, int decimals, int round, int64_t *out) {
    size_t i = 0;
    int neg = 0, frac = 0, up = 0;
    int64_t mag = 0;
    if (s == NULL || decimals < 0 || decimals > 9) {
        return KLING_MONEY_SYNTAX;
    }
    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= len || !is_digit(s[i])) {
        return KLING_MONEY_SYNTAX;
    }
    for (; i < len && is_digit(s[i]); i++) {
        if (!push_digit(&mag, s[i] - '0')) {
            return KLING_MONEY_OVERFLOW;
        }
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || !is_digit(s[i])) {
            return KLING_MONEY_SYNTAX;
        }
        for (; i < len && is_digit(s[i]); i++) {
            if (frac < decimals) {
                if (!push_digit(&mag, s[i] - '0')) {
                    return KLING_MONEY_OVERFLOW;
                }
                frac++;
            } else if (!round) {
                return KLING_MONEY_PRECISION;
            } else if (frac == decimals) {
                up = s[i] >= '5'; /* the first dropped digit decides */
                frac++;
            }
        }
    }
    if (i != len) {
        return KLING_MONEY_SYNTAX;
    }
    for (; frac < decimals; frac++) {
        if (!push_digit(&mag, 0)) {
            return KLING_MONEY_OVERFLOW;
        }
    }
    if (up) {
        if (mag == INT64_MAX) {
            return KLING_MONEY_OVERFLOW;
        }
        mag++;
    }
    *out = neg ? -mag : mag;
    return KLING_MONEY_OK;
}

enum kling_money_err kling_money_parse(const char *s, size_t len, int64_t *out) {
    return kling_decimal_parse(s, len, KLING_MONEY_DECIMALS, 0, out);
}

enum kling_money_err kling_seconds_parse_ms(const char *s, size_t len, int64_t *ms) {
    int64_t v = 0;
    enum kling_money_err e = kling_decimal_parse(s, len, 3, 1, &v);
    if (e != KLING_MONEY_OK) {
        return e;
    }
    if (v < 0) {
        return KLING_MONEY_NEGATIVE;
    }
    *ms = v;
    return KLING_MONEY_OK;
}

/* Writes the magnitude u with `decimals` fraction digits; `strip` drops
 * trailing fraction zeros (and the point when nothing is left). */
static size_t format_unsigned(uint64_t u, int neg, int decimals, int strip, char *buf) {
    char tmp[KLING_MONEY_FMT_MAX];
    size_t n = 0, o = 0;
    uint64_t scale = (uint64_t)POW10[decimals];
    uint64_t ip = u / scale, fp = u % scale;
    int d;
    do {
        tmp[n++] = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip > 0);
    if (neg) {
        buf[o++] = '-';
    }
    while (n > 0) {
        buf[o++] = tmp[--n];
    }
    if (decimals > 0 && !(strip && fp == 0)) {
        char digits[10];
        int keep = decimals;
        for (d = decimals - 1; d >= 0; d--) {
            digits[d] = (char)('0' + fp % 10);
            fp /= 10;
        }
        if (strip) {
            while (keep > 0 && digits[keep - 1] == '0') {
                keep--;
            }
        }
        buf[o++] = '.';
        for (d = 0; d < keep; d++) {
            buf[o++] = digits[d];
        }
    }
    buf[o] = '\0';
    return o;
}

static uint64_t magnitude(int64_t v) {
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

size_t kling_decimal_format(int64_t v, int decimals, char *buf) {
    if (decimals < 0 || decimals > 9) {
        decimals = 0;
    }
    return format_unsigned(magnitude(v), v < 0, decimals, 1, buf);
}

size_t kling_money_format(int64_t micros, char *buf) {
    return kling_decimal_format(micros, KLING_MONEY_DECIMALS, buf);
}

size_t kling_money_format_fixed(int64_t micros, int places, char *buf) {
    uint64_t u = magnitude(micros), div, q, r;
    if (places < 0 || places > KLING_MONEY_DECIMALS) {
        places = 2;
    }
    div = (uint64_t)POW10[KLING_MONEY_DECIMALS - places];
    q = u / div;
    r = u % div;
    if (r >= div - r) {
        q++; /* half away from zero; q + 1 cannot wrap: q <= 2^63 */
    }
    return format_unsigned(q, micros < 0 && q != 0, places, 0, buf);
}

enum kling_money_err kling_money_add(int64_t a, int64_t b, int64_t *out) {
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) {
        return KLING_MONEY_OVERFLOW;
    }
    *out = a + b;
    return KLING_MONEY_OK;
}

enum kling_money_err kling_money_sub(int64_t a, int64_t b, int64_t *out) {
    if ((b < 0 && a > INT64_MAX + b) || (b > 0 && a < INT64_MIN + b)) {
        return KLING_MONEY_OVERFLOW;
    }
    *out = a - b;
    return KLING_MONEY_OK;
}

enum kling_money_err kling_money_mul(int64_t a, int64_t b, int64_t *out) {
    if (a == 0 || b == 0) {
        *out = 0;
        return KLING_MONEY_OK;
    }
    if (a == INT64_MIN || b == INT64_MIN) {
        return KLING_MONEY_OVERFLOW;
    }
    if (magnitude(a) > (uint64_t)INT64_MAX / magnitude(b)) {
        return KLING_MONEY_OVERFLOW;
    }
    *out = a * b;
    return KLING_MONEY_OK;
}

/* The 128-bit intermediate of muldiv: the compiler's unsigned __int128 where
 * it has one, else a 64x64->128 multiply and a 128/64 division written out
 * (KLING_MONEY_NO_INT128 forces those, so that tests cover them too). */
#if defined(__SIZEOF_INT128__) && !defined(KLING_MONEY_NO_INT128)
#define KLING_HAVE_INT128 1
#else
#define KLING_HAVE_INT128 0
#endif

/* a * b = hi * 2^64 + lo */
static void mul_64x64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
#if KLING_HAVE_INT128
    unsigned __int128 p = (unsigned __int128)a * b;
    *hi = (uint64_t)(p >> 64);
    *lo = (uint64_t)p;
#else
    const uint64_t m32 = UINT64_C(0xffffffff);
    uint64_t a0 = a & m32, a1 = a >> 32, b0 = b & m32, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (p01 & m32) + (p10 & m32); /* < 3 * 2^32: no wrap */
    *lo = (mid << 32) | (p00 & m32);
    *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
#endif
}

/* (hi * 2^64 + lo) / d and its remainder, for hi < d (the quotient fits in 64 bits). */
static void div_128_64(uint64_t hi, uint64_t lo, uint64_t d, uint64_t *q, uint64_t *r) {
#if KLING_HAVE_INT128
    unsigned __int128 n = ((unsigned __int128)hi << 64) | lo;
    *q = (uint64_t)(n / d);
    *r = (uint64_t)(n % d);
#else
    /* Restoring division, one quotient bit per step; the running remainder
     * (top:hi) stays below 2d, so hi - d is exact modulo 2^64 even when top is set. */
    uint64_t quo = 0, top;
    int i;
    for (i = 0; i < 64; i++) {
        top = hi >> 63;
        hi = (hi << 1) | (lo >> 63);
        lo <<= 1;
        quo <<= 1;
        if (top || hi >= d) {
            hi -= d;
            quo |= 1;
        }
    }
    *q = quo;
    *r = hi;
#endif
}

enum kling_money_err kling_money_muldiv(int64_t a, int64_t b, int64_t d, int64_t *out) {
    uint64_t hi, lo, ud, q, r;
    if (a < 0 || b < 0) {
        return KLING_MONEY_NEGATIVE;
    }
    if (d <= 0) {
        return KLING_MONEY_BAD_RULE;
    }
    ud = (uint64_t)d;
    mul_64x64((uint64_t)a, (uint64_t)b, &hi, &lo);
    if (hi == 0) { /* the common case: the product fits in 64 bits */
        q = lo / ud;
        r = lo % ud;
    } else if (hi >= ud) {
        return KLING_MONEY_OVERFLOW; /* the quotient is 2^64 or more */
    } else {
        div_128_64(hi, lo, ud, &q, &r);
    }
    if (q > (uint64_t)INT64_MAX) {
        return KLING_MONEY_OVERFLOW;
    }
    if (r >= ud - r) {
        q++; /* half up; q <= INT64_MAX here, so q + 1 cannot wrap */
    }
    if (q > (uint64_t)INT64_MAX) {
        return KLING_MONEY_OVERFLOW;
    }
    *out = (int64_t)q;
    return KLING_MONEY_OK;
}

enum kling_money_err kling_money_scale(int64_t micros, int64_t ratio, int64_t *out) {
    int64_t v;
    enum kling_money_err e;
    if (micros == INT64_MIN || ratio == INT64_MIN) {
        return KLING_MONEY_OVERFLOW;
    }
    e = kling_money_muldiv(micros < 0 ? -micros : micros, ratio < 0 ? -ratio : ratio, KLING_MICROS, &v);
    if (e != KLING_MONEY_OK) {
        return e;
    }
    *out = ((micros < 0) != (ratio < 0)) ? -v : v;
    return KLING_MONEY_OK;
}

/* ---- price rules ---- */

void kling_price_rule_init(struct kling_price_rule *r) {
    size_t i;
    r->kind = KLING_PRICE_PER_CALL;
    r->price = 0;
    r->unit_ms = 0;
    r->round = KLING_ROUND_EXACT;
    r->minimum_ms = 0;
    r->range_min_ms = -1;
    r->range_max_ms = -1;
    r->multiplier = KLING_MICROS;
    r->tier_match = KLING_TIER_EXACT;
    r->ntiers = 0;
    for (i = 0; i < KLING_PRICE_MAX_TIERS; i++) {
        r->tiers[i].ms = 0;
        r->tiers[i].price = 0;
    }
}

enum kling_money_err kling_price_rule_check(const struct kling_price_rule *r) {
    size_t i;
    if (r->price < 0 || r->minimum_ms < 0 || r->multiplier <= 0) {
        return KLING_MONEY_BAD_RULE;
    }
    if (r->kind == KLING_PRICE_CEIL_TO_UNIT && r->unit_ms <= 0) {
        return KLING_MONEY_BAD_RULE;
    }
    if (r->range_min_ms < -1 || r->range_max_ms < -1 ||
        (r->range_min_ms >= 0 && r->range_max_ms >= 0 && r->range_min_ms > r->range_max_ms)) {
        return KLING_MONEY_BAD_RULE;
    }
    if (r->kind == KLING_PRICE_TIERED) {
        if (r->ntiers == 0 || r->ntiers > KLING_PRICE_MAX_TIERS) {
            return KLING_MONEY_BAD_RULE;
        }
        for (i = 0; i < r->ntiers; i++) {
            if (r->tiers[i].ms <= 0 || r->tiers[i].price < 0 ||
                (i > 0 && r->tiers[i].ms <= r->tiers[i - 1].ms)) {
                return KLING_MONEY_BAD_RULE;
            }
        }
    }
    return KLING_MONEY_OK;
}

static int needs_duration(enum kling_price_kind k) {
    return k == KLING_PRICE_PER_SECOND || k == KLING_PRICE_TIERED || k == KLING_PRICE_CEIL_TO_UNIT;
}

/* Whole seconds: half up adds 500 ms before truncating, ceil adds 999. */
static enum kling_money_err round_ms(int64_t ms, enum kling_price_round mode, int64_t *out) {
    int64_t add = mode == KLING_ROUND_HALF_UP ? 500 : mode == KLING_ROUND_CEIL ? 999 : 0;
    int64_t v;
    if (mode == KLING_ROUND_EXACT) {
        *out = ms;
        return KLING_MONEY_OK;
    }
    if (kling_money_add(ms, add, &v) != KLING_MONEY_OK) {
        return KLING_MONEY_OVERFLOW;
    }
    *out = v / 1000 * 1000;
    return KLING_MONEY_OK;
}

static const struct kling_price_tier *find_tier(const struct kling_price_rule *r, int64_t ms, int exact) {
    size_t i;
    for (i = 0; i < r->ntiers; i++) {
        if (exact ? r->tiers[i].ms == ms : r->tiers[i].ms >= ms) {
            return &r->tiers[i];
        }
    }
    return NULL;
}

static enum kling_money_err fail(struct kling_price_result *res, const char *field, enum kling_money_err e) {
    res->field = field;
    return e;
}

static enum kling_money_err base_price(const struct kling_price_rule *r, const struct kling_price_usage *u,
                                       struct kling_price_result *res) {
    const struct kling_price_tier *t;
    enum kling_money_err e;
    switch (r->kind) {
    case KLING_PRICE_PER_SECOND:
        res->unit_price = r->price;
        return kling_money_muldiv(r->price, res->billed_ms, 1000, &res->base);
    case KLING_PRICE_CEIL_TO_UNIT:
        res->unit_price = r->price;
        /* started units: ceil(billed / unit) without the overflow of billed + unit - 1 */
        res->units = res->billed_ms / r->unit_ms + (res->billed_ms % r->unit_ms != 0);
        return kling_money_mul(r->price, res->units, &res->base);
    case KLING_PRICE_TIERED:
        t = find_tier(r, res->billed_ms, r->tier_match == KLING_TIER_EXACT && u->strict);
        if (t == NULL) {
            return KLING_MONEY_NO_TIER;
        }
        res->tier_ms = t->ms;
        res->unit_price = t->price;
        res->base = t->price;
        return KLING_MONEY_OK;
    case KLING_PRICE_PER_UNIT:
        res->count = u->has_count ? u->count : 1;
        if (res->count < 0) {
            res->field = "count";
            return KLING_MONEY_NEGATIVE;
        }
        res->unit_price = r->price;
        e = kling_money_mul(r->price, res->count, &res->base);
        if (e != KLING_MONEY_OK) {
            res->field = "count";
        }
        return e;
    case KLING_PRICE_PER_CALL:
    case KLING_PRICE_FIXED:
        res->unit_price = r->price;
        res->base = r->price;
        return KLING_MONEY_OK;
    }
    return KLING_MONEY_BAD_RULE;
}

enum kling_money_err kling_price_eval(const struct kling_price_rule *r, const struct kling_price_usage *u,
                                      struct kling_price_result *res) {
    enum kling_money_err e;
    int64_t ms = u->duration_ms;
    res->micros = res->base = 0;
    res->billed_ms = -1;
    res->units = res->count = res->tier_ms = res->unit_price = 0;
    res->minimum_applied = 0;
    res->field = NULL;

    e = kling_price_rule_check(r);
    if (e != KLING_MONEY_OK) {
        return fail(res, "rule", e);
    }
    if (u->has_duration && ms < 0) {
        return fail(res, "duration", KLING_MONEY_NEGATIVE);
    }
    if (needs_duration(r->kind) && !u->has_duration) {
        return fail(res, "duration", KLING_MONEY_MISSING);
    }
    if (u->strict && u->has_duration &&
        ((r->range_min_ms >= 0 && ms < r->range_min_ms) || (r->range_max_ms >= 0 && ms > r->range_max_ms))) {
        return fail(res, "duration", KLING_MONEY_RANGE);
    }
    if (needs_duration(r->kind)) {
        e = round_ms(ms, r->round, &res->billed_ms);
        if (e != KLING_MONEY_OK) {
            return fail(res, "duration", e);
        }
        if (res->billed_ms < r->minimum_ms) {
            res->billed_ms = r->minimum_ms;
            res->minimum_applied = 1;
        }
    }
    e = base_price(r, u, res);
    if (e != KLING_MONEY_OK) {
        return fail(res, res->field ? res->field : "duration", e);
    }
    if (r->multiplier == KLING_MICROS) {
        res->micros = res->base;
        return KLING_MONEY_OK;
    }
    e = kling_money_muldiv(res->base, r->multiplier, KLING_MICROS, &res->micros);
    return e == KLING_MONEY_OK ? e : fail(res, res->field ? res->field : "duration", e);
}
