/* kling.core: the C core's entry point. One opener per concern (see kling.h). */
#include "kling.h"
#include "names.h"

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

kling_hookmark kling_hook_mark(lua_State *L) {
    kling_hookmark m;
#if LUA_VERSION_NUM >= 502
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    m.main = lua_tothread(L, -1);
    lua_pop(L, 1);
    if (m.main == NULL) {
        m.main = L;
    }
#else
    m.main = L; /* LuaJIT: one hook for every coroutine of the state */
#endif
    m.hook = lua_gethook(m.main);
    m.mask = lua_gethookmask(m.main);
    return m;
}

int kling_interrupted(const kling_hookmark *m) {
    return lua_gethook(m->main) != m->hook || lua_gethookmask(m->main) != m->mask;
}

int kling_rawfield(lua_State *L, int idx, const char *name) {
    if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1; /* before the push */
    lua_pushstring(L, name);
    lua_rawget(L, idx); /* void in LuaJIT's 5.1 API */
    return lua_type(L, -1);
}

lua_Integer kling_optint(lua_State *L, int idx, const char *name, lua_Integer def) {
    lua_Integer v = def;
    kling_rawfield(L, idx, name);
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

/* The returned string stays valid while the table at idx holds it (its own field: nothing runs
 * between this read and the next that could drop it). */
const char *kling_optstr(lua_State *L, int idx, const char *name, size_t *len) {
    const char *s = NULL;
    kling_rawfield(L, idx, name);
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


void kling_push_near(lua_State *L, const char *s, size_t len, const char *const *known) {
    size_t n = 0, *near;
    while (known[n] != NULL) {
        n++;
    }
    near = lua_newuserdata(L, (n ? n : 1) * sizeof(size_t));
    if (kling_name_closest(s, len, known, NULL, n, near) > 0) {
        lua_pushfstring(L, "; did you mean %s?", known[near[0]]);
    } else {
        lua_pushliteral(L, "");
    }
    lua_remove(L, -2);
}

/* core.closest(name, known): known a list of names or a set (names as keys). The closest
 * known name and the sorted list of every one as close, or nil when none is close. */
static int l_closest(lua_State *L) {
    size_t n = 0, cap, i, count, len;
    const char *name, **names;
    size_t *lens, *near;
    int list;
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_type(L, 1) != LUA_TSTRING) {
        lua_pushnil(L);
        return 1;
    }
    name = lua_tolstring(L, 1, &len);
    lua_rawgeti(L, 2, 1);
    list = !lua_isnil(L, -1);
    lua_pop(L, 1);
    cap = 0;
    if (list) {
        cap = (size_t)lua_rawlen(L, 2);
    } else {
        lua_pushnil(L);
        while (lua_next(L, 2) != 0) {
            lua_pop(L, 1);
            cap++;
        }
    }
    names = lua_newuserdata(L, (cap ? cap : 1) * sizeof(*names)); /* 3 */
    lens = lua_newuserdata(L, (cap ? cap : 1) * sizeof(*lens));   /* 4 */
    near = lua_newuserdata(L, (cap ? cap : 1) * sizeof(*near));   /* 5 */
    if (list) {
        for (i = 1; i <= cap; i++) {
            lua_rawgeti(L, 2, (lua_Integer)i);
            if (lua_type(L, -1) == LUA_TSTRING) {
                names[n] = lua_tolstring(L, -1, &lens[n]); /* held by the table */
                n++;
            }
            lua_pop(L, 1);
        }
    } else {
        lua_pushnil(L);
        while (lua_next(L, 2) != 0 && n < cap) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING) {
                names[n] = lua_tolstring(L, -1, &lens[n]); /* a key of the table */
                n++;
            }
        }
        lua_settop(L, 5);
    }
    count = kling_name_closest(name, len, names, lens, n, near);
    if (count == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, names[near[0]], lens[near[0]]);
    lua_createtable(L, (int)count, 0);
    for (i = 0; i < count; i++) {
        lua_pushlstring(L, names[near[i]], lens[near[i]]);
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
    return 2;
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
    lua_pushcfunction(L, l_closest);
    lua_setfield(L, -2, "closest");
    return 1;
}
