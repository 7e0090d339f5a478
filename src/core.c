/* kling.core: the C core's entry point. One opener per concern (see kling.h). */
#include "kling.h"

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
