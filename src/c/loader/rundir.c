/* Run directories. The container's PID 1 mounts a tmpfs on its run dir inside its own mount namespace,
 * so on the host the dir only ever holds RUNDIR_LOCK, which the loader keeps flock'ed (the lock is
 * shared with the child through the cloned fd table, closed there at exec). The loader removes the dir
 * as soon as the command is exec'd; if the loader is killed before that (SIGKILL during set-up), its
 * child dies too (PR_SET_PDEATHSIG) and the lock is released, so the next start's sweep can tell the dir
 * is dead (LOCK_EX|LOCK_NB succeeds) and removes it at once.
 * Lock protocol (as for lock files that get unlinked): a sweeper unlinks the lock file while holding it;
 * a creator that finds its locked file unlinked (st_nlink == 0) starts over with a new dir. A dir without
 * a lock file (just made by mkdtemp, or left by a loader killed right after) is removed with rmdir, which
 * only succeeds while it is empty; a creator whose dir vanished (ENOENT on the lock file) starts over. */
#define _GNU_SOURCE
#include "rundir.h"
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX "oci2bin-run-"
const char *rundir_base(void)
{
    const char *t = getenv("TMPDIR");
    struct stat st;
    if (t && t[0] == '/' && stat(t, &st) == 0 && S_ISDIR(st.st_mode))
        return t;
    return "/tmp";
}

/* --vm's files (vm.c: "vm-*" initramfs, kernel copy, serial FIFOs, an empty mount point), left by a killed
 * loader. */
static void remove_vm_leftovers(int dfd)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, "vm-", 3) == 0 && unlinkat(dfd, de->d_name, 0) < 0 && errno == EISDIR)
            unlinkat(dfd, de->d_name, AT_REMOVEDIR);
    closedir(d);
}

/* One candidate: returns 1 if removed. */
static int sweep_one(int basefd, const char *name)
{
    struct stat st;
    if (fstatat(basefd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
        return 0;
    int dfd = openat(basefd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    int removed = 0;
    int lfd = openat(dfd, RUNDIR_LOCK, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (lfd < 0) {
        if (errno == ENOENT)
            removed = unlinkat(basefd, name, AT_REMOVEDIR) == 0;
    } else {
        /* its owner is gone; with --memory/--cpus/--pids-limit its cgroups go first (kept while populated) */
        if (flock(lfd, LOCK_EX | LOCK_NB) == 0 && cgroup_sweep_record(dfd) == 0) {
            remove_vm_leftovers(dfd);
            if (unlinkat(dfd, RUNDIR_LOCK, 0) == 0 || errno == ENOENT)
                removed = unlinkat(basefd, name, AT_REMOVEDIR) == 0;
        }
        close(lfd);
    }
    close(dfd);
    return removed;
}

int rundir_sweep(const char *base)
{
    DIR *d = opendir(base);
    if (!d)
        return 0;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, PREFIX, strlen(PREFIX)) != 0 || strlen(de->d_name) != strlen(PREFIX) + 6)
            continue;
        if (sweep_one(dirfd(d), de->d_name)) {
            dbg("removed stale run directory %s/%s", base, de->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

int rundir_create(const char *base, char *out, size_t outsz, int *lockfd, oerr *e)
{
    *lockfd = -1;
    rundir_sweep(base);
    for (int attempt = 0; attempt < 8; attempt++) {
        int n = snprintf(out, outsz, "%s/" PREFIX "XXXXXX", base);
        if (n < 0 || (size_t)n >= outsz)
            return oerr_set(e, "TMPDIR %s is too long: set TMPDIR to a shorter path", base);
        if (!mkdtemp(out))
            return oerr_sys(e, errno, "set TMPDIR to a writable directory", "cannot create a run directory in %s",
                            base);
        int dfd = open(out, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int fd = dfd < 0 ? -1 : openat(dfd, RUNDIR_LOCK, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        int err = errno;
        if (dfd >= 0)
            close(dfd);
        if (fd < 0) {
            if (err != ENOENT) { /* ENOENT: a sweeper removed the new dir already; try again */
                rmdir(out);
                return oerr_sys(e, err, NULL, "cannot create a lock file in %s", out);
            }
            continue;
        }
        struct stat st;
        if (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0) {
            err = errno;
            close(fd);
            rundir_remove(out);
            return oerr_sys(e, err, NULL, "cannot lock %s/" RUNDIR_LOCK, out);
        }
        if (st.st_nlink == 0) { /* a sweeper took it between create and lock */
            close(fd);
            rmdir(out);
            continue;
        }
        *lockfd = fd;
        return 0;
    }
    return oerr_set(e, "cannot create a run directory in %s: it keeps disappearing; check what cleans %s", base,
                    base);
}

int rundir_remove(const char *dir)
{
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/" CG_RECORD, dir);
    if (unlink(lock) < 0 && errno != ENOENT)
        return -1;
    snprintf(lock, sizeof lock, "%s/" RUNDIR_LOCK, dir);
    if (unlink(lock) < 0 && errno != ENOENT)
        return -1;
    if (rmdir(dir) < 0 && errno != ENOENT)
        return -1;
    return 0;
}
