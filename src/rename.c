/* A rename that never replaces: the one place the module asks for what POSIX lacks
 * (renameat2's RENAME_NOREPLACE, Linux 3.15+ with glibc 2.28+), kept apart so that
 * _GNU_SOURCE reaches no other file. Where the C library or the file system lacks it, a hard
 * link (which fails with EEXIST when the name is taken) and an unlink do the same in two steps;
 * a crash between them leaves the file under both names, never neither. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "kling.h"

int kling_rename_noreplace(const char *from, const char *to) {
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
#endif
    if (link(from, to) != 0) return -1;
    if (unlink(from) != 0 && errno != ENOENT) return -1;
    return 0;
}
