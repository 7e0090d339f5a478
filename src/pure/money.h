/* Money as int64 micro-units (millionths of the currency unit) and the price
 * rules of the catalogs. No float ever touches an amount: amounts enter as
 * decimal strings, durations as decimal seconds parsed to milliseconds, and
 * every multiply and add is checked for overflow. Pure: no Lua, no I/O. */
#ifndef KLING_MONEY_H
#define KLING_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define KLING_MICROS INT64_C(1000000) /* micro-units per unit */
#define KLING_MONEY_DECIMALS 6
#define KLING_MONEY_FMT_MAX 32 /* enough for any int64 amount, sign and NUL */
#define KLING_PRICE_MAX_TIERS 16

enum kling_money_err {
    KLING_MONEY_OK = 0,
    KLING_MONEY_SYNTAX,    /* not a decimal number */
    KLING_MONEY_PRECISION, /* more decimals than the unit allows */
    KLING_MONEY_OVERFLOW,  /* does not fit in int64 */
    KLING_MONEY_NEGATIVE,  /* a quantity or price below zero */
    KLING_MONEY_MISSING,   /* the rule needs a quantity the usage lacks */
    KLING_MONEY_NO_TIER,   /* the duration matches no tier */
    KLING_MONEY_RANGE,     /* the duration is outside the rule's range */
    KLING_MONEY_BAD_RULE   /* inconsistent rule data */
};

const char *kling_money_strerror(enum kling_money_err e);

/* Parses -?[0-9]+(.[0-9]+)? into an integer scaled by 10^decimals (0..9).
 * Digits beyond `decimals` are refused (round == 0) or rounded half up on the
 * magnitude (round != 0). No whitespace, no exponent, no leading '+'. */
enum kling_money_err kling_decimal_parse(const char *s, size_t len, int decimals, int round, int64_t *out);

/* Money: at most 6 decimals, e.g. "0.025" -> 25000, "-1.5" -> -1500000. */
enum kling_money_err kling_money_parse(const char *s, size_t len, int64_t *out);

/* Seconds as a decimal string ("5.041") -> milliseconds, rounded half up
 * beyond the millisecond; negative durations are refused. */
enum kling_money_err kling_seconds_parse_ms(const char *s, size_t len, int64_t *ms);

/* Writes v / 10^decimals with only the digits needed ("3.5", "0.025", "12",
 * "-1.5"); returns the length. buf must hold KLING_MONEY_FMT_MAX bytes. */
size_t kling_decimal_format(int64_t v, int decimals, char *buf);
size_t kling_money_format(int64_t micros, char *buf);

/* Exactly `places` (0..6) decimals, rounded half away from zero ("0.02" for
 * 0.0159): for display only, never fed back into arithmetic. */
size_t kling_money_format_fixed(int64_t micros, int places, char *buf);

/* Checked arithmetic. */
enum kling_money_err kling_money_add(int64_t a, int64_t b, int64_t *out);
enum kling_money_err kling_money_sub(int64_t a, int64_t b, int64_t *out);
enum kling_money_err kling_money_mul(int64_t a, int64_t b, int64_t *out);
/* round_half_up(a * b / d) for a, b >= 0 and d > 0, exact through a 128-bit
 * product: out of range only when the rounded result itself exceeds INT64_MAX. */
enum kling_money_err kling_money_muldiv(int64_t a, int64_t b, int64_t d, int64_t *out);
/* micros * ratio (ratio in micro-units, e.g. 1.333 -> 1333000), rounded half
 * away from zero to the micro-unit: currency conversion and multipliers. */
enum kling_money_err kling_money_scale(int64_t micros, int64_t ratio, int64_t *out);

/* ---- price rules ---- */

enum kling_price_kind {
    KLING_PRICE_PER_SECOND,  /* price per second x billed duration */
    KLING_PRICE_TIERED,      /* price of the duration tier */
    KLING_PRICE_PER_UNIT,    /* price per output (image, ...) x count */
    KLING_PRICE_PER_CALL,    /* price per accepted call */
    KLING_PRICE_FIXED,       /* one price whatever the duration (within range) */
    KLING_PRICE_CEIL_TO_UNIT /* price per started unit of duration */
};

/* What happens to the duration before it is priced. */
enum kling_price_round {
    KLING_ROUND_EXACT,   /* to the millisecond */
    KLING_ROUND_HALF_UP, /* to whole seconds, .5 up (2.5 s -> 3 s) */
    KLING_ROUND_CEIL     /* to whole seconds, any fraction up */
};

enum kling_tier_match {
    KLING_TIER_EXACT, /* the billed duration must equal a tier */
    KLING_TIER_CEIL   /* the first tier at or above the billed duration */
};

struct kling_price_tier {
    int64_t ms;    /* tier length */
    int64_t price; /* micros */
};

struct kling_price_rule {
    enum kling_price_kind kind;
    int64_t price;      /* micros: per second, per unit, per call, fixed, per started unit */
    int64_t unit_ms;    /* ceil_to_unit: the unit length */
    enum kling_price_round round;
    int64_t minimum_ms; /* billed duration at least this (0: none) */
    int64_t range_min_ms, range_max_ms; /* accepted durations when strict (-1: none) */
    int64_t multiplier; /* micros; KLING_MICROS is 1.0 */
    enum kling_tier_match tier_match;
    size_t ntiers;
    struct kling_price_tier tiers[KLING_PRICE_MAX_TIERS]; /* ascending */
};

struct kling_price_usage {
    int has_duration;
    int64_t duration_ms;
    int has_count;
    int64_t count; /* outputs; 1 when absent */
    int strict;    /* an estimate: enforce the range and exact tiers; a
                      settlement prices what happened (exact tiers fall back to
                      the next tier up, the range is not enforced) */
};

struct kling_price_result {
    int64_t micros;     /* the charge */
    int64_t base;       /* before the multiplier */
    int64_t billed_ms;  /* after rounding and the minimum (-1: duration unused) */
    int64_t units;      /* ceil_to_unit: started units */
    int64_t count;      /* per_unit: outputs priced */
    int64_t tier_ms;    /* tiered: the tier used */
    int64_t unit_price; /* per second / per unit / tier price used */
    int minimum_applied;
    const char *field;  /* on error: the usage field at fault ("duration", "count") or "rule" */
};

/* Defaults: per_call at 0, exact rounding, no minimum, no range, x1.0. */
void kling_price_rule_init(struct kling_price_rule *r);
/* Checks the rule data itself (non-negative prices, ascending tiers, ...). */
enum kling_money_err kling_price_rule_check(const struct kling_price_rule *r);
enum kling_money_err kling_price_eval(const struct kling_price_rule *r, const struct kling_price_usage *u,
                                      struct kling_price_result *res);

#endif
