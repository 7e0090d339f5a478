/* Durable file writes for journals: Lua's io library cannot fsync, and a batch journal must
 * be on disk before the call that obtained a task id returns (design.md). */
#include "kling.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int push_errno(lua_State *L, const char *what, const char *path) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
    return 2;
}

/* fsync the directory holding path, so a newly created or renamed entry survives a crash. */
static int sync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    size_t n;
    int fd, rc;
    if (slash == NULL) {
        strcpy(dir, ".");
    } else {
        n = (size_t)(slash - path);
        if (n == 0) n = 1; /* "/file" */
        if (n >= sizeof dir) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* append_sync(path, data) -> true | nil, message: appends data with one write loop and
 * fsyncs the file (and its directory when the file was created). */
static int l_append_sync(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t len, off = 0;
    const char *data = luaL_checklstring(L, 2, &len);
    struct stat st;
    int created = stat(path, &st) != 0 && errno == ENOENT;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return push_errno(L, "cannot open", path);
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            push_errno(L, "cannot write", path);
            close(fd);
            return 2;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        push_errno(L, "cannot fsync", path);
        close(fd);
        return 2;
    }
    if (close(fd) != 0) return push_errno(L, "cannot close", path);
    if (created && sync_parent(path) != 0) return push_errno(L, "cannot fsync the directory of", path);
    lua_pushboolean(L, 1);
    return 1;
}

/* fsync_path(path) -> true | nil, message: makes a file's content (and, with a second true
 * argument, its directory entry after a rename) durable. */
static int l_fsync_path(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int with_dir = lua_toboolean(L, 2);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return push_errno(L, "cannot open", path);
    if (fsync(fd) != 0) {
        push_errno(L, "cannot fsync", path);
        close(fd);
        return 2;
    }
    close(fd);
    if (with_dir && sync_parent(path) != 0) return push_errno(L, "cannot fsync the directory of", path);
    lua_pushboolean(L, 1);
    return 1;
}

void kling_open_fileio(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"append_sync", l_append_sync},
        {"fsync_path", l_fsync_path},
        {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}
