/* kling.core: the C core's entry point. One opener per concern (see kling.h). */
#include "kling.h"

#include <string.h>

void kling_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name"); /* LuaJIT's luaL_newmetatable does not set it */
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

void kling_setint(lua_State *L, const char *name, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, name);
}

void kling_setstr(lua_State *L, const char *name, const char *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, name);
}

void kling_setbool(lua_State *L, const char *name, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, name);
}

lua_Integer kling_optint(lua_State *L, int idx, const char *name, lua_Integer def) {
    lua_Integer v = def;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        int ok = 0;
        /* Numbers only: lua_tointegerx would also take numeric strings like "1000". */
        if (lua_type(L, -1) == LUA_TNUMBER) {
            v = lua_tointegerx(L, -1, &ok);
        }
        if (!ok) {
            luaL_error(L, "kling.core: field '%s' must be an integer", name);
        }
    }
    lua_pop(L, 1);
    return v;
}

/* The returned string stays valid while the table at idx holds it. */
const char *kling_optstr(lua_State *L, int idx, const char *name, size_t *len) {
    const char *s = NULL;
    lua_getfield(L, idx, name);
    if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tolstring(L, -1, len);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "kling.core: field '%s' must be a string", name);
    }
    lua_pop(L, 1);
    return s;
}

/* A text given (an amount, a field name), as a message shows it: quoted, at most QUOTE_MAX of its bytes,
 * each that is not printable ASCII (a NUL, a stray byte, a quote) written \xNN, so that the
 * message says what was given and stays one line of valid UTF-8. */
#define QUOTE_MAX 40
void kling_push_quoted(lua_State *L, const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    luaL_Buffer b;
    size_t i, n = len < QUOTE_MAX ? len : QUOTE_MAX;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '\'');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
            luaL_addchar(&b, (char)c);
        } else {
            luaL_addchar(&b, '\\');
            luaL_addchar(&b, 'x');
            luaL_addchar(&b, hex[c >> 4]);
            luaL_addchar(&b, hex[c & 15]);
        }
    }
    luaL_addchar(&b, '\'');
    if (n < len) {
        lua_pushfstring(L, "... (%d bytes)", (int)(len > 0x7fffffff ? 0x7fffffff : len));
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
}

int kling_is_name(const char *s, size_t len, const char *name) {
    return strlen(name) == len && memcmp(s, name, len) == 0;
}

__attribute__((visibility("default"))) int luaopen_kling_core(lua_State *L);

int luaopen_kling_core(lua_State *L) {
    lua_newtable(L);
    lua_pushstring(L, KLING_VERSION);
    lua_setfield(L, -2, "version");
#if LUA_VERSION_NUM < 502
    lua_pushstring(L, "jit");
#else
    lua_pushstring(L, LUA_VERSION_MAJOR "." LUA_VERSION_MINOR);
#endif
    lua_setfield(L, -2, "lua");
    kling_open_time(L);
    kling_open_codec(L);
    kling_open_auth(L);
    kling_open_retry(L);
    kling_open_webhook(L);
    kling_open_http(L);
    kling_open_money(L);
    kling_open_sched(L);
    kling_open_idmap(L);
    kling_open_fileio(L);
    kling_open_json(L);
    return 1;
}
