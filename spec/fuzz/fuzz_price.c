/* Price-rule evaluation: any rule the checker accepts, any usage. Invariants:
 * a rule the checker refuses is refused by eval too; a charge is never
 * negative and equals its base at x1.0; an error names the field at fault;
 * the billed duration is never below the rule's minimum; a tier used is one
 * of the rule's tiers. */
#include "fuzz.h"
#include "money.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    struct kling_price_rule r;
    struct kling_price_usage u;
    struct kling_price_result res;
    enum kling_money_err e, checked;
    size_t i;

    kling_price_rule_init(&r);
    r.kind = (enum kling_price_kind)(fuzz_u8(&in) % 6);
    r.price = fuzz_int(&in);
    r.unit_ms = fuzz_int(&in);
    r.round = (enum kling_price_round)(fuzz_u8(&in) % 3);
    r.minimum_ms = fuzz_u8(&in) & 1 ? fuzz_int(&in) : 0;
    r.range_min_ms = fuzz_u8(&in) & 1 ? fuzz_int(&in) : -1;
    r.range_max_ms = fuzz_u8(&in) & 1 ? fuzz_int(&in) : -1;
    r.multiplier = fuzz_u8(&in) & 1 ? fuzz_int(&in) : KLING_MICROS;
    r.tier_match = (enum kling_tier_match)(fuzz_u8(&in) & 1);
    r.ntiers = fuzz_u8(&in) % (KLING_PRICE_MAX_TIERS + 2);
    for (i = 0; i < r.ntiers && i < KLING_PRICE_MAX_TIERS; i++) {
        r.tiers[i].ms = fuzz_int(&in);
        r.tiers[i].price = fuzz_int(&in);
    }
    memset(&u, 0, sizeof u);
    u.has_duration = fuzz_u8(&in) & 1;
    u.duration_ms = fuzz_int(&in);
    u.has_count = fuzz_u8(&in) & 1;
    u.count = u.has_count ? fuzz_int(&in) : 1;
    u.strict = fuzz_u8(&in) & 1;

    checked = kling_price_rule_check(&r);
    e = kling_price_eval(&r, &u, &res);
    FUZZ_CHECK(e <= KLING_MONEY_BAD_RULE);
    if (checked != KLING_MONEY_OK) {
        FUZZ_CHECK(e == checked && res.field != NULL && strcmp(res.field, "rule") == 0);
        return 0;
    }
    if (e != KLING_MONEY_OK) {
        FUZZ_CHECK(res.field != NULL);
        return 0;
    }
    FUZZ_CHECK(res.micros >= 0 && res.base >= 0 && res.unit_price >= 0);
    FUZZ_CHECK(r.multiplier != KLING_MICROS || res.micros == res.base);
    if (res.billed_ms >= 0) {
        FUZZ_CHECK(res.billed_ms >= r.minimum_ms);
    }
    if (r.kind == KLING_PRICE_TIERED) {
        int found = 0;
        for (i = 0; i < r.ntiers; i++) {
            found |= r.tiers[i].ms == res.tier_ms && r.tiers[i].price == res.unit_price;
        }
        FUZZ_CHECK(found);
    }
    return 0;
}
