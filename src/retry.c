/* Placeholder opener: being written now (see docs/internals.md). */
#include "kling.h"

void kling_open_retry(lua_State *L) {
    (void)L;
}
