/* kling.core Standard Webhooks functions: webhook_sign and webhook_verify,
 * over src/pure/webhook.c. A missing or malformed header is a run-time
 * failure (nil, reason); a missing secret or body is misuse and raises. */
#include "kling.h"

#include <stdio.h>
#include <time.h>

#include "webhook.h"

#define DEFAULT_TOLERANCE_S 300

/* Field name of a table argument that must be a string. */
static const char *need_str(lua_State *L, const char *fn, const char *name, size_t *len) {
    const char *s = kling_optstr(L, 1, name, len);
    if (s == NULL) {
        luaL_error(L, "kling.core: %s: field '%s' is required (a string)", fn, name);
    }
    return s;
}

/* The timestamp as text: the header string unchanged, or an integer's digits
 * (written into buf). NULL when absent. */
static const char *get_timestamp(lua_State *L, const char *fn, char *buf, size_t cap,
                                 size_t *len) {
    const char *s = NULL;
    kling_rawfield(L, 1, "timestamp");
    if (lua_type(L, -1) == LUA_TNUMBER) {
        int ok = 0;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        int n;
        if (!ok) {
            luaL_error(L, "kling.core: %s: field 'timestamp' must be integer seconds", fn);
        }
        n = snprintf(buf, cap, "%lld", (long long)v);
        *len = n > 0 ? (size_t)n : 0;
        s = buf;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tolstring(L, -1, len); /* stays valid: the table holds it */
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "kling.core: %s: field 'timestamp' must be a string or an integer", fn);
    }
    lua_pop(L, 1);
    return s;
}

static void read_msg(lua_State *L, const char *fn, struct kling_webhook_msg *m, char *tsbuf,
                     size_t tscap) {
    luaL_checktype(L, 1, LUA_TTABLE);
    m->secret = need_str(L, fn, "secret", &m->secret_len);
    m->body = need_str(L, fn, "body", &m->body_len);
    m->id = kling_optstr(L, 1, "id", &m->id_len);
    m->timestamp = get_timestamp(L, fn, tsbuf, tscap, &m->timestamp_len);
    if (m->id == NULL) {
        m->id = "";
        m->id_len = 0;
    }
    if (m->timestamp == NULL) {
        m->timestamp = "";
        m->timestamp_len = 0;
    }
}

/* webhook_sign{secret=, id=, timestamp=, body=} -> "v1,<base64>" */
static int l_webhook_sign(lua_State *L) {
    struct kling_webhook_msg m;
    char ts[32], sig[KLING_WEBHOOK_SIG_SIZE];
    enum kling_webhook_status st;
    read_msg(L, "webhook_sign", &m, ts, sizeof(ts));
    st = kling_webhook_sign(&m, sig);
    if (st == KLING_WH_BAD_SECRET || st == KLING_WH_NO_ID || st == KLING_WH_BAD_TIMESTAMP) {
        return luaL_error(L, "kling.core: webhook_sign: %s", kling_webhook_strerror(st));
    }
    if (st != KLING_WH_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "webhook_sign: %s", kling_webhook_strerror(st));
        return 2;
    }
    lua_pushstring(L, sig);
    return 1;
}

/* webhook_verify{secret=, id=, timestamp=, signature=, body=, now_s=,
 * tolerance_s=300} -> true | nil, reason */
static int l_webhook_verify(lua_State *L) {
    struct kling_webhook_msg m;
    char ts[32];
    size_t siglen = 0;
    const char *sig;
    lua_Integer now, tolerance;
    enum kling_webhook_status st;
    read_msg(L, "webhook_verify", &m, ts, sizeof(ts));
    sig = kling_optstr(L, 1, "signature", &siglen);
    now = kling_optint(L, 1, "now_s", (lua_Integer)time(NULL));
    tolerance = kling_optint(L, 1, "tolerance_s", DEFAULT_TOLERANCE_S);
    if (tolerance < 0) {
        return luaL_error(L, "kling.core: webhook_verify: field 'tolerance_s' must be >= 0");
    }
    st = kling_webhook_verify(&m, sig ? sig : "", siglen, (int64_t)now, (int64_t)tolerance);
    if (st == KLING_WH_BAD_SECRET) {
        return luaL_error(L, "kling.core: webhook_verify: %s", kling_webhook_strerror(st));
    }
    if (st != KLING_WH_OK) {
        lua_pushnil(L);
        lua_pushstring(L, kling_webhook_strerror(st));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg webhook_funcs[] = {
    {"webhook_sign", l_webhook_sign},
    {"webhook_verify", l_webhook_verify},
    {NULL, NULL}
};

void kling_open_webhook(lua_State *L) {
    luaL_setfuncs(L, webhook_funcs, 0);
}
