/* kling.sched and kling.slots: the poll scheduler and the slot limiter of
 * src/pure/ as Lua userdata. Pure like them: every call takes the time; the
 * Lua side maps the integer handles (1-based) and ids to its task objects.
 * Misuse (wrong types, out-of-range values, dead handles) raises. */
#include "kling.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "sched.h"
#include "slots.h"

#define SCHED_MT "kling.sched"
#define SLOTS_MT "kling.slots"
#define CHUNK 64 /* due/grant results fetched per C call */

struct lsched {
    struct kling_sched *s;
};

struct lslots {
    struct kling_slots *s;
};

/* ---- argument helpers ---- */

static int64_t check_int(lua_State *L, int idx, const char *name) {
    int ok = 0;
    lua_Integer v = 0;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        v = lua_tointegerx(L, idx, &ok);
    }
    if (!ok) {
        luaL_error(L, "kling.core: %s must be an integer (got %s)", name, luaL_typename(L, idx));
    }
    return (int64_t)v;
}

/* now and other absolute times: integers within +-2^62 ms. */
static int64_t check_time(lua_State *L, int idx, const char *name) {
    int64_t v = check_int(L, idx, name);
    if (v < -KLING_SCHED_TIME_LIMIT || v > KLING_SCHED_TIME_LIMIT) {
        luaL_error(L, "kling.core: %s must be within +-2^62 ms", name);
    }
    return v;
}

/* A duration or nil: a non-negative integer, or KLING_SCHED_UNKNOWN. */
static int64_t opt_duration(lua_State *L, int idx, const char *name) {
    int64_t v;
    if (lua_isnoneornil(L, idx)) {
        return KLING_SCHED_UNKNOWN;
    }
    v = check_int(L, idx, name);
    if (v < 0 || v > KLING_SCHED_TIME_LIMIT) {
        luaL_error(L, "kling.core: %s must be a non-negative integer (ms) or nil", name);
    }
    return v;
}

static int opt_bool(lua_State *L, int idx, const char *name) {
    if (lua_isnoneornil(L, idx)) {
        return 0;
    }
    if (lua_type(L, idx) != LUA_TBOOLEAN) {
        luaL_error(L, "kling.core: %s must be a boolean or nil", name);
    }
    return lua_toboolean(L, idx);
}

/* Raises unless every key of the table at idx is one of names. */
static void check_fields(lua_State *L, int idx, const char *what, const char *const *names) {
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *const *n;
        const char *key;
        size_t klen;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_error(L, "kling.core: %s options must be named fields", what);
        }
        key = lua_tolstring(L, -1, &klen);
        for (n = names; *n != NULL && !kling_is_name(key, klen, *n); n++) {
        }
        if (*n == NULL) {
            kling_push_quoted(L, key, klen);
            kling_push_near(L, key, klen, names);
            luaL_error(L, "kling.core: %s: unknown field %s%s", what, lua_tostring(L, -2), lua_tostring(L, -1));
        }
    }
}

static double opt_number(lua_State *L, int idx, const char *name, double def) {
    double v = def;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER) {
            luaL_error(L, "kling.core: field '%s' must be a number", name);
        }
        v = (double)lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* Like kling_optint, but a numeric string is refused too: numbers as numbers. */
static int64_t opt_int_field(lua_State *L, int idx, const char *name, int64_t def) {
    int64_t v = def;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        int ok = 0;
        lua_Integer i = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &ok) : 0;
        if (!ok) {
            luaL_error(L, "kling.core: field '%s' must be an integer", name);
        }
        v = (int64_t)i;
    }
    lua_pop(L, 1);
    return v;
}

static int has_field(lua_State *L, int idx, const char *name) {
    int has;
    lua_getfield(L, idx, name);
    has = !lua_isnil(L, -1);
    lua_pop(L, 1);
    return has;
}

/* ---- kling.sched ---- */

static struct kling_sched *check_sched(lua_State *L) {
    struct lsched *u = luaL_checkudata(L, 1, SCHED_MT);
    if (u->s == NULL) {
        luaL_error(L, "kling.sched: used after it was collected");
    }
    return u->s;
}

static void raise_handle(lua_State *L, int64_t handle) {
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, handle);
    luaL_error(L, "kling.sched: handle %s is not a live task (never added, or already removed or ended)", buf);
}

/* A Lua handle (1-based) as the C one; raises unless it is a live task. */
static uint32_t check_handle(lua_State *L, struct kling_sched *s, int idx) {
    int64_t h = check_int(L, idx, "handle");
    if (h < 1 || h > (int64_t)UINT32_MAX || !kling_sched_is_live(s, (uint32_t)(h - 1))) {
        raise_handle(L, h);
    }
    return (uint32_t)(h - 1);
}

/* The arguments were checked before the call: what is left is memory. */
static void raise_sched(lua_State *L, int rc) {
    luaL_error(L, "kling.sched: %s", kling_sched_strerror(rc));
}

static const char *const SCHED_FIELDS[] = {
    "min_interval_ms", "max_interval_ms", "jitter", "backoff", "max_age_ms", "run_deadline_ms", "seed", NULL
};

/* A seed for the jitter when none is given: OpenSSL, else the clock. */
static uint64_t fresh_seed(const void *salt) {
    unsigned char b[8];
    uint64_t v = 0;
    size_t i;
    if (RAND_bytes(b, sizeof(b)) == 1) {
        for (i = 0; i < sizeof(b); i++) {
            v = v << 8 | b[i];
        }
        return v;
    }
    return (uint64_t)time(NULL) * UINT64_C(6364136223846793005) ^ (uint64_t)(uintptr_t)salt;
}

/* sched{min_interval_ms=, max_interval_ms=, jitter=, backoff=, max_age_ms=,
 * run_deadline_ms=, seed=} */
static int l_sched(lua_State *L) {
    struct kling_sched_config c;
    struct lsched *u;
    const char *err;
    lua_settop(L, 1);
    if (lua_isnil(L, 1)) {
        lua_newtable(L);
        lua_replace(L, 1);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    check_fields(L, 1, "sched", SCHED_FIELDS);
    kling_sched_config_default(&c);
    c.min_interval_ms = opt_int_field(L, 1, "min_interval_ms", c.min_interval_ms);
    c.max_interval_ms = opt_int_field(L, 1, "max_interval_ms", c.max_interval_ms);
    c.max_age_ms = opt_int_field(L, 1, "max_age_ms", c.max_age_ms);
    c.run_deadline_ms = opt_int_field(L, 1, "run_deadline_ms", KLING_SCHED_UNKNOWN);
    if (has_field(L, 1, "run_deadline_ms") &&
        (c.run_deadline_ms < -KLING_SCHED_TIME_LIMIT || c.run_deadline_ms > KLING_SCHED_TIME_LIMIT)) {
        return luaL_error(L, "kling.core: sched: run_deadline_ms must be within +-2^62 ms");
    }
    c.jitter = opt_number(L, 1, "jitter", c.jitter);
    c.backoff = opt_number(L, 1, "backoff", c.backoff);
    c.seed = has_field(L, 1, "seed") ? (uint64_t)opt_int_field(L, 1, "seed", 0) : fresh_seed(&c);
    err = kling_sched_config_check(&c);
    if (err != NULL) {
        return luaL_error(L, "kling.core: sched: %s", err);
    }
    u = lua_newuserdata(L, sizeof(*u));
    u->s = NULL;
    luaL_setmetatable(L, SCHED_MT);
    u->s = kling_sched_new(&c);
    if (u->s == NULL) {
        return luaL_error(L, "kling.sched: out of memory");
    }
    return 1;
}

/* s:add(now, estimate_ms|nil, deadline_ms|nil) -> handle */
static int l_add(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    int64_t now = check_time(L, 2, "now");
    int64_t est = opt_duration(L, 3, "estimate_ms");
    int64_t deadline = lua_isnoneornil(L, 4) ? KLING_SCHED_UNKNOWN : check_time(L, 4, "deadline_ms");
    uint32_t h;
    int rc = kling_sched_add(s, now, est, deadline, &h);
    if (rc != KLING_SCHED_OK) {
        raise_sched(L, rc);
    }
    lua_pushinteger(L, (lua_Integer)h + 1);
    return 1;
}

/* s:report(handle, now, progress|nil, estimate_ms|nil, terminal|nil) ->
 * absolute time of the next poll, or nil when terminal (handle freed). */
static int l_report(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    uint32_t h = check_handle(L, s, 2);
    int64_t now = check_time(L, 3, "now");
    int progress = KLING_SCHED_UNKNOWN;
    int64_t est = opt_duration(L, 5, "estimate_ms"), next;
    int terminal = opt_bool(L, 6, "terminal"), rc;
    if (!lua_isnoneornil(L, 4)) {
        lua_Number p = lua_type(L, 4) == LUA_TNUMBER ? lua_tonumber(L, 4) : -1;
        if (!(p >= 0 && p <= 100)) {
            return luaL_error(L, "kling.core: progress must be a number from 0 to 100, or nil");
        }
        progress = (int)p; /* a fraction counts as the percent below it */
    }
    rc = kling_sched_report(s, h, now, progress, est, terminal, &next);
    if (rc != KLING_SCHED_OK) {
        raise_sched(L, rc);
    }
    if (terminal) {
        lua_pushnil(L);
    } else {
        lua_pushinteger(L, (lua_Integer)next);
    }
    return 1;
}

/* s:due(now, max|nil) -> {handles due}, {handles expired}, earliest first. */
static int l_due(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    int64_t now = check_time(L, 2, "now");
    int64_t max = INT64_MAX;
    int ndue = 0, nexp = 0;
    struct kling_sched_due buf[CHUNK];
    if (!lua_isnoneornil(L, 3)) {
        max = check_int(L, 3, "max");
        if (max < 1) {
            return luaL_error(L, "kling.core: max must be a positive integer or nil");
        }
    }
    lua_newtable(L);
    lua_newtable(L);
    while (max > 0) {
        size_t want = max < CHUNK ? (size_t)max : CHUNK, n, i;
        n = kling_sched_due(s, now, buf, want);
        for (i = 0; i < n; i++) {
            lua_pushinteger(L, (lua_Integer)buf[i].handle + 1);
            if (buf[i].expired) {
                lua_rawseti(L, -2, ++nexp);
            } else {
                lua_rawseti(L, -3, ++ndue);
            }
        }
        max -= (int64_t)n;
        if (n < want) {
            break;
        }
    }
    return 2;
}

/* s:remove(handle): forget a task (ended, expired or cancelled). */
static int l_remove(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    uint32_t h = check_handle(L, s, 2);
    int rc = kling_sched_remove(s, h);
    if (rc != KLING_SCHED_OK) {
        raise_sched(L, rc);
    }
    return 0;
}

/* s:defer(handle, now, delay_ms) -> absolute time of the next poll. */
static int l_defer(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    uint32_t h = check_handle(L, s, 2);
    int64_t now = check_time(L, 3, "now");
    int64_t delay = opt_duration(L, 4, "delay_ms"), next;
    int rc;
    if (delay == KLING_SCHED_UNKNOWN) {
        return luaL_error(L, "kling.core: delay_ms must be a non-negative integer (ms)");
    }
    rc = kling_sched_defer(s, h, now, delay, &next);
    if (rc != KLING_SCHED_OK) {
        raise_sched(L, rc);
    }
    lua_pushinteger(L, (lua_Integer)next);
    return 1;
}

/* s:expect(handle, now, earliest_ms, latest_ms) -> next poll time, or nil
 * while the task is in flight (its report places it): it should end within
 * that window from now (what tasks of its kind took). */
static int l_expect(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    uint32_t h = check_handle(L, s, 2);
    int64_t now = check_time(L, 3, "now");
    int64_t lo = opt_duration(L, 4, "earliest_ms"), hi = opt_duration(L, 5, "latest_ms"), next;
    int rc;
    if (lo == KLING_SCHED_UNKNOWN || hi == KLING_SCHED_UNKNOWN || hi < lo) {
        return luaL_error(L, "kling.core: earliest_ms and latest_ms must be integers (ms), 0 <= earliest <= latest");
    }
    rc = kling_sched_expect(s, h, now, lo, hi, &next);
    if (rc != KLING_SCHED_OK) {
        raise_sched(L, rc);
    }
    if (next == KLING_SCHED_UNKNOWN) {
        lua_pushnil(L);
    } else {
        lua_pushinteger(L, (lua_Integer)next);
    }
    return 1;
}

/* s:next_wakeup(now) -> ms until due() has work (0: now), nil when idle. */
static int l_next_wakeup(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    int64_t w = kling_sched_next_wakeup(s, check_time(L, 2, "now"));
    if (w == KLING_SCHED_UNKNOWN) {
        lua_pushnil(L);
    } else {
        lua_pushinteger(L, (lua_Integer)w);
    }
    return 1;
}

/* s:next_at(handle) -> absolute time of its next poll, nil when in flight. */
static int l_next_at(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    int64_t at = kling_sched_next_at(s, check_handle(L, s, 2));
    if (at == KLING_SCHED_UNKNOWN) {
        lua_pushnil(L);
    } else {
        lua_pushinteger(L, (lua_Integer)at);
    }
    return 1;
}

/* s:live(handle) -> whether handle is a task added and not yet freed (never raises for an
 * integer: a caller holding a handle a poll may have freed asks before using it). */
static int l_live(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    int64_t h = check_int(L, 2, "handle");
    lua_pushboolean(L, h >= 1 && h <= (int64_t)UINT32_MAX && kling_sched_is_live(s, (uint32_t)(h - 1)));
    return 1;
}

/* s:polls(handle) -> times due() returned it unexpired. */
static int l_polls(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    lua_pushinteger(L, (lua_Integer)kling_sched_polls(s, check_handle(L, s, 2)));
    return 1;
}

/* s:count() -> live, queued, in_flight, bytes */
static int l_count(lua_State *L) {
    struct kling_sched_counts c;
    kling_sched_counts(check_sched(L), &c);
    lua_pushinteger(L, (lua_Integer)c.live);
    lua_pushinteger(L, (lua_Integer)c.queued);
    lua_pushinteger(L, (lua_Integer)c.inflight);
    lua_pushinteger(L, (lua_Integer)c.bytes);
    return 4;
}

/* s:set_run_deadline(ms|nil): absolute; nil removes it. */
static int l_set_run_deadline(lua_State *L) {
    struct kling_sched *s = check_sched(L);
    int64_t d = lua_isnoneornil(L, 2) ? KLING_SCHED_UNKNOWN : check_time(L, 2, "run_deadline_ms");
    int rc = kling_sched_set_run_deadline(s, d);
    if (rc != KLING_SCHED_OK) {
        raise_sched(L, rc);
    }
    return 0;
}

static int l_sched_tostring(lua_State *L) {
    struct lsched *u = luaL_checkudata(L, 1, SCHED_MT);
    struct kling_sched_counts c = {0, 0, 0, 0};
    if (u->s != NULL) {
        kling_sched_counts(u->s, &c);
    }
    lua_pushfstring(L, SCHED_MT "(%d tasks)", (int)c.live);
    return 1;
}

static int l_sched_gc(lua_State *L) {
    struct lsched *u = luaL_checkudata(L, 1, SCHED_MT);
    kling_sched_free(u->s);
    u->s = NULL;
    return 0;
}

/* ---- kling.slots ---- */

static struct kling_slots *check_slots(lua_State *L) {
    struct lslots *u = luaL_checkudata(L, 1, SLOTS_MT);
    if (u->s == NULL) {
        luaL_error(L, "kling.slots: used after it was collected");
    }
    return u->s;
}

static const char *const SLOTS_FIELDS[] = {
    "limit", "decrease", "recover_after", "recover_ms", "cooldown_ms", NULL
};

/* slots{limit=, decrease=, recover_after=, recover_ms=, cooldown_ms=} */
static int l_slots(lua_State *L) {
    struct kling_slots_config c;
    struct lslots *u;
    int64_t limit, after;
    const char *err;
    luaL_checktype(L, 1, LUA_TTABLE);
    check_fields(L, 1, "slots", SLOTS_FIELDS);
    kling_slots_config_default(&c);
    if (!has_field(L, 1, "limit")) {
        return luaL_error(L, "kling.core: slots: limit is required (the provider's parallel task limit)");
    }
    limit = opt_int_field(L, 1, "limit", 0);
    after = opt_int_field(L, 1, "recover_after", c.recover_after);
    if (limit < 1 || limit > KLING_SLOTS_LIMIT_MAX) {
        return luaL_error(L, "kling.core: slots: limit must be an integer between 1 and %d", KLING_SLOTS_LIMIT_MAX);
    }
    if (after < 0 || after > KLING_SLOTS_LIMIT_MAX) {
        return luaL_error(L, "kling.core: slots: recover_after must be between 0 (never) and %d",
                          KLING_SLOTS_LIMIT_MAX);
    }
    c.limit = (uint32_t)limit;
    c.recover_after = (uint32_t)after;
    c.decrease = opt_number(L, 1, "decrease", c.decrease);
    c.recover_ms = opt_int_field(L, 1, "recover_ms", c.recover_ms);
    c.cooldown_ms = opt_int_field(L, 1, "cooldown_ms", c.cooldown_ms);
    err = kling_slots_config_check(&c);
    if (err != NULL) {
        return luaL_error(L, "kling.core: slots: %s", err);
    }
    u = lua_newuserdata(L, sizeof(*u));
    u->s = NULL;
    luaL_setmetatable(L, SLOTS_MT);
    u->s = kling_slots_new(&c);
    if (u->s == NULL) {
        return luaL_error(L, "kling.slots: out of memory");
    }
    return 1;
}

/* Pushes an array of the ids granted now. */
static int push_granted(lua_State *L, struct kling_slots *s, int64_t now) {
    int64_t buf[CHUNK];
    int k = 0;
    size_t n, i;
    lua_newtable(L);
    do {
        n = kling_slots_grant(s, now, buf, CHUNK);
        for (i = 0; i < n; i++) {
            lua_pushinteger(L, (lua_Integer)buf[i]);
            lua_rawseti(L, -2, ++k);
        }
    } while (n == CHUNK);
    return 1;
}

/* sl:acquire(id, front|nil) -> true when the slot is granted now, false when
 * queued (the id comes back from a later release or grant). */
static int l_acquire(lua_State *L) {
    struct kling_slots *s = check_slots(L);
    int64_t id = check_int(L, 2, "id");
    int rc = kling_slots_acquire(s, id, opt_bool(L, 3, "front"));
    if (rc < 0) {
        return luaL_error(L, "kling.slots: out of memory");
    }
    lua_pushboolean(L, rc == 1);
    return 1;
}

/* sl:release(now) -> {ids granted a slot now} */
static int l_release(lua_State *L) {
    struct kling_slots *s = check_slots(L);
    int64_t now = check_time(L, 2, "now");
    if (kling_slots_release(s, now) != KLING_SLOTS_OK) {
        return luaL_error(L, "kling.slots: release without a slot held (more releases than grants)");
    }
    return push_granted(L, s, now);
}

/* sl:grant(now) -> {ids granted a slot now} (after time-based recovery) */
static int l_grant(lua_State *L) {
    struct kling_slots *s = check_slots(L);
    return push_granted(L, s, check_time(L, 2, "now"));
}

/* sl:cancel(id) -> true when it was waiting */
static int l_cancel(lua_State *L) {
    struct kling_slots *s = check_slots(L);
    lua_pushboolean(L, kling_slots_cancel(s, check_int(L, 2, "id")));
    return 1;
}

static int l_on_rate_limited(lua_State *L) {
    struct kling_slots *s = check_slots(L);
    lua_pushinteger(L, (lua_Integer)kling_slots_on_rate_limited(s, check_time(L, 2, "now")));
    return 1;
}

static int l_on_success(lua_State *L) {
    struct kling_slots *s = check_slots(L);
    lua_pushinteger(L, (lua_Integer)kling_slots_on_success(s, check_time(L, 2, "now")));
    return 1;
}

/* sl:limit() -> effective, configured */
static int l_limit(lua_State *L) {
    struct kling_slots *s = check_slots(L);
    lua_pushinteger(L, (lua_Integer)kling_slots_limit(s));
    lua_pushinteger(L, (lua_Integer)kling_slots_configured(s));
    return 2;
}

static int l_in_use(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)kling_slots_in_use(check_slots(L)));
    return 1;
}

static int l_queued(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)kling_slots_queued(check_slots(L)));
    return 1;
}

static int l_slots_tostring(lua_State *L) {
    struct lslots *u = luaL_checkudata(L, 1, SLOTS_MT);
    if (u->s == NULL) {
        lua_pushliteral(L, SLOTS_MT "(collected)");
    } else {
        lua_pushfstring(L, SLOTS_MT "(%d/%d in use, %d waiting)", (int)kling_slots_in_use(u->s),
                        (int)kling_slots_limit(u->s), (int)kling_slots_queued(u->s));
    }
    return 1;
}

static int l_slots_gc(lua_State *L) {
    struct lslots *u = luaL_checkudata(L, 1, SLOTS_MT);
    kling_slots_free(u->s);
    u->s = NULL;
    return 0;
}

/* ---- registration ---- */

void kling_open_sched(lua_State *L) {
    static const luaL_Reg sched_methods[] = {
        {"add", l_add},
        {"report", l_report},
        {"due", l_due},
        {"remove", l_remove},
        {"defer", l_defer},
        {"expect", l_expect},
        {"next_wakeup", l_next_wakeup},
        {"next_at", l_next_at},
        {"live", l_live},
        {"polls", l_polls},
        {"count", l_count},
        {"set_run_deadline", l_set_run_deadline},
        {NULL, NULL}
    };
    static const luaL_Reg sched_meta[] = {
        {"__tostring", l_sched_tostring},
        {"__gc", l_sched_gc},
        {NULL, NULL}
    };
    static const luaL_Reg slots_methods[] = {
        {"acquire", l_acquire},
        {"release", l_release},
        {"grant", l_grant},
        {"cancel", l_cancel},
        {"on_rate_limited", l_on_rate_limited},
        {"on_success", l_on_success},
        {"limit", l_limit},
        {"in_use", l_in_use},
        {"queued", l_queued},
        {NULL, NULL}
    };
    static const luaL_Reg slots_meta[] = {
        {"__tostring", l_slots_tostring},
        {"__gc", l_slots_gc},
        {NULL, NULL}
    };
    kling_new_class(L, SCHED_MT, sched_meta, sched_methods);
    kling_new_class(L, SLOTS_MT, slots_meta, slots_methods);
    lua_pushcfunction(L, l_sched);
    lua_setfield(L, -2, "sched");
    lua_pushcfunction(L, l_slots);
    lua_setfield(L, -2, "slots");
}
