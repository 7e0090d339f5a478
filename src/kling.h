/* Shared by the Lua bindings of kling.core: Lua version shims and the
 * per-concern openers that core.c calls. The pure C parts live in src/pure/
 * and never include this header. */
#ifndef KLING_H
#define KLING_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
/* LuaJIT 2.1 / Lua 5.1: 5.3 API used here (lua_isinteger, luaL_len, ...). */
#include <lua5.1/compat-5.3.h>
#endif

/* Each opener sets its functions into the module table at the top of the
 * stack and leaves the stack as it found it. Userdata types register their
 * metatables (with __gc) here too. */
void kling_open_time(lua_State *L);    /* time.c:    now_ms, wall_s, sleep_ms */
void kling_open_codec(lua_State *L);   /* codec.c:   base64, hmac, jwt, random */
void kling_open_auth(lua_State *L);    /* auth.c:    auth userdata (secrets kept in C) */
void kling_open_retry(lua_State *L);   /* retry.c:   classify, retry_after, backoff, decide */
void kling_open_webhook(lua_State *L); /* webhook.c: Standard Webhooks verification */
void kling_open_http(lua_State *L);    /* http.c:    libcurl multi driver */
void kling_open_money(lua_State *L);   /* money.c:   decimal micro-units, price rules */
void kling_open_sched(lua_State *L);   /* sched.c:   poll scheduler, slot limiter */
void kling_open_idmap(lua_State *L);   /* idmap.c:   task ids <-> scheduler handles, in C memory */
void kling_open_fileio(lua_State *L);  /* fileio.c:  durable appends (fsync) for journals, local input files */
void kling_open_json(lua_State *L);    /* json.c:    keys given twice in a JSON text */

/* Registers a userdata class: its metatable `name` (with __name, for LuaJIT too) holding meta
 * (__gc, __tostring, ...) and an __index table of methods. Leaves the stack as it found it. */
void kling_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);

/* Ctrl-C while C blocks (a transfer, a sleep). lua.c and luajit.c answer SIGINT by setting a
 * count hook on the main thread, which raises "interrupted!" once Lua runs again: a C loop
 * that waits on past the signal (EINTR) holds Ctrl-C off until it ends. A mark taken at the
 * start is compared with the hook (kling_interrupted) when the wait is cut short, and the loop
 * gives Lua the hand back when it changed. */
typedef struct {
    lua_State *main;
    lua_Hook hook;
    int mask;
} kling_hookmark;
kling_hookmark kling_hook_mark(lua_State *L);
int kling_interrupted(const kling_hookmark *m);

/* Set t[name] = integer / string field of the table at the top of the stack. */
void kling_setint(lua_State *L, const char *name, lua_Integer v);
void kling_setstr(lua_State *L, const char *name, const char *v);
void kling_setbool(lua_State *L, const char *name, int v);

/* Pushes the table at idx's own field name (lua_rawget: no __index, no Lua code run) and gives
 * its type. A C function that keeps a string or userdata of one field while it reads the next
 * relies on it: a metamethod could make a value nothing holds (collected at the next read) or
 * drop one read before (t.secret = nil, then a collection). The fields a function takes are
 * its table's own, as the unknown-field checks (lua_next) see them. */
int kling_rawfield(lua_State *L, int idx, const char *name);

/* Read optional fields of the table at index idx (its own, kling_rawfield). */
lua_Integer kling_optint(lua_State *L, int idx, const char *name, lua_Integer def);
const char *kling_optstr(lua_State *L, int idx, const char *name, size_t *len);

/* Whether the Lua string s (len bytes) is name, all of it: strcmp stops at a NUL, so that
 * "timeout_ms\0x" would pass as the field timeout_ms (and its value go unread). */
int kling_is_name(const char *s, size_t len, const char *name);

/* Pushes s quoted for a message: '...', at most 40 of its bytes, each byte that is not
 * printable ASCII (a NUL included) written \xNN. */
void kling_push_quoted(lua_State *L, const char *s, size_t len);

/* Pushes "; did you mean <name>?" naming the known name (a NULL-terminated list) closest to
 * s (len bytes) by the one rule of src/pure/names.c, or "" when none is close. */
void kling_push_near(lua_State *L, const char *s, size_t len, const char *const *known);

/* fileio.c: the one rule for a path an output file is written to (downloads, core.http's
 * output). kling_path_control_at: the offset of the first control byte (below 0x20, or 0x7f,
 * NUL included) or -1. kling_create_output: creates path exclusively, never through a link
 * (-1 with errno; *refused names what was there when an existing entry was not ours to
 * replace). */
long kling_path_control_at(const char *path, size_t len);
int kling_create_output(const char *path, const char **refused);

/* rename.c: moves from to the name to in one step only while nothing is at to: 0, or -1 with
 * errno (EEXIST when something is). */
int kling_rename_noreplace(const char *from, const char *to);

#endif
