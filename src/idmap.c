/* kling.idmap: the id <-> handle map of src/pure/idmap.h as Lua userdata, with
 * the scheduler's 1-based handles. What a poller keeps per open task lives in
 * C memory, out of reach of the Lua collector's walks. Misuse (wrong types, an
 * id or a handle already mapped, an id of 0 or over 1024 bytes) raises. */
#include "kling.h"

#include <openssl/rand.h>

#include "idmap.h"

#define IDMAP_MT "kling.idmap"

struct lidmap {
    struct kling_idmap *m;
};

static struct kling_idmap *check_map(lua_State *L) {
    struct lidmap *u = luaL_checkudata(L, 1, IDMAP_MT);
    if (u->m == NULL) {
        luaL_error(L, "kling.idmap: used after it was collected");
    }
    return u->m;
}

/* A 1-based handle as the C one; raises unless it is within 1 .. 2^32 - 2. */
static uint32_t check_handle(lua_State *L, int idx) {
    int ok = 0;
    lua_Integer h = lua_type(L, idx) == LUA_TNUMBER ? lua_tointegerx(L, idx, &ok) : 0;
    if (!ok || h < 1 || h > (lua_Integer)KLING_IDMAP_HANDLE_LIMIT + 1) {
        luaL_error(L, "kling.idmap: a handle is an integer from 1 to 2^32 - 2 (got %s)",
                   lua_type(L, idx) == LUA_TNUMBER ? "a number out of that range" : luaL_typename(L, idx));
    }
    return (uint32_t)(h - 1);
}

/* idmap() -> a new empty map, its hash keyed with random bytes. */
static int l_idmap(lua_State *L) {
    unsigned char seed[16];
    struct lidmap *u;
    if (RAND_bytes(seed, sizeof(seed)) != 1) {
        return luaL_error(L, "kling.idmap: no random bytes for its hash key (OpenSSL's RAND_bytes failed)");
    }
    u = lua_newuserdata(L, sizeof(*u));
    u->m = NULL;
    luaL_setmetatable(L, IDMAP_MT);
    u->m = kling_idmap_new(seed);
    if (u->m == NULL) {
        return luaL_error(L, "kling.idmap: out of memory");
    }
    return 1;
}

/* m:put(id, handle): id names handle, and handle id. */
static int l_put(lua_State *L) {
    struct kling_idmap *m = check_map(L);
    size_t len;
    const char *id = luaL_checklstring(L, 2, &len);
    int rc = kling_idmap_put(m, id, len, check_handle(L, 3));
    if (rc != KLING_IDMAP_OK) {
        return luaL_error(L, "kling.idmap: %s", kling_idmap_strerror(rc));
    }
    return 0;
}

/* m:find(id) -> handle | nil */
static int l_find(lua_State *L) {
    struct kling_idmap *m = check_map(L);
    size_t len;
    const char *id = luaL_checklstring(L, 2, &len);
    uint32_t h;
    if (kling_idmap_find(m, id, len, &h)) {
        lua_pushinteger(L, (lua_Integer)h + 1);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

/* m:id(handle) -> id | nil */
static int l_id(lua_State *L) {
    struct kling_idmap *m = check_map(L);
    size_t len;
    const char *id = kling_idmap_id(m, check_handle(L, 2), &len);
    if (id != NULL) {
        lua_pushlstring(L, id, len);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

/* m:remove(handle) -> true when the handle had an id */
static int l_remove(lua_State *L) {
    struct kling_idmap *m = check_map(L);
    lua_pushboolean(L, kling_idmap_remove(m, check_handle(L, 2)));
    return 1;
}

/* m:count() -> ids mapped, bytes held */
static int l_count(lua_State *L) {
    struct kling_idmap *m = check_map(L);
    lua_pushinteger(L, (lua_Integer)kling_idmap_count(m));
    lua_pushinteger(L, (lua_Integer)kling_idmap_bytes(m));
    return 2;
}

static int l_tostring(lua_State *L) {
    struct lidmap *u = luaL_checkudata(L, 1, IDMAP_MT);
    if (u->m == NULL) {
        lua_pushliteral(L, IDMAP_MT "(collected)");
    } else {
        lua_pushfstring(L, IDMAP_MT "(%d ids)", (int)kling_idmap_count(u->m));
    }
    return 1;
}

static int l_gc(lua_State *L) {
    struct lidmap *u = luaL_checkudata(L, 1, IDMAP_MT);
    kling_idmap_free(u->m);
    u->m = NULL;
    return 0;
}

void kling_open_idmap(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"put", l_put}, {"find", l_find}, {"id", l_id}, {"remove", l_remove}, {"count", l_count}, {NULL, NULL}
    };
    static const luaL_Reg meta[] = {{"__tostring", l_tostring}, {"__gc", l_gc}, {NULL, NULL}};
    kling_new_class(L, IDMAP_MT, meta, methods);
    lua_pushcfunction(L, l_idmap);
    lua_setfield(L, -2, "idmap");
    kling_setint(L, "idmap_id_max", KLING_IDMAP_ID_LIMIT); /* the longest id a map takes, in bytes */
}
