/* kling.core retry policy functions: codes, classify, retry_after, backoff
 * and decide, over src/pure/retry.c. The only inputs not passed in are the
 * wall clock (when now_s is omitted) and the jitter (when r is omitted). A
 * provider's business codes come from its dialect as a kling.codes userdata,
 * built once (decide runs on every poll: no table is walked per call). */
#include "kling.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/rand.h>

#include "retry.h"

#define DEFAULT_MAX_ATTEMPTS 5
#define DEFAULT_BASE_MS 500
#define DEFAULT_CAP_MS 20000

/* Jitter from OpenSSL. Should RAND_bytes ever fail, wait the full ceiling:
 * the jitter only spreads clients apart, so the safe side is the longest wait. */
static uint32_t jitter(void) {
    unsigned char b[4];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        return UINT32_MAX;
    }
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* r at idx: an integer in 0..2^32-1, or nil for fresh randomness. */
static uint32_t opt_r(lua_State *L, lua_Integer r, int given, const char *what) {
    if (!given) {
        return jitter();
    }
    if (r < 0 || r > (lua_Integer)UINT32_MAX) {
        luaL_error(L, "kling.core: %s must be an integer in 0..4294967295", what);
    }
    return (uint32_t)r;
}

/* A business code is any number; one that is not an integer is no known code. */
static int get_code(lua_State *L, int idx, int64_t *code) {
    lua_Number n;
    if (lua_isnoneornil(L, idx)) {
        return 0;
    }
    if (lua_type(L, idx) != LUA_TNUMBER) {
        luaL_error(L, "kling.core: code must be a number or nil");
    }
    n = lua_tonumber(L, idx);
    if (!(n >= -9.2e18 && n <= 9.2e18) || (lua_Number)(int64_t)n != n) {
        return 0;
    }
    *code = (int64_t)n;
    return 1;
}

static int get_status(lua_State *L, int idx) {
    lua_Integer st;
    int ok = 0;
    if (lua_isnoneornil(L, idx)) {
        return 0;
    }
    st = lua_tointegerx(L, idx, &ok);
    if (lua_type(L, idx) != LUA_TNUMBER || !ok) {
        luaL_error(L, "kling.core: http_status must be an integer or nil");
    }
    if (st < 0 || st > 999) {
        luaL_error(L, "kling.core: http_status must be in 0..999");
    }
    return (int)st;
}

/* Retry-After at idx: a header string or a number of seconds. Returns 1 and
 * sets *ms when it gives a delay, 0 when absent or unparseable. */
static int get_retry_after(lua_State *L, int idx, int64_t now_s, int64_t *ms) {
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return kling_retry_after(s, n, now_s, ms) == 0;
    }
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Number sec = lua_tonumber(L, idx);
        if (sec != sec) {
            return 0; /* NaN */
        }
        *ms = sec <= 0 ? 0
            : sec >= (lua_Number)KLING_RETRY_AFTER_MAX_MS / 1000 ? KLING_RETRY_AFTER_MAX_MS
            : (int64_t)(sec * 1000);
        return 1;
    }
    if (!lua_isnoneornil(L, idx)) {
        luaL_error(L, "kling.core: retry_after must be a string, a number of seconds or nil");
    }
    return 0;
}

#define CODES_MT "kling.codes"

struct lcodes {
    struct kling_codes t;
    struct kling_code_range *v; /* owned; freed by __gc */
};

/* An entry's integer at position i (1 or 2). */
static int64_t range_end(lua_State *L, lua_Integer entry, int i) {
    int64_t v;
    int ok = 0;
    lua_rawgeti(L, -1, i);
    v = (int64_t)lua_tointegerx(L, -1, &ok);
    if (lua_type(L, -1) != LUA_TNUMBER || !ok) {
        luaL_error(L, "kling.core: codes: entry %d: [%d] must be an integer code", (int)entry, i);
    }
    lua_pop(L, 1);
    return v;
}

/* codes{{lo, hi, kind [, retryable = true]}, ...} -> kling.codes: a provider's
 * business codes (lo..hi inclusive) and the kind each range means. */
static int l_codes(lua_State *L) {
    struct lcodes *u;
    lua_Integer n, i;
    long bad;
    luaL_checktype(L, 1, LUA_TTABLE);
    n = (lua_Integer)luaL_len(L, 1);
    if (n < 0 || n > 4096) {
        return luaL_argerror(L, 1, "a list of at most 4096 code ranges");
    }
    u = lua_newuserdata(L, sizeof(*u));
    u->t.v = NULL;
    u->t.n = 0;
    u->v = NULL;
    luaL_setmetatable(L, CODES_MT); /* from here on __gc frees whatever is set */
    if (n > 0) {
        u->v = calloc((size_t)n, sizeof(*u->v));
        if (u->v == NULL) {
            return luaL_error(L, "kling.core: codes: out of memory");
        }
    }
    for (i = 1; i <= n; i++) {
        struct kling_code_range *r = &u->v[i - 1];
        const char *kind;
        size_t klen = 0;
        lua_rawgeti(L, 1, i);
        if (!lua_istable(L, -1)) {
            return luaL_error(L, "kling.core: codes: entry %d must be a table {lo, hi, kind}", (int)i);
        }
        r->lo = range_end(L, i, 1);
        r->hi = range_end(L, i, 2);
        lua_rawgeti(L, -1, 3);
        kind = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &klen) : NULL;
        if (kind == NULL || kling_kind_parse(kind, klen, &r->cls.kind) != 0) {
            return luaL_error(L, "kling.core: codes: entry %d: [3] must be a kind (auth, rate_limited, quota, "
                                 "content_policy, not_found, server, validation, protocol, timeout, network)",
                              (int)i);
        }
        lua_pop(L, 1);
        lua_getfield(L, -1, "retryable");
        if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
            return luaL_error(L, "kling.core: codes: entry %d: retryable must be a boolean", (int)i);
        }
        r->cls.retryable = lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    bad = kling_codes_check(u->v, (size_t)n);
    if (bad >= 0) {
        /* lua_pushfstring has no 64-bit conversion on every Lua this builds for. */
        char range[64];
        snprintf(range, sizeof(range), "%lld..%lld", (long long)u->v[bad].lo, (long long)u->v[bad].hi);
        return luaL_error(L, "kling.core: codes: range %s is empty or overlaps another", range);
    }
    u->t.v = u->v;
    u->t.n = (size_t)n;
    return 1;
}

static int l_codes_gc(lua_State *L) {
    struct lcodes *u = luaL_checkudata(L, 1, CODES_MT);
    free(u->v);
    u->v = NULL;
    u->t.v = NULL;
    u->t.n = 0;
    return 0;
}

static int l_codes_tostring(lua_State *L) {
    struct lcodes *u = luaL_checkudata(L, 1, CODES_MT);
    lua_pushfstring(L, CODES_MT " (%d ranges)", (int)u->t.n);
    return 1;
}

/* The code table at idx: a kling.codes, or NULL for nil. */
static const struct kling_codes *opt_codes(lua_State *L, int idx, const char *what) {
    struct lcodes *u;
    if (lua_isnoneornil(L, idx)) {
        return NULL;
    }
    u = luaL_testudata(L, idx, CODES_MT);
    if (u == NULL) {
        luaL_error(L, "kling.core: %s must be a kling.codes (core.codes{...}) or nil", what);
    }
    return &u->t;
}

/* classify(http_status, code [, codes]) -> kind, retryable */
static int l_classify(lua_State *L) {
    int64_t code = 0;
    int status = get_status(L, 1);
    int has_code = get_code(L, 2, &code);
    struct kling_class c = kling_classify(opt_codes(L, 3, "classify: codes"), status, has_code, code);
    lua_pushstring(L, kling_kind_name(c.kind));
    lua_pushboolean(L, c.retryable);
    return 2;
}

/* retry_after(value [, now_s]) -> ms | nil */
static int l_retry_after(lua_State *L) {
    int64_t now = (int64_t)luaL_optinteger(L, 2, (lua_Integer)time(NULL));
    int64_t ms = 0;
    if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER) {
        return luaL_argerror(L, 1, "value must be a Retry-After string or a number of seconds");
    }
    if (!get_retry_after(L, 1, now, &ms)) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, (lua_Integer)ms);
    return 1;
}

/* backoff(attempt, base_ms, cap_ms [, r]) -> ms */
static int l_backoff(lua_State *L) {
    lua_Integer attempt = luaL_checkinteger(L, 1);
    lua_Integer base = luaL_checkinteger(L, 2);
    lua_Integer cap = luaL_checkinteger(L, 3);
    uint32_t r = opt_r(L, luaL_optinteger(L, 4, 0), !lua_isnoneornil(L, 4), "r");
    if (attempt < 0) return luaL_argerror(L, 1, "attempt must be >= 0");
    if (base < 0) return luaL_argerror(L, 2, "base_ms must be >= 0");
    if (cap < 0) return luaL_argerror(L, 3, "cap_ms must be >= 0");
    lua_pushinteger(L, (lua_Integer)kling_backoff(attempt, base, cap, r));
    return 1;
}

static int opt_bool(lua_State *L, int idx, const char *name) {
    int v;
    kling_rawfield(L, idx, name);
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
        luaL_error(L, "kling.core: decide: field '%s' must be a boolean", name);
    }
    v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static lua_Integer opt_nonneg(lua_State *L, const char *name, lua_Integer def) {
    lua_Integer v = kling_optint(L, 1, name, def);
    if (v < 0) {
        luaL_error(L, "kling.core: decide: field '%s' must be >= 0", name);
    }
    return v;
}

/* decide{method, attempt, max_attempts, http_status, code, codes, transport,
 * sent, received, retry_after, now_s, budget_ms, base_ms, cap_ms, r} -> result */
static int l_decide(lua_State *L) {
    struct kling_retry_in in;
    struct kling_retry_out out;
    size_t mlen = 0, tlen = 0;
    const char *method, *transport;
    int64_t now;
    luaL_checktype(L, 1, LUA_TTABLE);

    method = kling_optstr(L, 1, "method", &mlen);
    if (method == NULL) {
        return luaL_error(L, "kling.core: decide: field 'method' is required (\"GET\", \"POST\", ...)");
    }
    in.idempotent = kling_method_idempotent(method, mlen);
    in.attempt = opt_nonneg(L, "attempt", 0);
    in.max_attempts = opt_nonneg(L, "max_attempts", DEFAULT_MAX_ATTEMPTS);
    in.base_ms = opt_nonneg(L, "base_ms", DEFAULT_BASE_MS);
    in.cap_ms = opt_nonneg(L, "cap_ms", DEFAULT_CAP_MS);
    now = (int64_t)kling_optint(L, 1, "now_s", (lua_Integer)time(NULL));

    kling_rawfield(L, 1, "budget_ms");
    in.has_budget = !lua_isnil(L, -1);
    lua_pop(L, 1);
    in.budget_ms = in.has_budget ? (int64_t)kling_optint(L, 1, "budget_ms", 0) : 0;

    kling_rawfield(L, 1, "http_status");
    in.http_status = get_status(L, -1);
    lua_pop(L, 1);
    kling_rawfield(L, 1, "code");
    in.code = 0;
    in.has_code = get_code(L, -1, &in.code);
    lua_pop(L, 1);
    kling_rawfield(L, 1, "codes");
    in.codes = opt_codes(L, -1, "decide: field 'codes'"); /* the userdata stays referenced by t */
    lua_pop(L, 1);

    transport = kling_optstr(L, 1, "transport", &tlen);
    in.transport = KLING_TR_NONE;
    if (transport != NULL && kling_transport_parse(transport, tlen, &in.transport) != 0) {
        return luaL_error(L, "kling.core: decide: field 'transport' must be one of connect, tls, "
                             "timeout, reset, partial, too_large, other, protocol (got '%s')",
                          transport);
    }
    in.sent = opt_bool(L, 1, "sent");
    in.received = opt_bool(L, 1, "received");

    kling_rawfield(L, 1, "retry_after");
    in.retry_after_ms = 0;
    in.has_retry_after = get_retry_after(L, -1, now, &in.retry_after_ms);
    lua_pop(L, 1);

    kling_rawfield(L, 1, "r");
    if (!lua_isnil(L, -1) && !lua_isnumber(L, -1)) {
        return luaL_error(L, "kling.core: decide: field 'r' must be an integer");
    }
    in.r = opt_r(L, lua_tointeger(L, -1), !lua_isnil(L, -1), "decide: field 'r'");
    lua_pop(L, 1);

    out = kling_decide(&in);
    lua_createtable(L, 0, 5);
    kling_setbool(L, "retry", out.retry);
    kling_setint(L, "delay_ms", (lua_Integer)out.delay_ms);
    kling_setstr(L, "kind", kling_kind_name(out.kind));
    kling_setbool(L, "retryable", out.retryable);
    kling_setbool(L, "uncertain", out.uncertain);
    return 1;
}

static const luaL_Reg retry_funcs[] = {
    {"codes", l_codes},
    {"classify", l_classify},
    {"retry_after", l_retry_after},
    {"backoff", l_backoff},
    {"decide", l_decide},
    {NULL, NULL}
};

static const luaL_Reg codes_meta[] = {
    {"__gc", l_codes_gc},
    {"__tostring", l_codes_tostring},
    {NULL, NULL}
};

void kling_open_retry(lua_State *L) {
    luaL_newmetatable(L, CODES_MT);
    luaL_setfuncs(L, codes_meta, 0);
    lua_pushstring(L, CODES_MT);
    lua_setfield(L, -2, "__name"); /* LuaJIT's luaL_newmetatable does not set it */
    lua_pop(L, 1);
    luaL_setfuncs(L, retry_funcs, 0);
}
