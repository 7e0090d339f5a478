/* Clocks for the Lua side: a monotonic clock for deadlines and intervals (never
 * jumps with NTP or the user's date), the wall clock for JWT claims and logs,
 * and a blocking sleep for plain Lua (OpenResty code uses ngx.sleep instead). */
#include "kling.h"

#include <errno.h>
#include <stdint.h>
#include <time.h>

/* Longest sleep accepted: a day. A larger value is almost surely a unit
 * mistake (seconds or microseconds passed as milliseconds). */
#define KLING_SLEEP_MAX_MS ((lua_Integer)86400000)

static lua_Integer clock_ms(lua_State *L, clockid_t id, const char *name) {
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        return luaL_error(L, "kling.core: clock_gettime(%s) failed", name);
    }
    return (lua_Integer)ts.tv_sec * 1000 + (lua_Integer)(ts.tv_nsec / 1000000);
}

static int l_now_ms(lua_State *L) {
    lua_pushinteger(L, clock_ms(L, CLOCK_MONOTONIC, "CLOCK_MONOTONIC"));
    return 1;
}

static int l_wall_ms(lua_State *L) {
    lua_pushinteger(L, clock_ms(L, CLOCK_REALTIME, "CLOCK_REALTIME"));
    return 1;
}

static int l_wall_s(lua_State *L) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return luaL_error(L, "kling.core: clock_gettime(CLOCK_REALTIME) failed");
    }
    lua_pushinteger(L, (lua_Integer)ts.tv_sec);
    return 1;
}

static int l_sleep_ms(lua_State *L) {
    int isint = 0;
    lua_Integer ms = lua_tointegerx(L, 1, &isint);
    struct timespec req, rem;
    kling_hookmark mark = kling_hook_mark(L);
    if (!isint) {
        return luaL_argerror(L, 1, "ms must be an integer number of milliseconds");
    }
    if (ms < 0 || ms > KLING_SLEEP_MAX_MS) {
        return luaL_argerror(L, 1, "ms must be between 0 and 86400000");
    }
    req.tv_sec = (time_t)(ms / 1000);
    req.tv_nsec = (long)(ms % 1000) * 1000000L;
    /* A signal (SIGCHLD from a child, a profiler) must not cut the sleep short: resume with
     * what is left. Ctrl-C does: Lua raises "interrupted!" once this returns (a poll's sleep of
     * up to poll_max held it off). */
    while (nanosleep(&req, &rem) != 0) {
        if (errno != EINTR) {
            return luaL_error(L, "kling.core: nanosleep failed (errno %d)", errno);
        }
        if (kling_interrupted(&mark)) {
            return 0;
        }
        req = rem;
    }
    return 0;
}

void kling_open_time(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"now_ms", l_now_ms},
        {"wall_ms", l_wall_ms},
        {"wall_s", l_wall_s},
        {"sleep_ms", l_sleep_ms},
        {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}
