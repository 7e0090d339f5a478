/* Lua bindings of the money core (src/pure/money.c): decimal micro-units and
 * price rules. Amounts cross the boundary as integers on Lua 5.4; LuaJIT
 * numbers are doubles, exact only below 2^53, so larger amounts raise there
 * instead of silently losing micro-units. Malformed rule data raises (it is a
 * catalog bug); bad usage returns nil, message, field. */
#include "kling.h"
#include "money.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define EXACT_MAX INT64_C(9007199254740992) /* 2^53: the last exactly held double integer */
#define ERRLEN 160

static void push_micros(lua_State *L, int64_t v) {
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(L, (lua_Integer)v);
#else
    if (v > EXACT_MAX || v < -EXACT_MAX) {
        char buf[KLING_MONEY_FMT_MAX];
        kling_money_format(v, buf);
        luaL_error(L, "kling.core: amount %s exceeds 2^53 micro-units, which LuaJIT cannot hold exactly", buf);
    }
    lua_pushnumber(L, (lua_Number)v);
#endif
}

/* An integer argument: an integer subtype on 5.4; on LuaJIT an integral
 * number within 2^53. Returns 0 when v is not one. */
static int to_int64(lua_State *L, int idx, int64_t *v) {
    lua_Number d;
    if (lua_type(L, idx) != LUA_TNUMBER) {
        return 0;
    }
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        *v = (int64_t)lua_tointeger(L, idx);
        return 1;
    }
#endif
    d = lua_tonumber(L, idx);
    if (!(d >= -(lua_Number)EXACT_MAX && d <= (lua_Number)EXACT_MAX) || d != (lua_Number)(int64_t)d) {
        return 0;
    }
    *v = (int64_t)d;
    return 1;
}

/* Micro-units: never a float on 5.4 (a float amount is a bug upstream). */
static int64_t check_micros(lua_State *L, int arg) {
    int64_t v = 0;
#if LUA_VERSION_NUM >= 503
    if (!lua_isinteger(L, arg)) {
        luaL_argerror(L, arg, "integer micro-units expected");
    }
#endif
    if (!to_int64(L, arg, &v)) {
        luaL_argerror(L, arg, "integer micro-units expected (at most 2^53 on LuaJIT)");
    }
    return v;
}

/* Seconds as an integer, a number or a decimal string -> ms. A fractional
 * number (a JSON float such as 5.5) is printed with DBL_DIG (15) significant
 * digits, the decimal it was written as, and parsed as that decimal: half up
 * beyond the millisecond, as a string is. Printed to the millisecond, the
 * binary value's rounding decided instead (1.0005 s, a double just under it,
 * and 0.0625 s, half-even, were a millisecond short of "1.0005" and "0.0625").
 * It is a duration, never an amount. On error returns the message. */
static const char *seconds_ms(lua_State *L, int idx, int64_t *ms) {
    enum kling_money_err e;
    int64_t whole;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        e = kling_seconds_parse_ms(s, len, ms);
        return e == KLING_MONEY_OK ? NULL : kling_money_strerror(e);
    }
    if (lua_type(L, idx) != LUA_TNUMBER) {
        return "seconds expected (a number or a decimal string)";
    }
    if (to_int64(L, idx, &whole)) {
        if (whole < 0) {
            return kling_money_strerror(KLING_MONEY_NEGATIVE);
        }
        e = kling_money_mul(whole, 1000, ms);
        return e == KLING_MONEY_OK ? NULL : kling_money_strerror(e);
    } else {
        char buf[64];
        lua_Number d = lua_tonumber(L, idx);
        int n, idigits = 1, places;
        double p10 = 10.0;
        if (!isfinite(d) || d < 0 || d > 1e15) {
            return d < 0 ? kling_money_strerror(KLING_MONEY_NEGATIVE) : kling_money_strerror(KLING_MONEY_OVERFLOW);
        }
        while (idigits < 16 && (double)d >= p10) {
            idigits++;
            p10 *= 10.0;
        }
        places = DBL_DIG - idigits < 3 ? 3 : DBL_DIG - idigits;
        n = snprintf(buf, sizeof buf, "%.*f", places, (double)d);
        if (n <= 0 || (size_t)n >= sizeof buf) {
            return kling_money_strerror(KLING_MONEY_OVERFLOW);
        }
        e = kling_seconds_parse_ms(buf, (size_t)n, ms);
        return e == KLING_MONEY_OK ? NULL : kling_money_strerror(e);
    }
}

static void push_seconds(lua_State *L, int64_t ms) {
    char buf[KLING_MONEY_FMT_MAX];
    size_t n = kling_decimal_format(ms, 3, buf);
    lua_pushlstring(L, buf, n);
}

static void push_amount(lua_State *L, int64_t micros) {
    char buf[KLING_MONEY_FMT_MAX];
    size_t n = kling_money_format(micros, buf);
    lua_pushlstring(L, buf, n);
}

/* ---- money_* ---- */

static int l_money_parse(lua_State *L) {
    size_t len;
    const char *s;
    int64_t v = 0;
    enum kling_money_err e;
    /* a number may already be a float: only strings are amounts */
    luaL_checktype(L, 1, LUA_TSTRING);
    s = lua_tolstring(L, 1, &len);
    e = kling_money_parse(s, len, &v);
    if (e != KLING_MONEY_OK) {
        lua_pushnil(L);
        kling_push_quoted(L, s, len);
        lua_pushfstring(L, "%s: %s", lua_tostring(L, -1), e == KLING_MONEY_PRECISION ? "more than 6 decimals"
                                                                                    : kling_money_strerror(e));
        lua_remove(L, -2);
        return 2;
    }
#if LUA_VERSION_NUM < 503
    /* a parsed text is input (a config, an admin body, an upstream's charge): one LuaJIT
     * cannot hold exactly is refused like any other bad amount, never raised */
    if (v > EXACT_MAX || v < -EXACT_MAX) {
        lua_pushnil(L);
        kling_push_quoted(L, s, len);
        lua_pushfstring(L, "%s: amount out of range (at most 2^53 micro-units on LuaJIT)", lua_tostring(L, -1));
        lua_remove(L, -2);
        return 2;
    }
#endif
    push_micros(L, v);
    return 1;
}

/* money_format(micros [, places]): minimal digits, or exactly `places`. */
static int l_money_format(lua_State *L) {
    char buf[KLING_MONEY_FMT_MAX];
    int64_t v = check_micros(L, 1);
    size_t n;
    if (lua_isnoneornil(L, 2)) {
        n = kling_money_format(v, buf);
    } else {
        lua_Integer places = luaL_checkinteger(L, 2);
        luaL_argcheck(L, places >= 0 && places <= KLING_MONEY_DECIMALS, 2, "places must be 0..6");
        n = kling_money_format_fixed(v, (int)places, buf);
    }
    lua_pushlstring(L, buf, n);
    return 1;
}

/* A result returned as nil, message: on LuaJIT one beyond 2^53 is out of
 * range there (returned, not raised as push_micros does). */
static int push_result(lua_State *L, enum kling_money_err e, int64_t v) {
#if LUA_VERSION_NUM < 503
    if (e == KLING_MONEY_OK && (v > EXACT_MAX || v < -EXACT_MAX)) {
        e = KLING_MONEY_OVERFLOW;
    }
#endif
    if (e != KLING_MONEY_OK) {
        lua_pushnil(L);
        lua_pushstring(L, kling_money_strerror(e));
        return 2;
    }
    push_micros(L, v);
    return 1;
}

static int l_money_add(lua_State *L) {
    int64_t v = 0;
    enum kling_money_err e = kling_money_add(check_micros(L, 1), check_micros(L, 2), &v);
    return push_result(L, e, v);
}

static int l_money_sub(lua_State *L) {
    int64_t v = 0;
    enum kling_money_err e = kling_money_sub(check_micros(L, 1), check_micros(L, 2), &v);
    return push_result(L, e, v);
}

/* money_scale(micros, ratio): micros x a decimal ratio ("0.014", "1.333"),
 * rounded half away from zero: currency conversion. */
static int l_money_scale(lua_State *L) {
    int64_t m = check_micros(L, 1), ratio = 0, v = 0;
    size_t len;
    const char *s;
    enum kling_money_err e;
    luaL_checktype(L, 2, LUA_TSTRING);
    s = lua_tolstring(L, 2, &len);
    e = kling_money_parse(s, len, &ratio);
    if (e != KLING_MONEY_OK) {
        return luaL_argerror(L, 2, "decimal ratio with at most 6 decimals expected");
    }
    e = kling_money_scale(m, ratio, &v);
    return push_result(L, e, v);
}

static int l_seconds_ms(lua_State *L) {
    int64_t ms = 0;
    const char *err;
    luaL_checkany(L, 1);
    err = seconds_ms(L, 1, &ms);
    if (err != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return push_result(L, KLING_MONEY_OK, ms);
}

static int l_seconds_format(lua_State *L) {
    push_seconds(L, check_micros(L, 1));
    return 1;
}

/* ---- price rules ---- */

struct rule_names {
    const char *name;
    int value;
};

static const struct rule_names KINDS[] = {
    {"per_second", KLING_PRICE_PER_SECOND}, {"tiered", KLING_PRICE_TIERED},
    {"per_unit", KLING_PRICE_PER_UNIT},     {"per_image", KLING_PRICE_PER_UNIT},
    {"per_call", KLING_PRICE_PER_CALL},     {"fixed", KLING_PRICE_FIXED},
    {"ceil_to_unit", KLING_PRICE_CEIL_TO_UNIT}, {NULL, 0},
};
static const struct rule_names ROUNDS[] = {
    {"exact", KLING_ROUND_EXACT}, {"half_up", KLING_ROUND_HALF_UP}, {"ceil", KLING_ROUND_CEIL}, {NULL, 0},
};
static const struct rule_names MATCHES[] = {
    {"exact", KLING_TIER_EXACT}, {"ceil", KLING_TIER_CEIL}, {NULL, 0},
};

/* Looks up field `name` of the table at idx among `names`; absent -> def. */
static int rule_enum(lua_State *L, int idx, const char *name, const struct rule_names *names, int def,
                     int *out, char *err) {
    int i;
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *out = def;
        return 1;
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        for (i = 0; names[i].name != NULL; i++) {
            if (kling_is_name(s, len, names[i].name)) {
                *out = names[i].value;
                lua_pop(L, 1);
                return 1;
            }
        }
    }
    lua_pop(L, 1);
    snprintf(err, ERRLEN, "price rule field '%s': unknown value", name);
    return 0;
}

/* A price: a decimal string only (a Lua number may already be a float). */
static int rule_money(lua_State *L, int idx, const char *name, int required, int64_t *out, char *err) {
    enum kling_money_err e;
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1) && !required) {
        lua_pop(L, 1);
        return 1;
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        snprintf(err, ERRLEN, "price rule field '%s': a decimal string is required", name);
        return 0;
    }
    {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        e = kling_money_parse(s, len, out);
    }
    lua_pop(L, 1);
    if (e == KLING_MONEY_OK && *out < 0) {
        e = KLING_MONEY_NEGATIVE;
    }
    if (e != KLING_MONEY_OK) {
        snprintf(err, ERRLEN, "price rule field '%s': %s", name, kling_money_strerror(e));
        return 0;
    }
    return 1;
}

static int rule_seconds(lua_State *L, int idx, const char *name, int64_t *out, char *err) {
    const char *e;
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 1;
    }
    e = seconds_ms(L, -1, out);
    lua_pop(L, 1);
    if (e != NULL) {
        snprintf(err, ERRLEN, "price rule field '%s': %s", name, e);
        return 0;
    }
    return 1;
}

static int rule_range(lua_State *L, int idx, struct kling_price_rule *r, char *err) {
    int ok = 1;
    lua_getfield(L, idx, "range");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 1;
    }
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        snprintf(err, ERRLEN, "price rule field 'range': {min_seconds, max_seconds} expected");
        return 0;
    }
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    if (!lua_isnil(L, -2) && seconds_ms(L, -2, &r->range_min_ms) != NULL) {
        ok = 0;
    }
    if (ok && !lua_isnil(L, -1) && seconds_ms(L, -1, &r->range_max_ms) != NULL) {
        ok = 0;
    }
    lua_pop(L, 3);
    if (!ok) {
        snprintf(err, ERRLEN, "price rule field 'range': seconds expected");
    }
    return ok;
}

static int rule_tiers(lua_State *L, int idx, struct kling_price_rule *r, char *err) {
    size_t i, n;
    lua_getfield(L, idx, "tiers");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        snprintf(err, ERRLEN, "price rule field 'tiers': a list of {seconds=, price=} is required");
        return 0;
    }
    n = (size_t)lua_rawlen(L, -1);
    if (n == 0 || n > KLING_PRICE_MAX_TIERS) {
        lua_pop(L, 1);
        snprintf(err, ERRLEN, "price rule field 'tiers': 1..%d tiers expected", KLING_PRICE_MAX_TIERS);
        return 0;
    }
    for (i = 0; i < n; i++) {
        int ok;
        lua_rawgeti(L, -1, (int)i + 1);
        ok = lua_istable(L, -1);
        if (ok) {
            int top = lua_gettop(L);
            r->tiers[i].ms = -1;
            ok = rule_seconds(L, top, "seconds", &r->tiers[i].ms, err) &&
                 rule_money(L, top, "price", 1, &r->tiers[i].price, err);
            if (ok && r->tiers[i].ms < 0) {
                snprintf(err, ERRLEN, "price rule field 'tiers': tier %d needs seconds", (int)i + 1);
                ok = 0;
            }
        } else {
            snprintf(err, ERRLEN, "price rule field 'tiers': tier %d is not a table", (int)i + 1);
        }
        lua_pop(L, 1);
        if (!ok) {
            lua_pop(L, 1);
            return 0;
        }
    }
    lua_pop(L, 1);
    r->ntiers = n;
    return 1;
}

/* Reads the rule table at idx; on failure writes the reason into err. */
static int read_rule(lua_State *L, int idx, struct kling_price_rule *r, char *err) {
    int kind = 0, round = 0, match = 0;
    enum kling_money_err e;
    kling_price_rule_init(r);
    if (!lua_istable(L, idx)) {
        snprintf(err, ERRLEN, "price rule: table expected");
        return 0;
    }
    lua_getfield(L, idx, "kind");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        snprintf(err, ERRLEN, "price rule field 'kind' is required");
        return 0;
    }
    lua_pop(L, 1);
    if (!rule_enum(L, idx, "kind", KINDS, 0, &kind, err) ||
        !rule_enum(L, idx, "round", ROUNDS, KLING_ROUND_EXACT, &round, err) ||
        !rule_enum(L, idx, "tier_match", MATCHES, KLING_TIER_EXACT, &match, err)) {
        return 0;
    }
    r->kind = (enum kling_price_kind)kind;
    r->round = (enum kling_price_round)round;
    r->tier_match = (enum kling_tier_match)match;
    if (r->kind == KLING_PRICE_TIERED) {
        if (!rule_tiers(L, idx, r, err)) {
            return 0;
        }
    } else if (!rule_money(L, idx, "price", 1, &r->price, err)) {
        return 0;
    }
    if (!rule_money(L, idx, "multiplier", 0, &r->multiplier, err) ||
        !rule_seconds(L, idx, "unit", &r->unit_ms, err) ||
        !rule_seconds(L, idx, "minimum", &r->minimum_ms, err) || !rule_range(L, idx, r, err)) {
        return 0;
    }
    e = kling_price_rule_check(r);
    if (e != KLING_MONEY_OK) {
        snprintf(err, ERRLEN, "price rule: %s (a positive multiplier, a unit for ceil_to_unit, "
                              "ascending tiers, min <= max range)", kling_money_strerror(e));
        return 0;
    }
    return 1;
}

static void check_rule(lua_State *L, int idx, struct kling_price_rule *r) {
    char err[ERRLEN];
    if (!read_rule(L, idx, r, err)) {
        luaL_error(L, "kling.core: %s", err);
    }
}

/* price_check(rule) -> true | nil, message: validates catalog data without raising. */
static int l_price_check(lua_State *L) {
    struct kling_price_rule r;
    char err[ERRLEN];
    if (!read_rule(L, 1, &r, err)) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const char *kind_name(enum kling_price_kind k) {
    int i;
    for (i = 0; KINDS[i].name != NULL; i++) {
        if (KINDS[i].value == (int)k) {
            return KINDS[i].name;
        }
    }
    return "?";
}

/* The tiers as "5, 10" for error messages. */
static void tier_list(const struct kling_price_rule *r, char *buf, size_t cap) {
    size_t i, o = 0;
    buf[0] = '\0';
    for (i = 0; i < r->ntiers && o + KLING_MONEY_FMT_MAX + 3 < cap; i++) {
        char s[KLING_MONEY_FMT_MAX];
        kling_decimal_format(r->tiers[i].ms, 3, s);
        o += (size_t)snprintf(buf + o, cap - o, "%s%s s", i ? ", " : "", s);
    }
}

static int push_eval_error(lua_State *L, const struct kling_price_rule *r, const struct kling_price_usage *u,
                           const struct kling_price_result *res, enum kling_money_err e) {
    char secs[KLING_MONEY_FMT_MAX], a[KLING_MONEY_FMT_MAX], b[KLING_MONEY_FMT_MAX], tiers[256];
    const char *field = res->field ? res->field : "duration";
    kling_decimal_format(u->duration_ms, 3, secs);
    lua_pushnil(L);
    switch (e) {
    case KLING_MONEY_NO_TIER:
        tier_list(r, tiers, sizeof tiers);
        lua_pushfstring(L, "%s s matches no price tier (priced: %s)", secs, tiers);
        break;
    case KLING_MONEY_RANGE:
        kling_decimal_format(r->range_min_ms < 0 ? 0 : r->range_min_ms, 3, a);
        if (r->range_max_ms < 0) {
            lua_pushfstring(L, "%s s is below the priced minimum of %s s", secs, a);
        } else {
            kling_decimal_format(r->range_max_ms, 3, b);
            lua_pushfstring(L, "%s s is outside the priced range %s..%s s", secs, a, b);
        }
        break;
    case KLING_MONEY_MISSING:
        lua_pushfstring(L, "required by the %s price rule", kind_name(r->kind));
        break;
    default:
        lua_pushstring(L, kling_money_strerror(e));
        break;
    }
    lua_pushstring(L, field);
    return 3;
}

static const char *round_name(enum kling_price_round m) {
    return m == KLING_ROUND_HALF_UP ? "half_up" : m == KLING_ROUND_CEIL ? "ceil" : "exact";
}

static void push_breakdown(lua_State *L, const struct kling_price_rule *r, const struct kling_price_usage *u,
                           const struct kling_price_result *res) {
    lua_createtable(L, 0, 12);
    kling_setstr(L, "kind", kind_name(r->kind));
    push_amount(L, res->unit_price);
    lua_setfield(L, -2, "unit_price");
    push_amount(L, res->base);
    lua_setfield(L, -2, "base");
    if (u->has_duration) {
        push_seconds(L, u->duration_ms);
        lua_setfield(L, -2, "seconds");
    }
    if (res->billed_ms >= 0) {
        push_seconds(L, res->billed_ms);
        lua_setfield(L, -2, "billed_seconds");
        kling_setstr(L, "round", round_name(r->round));
    }
    if (r->minimum_ms > 0) {
        push_seconds(L, r->minimum_ms);
        lua_setfield(L, -2, "minimum_seconds");
        kling_setbool(L, "minimum_applied", res->minimum_applied);
    }
    if (r->kind == KLING_PRICE_CEIL_TO_UNIT) {
        push_seconds(L, r->unit_ms);
        lua_setfield(L, -2, "unit_seconds");
        push_micros(L, res->units);
        lua_setfield(L, -2, "units");
    }
    if (r->kind == KLING_PRICE_TIERED) {
        push_seconds(L, res->tier_ms);
        lua_setfield(L, -2, "tier_seconds");
    }
    if (r->kind == KLING_PRICE_PER_UNIT) {
        push_micros(L, res->count);
        lua_setfield(L, -2, "count");
    }
    if (r->multiplier != KLING_MICROS) {
        push_amount(L, r->multiplier);
        lua_setfield(L, -2, "multiplier");
    }
}

/* Reads the usage table at idx; on failure pushes nil, message, field. */
static int read_usage(lua_State *L, int idx, struct kling_price_usage *u) {
    const char *err;
    memset(u, 0, sizeof *u);
    if (lua_isnoneornil(L, idx)) {
        return 1;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "duration");
    if (!lua_isnil(L, -1)) {
        err = seconds_ms(L, -1, &u->duration_ms);
        if (err != NULL) {
            lua_pop(L, 1);
            lua_pushnil(L);
            lua_pushstring(L, err);
            lua_pushliteral(L, "duration");
            return 0;
        }
        u->has_duration = 1;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "count");
    if (!lua_isnil(L, -1)) {
        if (!to_int64(L, -1, &u->count) || u->count < 0) {
            lua_pop(L, 1);
            lua_pushnil(L);
            lua_pushliteral(L, "a non-negative integer is required");
            lua_pushliteral(L, "count");
            return 0;
        }
        u->has_count = 1;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "strict");
    u->strict = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return 1;
}

/* price_eval(rule, usage) -> micros, breakdown | nil, message, field (the message
 * does not repeat the field).
 * usage = {duration = seconds, count = outputs, strict = is_estimate}. */
static int l_price_eval(lua_State *L) {
    struct kling_price_rule r;
    struct kling_price_usage u;
    struct kling_price_result res;
    enum kling_money_err e;
    check_rule(L, 1, &r);
    if (!read_usage(L, 2, &u)) {
        return 3;
    }
    e = kling_price_eval(&r, &u, &res);
#if LUA_VERSION_NUM < 503
    /* A charge (or a count of units) LuaJIT cannot hold exactly is out of range there, returned
     * as Lua 5.4 returns any amount out of range: push_micros would raise it, in a settlement
     * of what a provider reported. */
    if (e == KLING_MONEY_OK && (res.micros > EXACT_MAX || res.micros < -EXACT_MAX || res.units > EXACT_MAX)) {
        e = KLING_MONEY_OVERFLOW;
        res.field = r.kind == KLING_PRICE_PER_UNIT ? "count" : res.billed_ms >= 0 ? "duration" : "rule";
    }
#endif
    if (e != KLING_MONEY_OK) {
        return push_eval_error(L, &r, &u, &res, e);
    }
    push_micros(L, res.micros);
    push_breakdown(L, &r, &u, &res);
    return 2;
}

static const luaL_Reg money_funcs[] = {
    {"money_parse", l_money_parse},
    {"money_format", l_money_format},
    {"money_add", l_money_add},
    {"money_sub", l_money_sub},
    {"money_scale", l_money_scale},
    {"seconds_ms", l_seconds_ms},
    {"seconds_format", l_seconds_format},
    {"price_check", l_price_check},
    {"price_eval", l_price_eval},
    {NULL, NULL},
};

void kling_open_money(lua_State *L) {
    luaL_setfuncs(L, money_funcs, 0);
}
