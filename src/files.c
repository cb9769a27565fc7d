#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lauxlib.h>

#include "secret.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

int kl_open_regular(const char *path, long long *size, char *err, size_t errlen)
{
    struct stat st;
    int flags;
    /* O_NONBLOCK: opening a FIFO with no writer would wait for ever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file (%s)", path,
                 S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
                 : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : S_ISSOCK(st.st_mode) ? "a socket"
                 : "not a file");
        close(fd);
        return -1;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    if (O_CLOEXEC == 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    *size = (long long)st.st_size;
    return fd;
}

int kl_create_new(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 && O_CLOEXEC == 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

int kl_pipe(int fds[2])
{
    int i;
    if (pipe(fds) != 0)
        return -1;
    for (i = 0; i < 2; i++) {
        int fl = fcntl(fds[i], F_GETFL);
        if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0) {
            int e = errno;
            close(fds[0]);
            close(fds[1]);
            fds[0] = fds[1] = -1;
            errno = e;
            return -1;
        }
    }
    return 0;
}

static const char *type_of(mode_t m)
{
    if (S_ISREG(m))
        return "file";
    if (S_ISDIR(m))
        return "directory";
    if (S_ISFIFO(m))
        return "fifo";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "device";
    if (S_ISSOCK(m))
        return "socket";
    return "other";
}

/* stat(path) -> { type, size, mtime, dev, ino } | nil, message, errno
 * (symbolic links followed). type: file, directory, fifo, device, socket,
 * other. */
static int files_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(e));
        lua_pushinteger(L, e);
        return 3;
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, type_of(st.st_mode));
    lua_setfield(L, -2, "type");
    lua_pushnumber(L, (lua_Number)st.st_size);
    lua_setfield(L, -2, "size");
    /* with nanoseconds (POSIX 2008): a file rewritten within the second is told apart */
    lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
    lua_setfield(L, -2, "mtime");
    lua_pushnumber(L, (lua_Number)st.st_dev);
    lua_setfield(L, -2, "dev");
    lua_pushnumber(L, (lua_Number)st.st_ino);
    lua_setfield(L, -2, "ino");
    return 1;
}

/* writable_dir(dir) -> true | nil, message: whether a file can be created
 * in dir, asked the only reliable way (permissions, ACLs, read-only mounts,
 * root's exemptions): by creating one, which is then removed. */
static int files_writable_dir(lua_State *L)
{
    size_t len;
    const char *dir = luaL_checklstring(L, 1, &len);
    char name[64], path[4096];
    int fd;
    if (kl_random_hex(name, 8) != 0 || len + 32 >= sizeof path) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot test %s", dir);
        return 2;
    }
    snprintf(path, sizeof path, "%s/.kling-%s.probe", dir, name);
    fd = kl_create_new(path);
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", dir, strerror(errno));
        return 2;
    }
    close(fd);
    unlink(path);
    lua_pushboolean(L, 1);
    return 1;
}

void kl_files_open(lua_State *L)
{
    lua_pushcfunction(L, files_stat);
    lua_setfield(L, -2, "stat");
    lua_pushcfunction(L, files_writable_dir);
    lua_setfield(L, -2, "writable_dir");
}
