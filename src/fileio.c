/* Durable file writes for journals: Lua's io library cannot fsync, and a batch journal must
 * be on disk before the call that obtained a task id returns (design.md). Also the one
 * read of a local input file, which Lua's io cannot make safe (no stat, no O_NONBLOCK). */
#include "kling.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_MT "kling.lock"

typedef struct {
    int fd;      /* -1 once released; for a process lock, the table's descriptor */
    int process; /* a process lock: released through the table (held_release) */
    dev_t dev;
    ino_t ino;
} file_lock;

/* The locks this process holds for all its Lua states (lock_file(path, true)): flock locks
 * belong to an open file description, so a second open+flock of a file by the process that
 * already holds it conflicts with itself. nginx's master re-runs init_by_lua in a new Lua VM
 * at a reload while the old VM (and its lock) still lives: the new VM must find the lock the
 * process holds, not be refused by it. This table is the one process-wide mutable state of
 * the module because the lock is process-wide by nature (its descriptor is inherited by the
 * forked workers); the mutex because Lua states of one process may run in several threads. */
#define HELD_MAX 32
typedef struct {
    dev_t dev;
    ino_t ino;
    int fd;
    int refs; /* the lock objects of this process's Lua states that keep it */
} held_lock;
static held_lock held[HELD_MAX];
static int held_n;
static pthread_mutex_t held_mutex = PTHREAD_MUTEX_INITIALIZER;

static held_lock *held_find(dev_t dev, ino_t ino) {
    int i;
    for (i = 0; i < held_n; i++)
        if (held[i].dev == dev && held[i].ino == ino) return &held[i];
    return NULL;
}

/* Drops one reference to a process lock; the last one closes the descriptor (the kernel
 * keeps the lock while forked children still have it open). */
static void held_release(dev_t dev, ino_t ino) {
    held_lock *h;
    pthread_mutex_lock(&held_mutex);
    h = held_find(dev, ino);
    if (h != NULL && --h->refs == 0) {
        close(h->fd);
        *h = held[--held_n];
    }
    pthread_mutex_unlock(&held_mutex);
}

/* A path argument: the open, lock or fsync sees the bytes up to the first NUL, so a path that
 * holds one ("journal\0.bak", checked by its caller as the whole string) would name another
 * file than the one checked. Misuse: raised, as output_target and mkdir_p refuse it. */
static const char *check_path(lua_State *L, int arg) {
    size_t len;
    const char *path = luaL_checklstring(L, arg, &len);
    if (memchr(path, '\0', len) != NULL) {
        luaL_argerror(L, arg, "a path must not hold a NUL byte");
    }
    return path;
}

static int push_errno(lua_State *L, const char *what, const char *path) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
    return 2;
}

/* As push_errno, fd closed first (errno kept): a push that raises (out of memory) leaked it. */
static int close_then_fail(lua_State *L, int fd, const char *what, const char *path) {
    int e = errno;
    close(fd);
    errno = e;
    return push_errno(L, what, path);
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

static const char *kind_of(mode_t m);

/* Opens a journal or a lock file (flags: O_WRONLY|O_APPEND or O_RDWR, with O_CREAT): never
 * through a symbolic link and only a regular file (O_NONBLOCK: a FIFO is refused at once
 * instead of blocking the open), as they are written in directories others may write. -1
 * with errno set, or the message pushed by the caller when *what is set. */
static int open_regular(const char *path, int flags, const char **what) {
    struct stat st;
    int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
    *what = NULL;
    if (fd < 0) {
        int e = errno;
        if ((e == ELOOP || e == ENXIO || e == EISDIR) && lstat(path, &st) == 0) {
            *what = S_ISLNK(st.st_mode) ? "a symbolic link" : kind_of(st.st_mode);
        }
        errno = e;
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *what = kind_of(st.st_mode);
        close(fd);
        return -1;
    }
    return fd;
}

static int push_refused(lua_State *L, const char *path, const char *what) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot open %s: it is %s, not a regular file", path, what);
    return 2;
}

/* append_sync(path, data) -> true | nil, message: appends data with one write loop and
 * fsyncs the file (and its directory when the file was created). */
static int l_append_sync(lua_State *L) {
    const char *path = check_path(L, 1);
    size_t len, off = 0;
    const char *data = luaL_checklstring(L, 2, &len);
    struct stat st;
    const char *what;
    int created = lstat(path, &st) != 0 && errno == ENOENT;
    int fd = open_regular(path, O_WRONLY | O_APPEND | O_CREAT, &what);
    if (fd < 0 && what != NULL) return push_refused(L, path, what);
    if (fd < 0) return push_errno(L, "cannot open", path);
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return close_then_fail(L, fd, "cannot write", path);
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) return close_then_fail(L, fd, "cannot fsync", path);
    if (close(fd) != 0) return push_errno(L, "cannot close", path);
    if (created && sync_parent(path) != 0) return push_errno(L, "cannot fsync the directory of", path);
    lua_pushboolean(L, 1);
    return 1;
}

/* fsync_path(path) -> true | nil, message: makes a file's content (and, with a second true
 * argument, its directory entry after a rename) durable. */
static int l_fsync_path(lua_State *L) {
    const char *path = check_path(L, 1);
    int with_dir = lua_toboolean(L, 2);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return push_errno(L, "cannot open", path);
    if (fsync(fd) != 0) return close_then_fail(L, fd, "cannot fsync", path);
    close(fd);
    if (with_dir && sync_parent(path) != 0) return push_errno(L, "cannot fsync the directory of", path);
    lua_pushboolean(L, 1);
    return 1;
}

/* The pid a holder wrote into a lock file (for people; the lock itself is the flock), or nil
 * when the file has none yet (read between the holder's flock and its write). */
static long holder_pid(int fd) {
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long pid = 0;
    ssize_t i;
    for (i = 0; i < n && buf[i] >= '0' && buf[i] <= '9' && pid < 100000000L; i++) pid = pid * 10 + (buf[i] - '0');
    return (i > 0 && i < n && buf[i] == '\n' && pid > 0) ? pid : 0;
}

/* Writes "pid\n" over the lock file's content: written first and cut after, so a reader never
 * finds it empty. The pid is for people only: the flock is what excludes. */
static int write_pid(int fd, long pid) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", pid);
    return pwrite(fd, buf, (size_t)n, 0) == n && ftruncate(fd, n) == 0;
}

/* Whether path still names the file st describes (the one a descriptor has open). */
static int still_at(const char *path, const struct stat *st) {
    struct stat now;
    return lstat(path, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

/* lock_file(path [, process]) -> lock | nil, message, busy, pid: an exclusive flock on path
 * (created when missing), taken without waiting. The kernel holds it for as long as the
 * descriptor is open: until lock:unlock(), the lock's collection or the process's end (kill -9
 * included), so a lock is never stale and two processes can never both hold it. busy is true
 * when another process holds it, and pid is the pid it wrote into the file (nil when none
 * yet); otherwise the message says why the file could not be opened or locked. The holder's
 * pid is written into the file (for people; the lock itself is the flock).
 * With process true the lock is the process's, shared by its Lua states: locking a file the
 * process already holds that way succeeds (nginx's master at a reload, see held above), and
 * the descriptor closes when the last of these lock objects is released. Without it, a second
 * lock of the same file, even by the same process, is refused (a batch directory: one run).
 * The lock taken is on the file at path once it is taken (a file its holder removed and
 * released meanwhile is let go and path opened again): removing the file while holding the
 * lock, then unlocking, is safe. */
static int l_lock_file(lua_State *L) {
    const char *path = check_path(L, 1);
    int process = lua_toboolean(L, 2);
    file_lock *lk = (file_lock *)lua_newuserdata(L, sizeof *lk);
    struct stat st;
    const char *what;
    int fd, tries = 0;
    lk->fd = -1;
    lk->process = 0;
    luaL_getmetatable(L, LOCK_MT);
    lua_setmetatable(L, -2);
again:
    fd = open_regular(path, O_RDWR | O_CREAT, &what);
    if (fd < 0 && what != NULL) return push_refused(L, path, what);
    if (fd < 0) return push_errno(L, "cannot open", path);
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return push_errno(L, "cannot stat", path);
    }
    if (process) {
        held_lock *h;
        pthread_mutex_lock(&held_mutex);
        h = held_find(st.st_dev, st.st_ino);
        if (h != NULL || held_n == HELD_MAX) {
            if (h != NULL) {
                h->refs++;
                lk->fd = h->fd;
                lk->process = 1;
                lk->dev = st.st_dev;
                lk->ino = st.st_ino;
            }
            pthread_mutex_unlock(&held_mutex);
            close(fd);
            if (h != NULL) return 1;
            lua_pushnil(L);
            lua_pushfstring(L, "cannot lock %s: this process holds %d locks already", path, HELD_MAX);
            return 2;
        }
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EINTR) continue;
        if (process) pthread_mutex_unlock(&held_mutex);
        /* closed before anything is pushed: a push that raises (out of memory) leaked it */
        long holder = e == EWOULDBLOCK ? holder_pid(fd) : 0;
        close(fd);
        errno = e;
        push_errno(L, "cannot lock", path);
        lua_pushboolean(L, e == EWOULDBLOCK);
        if (holder > 0)
            lua_pushinteger(L, (lua_Integer)holder);
        else
            lua_pushnil(L);
        return 4;
    }
    /* The file locked must still be the one at path: its holder may have removed it (a lock
     * file removed while held, then released: kling.element's) after this open and before
     * this flock, and a process that opens path now creates a new file and locks that one too.
     * The flock on a file no longer at path excludes no one: let it go and start again. */
    if (!still_at(path, &st)) {
        if (process) pthread_mutex_unlock(&held_mutex);
        close(fd);
        if (++tries < 100) goto again;
        lua_pushnil(L);
        lua_pushfstring(L, "cannot lock %s: it is removed and made again as fast as it is locked", path);
        return 2;
    }
    write_pid(fd, (long)getpid());
    lk->fd = fd;
    if (process) {
        held_lock *h = &held[held_n++];
        h->dev = st.st_dev;
        h->ino = st.st_ino;
        h->fd = fd;
        h->refs = 1;
        lk->process = 1;
        lk->dev = st.st_dev;
        lk->ino = st.st_ino;
        pthread_mutex_unlock(&held_mutex);
    }
    return 1;
}

/* lock:unlock() -> true: lets the next process take the lock. The file stays; its holder may
 * remove it before (while it holds the lock, never after): lock_file takes no lock on a file
 * that is no longer at its path (still_at), so a process that opened the old file cannot hold
 * it beside one that locks the new. A process lock is released when the process's last lock
 * object on it is. */
static int l_lock_unlock(lua_State *L) {
    file_lock *lk = (file_lock *)luaL_checkudata(L, 1, LOCK_MT);
    if (lk->fd >= 0) {
        if (lk->process)
            held_release(lk->dev, lk->ino);
        else
            close(lk->fd);
        lk->fd = -1;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* lock:write_pid(pid) -> true | nil, message: names another pid as the holder (nginx's master
 * once it runs: a daemonized nginx takes the lock before it forks into the background). */
static int l_lock_write_pid(lua_State *L) {
    file_lock *lk = (file_lock *)luaL_checkudata(L, 1, LOCK_MT);
    lua_Integer pid = luaL_checkinteger(L, 2);
    if (pid <= 0) return luaL_argerror(L, 2, "must be a pid");
    if (lk->fd < 0) return luaL_error(L, "kling.lock: write_pid on a released lock");
    if (!write_pid(lk->fd, (long)pid)) return push_errno(L, "cannot write the pid into", "the lock file");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_lock_tostring(lua_State *L) {
    file_lock *lk = (file_lock *)luaL_checkudata(L, 1, LOCK_MT);
    lua_pushstring(L, lk->fd >= 0 ? "kling.lock (held)" : "kling.lock (released)");
    return 1;
}

/* What a stat says a path is, in words for an error ("a FIFO"). */
static const char *kind_of(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

/* read_regular(path, max) -> bytes | nil, message, kind, missing: at most max bytes of a
 * regular file. A local file given for a request field is read only when it is a regular file:
 * a FIFO, a device or /dev/stdin would block or never end. The type is checked with stat before
 * any open (opening a FIFO for read blocks, a device's open may act), and again with fstat on
 * the descriptor, opened O_NONBLOCK, so a path swapped between the two is still refused. kind is
 * what the path is ("a FIFO (named pipe)", ...) when it is not a regular file, else nil; missing
 * is true when nothing is at path (ENOENT, ENOTDIR), and false for any other failure (a file
 * there that cannot be read: a journal or a cache read as empty then would be paid again). */
/* read_regular's failure: nil, message, no kind, and whether nothing is at the path. */
static int push_read_failure(lua_State *L, const char *what, const char *path) {
    int missing = errno == ENOENT || errno == ENOTDIR;
    push_errno(L, what, path);
    lua_pushnil(L);
    lua_pushboolean(L, missing);
    return 4;
}

static int l_read_regular(lua_State *L) {
    const char *path = check_path(L, 1);
    lua_Integer max = luaL_checkinteger(L, 2);
    struct stat st;
    int fd;
    luaL_Buffer b;
    if (max < 0) return luaL_argerror(L, 2, "must not be negative");
    if (stat(path, &st) != 0) return push_read_failure(L, "cannot open", path);
    if (!S_ISREG(st.st_mode)) goto not_regular;
    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return push_read_failure(L, "cannot open", path);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        goto not_regular;
    }
    luaL_buffinit(L, &b);
    while (max > 0) {
        size_t want = max < LUAL_BUFFERSIZE ? (size_t)max : LUAL_BUFFERSIZE;
        char *p = luaL_prepbuffer(&b);
        ssize_t n = read(fd, p, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return push_read_failure(L, "cannot read", path);
        }
        if (n == 0) break;
        luaL_addsize(&b, (size_t)n);
        max -= n;
    }
    close(fd);
    luaL_pushresult(&b);
    return 1;
not_regular:
    lua_pushnil(L);
    lua_pushfstring(L, "%s is %s", path, kind_of(st.st_mode));
    lua_pushstring(L, kind_of(st.st_mode));
    return 3;
}

/* ---- output paths ---------------------------------------------------------------------
 * Downloads run as root in the README's set-up, into directories others may write: a path is
 * written only when it names what it says (no control byte: a NUL would cut the C path short
 * of the Lua string, CR/LF forge log lines and file names) and only through a new inode made
 * here, never through a link or over a device, FIFO or directory. */

/* "dev:ino" of a stat: what create_output made, compared with what Lua's io opened. */
static void push_identity(lua_State *L, const struct stat *st) {
    char id[64];
    snprintf(id, sizeof id, "%llu:%llu", (unsigned long long)st->st_dev, (unsigned long long)st->st_ino);
    lua_pushstring(L, id);
}

long kling_path_control_at(const char *path, size_t len) {
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char b = (unsigned char)path[i];
        if (b < 0x20 || b == 0x7f) return (long)i;
    }
    return -1;
}

/* The temporary name stays fixed (<path>.part, not a random one): a crash's leftover is then
 * reclaimed by the next attempt instead of piling up under random names in the output
 * directory. Exclusivity comes from the open: an existing entry is unlinked only when lstat
 * says it is a regular file of ours (a stale partial file; unlink removes a name, never writes
 * through it), anything else is refused; then O_CREAT|O_EXCL|O_NOFOLLOW, so whatever is
 * planted between the two makes the open fail instead of being written. */
int kling_create_output(const char *path, const char **refused) {
    struct stat st;
    *refused = NULL;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode)) {
            *refused = "a symbolic link";
        } else if (!S_ISREG(st.st_mode)) {
            *refused = kind_of(st.st_mode);
        } else if (st.st_uid != geteuid()) {
            *refused = "a file of another user";
        } else if (unlink(path) != 0 && errno != ENOENT) {
            return -1;
        }
        if (*refused != NULL) {
            errno = EEXIST;
            return -1;
        }
    }
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
}

/* output_target(path [, temporary]) -> true [, size, identity] | nil, message, kind: whether an
 * output may be written to path (later renamed over it), checked before anything is sent. With
 * temporary (a .part, which kling_create_output unlinks), a regular file of another user is
 * refused too. Refused: a control byte
 * (kind "control"), an existing entry other than a regular file, seen with lstat so a symbolic
 * link counts as one (kind: "a symbolic link", "a FIFO (named pipe)", ...). A regular file
 * gives its size and identity (as file_identity); an absent path gives true alone. Pure: no descriptor, nothing to collect. */
static int l_output_target(lua_State *L) {
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    int temporary = lua_toboolean(L, 2);
    long at = kling_path_control_at(path, len);
    struct stat st;
    char msg[160];
    if (len == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "is empty: an output path names a file");
        lua_pushliteral(L, "empty");
        return 3;
    }
    if (at >= 0) {
        snprintf(msg, sizeof msg,
                 "holds a control character (byte 0x%02x at offset %ld): an output path may not "
                 "(bytes below 0x20 and 0x7f are refused)",
                 (unsigned)(unsigned char)path[at], at);
        lua_pushnil(L);
        lua_pushstring(L, msg);
        lua_pushliteral(L, "control");
        return 3;
    }
    if (lstat(path, &st) != 0) {
        lua_pushboolean(L, 1); /* absent (or unreachable: the write then says why) */
        return 1;
    }
    if (S_ISREG(st.st_mode) && temporary && st.st_uid != geteuid()) {
        lua_pushnil(L); /* kling_create_output would refuse it: not ours to unlink */
        lua_pushfstring(L, "%s is a file of another user: a temporary output is replaced only when it is ours",
                        path);
        lua_pushliteral(L, "a file of another user");
        return 3;
    }
    if (S_ISREG(st.st_mode)) {
        lua_pushboolean(L, 1);
        lua_pushinteger(L, (lua_Integer)st.st_size);
        push_identity(L, &st);
        return 3;
    }
    lua_pushnil(L);
    lua_pushfstring(L, "%s is %s: an output is written only to a new or a regular file", path,
                    S_ISLNK(st.st_mode) ? "a symbolic link" : kind_of(st.st_mode));
    lua_pushstring(L, S_ISLNK(st.st_mode) ? "a symbolic link" : kind_of(st.st_mode));
    return 3;
}

/* create_output(path) -> identity | nil, message: creates path as kling_create_output does (a
 * control byte refused, exclusively, never through a link) and closes it. For the resty
 * driver, whose writes go through Lua's io (a handle C cannot make under LuaJIT): it reopens
 * the file and compares file_identity with this, so a path swapped in between is never
 * written. */
static int l_create_output(lua_State *L) {
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    const char *refused = NULL;
    struct stat st;
    int fd;
    if (len == 0 || kling_path_control_at(path, len) >= 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "an output path must be non-empty and hold no control character");
        return 2;
    }
    fd = kling_create_output(path, &refused);
    if (fd < 0 && refused != NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot create %s: it exists and is %s", path, refused);
        return 2;
    }
    if (fd < 0) return push_errno(L, "cannot create", path);
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return push_errno(L, "cannot stat", path);
    }
    close(fd);
    push_identity(L, &st);
    return 1;
}

/* rename_new(from, to) -> true | nil, message, kind: moves the file at from to the name to only
 * while nothing is at to, in one step (renameat2's RENAME_NOREPLACE, else link + unlink where the
 * file system or the C library lacks it): an output never replaces a file that appeared at its
 * name after the checks (kind "exists", message naming to), which a plain rename would have
 * destroyed (rename.c). Other failures have kind "error". Nothing is made durable here
 * (fsync_path). */
static int rename_failed(lua_State *L, const char *from, const char *to, int e) {
    lua_pushnil(L);
    if (e == EEXIST || e == ENOTEMPTY) {
        lua_pushfstring(L, "%s exists: it is never replaced", to);
        lua_pushliteral(L, "exists");
    } else {
        lua_pushfstring(L, "cannot move %s to %s: %s", from, to, strerror(e));
        lua_pushliteral(L, "error");
    }
    return 3;
}

static int l_rename_new(lua_State *L) {
    size_t nf, nt;
    const char *from = luaL_checklstring(L, 1, &nf);
    const char *to = luaL_checklstring(L, 2, &nt);
    if (nf == 0 || nt == 0 || kling_path_control_at(from, nf) >= 0 || kling_path_control_at(to, nt) >= 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "a path must be non-empty and hold no control character");
        lua_pushliteral(L, "error");
        return 3;
    }
    if (kling_rename_noreplace(from, to) != 0) return rename_failed(L, from, to, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* file_identity(file) -> identity | nil: the "dev:ino" of an open Lua io handle. Lua 5.4's
 * luaL_Stream and LuaJIT's io handle both begin with the FILE pointer, under the registry's
 * "FILE*" metatable. */
static int l_file_identity(lua_State *L) {
    FILE *fp;
    struct stat st;
#if LUA_VERSION_NUM >= 502
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    fp = p->closef != NULL ? p->f : NULL;
#else
    fp = *(FILE **)luaL_checkudata(L, 1, "FILE*"); /* NULL once closed */
#endif
    if (fp == NULL || fstat(fileno(fp), &st) != 0) {
        lua_pushnil(L);
        return 1;
    }
    push_identity(L, &st);
    return 1;
}

/* mkdir_p(path [, check_only]) -> true | nil, message: makes a directory and its missing
 * parents (mode 0777 less the umask), as mkdir -p does but without a shell: a path is never a
 * command line. An existing directory is fine; an existing file of another kind is "not a
 * directory". With check_only nothing is left made: whether it could be (the existing part is
 * directories; the first missing one is made and removed at once, since access(2) says yes to
 * root in /proc or on a read-only mount; a path that exists whole must be writable and
 * searchable), for a command that must not touch the disk before it knows it has something to
 * write. */
static int mkdir_failed(lua_State *L, const char *path, const char *why) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot create directory %s: %s", path, why);
    return 2;
}

static int l_mkdir_p(lua_State *L) {
    size_t n;
    const char *path = luaL_checklstring(L, 1, &n);
    char buf[4096];
    struct stat st;
    size_t i;
    int check_only = lua_toboolean(L, 2);
    int missing = 0; /* check_only: buf names the first missing directory */
    if (n == 0) return mkdir_failed(L, path, "empty path");
    if (n >= sizeof(buf) || memchr(path, '\0', n) != NULL) return mkdir_failed(L, path, "bad path");
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++) {
        if ((buf[i] != '/' && buf[i] != '\0') || buf[i - 1] == '/') continue; /* "a//b", "a/" */
        buf[i] = '\0';
        if (check_only) {
            if (stat(buf, &st) != 0) {
                if (errno != ENOENT) return mkdir_failed(L, buf, strerror(errno));
                missing = 1; /* made from here down: the deepest existing one must take it */
                break;
            }
            if (!S_ISDIR(st.st_mode)) return mkdir_failed(L, buf, "it exists and is not a directory");
            if (i < n) buf[i] = '/';
            continue;
        }
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return mkdir_failed(L, buf, strerror(errno));
        if (stat(buf, &st) != 0) return mkdir_failed(L, buf, strerror(errno));
        if (!S_ISDIR(st.st_mode)) return mkdir_failed(L, buf, "it exists and is not a directory");
        if (i < n) buf[i] = '/';
    }
    if (check_only && missing) {
        if (mkdir(buf, 0700) != 0) return mkdir_failed(L, buf, strerror(errno));
        if (rmdir(buf) != 0) return mkdir_failed(L, buf, strerror(errno));
    } else if (check_only && access(path, W_OK | X_OK) != 0) {
        int e = errno;
        lua_pushnil(L);
        lua_pushfstring(L, "cannot write in directory %s: %s", path, strerror(e));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* private_dir(parent) -> path | nil, message: a new directory <parent>/.kling-XXXXXX of mode
 * 0700 (mkdtemp), for a program that opens its outputs itself, following links (ffmpeg, a
 * shell's 2> redirection): it writes there, where nobody else can plant a name, and its file
 * is renamed into place, which replaces the name at the target without following it. */
static int l_private_dir(lua_State *L) {
    size_t n;
    const char *parent = luaL_checklstring(L, 1, &n);
    static const char suffix[] = "/.kling-XXXXXX";
    char buf[4096];
    if (n == 0 || kling_path_control_at(parent, n) >= 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "a directory path must be non-empty and hold no control character");
        return 2;
    }
    if (n + sizeof suffix > sizeof buf) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot make a private directory in %s: path too long", parent);
        return 2;
    }
    memcpy(buf, parent, n);
    memcpy(buf + n, suffix, sizeof suffix);
    if (mkdtemp(buf) == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot make a private directory in %s: %s", parent, strerror(errno));
        return 2;
    }
    lua_pushstring(L, buf);
    return 1;
}

void kling_open_fileio(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"append_sync", l_append_sync},
        {"fsync_path", l_fsync_path},
        {"lock_file", l_lock_file},
        {"mkdir_p", l_mkdir_p},
        {"private_dir", l_private_dir},
        {"read_regular", l_read_regular},
        {"output_target", l_output_target},
        {"create_output", l_create_output},
        {"file_identity", l_file_identity},
        {"rename_new", l_rename_new},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_lock_unlock},
        {"__tostring", l_lock_tostring},
        {NULL, NULL},
    };
    static const luaL_Reg methods[] = {
        {"unlock", l_lock_unlock},
        {"write_pid", l_lock_write_pid},
        {NULL, NULL},
    };
    kling_new_class(L, LOCK_MT, meta, methods);
    luaL_setfuncs(L, fns, 0);
}
