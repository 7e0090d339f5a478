/* Placeholder opener: being written now (see docs/internals.md). */
#include "kling.h"

void kling_open_sched(lua_State *L) {
    (void)L;
}
