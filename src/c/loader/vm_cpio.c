/* newc cpio writer (see vm_cpio.h). Format: 110-byte ASCII header ("070701" + 13 eight-digit hex fields),
 * the NUL-terminated name, padding to 4, the data, padding to 4. Hard links share an inode number; the data
 * travels with the first name only (the kernel's unpacker links later names to it). */
#define _GNU_SOURCE
#include "vm_cpio.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define CPIO_MAX_DEPTH 256

void cpio_init(cpio_out *c, int fd)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->next_ino = 1;
}

void cpio_free(cpio_out *c)
{
    free(c->links);
    c->links = NULL;
}

static int flush(cpio_out *c, oerr *e)
{
    if (c->used && write_all(c->fd, c->buf, c->used) < 0)
        return oerr_sys(e, errno, "free space in $TMPDIR", "cannot write the VM initramfs");
    c->used = 0;
    return 0;
}

static int put(cpio_out *c, const void *p, size_t n, oerr *e)
{
    const char *s = p;
    while (n) {
        if (c->used == sizeof c->buf && flush(c, e))
            return -1;
        size_t k = sizeof c->buf - c->used < n ? sizeof c->buf - c->used : n;
        memcpy(c->buf + c->used, s, k);
        c->used += k, c->pos += k, s += k, n -= k;
    }
    return 0;
}

static int pad4(cpio_out *c, oerr *e)
{
    static const char zeros[4];
    return put(c, zeros, (4 - c->pos % 4) % 4, e);
}

static int header(cpio_out *c, const char *name, uint32_t ino, uint32_t mode, uint32_t uid, uint32_t gid,
                  uint32_t nlink, uint64_t mtime, uint64_t size, uint32_t rmaj, uint32_t rmin, oerr *e)
{
    if (size > 0xffffffffu)
        return oerr_set(e, "%s is %llu bytes: the VM initramfs (newc cpio) holds files below 4 GiB only", name,
                        (unsigned long long)size);
    char h[111];
    size_t nl = strlen(name) + 1;
    snprintf(h, sizeof h, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode, uid, gid, nlink,
             (uint32_t)(mtime > 0xffffffffu ? 0xffffffffu : mtime), (uint32_t)size, 0u, 0u, rmaj, rmin,
             (uint32_t)nl, 0u);
    c->n_entries++;
    return put(c, h, 110, e) || put(c, name, nl, e) || pad4(c, e) ? -1 : 0;
}

int cpio_add_data(cpio_out *c, const char *name, mode_t mode, const void *data, size_t len, oerr *e)
{
    if (header(c, name, c->next_ino++, S_IFREG | (mode & 07777), 0, 0, 1, 0, len, 0, 0, e) || put(c, data, len, e))
        return -1;
    return pad4(c, e);
}

/* The file's bytes straight from the page cache (sendfile), exactly st_size of them. */
static int copy_file(cpio_out *c, int dirfd, const char *name, const char *path, uint64_t size, oerr *e)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return oerr_sys(e, errno, NULL, "VM initramfs: cannot read /%s", path);
    if (flush(c, e)) {
        close(fd);
        return -1;
    }
    uint64_t left = size;
    while (left) {
        ssize_t n = sendfile(c->fd, fd, NULL, left > (1u << 30) ? (1u << 30) : (size_t)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            close(fd);
            return oerr_sys(e, err, "free space in $TMPDIR", "VM initramfs: cannot copy /%s", path);
        }
        left -= (uint64_t)n;
    }
    close(fd);
    c->pos += size;
    return pad4(c, e);
}

static int add_entry(cpio_out *c, int dirfd, const char *name, const char *path, const struct stat *st, int depth,
                     oerr *e);

static int add_dir(cpio_out *c, int fd, const char *path, int depth, oerr *e)
{
    if (depth > CPIO_MAX_DEPTH)
        return oerr_set(e, "VM initramfs: /%s is nested more than %d directories deep", path, CPIO_MAX_DEPTH);
    int dfd = dup(fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return oerr_sys(e, errno, NULL, "VM initramfs: cannot list /%s", path);
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (errno = 0, de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        char *child = strcmp(path, ".") == 0 ? xstrdup(de->d_name) : xasprintf("%s/%s", path, de->d_name);
        if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            rc = oerr_sys(e, errno, NULL, "VM initramfs: cannot stat /%s", child);
        else
            rc = add_entry(c, fd, de->d_name, child, &st, depth, e);
        free(child);
    }
    if (rc == 0 && errno)
        rc = oerr_sys(e, errno, NULL, "VM initramfs: cannot list /%s", path);
    closedir(d);
    return rc;
}

static int add_entry(cpio_out *c, int dirfd, const char *name, const char *path, const struct stat *st, int depth,
                     oerr *e)
{
    uint32_t mode = (uint32_t)st->st_mode, ino = c->next_ino;
    uint64_t mtime = st->st_mtime > 0 ? (uint64_t)st->st_mtime : 0;
    if (S_ISDIR(st->st_mode)) {
        c->next_ino++;
        if (header(c, path, ino, mode, st->st_uid, st->st_gid, 2, mtime, 0, 0, 0, e))
            return -1;
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return oerr_sys(e, errno, NULL, "VM initramfs: cannot open /%s", path);
        int rc = add_dir(c, fd, path, depth + 1, e);
        close(fd);
        return rc;
    }
    if (S_ISLNK(st->st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(dirfd, name, target, sizeof target);
        if (n < 0 || n >= (ssize_t)sizeof target)
            return oerr_sys(e, n < 0 ? errno : ENAMETOOLONG, NULL, "VM initramfs: cannot read link /%s", path);
        c->next_ino++;
        if (header(c, path, ino, mode, st->st_uid, st->st_gid, 1, mtime, (uint64_t)n, 0, 0, e) ||
            put(c, target, (size_t)n, e))
            return -1;
        return pad4(c, e);
    }
    if (S_ISREG(st->st_mode)) {
        if (st->st_nlink > 1) {
            for (size_t i = 0; i < c->n_links; i++)
                if (c->links[i].dev == st->st_dev && c->links[i].ino == st->st_ino)
                    return header(c, path, c->links[i].cpio_ino, mode, st->st_uid, st->st_gid,
                                  (uint32_t)st->st_nlink, mtime, 0, 0, 0, e);
            if (c->n_links == c->cap_links) {
                c->cap_links = c->cap_links ? c->cap_links * 2 : 64;
                c->links = xrealloc(c->links, c->cap_links * sizeof *c->links);
            }
            c->links[c->n_links++] = (cpio_link){st->st_dev, st->st_ino, ino};
        }
        c->next_ino++;
        if (header(c, path, ino, mode, st->st_uid, st->st_gid, (uint32_t)st->st_nlink, mtime,
                   (uint64_t)st->st_size, 0, 0, e))
            return -1;
        return copy_file(c, dirfd, name, path, (uint64_t)st->st_size, e);
    }
    /* fifos, sockets, device nodes (the loader's extraction makes none of the last) */
    c->next_ino++;
    return header(c, path, ino, mode, st->st_uid, st->st_gid, 1, mtime, 0, major(st->st_rdev), minor(st->st_rdev),
                  e);
}

int cpio_add_tree(cpio_out *c, int rootfd, oerr *e)
{
    struct stat st;
    if (fstat(rootfd, &st) < 0)
        return oerr_sys(e, errno, NULL, "VM initramfs: cannot stat the rootfs");
    if (header(c, ".", c->next_ino++, (uint32_t)st.st_mode, st.st_uid, st.st_gid, 2,
               st.st_mtime > 0 ? (uint64_t)st.st_mtime : 0, 0, 0, 0, e))
        return -1;
    return add_dir(c, rootfd, ".", 1, e);
}

int cpio_finish(cpio_out *c, oerr *e)
{
    if (header(c, "TRAILER!!!", 0, 0, 0, 0, 1, 0, 0, 0, 0, e))
        return -1;
    return flush(c, e);
}
