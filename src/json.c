/* kling.core.json_dup_key: the duplicate-key check of src/pure/json_keys.c for
 * the texts users and clients give (kling.json.decode_strict); and
 * kling.core.json_quote_big_ints: src/pure/json_bigint.c for the texts
 * providers send (kling.json.decode_answer). */
#include "kling.h"

#include "json_bigint.h"
#include "json_keys.h"

/* Keys open at once that the C stack holds; a text with more gets scratch of
 * its own size (a Lua userdata, so that nothing leaks if a push raises). */
#define STACK_KEYS 128

/* json_dup_key(text [, max_values]) -> false (no object has a key twice)
 *                     | path, at, first (1-based byte offsets of the second and first quote)
 *                     | nil, reason (not checked: too deep, too long)
 *                     | nil, reason, nil, at (not JSON: `at` is the 1-based byte where it stops)
 *                     | nil, reason, at (more values than max_values: `at` is the 1-based
 *                       byte of the first one over; nothing past it was read) */
static int l_json_dup_key(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_Integer max = luaL_optinteger(L, 2, -1);
    size_t max_values = max < 0 ? (size_t)-1 : (size_t)max;
    struct kling_json_key stack_keys[STACK_KEYS];
    struct kling_json_keys_result r;
    char path[256];
    int rc = kling_json_keys_check_max(s, len, stack_keys, STACK_KEYS, max_values, path, sizeof(path), &r);
    if (rc == KLING_JSON_KEYS_ESCRATCH) {
        size_t need = r.need;
        struct kling_json_key *keys;
        if (need > (size_t)-1 / sizeof(*keys)) {
            return luaL_error(L, "json_dup_key: too many keys");
        }
        keys = lua_newuserdata(L, need * sizeof(*keys) + 1);
        rc = kling_json_keys_check_max(s, len, keys, need, max_values, path, sizeof(path), &r);
    }
    if (rc == KLING_JSON_KEYS_UNIQUE) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (rc == KLING_JSON_KEYS_DUP) {
        lua_pushstring(L, path);
        lua_pushinteger(L, (lua_Integer)r.at + 1);
        lua_pushinteger(L, (lua_Integer)r.first + 1);
        return 3;
    }
    lua_pushnil(L);
    if (rc == KLING_JSON_KEYS_EMANY) {
        lua_pushstring(L, kling_json_keys_strerror(rc));
        lua_pushinteger(L, (lua_Integer)r.at + 1);
        return 3;
    }
    if (rc == KLING_JSON_KEYS_ESYNTAX) {
        lua_pushfstring(L, "%s at byte %d", kling_json_keys_strerror(rc), (int)(r.at + 1));
        lua_pushnil(L);
        lua_pushinteger(L, (lua_Integer)r.at + 1);
        return 4;
    }
    lua_pushstring(L, kling_json_keys_strerror(rc));
    return 2;
}

/* Texts up to this size are rewritten on the C stack. */
#define STACK_TEXT 4096

/* json_quote_big_ints(text) -> text itself when no integer literal in it is
 * past a double's exact range, else a copy with each such literal quoted */
static int l_json_quote_big_ints(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    size_t n = kling_json_bigint_count(s, len);
    if (n == 0) {
        lua_settop(L, 1);
        return 1;
    }
    if (n > ((size_t)-1 - len) / 2) {
        return luaL_error(L, "json_quote_big_ints: text too long");
    }
    char stack_text[STACK_TEXT];
    char *out = len + 2 * n <= sizeof(stack_text) ? stack_text : lua_newuserdata(L, len + 2 * n);
    lua_pushlstring(L, out, kling_json_bigint_quote(s, len, out));
    return 1;
}

static const luaL_Reg json_funcs[] = {
    {"json_dup_key", l_json_dup_key},
    {"json_quote_big_ints", l_json_quote_big_ints},
    {NULL, NULL}
};

void kling_open_json(lua_State *L) {
    luaL_setfuncs(L, json_funcs, 0);
}
