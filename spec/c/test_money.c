/* Money core: decimal parsing and formatting at their edges, checked
 * arithmetic, and every price rule kind at its boundaries. Expected values are
 * worked out by hand from the seeds' prices. */
#include "money.h"

#include "check.h"

#include <stdio.h>
#include <string.h>

static void parse_ok(const char *s, int64_t want) {
    int64_t v = 12345;
    enum kling_money_err e = kling_money_parse(s, strlen(s), &v);
    CHECK_WHY(e == KLING_MONEY_OK && v == want, "parse '%s': err %d value %lld, want %lld",
              s, (int)e, (long long)v, (long long)want);
}

static void parse_err(const char *s, enum kling_money_err want) {
    int64_t v = 777;
    enum kling_money_err e = kling_money_parse(s, strlen(s), &v);
    CHECK_WHY(e == want && v == 777, "parse '%s': err %d (value %lld), want err %d",
              s, (int)e, (long long)v, (int)want);
}

static void format_is(int64_t v, const char *want) {
    char buf[KLING_MONEY_FMT_MAX];
    size_t n = kling_money_format(v, buf);
    CHECK_WHY(strcmp(buf, want) == 0 && n == strlen(want), "format %lld: '%s', want '%s'", (long long)v, buf, want);
}

static void fixed_is(int64_t v, int places, const char *want) {
    char buf[KLING_MONEY_FMT_MAX];
    kling_money_format_fixed(v, places, buf);
    CHECK_WHY(strcmp(buf, want) == 0, "fixed %lld/%d: '%s', want '%s'", (long long)v, places, buf, want);
}

static void ms_is(const char *s, int64_t want) {
    int64_t ms = -99;
    enum kling_money_err e = kling_seconds_parse_ms(s, strlen(s), &ms);
    CHECK_WHY(e == KLING_MONEY_OK && ms == want, "seconds '%s': err %d ms %lld, want %lld",
              s, (int)e, (long long)ms, (long long)want);
}

static void test_parse(void) {
    parse_ok("0.025", 25000);
    parse_ok("12", 12000000);
    parse_ok("-1.5", -1500000);
    parse_ok("0", 0);
    parse_ok("-0", 0);
    parse_ok("007.10", 7100000);
    parse_ok("0.000001", 1);
    parse_ok("0.0159", 15900);
    parse_ok("1.333", 1333000);
    parse_ok("9223372036854.775807", INT64_MAX);
    parse_ok("-9223372036854.775807", -INT64_MAX);
    parse_err("9223372036854.775808", KLING_MONEY_OVERFLOW);
    parse_err("9223372036855", KLING_MONEY_OVERFLOW);
    parse_err("99999999999999999999999", KLING_MONEY_OVERFLOW);
    parse_err("0.0000001", KLING_MONEY_PRECISION);
    parse_err("1.1234567", KLING_MONEY_PRECISION);
    parse_err("1.0000000", KLING_MONEY_PRECISION);
    parse_err("", KLING_MONEY_SYNTAX);
    parse_err("-", KLING_MONEY_SYNTAX);
    parse_err(".5", KLING_MONEY_SYNTAX);
    parse_err("5.", KLING_MONEY_SYNTAX);
    parse_err("+5", KLING_MONEY_SYNTAX);
    parse_err(" 5", KLING_MONEY_SYNTAX);
    parse_err("5 ", KLING_MONEY_SYNTAX);
    parse_err("1e3", KLING_MONEY_SYNTAX);
    parse_err("1,5", KLING_MONEY_SYNTAX);
    parse_err("1.2.3", KLING_MONEY_SYNTAX);
    parse_err("--1", KLING_MONEY_SYNTAX);
    parse_err("abc", KLING_MONEY_SYNTAX);
    parse_err("0x10", KLING_MONEY_SYNTAX);
    /* an embedded NUL is not the end of the string */
    {
        int64_t v = 0;
        CHECK(kling_money_parse("1\0" "5", 3, &v) == KLING_MONEY_SYNTAX);
        CHECK(kling_money_parse(NULL, 0, &v) == KLING_MONEY_SYNTAX);
    }
}

static void test_format(void) {
    format_is(0, "0");
    format_is(1, "0.000001");
    format_is(25000, "0.025");
    format_is(3500000, "3.5");
    format_is(12000000, "12");
    format_is(-1500000, "-1.5");
    format_is(-1, "-0.000001");
    format_is(INT64_MAX, "9223372036854.775807");
    format_is(INT64_MIN, "-9223372036854.775808");
    format_is(100000, "0.1");
    format_is(1234560, "1.23456");

    fixed_is(15900, 2, "0.02");      /* $0.0159 shows as 0.02 */
    fixed_is(3000000, 2, "3.00");
    fixed_is(5000, 2, "0.01");       /* exactly half: up */
    fixed_is(4999, 2, "0.00");
    fixed_is(-5000, 2, "-0.01");     /* half away from zero */
    fixed_is(-4999, 2, "0.00");      /* never "-0.00" */
    fixed_is(0, 2, "0.00");
    fixed_is(1999999, 0, "2");
    fixed_is(1499999, 0, "1");
    fixed_is(25000, 6, "0.025000");
    fixed_is(INT64_MAX, 2, "9223372036854.78");
    fixed_is(INT64_MIN, 2, "-9223372036854.78");

    /* every formatted value parses back to itself */
    {
        const int64_t vs[] = {0, 1, -1, 25000, 3500000, 999999, 1000000, -1000001, INT64_MAX, -INT64_MAX};
        size_t i;
        for (i = 0; i < sizeof vs / sizeof vs[0]; i++) {
            char buf[KLING_MONEY_FMT_MAX];
            int64_t back = 0;
            size_t n = kling_money_format(vs[i], buf);
            CHECK(kling_money_parse(buf, n, &back) == KLING_MONEY_OK && back == vs[i]);
        }
    }
}

static void test_seconds(void) {
    int64_t ms = 0;
    ms_is("5", 5000);
    ms_is("5.041", 5041);
    ms_is("5.0415", 5042);  /* half up beyond the millisecond */
    ms_is("5.04149", 5041);
    ms_is("2.5", 2500);
    ms_is("0", 0);
    ms_is("10.9999", 11000);
    CHECK(kling_seconds_parse_ms("-1", 2, &ms) == KLING_MONEY_NEGATIVE);
    CHECK(kling_seconds_parse_ms("5s", 2, &ms) == KLING_MONEY_SYNTAX);
    CHECK(kling_seconds_parse_ms("", 0, &ms) == KLING_MONEY_SYNTAX);
    CHECK(kling_seconds_parse_ms("99999999999999999", 17, &ms) == KLING_MONEY_OVERFLOW);
}

static void test_arith(void) {
    int64_t v = 0;
    CHECK(kling_money_add(1, 2, &v) == KLING_MONEY_OK && v == 3);
    CHECK(kling_money_add(INT64_MAX, 1, &v) == KLING_MONEY_OVERFLOW);
    CHECK(kling_money_add(INT64_MIN, -1, &v) == KLING_MONEY_OVERFLOW);
    CHECK(kling_money_add(INT64_MAX, -1, &v) == KLING_MONEY_OK && v == INT64_MAX - 1);
    CHECK(kling_money_sub(INT64_MIN, 1, &v) == KLING_MONEY_OVERFLOW);
    CHECK(kling_money_sub(0, INT64_MIN, &v) == KLING_MONEY_OVERFLOW);
    CHECK(kling_money_sub(5, 7, &v) == KLING_MONEY_OK && v == -2);
    CHECK(kling_money_mul(INT64_MAX, 2, &v) == KLING_MONEY_OVERFLOW);
    CHECK(kling_money_mul(INT64_MIN, 1, &v) == KLING_MONEY_OVERFLOW);
    CHECK(kling_money_mul(-4, 5, &v) == KLING_MONEY_OK && v == -20);
    CHECK(kling_money_mul(INT64_C(3037000499), INT64_C(3037000499), &v) == KLING_MONEY_OK);
    CHECK(kling_money_mul(INT64_C(3037000500), INT64_C(3037000500), &v) == KLING_MONEY_OVERFLOW);
    CHECK(kling_money_mul(0, INT64_MIN, &v) == KLING_MONEY_OK && v == 0);
    /* muldiv rounds half up */
    CHECK(kling_money_muldiv(63300, 5041, 1000, &v) == KLING_MONEY_OK && v == 319095); /* 319095.3 */
    CHECK(kling_money_muldiv(1, 500, 1000, &v) == KLING_MONEY_OK && v == 1);           /* 0.5 -> 1 */
    CHECK(kling_money_muldiv(1, 499, 1000, &v) == KLING_MONEY_OK && v == 0);
    CHECK(kling_money_muldiv(-1, 1, 1, &v) == KLING_MONEY_NEGATIVE);
    CHECK(kling_money_muldiv(1, 1, 0, &v) == KLING_MONEY_BAD_RULE);
    CHECK(kling_money_muldiv(INT64_MAX, 1, 1, &v) == KLING_MONEY_OK && v == INT64_MAX);
    /* exact whenever the result fits, however large the product a x b */
    CHECK(kling_money_muldiv(INT64_C(100000000000), INT64_C(100800000), 1000, &v) == KLING_MONEY_OK &&
          v == INT64_C(10080000000000000)); /* product 1.008e19 > 2^63 */
    CHECK(kling_money_muldiv(INT64_MAX, INT64_MAX, INT64_MAX, &v) == KLING_MONEY_OK && v == INT64_MAX);
    CHECK(kling_money_muldiv(INT64_MAX, INT64_MAX - 1, INT64_MAX, &v) == KLING_MONEY_OK && v == INT64_MAX - 1);
    CHECK(kling_money_muldiv(INT64_MAX, 1000, 1000, &v) == KLING_MONEY_OK && v == INT64_MAX);
    CHECK(kling_money_muldiv(INT64_MAX, 1001, 1000, &v) == KLING_MONEY_OVERFLOW);
    CHECK(kling_money_muldiv(INT64_MAX, INT64_MAX, 1, &v) == KLING_MONEY_OVERFLOW); /* quotient >= 2^64 */
    CHECK(kling_money_muldiv(INT64_MAX, 4, 2, &v) == KLING_MONEY_OVERFLOW);         /* 2^64 - 2 */
    /* (2^63 - 1) x 2 / 4 = 2^62 - 0.5 -> 2^62 (half up) */
    CHECK(kling_money_muldiv(INT64_MAX, 2, 4, &v) == KLING_MONEY_OK && v == INT64_C(4611686018427387904));
    /* (2^63 - 1) x 3 / 6 rounds up the same way; x 6 / 6 lands exactly on INT64_MAX */
    CHECK(kling_money_muldiv(INT64_MAX, 3, 6, &v) == KLING_MONEY_OK && v == INT64_C(4611686018427387904));
    CHECK(kling_money_muldiv(INT64_MAX, 6, 6, &v) == KLING_MONEY_OK && v == INT64_MAX);
    /* a quotient of INT64_MAX whose remainder rounds it up is out of range */
    CHECK(kling_money_muldiv(INT64_MAX, 2, 1, &v) == KLING_MONEY_OVERFLOW);
    CHECK(kling_money_muldiv(INT64_MAX, 1999, 1000, &v) == KLING_MONEY_OVERFLOW);
    /* half up beyond 2^64: (10^19 + 500) / 1000 goes up, (10^19 + 498) / 1000 down */
    CHECK(kling_money_muldiv(INT64_C(5000000000000000250), 2, 1000, &v) == KLING_MONEY_OK &&
          v == INT64_C(10000000000000001)); /* 10^16 + 0.5 -> up */
    CHECK(kling_money_muldiv(INT64_C(5000000000000000249), 2, 1000, &v) == KLING_MONEY_OK &&
          v == INT64_C(10000000000000000)); /* 10^16 + 0.498 -> down */
    CHECK(kling_money_muldiv(INT64_C(4000000000000000001), INT64_C(4000000000000000001), INT64_C(4000000000000000001),
                             &v) == KLING_MONEY_OK && v == INT64_C(4000000000000000001));
    /* conversion: 300 credits at $0.01 = $3; 40.5 credits at $0.014 = $0.567 */
    CHECK(kling_money_scale(300000000, 10000, &v) == KLING_MONEY_OK && v == 3000000);
    CHECK(kling_money_scale(40500000, 14000, &v) == KLING_MONEY_OK && v == 567000);
    CHECK(kling_money_scale(1, 500000, &v) == KLING_MONEY_OK && v == 1);   /* 0.5 micro -> 1 */
    CHECK(kling_money_scale(-1, 500000, &v) == KLING_MONEY_OK && v == -1); /* away from zero */
    CHECK(kling_money_scale(INT64_MIN, 1, &v) == KLING_MONEY_OVERFLOW);
    /* a large amount converted at a rate below 1: the product passes 2^63, the result fits */
    CHECK(kling_money_scale(INT64_C(9000000000000000000), 14000, &v) == KLING_MONEY_OK &&
          v == INT64_C(126000000000000000));
    CHECK(kling_money_scale(INT64_C(-9000000000000000001), 500000, &v) == KLING_MONEY_OK &&
          v == INT64_C(-4500000000000000001)); /* -4.5e18 - 0.5: away from zero */
}

/* ---- rules ---- */

static int64_t eval_ok(const struct kling_price_rule *r, int has_d, int64_t ms, int has_c, int64_t count,
                       int strict, struct kling_price_result *res, int line) {
    struct kling_price_usage u;
    enum kling_money_err e;
    u.has_duration = has_d;
    u.duration_ms = ms;
    u.has_count = has_c;
    u.count = count;
    u.strict = strict;
    e = kling_price_eval(r, &u, res);
    CHECK_WHY(e == KLING_MONEY_OK, "line %d: eval failed: %s (%s)", line, kling_money_strerror(e),
              res->field ? res->field : "-");
    if (e != KLING_MONEY_OK) {
        return -1;
    }
    return res->micros;
}

static enum kling_money_err eval_err(const struct kling_price_rule *r, int has_d, int64_t ms, int has_c,
                                     int64_t count, int strict, const char **field) {
    struct kling_price_usage u;
    struct kling_price_result res;
    enum kling_money_err e;
    u.has_duration = has_d;
    u.duration_ms = ms;
    u.has_count = has_c;
    u.count = count;
    u.strict = strict;
    e = kling_price_eval(r, &u, &res);
    *field = res.field;
    return e;
}

#define SECS(r, ms, strict) eval_ok((r), 1, (ms), 0, 0, (strict), &res, __LINE__)

static void test_per_second(void) {
    struct kling_price_rule r;
    struct kling_price_result res;
    const char *field = NULL;
    kling_price_rule_init(&r);
    r.kind = KLING_PRICE_PER_SECOND;
    r.price = 600000; /* o1 std without reference: 0.6 / s */
    CHECK(SECS(&r, 5000, 1) == 3000000);
    CHECK(SECS(&r, 10000, 1) == 6000000);
    CHECK(SECS(&r, 5041, 0) == 3024600); /* actual 5.041 s to the millisecond */
    CHECK(res.billed_ms == 5041);
    CHECK(SECS(&r, 0, 0) == 0);
    CHECK(eval_err(&r, 0, 0, 0, 0, 1, &field) == KLING_MONEY_MISSING && strcmp(field, "duration") == 0);
    CHECK(eval_err(&r, 1, -1, 0, 0, 1, &field) == KLING_MONEY_NEGATIVE && strcmp(field, "duration") == 0);
    /* 0.0633 $/s x 5.041 s = 0.3190953 -> 0.319095 */
    r.price = 63300;
    CHECK(SECS(&r, 5041, 0) == 319095);
    /* overflow of price x duration is an error, not a wrapped number */
    /* 100,000 units/s (10^11 micros) for 28 h: price x ms passes 2^63, the charge (10^10 units) fits */
    r.price = INT64_C(100000000000);
    CHECK(SECS(&r, INT64_C(100800000), 0) == INT64_C(10080000000000000));
    r.round = KLING_ROUND_CEIL;
    CHECK(SECS(&r, INT64_C(100799001), 0) == INT64_C(10080000000000000));
    r.round = KLING_ROUND_HALF_UP;
    CHECK(SECS(&r, INT64_C(100799500), 0) == INT64_C(10080000000000000));
    CHECK(SECS(&r, INT64_C(100799499), 0) == INT64_C(10079900000000000));
    r.round = KLING_ROUND_EXACT;
    r.price = INT64_C(100000000001); /* to the millisecond, rounded half up: x 100800001 ms / 1000 */
    CHECK(SECS(&r, INT64_C(100800001), 0) == INT64_C(10080000100100800)); /* ...100100800.001 */
    r.price = INT64_C(100000000005);
    CHECK(SECS(&r, INT64_C(100800100), 0) == INT64_C(10080010000504001)); /* ...504000.5 -> up */
    /* the multiplier: base x 1.5 where base x 1500000 passes 2^63 */
    r.price = INT64_C(100000000000);
    r.multiplier = 1500000;
    CHECK(SECS(&r, INT64_C(100800000), 0) == INT64_C(15120000000000000));
    r.multiplier = KLING_MICROS;
    r.price = INT64_MAX / 1000;
    CHECK(eval_err(&r, 1, 1001000, 0, 0, 0, &field) == KLING_MONEY_OVERFLOW && strcmp(field, "duration") == 0);
}

static void test_round_half_up(void) {
    struct kling_price_rule r;
    struct kling_price_result res;
    kling_price_rule_init(&r);
    r.kind = KLING_PRICE_PER_SECOND;
    r.round = KLING_ROUND_HALF_UP;
    r.price = 400000; /* avatar std: 0.4 / s, seconds rounded half up */
    CHECK(SECS(&r, 2500, 0) == 1200000 && res.billed_ms == 3000); /* 2.5 -> 3 s */
    CHECK(SECS(&r, 2499, 0) == 800000 && res.billed_ms == 2000);  /* 2.499 -> 2 s */
    CHECK(SECS(&r, 3000, 0) == 1200000);
    CHECK(SECS(&r, 499, 0) == 0);    /* 0.499 -> 0 s */
    CHECK(SECS(&r, 500, 0) == 400000);
    r.round = KLING_ROUND_CEIL;
    CHECK(SECS(&r, 2001, 0) == 1200000 && res.billed_ms == 3000);
    CHECK(SECS(&r, 2000, 0) == 800000);
}

static void test_minimum_and_multiplier(void) {
    struct kling_price_rule r;
    struct kling_price_result res;
    kling_price_rule_init(&r);
    r.kind = KLING_PRICE_PER_SECOND;
    r.price = 5400000; /* EvoLink: 5.4 credits / s, 3 s minimum */
    r.minimum_ms = 3000;
    CHECK(SECS(&r, 2000, 0) == 16200000 && res.minimum_applied && res.billed_ms == 3000);
    CHECK(SECS(&r, 2999, 0) == 16200000 && res.minimum_applied);
    CHECK(SECS(&r, 3000, 0) == 16200000 && !res.minimum_applied);
    CHECK(SECS(&r, 3001, 0) == 16205400 && !res.minimum_applied);
    CHECK(SECS(&r, 5000, 1) == 27000000);
    r.multiplier = 1500000; /* 720p with sound */
    CHECK(SECS(&r, 5000, 1) == 40500000 && res.base == 27000000);
    r.multiplier = 1333000; /* 1080p silent: 27 x 1.333 = 35.991 */
    CHECK(SECS(&r, 5000, 1) == 35991000);
    CHECK(SECS(&r, 2000, 1) == 21594600); /* the minimum first, then the ratio: 16.2 x 1.333 */
    /* 5.4 x 5.041 = 27.2214; x 1.333 = 36.2861262 -> 36.286126 */
    CHECK(SECS(&r, 5041, 0) == 36286126);
    r.multiplier = 2000000;
    CHECK(SECS(&r, 15000, 1) == 162000000);
    /* half a micro-unit rounds up */
    r.minimum_ms = 0;
    r.price = 1;
    r.multiplier = 1500000;
    CHECK(SECS(&r, 1000, 0) == 2); /* 1 x 1.5 = 1.5 -> 2 */
    r.multiplier = 1499999;
    CHECK(SECS(&r, 1000, 0) == 1);
}

static void test_tiered(void) {
    struct kling_price_rule r;
    struct kling_price_result res;
    const char *field = NULL;
    kling_price_rule_init(&r);
    r.kind = KLING_PRICE_TIERED;
    r.round = KLING_ROUND_HALF_UP;
    r.ntiers = 2;
    r.tiers[0].ms = 5000;
    r.tiers[0].price = 3500000; /* kling-v1 pro 5 s */
    r.tiers[1].ms = 10000;
    r.tiers[1].price = 7000000;
    CHECK(SECS(&r, 5000, 1) == 3500000 && res.tier_ms == 5000);
    CHECK(SECS(&r, 10000, 1) == 7000000 && res.tier_ms == 10000);
    /* an estimate must ask for a priced duration */
    CHECK(eval_err(&r, 1, 7000, 0, 0, 1, &field) == KLING_MONEY_NO_TIER && strcmp(field, "duration") == 0);
    CHECK(eval_err(&r, 1, 4000, 0, 0, 1, &field) == KLING_MONEY_NO_TIER);
    /* a settlement prices the actual length: 5.041 s is the 5 s clip, 10.4 s the 10 s one */
    CHECK(SECS(&r, 5041, 0) == 3500000);
    CHECK(SECS(&r, 10400, 0) == 7000000);
    CHECK(SECS(&r, 5500, 0) == 7000000); /* rounds to 6 s, the next tier up */
    CHECK(SECS(&r, 5499, 0) == 3500000);
    CHECK(eval_err(&r, 1, 10500, 0, 0, 0, &field) == KLING_MONEY_NO_TIER); /* 11 s: beyond the last */
    r.tier_match = KLING_TIER_CEIL;
    CHECK(SECS(&r, 3000, 1) == 3500000);
    CHECK(SECS(&r, 5001, 1) == 3500000); /* half up to 5 s first */
    CHECK(SECS(&r, 6000, 1) == 7000000);
    CHECK(eval_err(&r, 1, 11000, 0, 0, 1, &field) == KLING_MONEY_NO_TIER);
    /* tiers must ascend */
    r.tiers[1].ms = 5000;
    CHECK(eval_err(&r, 1, 5000, 0, 0, 1, &field) == KLING_MONEY_BAD_RULE && strcmp(field, "rule") == 0);
    r.ntiers = 0;
    CHECK(kling_price_rule_check(&r) == KLING_MONEY_BAD_RULE);
}

static void test_ceil_to_unit(void) {
    struct kling_price_rule r;
    struct kling_price_result res;
    kling_price_rule_init(&r);
    r.kind = KLING_PRICE_CEIL_TO_UNIT;
    r.price = 500000; /* advanced lip-sync: 0.5 per started 5 s */
    r.unit_ms = 5000;
    CHECK(SECS(&r, 4000, 1) == 500000 && res.units == 1);
    CHECK(SECS(&r, 5000, 1) == 500000 && res.units == 1);
    CHECK(SECS(&r, 5001, 0) == 1000000 && res.units == 2);
    CHECK(SECS(&r, 1, 0) == 500000);
    CHECK(SECS(&r, 10000, 1) == 1000000);
    CHECK(SECS(&r, 0, 0) == 0 && res.units == 0);
    r.unit_ms = 0;
    CHECK(kling_price_rule_check(&r) == KLING_MONEY_BAD_RULE);
    /* INT64_MAX ms must not overflow the unit count */
    r.unit_ms = 5000;
    r.price = 1;
    CHECK(SECS(&r, INT64_MAX, 0) == INT64_MAX / 5000 + 1);
}

static void test_units_calls_fixed(void) {
    struct kling_price_rule r;
    struct kling_price_result res;
    const char *field = NULL;
    kling_price_rule_init(&r);
    r.kind = KLING_PRICE_PER_UNIT;
    r.price = 25000; /* kling-v1-0 image: 0.025 each */
    CHECK(eval_ok(&r, 0, 0, 1, 4, 1, &res, __LINE__) == 100000 && res.count == 4);
    CHECK(eval_ok(&r, 0, 0, 0, 0, 1, &res, __LINE__) == 25000 && res.count == 1); /* n absent: 1 */
    CHECK(eval_ok(&r, 0, 0, 1, 0, 0, &res, __LINE__) == 0);                       /* nothing delivered */
    CHECK(eval_err(&r, 0, 0, 1, -1, 0, &field) == KLING_MONEY_NEGATIVE && strcmp(field, "count") == 0);
    r.price = INT64_MAX;
    CHECK(eval_err(&r, 0, 0, 1, 2, 0, &field) == KLING_MONEY_OVERFLOW && strcmp(field, "count") == 0);

    kling_price_rule_init(&r);
    r.kind = KLING_PRICE_PER_CALL;
    r.price = 50000; /* tts: 0.05 per call, duration irrelevant */
    CHECK(eval_ok(&r, 0, 0, 0, 0, 1, &res, __LINE__) == 50000);
    CHECK(eval_ok(&r, 1, 99000, 1, 7, 1, &res, __LINE__) == 50000);

    kling_price_rule_init(&r);
    r.kind = KLING_PRICE_FIXED;
    r.price = 250000; /* text-to-audio: 0.25 for 3..10 s */
    r.range_min_ms = 3000;
    r.range_max_ms = 10000;
    CHECK(eval_ok(&r, 1, 3000, 0, 0, 1, &res, __LINE__) == 250000);
    CHECK(eval_ok(&r, 1, 10000, 0, 0, 1, &res, __LINE__) == 250000);
    CHECK(eval_ok(&r, 0, 0, 0, 0, 1, &res, __LINE__) == 250000); /* no duration asked: the fixed price */
    CHECK(eval_err(&r, 1, 2999, 0, 0, 1, &field) == KLING_MONEY_RANGE && strcmp(field, "duration") == 0);
    CHECK(eval_err(&r, 1, 10001, 0, 0, 1, &field) == KLING_MONEY_RANGE);
    CHECK(eval_ok(&r, 1, 10040, 0, 0, 0, &res, __LINE__) == 250000); /* settled as delivered */
    r.range_min_ms = 20000;
    CHECK(kling_price_rule_check(&r) == KLING_MONEY_BAD_RULE);
}

static void test_bad_rules(void) {
    struct kling_price_rule r;
    kling_price_rule_init(&r);
    CHECK(kling_price_rule_check(&r) == KLING_MONEY_OK);
    r.price = -1;
    CHECK(kling_price_rule_check(&r) == KLING_MONEY_BAD_RULE);
    r.price = 0;
    r.multiplier = 0;
    CHECK(kling_price_rule_check(&r) == KLING_MONEY_BAD_RULE);
    r.multiplier = KLING_MICROS;
    r.minimum_ms = -5;
    CHECK(kling_price_rule_check(&r) == KLING_MONEY_BAD_RULE);
}

int main(void) {
    test_parse();
    test_format();
    test_seconds();
    test_arith();
    test_per_second();
    test_round_half_up();
    test_minimum_and_multiplier();
    test_tiered();
    test_ceil_to_unit();
    test_units_calls_fixed();
    test_bad_rules();
    return check_done();
}
