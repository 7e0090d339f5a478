/* The version string the module and the User-Agent report. */
#include "version.h"

const char *kling_version(void) {
    return KLING_VERSION;
}
