/* Placeholder opener: being written now (see docs/internals.md). */
#include "kling.h"

void kling_open_auth(lua_State *L) {
    (void)L;
}
