/* Path resolution confined to a root directory: openat2(RESOLVE_IN_ROOT) when the kernel has it, else an
 * equivalent component walk that opens each step with O_NOFOLLOW and expands symlinks itself, with ".."
 * and absolute targets clamped at the root. The rootfs being extracted is private to the loader, so no
 * other process races these walks. */
#define _GNU_SOURCE
#include "pathres.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif

struct oci2bin_open_how {
    uint64_t flags, mode, resolve;
};

static int have_openat2 = -1; /* unknown */

void pathres_force_walk(int on)
{
    have_openat2 = on ? 0 : -1;
}

int path_normalize(const char *in, char *out, size_t outsz, oerr *e)
{
    size_t o = 0;
    const char *p = in;
    if (*p == '/')
        return oerr_set(e, "layer contains an absolute path \"%s\": the image is unsafe, rebuild it", in);
    while (*p) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0 || (n == 1 && s[0] == '.'))
            continue;
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return oerr_set(e, "layer contains a path with \"..\": \"%s\": the image is unsafe, rebuild it", in);
        if (o + n + 2 > outsz)
            return oerr_set(e, "layer contains a path longer than %zu bytes: the image is unusual", outsz);
        if (o)
            out[o++] = '/';
        memcpy(out + o, s, n);
        o += n;
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = 0;
    return 0;
}

void path_split(const char *rel, char *parent, char *leaf)
{
    const char *slash = strrchr(rel, '/');
    if (!slash) {
        strcpy(parent, ".");
        strcpy(leaf, rel);
        return;
    }
    memcpy(parent, rel, (size_t)(slash - rel));
    parent[slash - rel] = 0;
    strcpy(leaf, slash + 1);
}

static int try_openat2(int rootfd, const char *rel, int flags)
{
    if (have_openat2 == 0) {
        errno = ENOSYS;
        return -1;
    }
    struct oci2bin_open_how how = {(uint64_t)(flags | O_CLOEXEC), 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
    if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
        have_openat2 = 0;
        errno = ENOSYS;
        return -1;
    }
    have_openat2 = 1;
    return (int)fd;
}

#define MAX_DEPTH 256
#define MAX_LINKS 40

/* The fallback walker: a stack of directory fds, the remaining path in a buffer. */
static int walk_dir(int rootfd, const char *rel, int create)
{
    int stack[MAX_DEPTH];
    int depth = 0, links = 0, err = 0;
    char rest[PATH_MAX * 2];
    size_t rlen = strlen(rel);
    if (rlen >= sizeof rest) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(rest, rel, rlen + 1);
    char *p = rest;
    for (;;) {
        int cur = depth ? stack[depth - 1] : rootfd;
        while (*p == '/')
            p++;
        if (!*p)
            break;
        char *s = p;
        while (*p && *p != '/')
            p++;
        char comp[NAME_MAX + 1];
        size_t n = (size_t)(p - s);
        if (n > NAME_MAX) {
            err = ENAMETOOLONG;
            goto fail;
        }
        memcpy(comp, s, n);
        comp[n] = 0;
        if (strcmp(comp, ".") == 0)
            continue;
        if (strcmp(comp, "..") == 0) {
            if (depth)
                close(stack[--depth]);
            continue;
        }
        int fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
            if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
                err = errno;
                goto fail;
            }
            fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd >= 0) {
            if (depth == MAX_DEPTH) {
                close(fd);
                err = ELOOP;
                goto fail;
            }
            stack[depth++] = fd;
            continue;
        }
        if (errno != ENOTDIR && errno != ELOOP) {
            err = errno;
            goto fail;
        }
        /* A symlink (or not a directory). */
        char target[PATH_MAX];
        ssize_t tl = readlinkat(cur, comp, target, sizeof target - 1);
        if (tl < 0) {
            err = errno == EINVAL ? ENOTDIR : errno;
            goto fail;
        }
        if (++links > MAX_LINKS) {
            err = ELOOP;
            goto fail;
        }
        target[tl] = 0;
        size_t tail = strlen(p);
        if ((size_t)tl + tail + 2 > sizeof rest) {
            err = ENAMETOOLONG;
            goto fail;
        }
        char tmp[PATH_MAX * 2];
        memcpy(tmp, p, tail + 1);
        memcpy(rest, target, (size_t)tl);
        rest[tl] = '/';
        memcpy(rest + tl + 1, tmp, tail + 1);
        p = rest;
        if (target[0] == '/')
            while (depth)
                close(stack[--depth]);
    }
    int result = depth ? stack[--depth] : openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (result < 0)
        err = errno;
    while (depth)
        close(stack[--depth]);
    if (result < 0) {
        errno = err;
        return -1;
    }
    return result;
fail:
    while (depth)
        close(stack[--depth]);
    errno = err;
    return -1;
}

int root_open_dir(int rootfd, const char *rel, int create)
{
    int fd = try_openat2(rootfd, rel, O_PATH | O_DIRECTORY);
    if (fd >= 0)
        return fd;
    if (errno == ENOSYS || (errno == ENOENT && create))
        return walk_dir(rootfd, rel, create);
    return -1;
}

int root_open(int rootfd, const char *rel, int flags, mode_t mode)
{
    char parent[PATH_MAX], leaf[PATH_MAX];
    if (strlen(rel) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    path_split(rel, parent, leaf);
    int dfd = root_open_dir(rootfd, parent, 0);
    if (dfd < 0)
        return -1;
    int fd = openat(dfd, leaf, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    int err = errno;
    close(dfd);
    errno = err;
    return fd;
}

int remove_tree_at(int dirfd, const char *name)
{
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -1;
    /* A directory: make it writable/searchable, empty it, remove it. */
    (void)fchmodat(dirfd, name, 0700, 0);
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (remove_tree_at(fd, de->d_name) < 0)
            rc = -1;
    }
    int err = errno;
    closedir(d);
    if (rc < 0) {
        errno = err;
        return -1;
    }
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return -1;
    return 0;
}
