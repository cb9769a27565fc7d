/* flock(2) and realpath(3) with a NULL buffer are BSD and XSI: glibc shows
 * them with _DEFAULT_SOURCE. */
#define _DEFAULT_SOURCE 1

#include "owners.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secret.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* A descriptor no child process inherits: a child that outlived its parent
 * would otherwise keep the parent's lock, and its keys "alive". */
static int open_cloexec(const char *path, int flags, mode_t mode)
{
    int fd = open(path, flags | O_CLOEXEC, mode);
    if (fd >= 0 && O_CLOEXEC == 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

int kl_owner_take(kl_owner *o, const char *journal_path, char *err, size_t errlen)
{
    char *real = NULL, *tmp = NULL;
    int rc = -1;
    memset(o, 0, sizeof *o);
    o->lock_fd = -1;
    real = realpath(journal_path, NULL);
    if (real == NULL) {
        snprintf(err, errlen, "cannot resolve %s: %s", journal_path, strerror(errno));
        return -1;
    }
    o->dir = malloc(strlen(real) + sizeof "-owners");
    if (o->dir == NULL)
        goto oom;
    sprintf(o->dir, "%s-owners", real);
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", o->dir, strerror(errno));
        goto done;
    }
    if (kl_random_hex(o->id, KL_OWNER_BYTES) != 0) {
        snprintf(err, errlen, "cannot read the system's random source");
        goto done;
    }
    o->lock_path = join(o->dir, o->id);
    tmp = o->lock_path ? malloc(strlen(o->lock_path) + 5) : NULL;
    if (tmp == NULL)
        goto oom;
    sprintf(tmp, "%s.new", o->lock_path);
    /* made under a temporary name, locked, then renamed into place: a prober
     * never sees an owner's file before it is locked */
    o->lock_fd = open_cloexec(tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (o->lock_fd < 0 || flock(o->lock_fd, LOCK_EX | LOCK_NB) != 0 || rename(tmp, o->lock_path) != 0) {
        snprintf(err, errlen, "cannot lock %s: %s", o->lock_path, strerror(errno));
        if (o->lock_fd >= 0) {
            close(o->lock_fd);
            unlink(tmp);
        }
        o->lock_fd = -1;
        goto done;
    }
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
done:
    free(real);
    free(tmp);
    if (rc != 0)
        kl_owner_release(o, 0);
    return rc;
}

void kl_owner_release(kl_owner *o, int remove_file)
{
    if (o->lock_fd >= 0) {
        if (remove_file && o->lock_path != NULL)
            unlink(o->lock_path);
        close(o->lock_fd); /* releases the flock */
    }
    o->lock_fd = -1;
    free(o->lock_path);
    free(o->dir);
    o->lock_path = o->dir = NULL;
}

/* 1: the process pid of this boot runs (or cannot be told apart from one
 * that does: a pid may have been reused, which only makes us wait). */
static int process_alive(long pid, const char *boot_id)
{
    const char *ours = kl_boot_id();
    if (pid <= 0)
        return 1;
    if (boot_id != NULL && boot_id[0] != '\0' && ours[0] != '\0' && strcmp(boot_id, ours) != 0)
        return 0; /* an earlier boot: every process of it is gone */
    if (boot_id == NULL || boot_id[0] == '\0' || ours[0] == '\0')
        return 1; /* which boot is not known: cannot tell */
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int kl_owner_alive(const kl_owner *self, const char *id, const char *lock_path, long pid, const char *boot_id)
{
    char *legacy = NULL;
    const char *path = lock_path;
    int fd, alive;
    if (strcmp(id, self->id) == 0)
        return 1;
    if (path == NULL) {
        if (self->dir == NULL || (legacy = join(self->dir, id)) == NULL)
            return 1; /* cannot tell: assume alive, which never risks a double submit */
        path = legacy;
    }
    fd = open_cloexec(path, O_RDWR, 0);
    if (fd >= 0) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            unlink(path);
            alive = 0;
        } else {
            alive = 1; /* EWOULDBLOCK: its owner holds it; any other failure: cannot tell */
        }
        close(fd);
    } else if (errno == ENOENT) {
        /* No file: an owner without a record closed (or its death was seen
         * already); one with a record lost its file (its directory was
         * deleted), and its process tells. */
        alive = lock_path == NULL ? 0 : process_alive(pid, boot_id);
    } else {
        alive = 1;
    }
    free(legacy);
    return alive;
}

const char *kl_boot_id(void)
{
    static char boot[64];
    static int known = 0;
    if (!known) {
        FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
        boot[0] = '\0';
        if (f != NULL) {
            if (fgets(boot, sizeof boot, f) == NULL)
                boot[0] = '\0';
            boot[strcspn(boot, "\r\n")] = '\0';
            fclose(f);
        }
        known = 1;
    }
    return boot;
}
