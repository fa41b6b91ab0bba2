/* Layer application: regular files, directories, symlinks, hard links, fifos, whiteouts (".wh.NAME" and
 * the opaque marker ".wh..wh..opq"), modes and mtimes. Every path is resolved inside the rootfs
 * (pathres.c); the final component is never followed. Set-id bits are dropped; device nodes are skipped.
 * Directories are created 0700 and get their real mode/mtime at the end (extract_finish) so later
 * entries and layers can always write into them. */
#define _GNU_SOURCE
#include "extract.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pathres.h"

/* ---- a small string -> int64 hash map ------------------------------------------------------------ */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static void map_grow(strmap *m);

static size_t map_slot(const strmap *m, const char *k)
{
    size_t i = (size_t)hash_str(k) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], k) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void map_put(strmap *m, const char *k, int64_t v)
{
    if ((m->n + 1) * 2 > m->cap)
        map_grow(m);
    size_t i = map_slot(m, k);
    if (!m->keys[i]) {
        m->keys[i] = xstrdup(k);
        m->n++;
    }
    m->vals[i] = v;
}

static void map_grow(strmap *m)
{
    strmap nm = {0};
    nm.cap = m->cap ? m->cap * 2 : 1024;
    nm.keys = xcalloc(nm.cap, sizeof *nm.keys);
    nm.vals = xcalloc(nm.cap, sizeof *nm.vals);
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t j = map_slot(&nm, m->keys[i]);
            nm.keys[j] = m->keys[i];
            nm.vals[j] = m->vals[i];
            nm.n++;
        }
    free(m->keys);
    free(m->vals);
    *m = nm;
}

static int map_get(const strmap *m, const char *k, int64_t *v)
{
    if (!m->cap)
        return 0;
    size_t i = map_slot(m, k);
    if (!m->keys[i])
        return 0;
    if (v)
        *v = m->vals[i];
    return 1;
}

static void map_clear(strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- extraction ----------------------------------------------------------------------------------- */

void extract_init(extract_ctx *x, int rootfd)
{
    memset(x, 0, sizeof *x);
    x->rootfd = rootfd;
    x->pdir_fd = -1;
    x->umask = umask(022);
    umask(x->umask);
    x->uid = geteuid();
    x->gid = getegid();
    /* A set-gid root would hand its group down: then every entry is chowned. */
    struct stat st;
    x->owner_known = fstat(rootfd, &st) == 0 && !(st.st_mode & S_ISGID);
}

/* The parent directory of an entry, from the cache when it is the previous entry's parent.
 * The fd belongs to the cache: callers do not close it. */
static int parent_dir(extract_ctx *x, const char *parent)
{
    if (x->pdir_fd >= 0 && x->pdir_ok && strcmp(x->pdir, parent) == 0)
        return x->pdir_fd;
    if (x->pdir_fd >= 0)
        close(x->pdir_fd);
    x->pdir_ok = 0;
    x->pdir_fd = root_open_dir(x->rootfd, parent, 1);
    if (x->pdir_fd >= 0 && strlen(parent) < sizeof x->pdir) {
        strcpy(x->pdir, parent);
        x->pdir_ok = 1;
    }
    return x->pdir_fd;
}

/* Something was removed: a cached parent may no longer be what its path resolves to. */
static void forget_parent(extract_ctx *x)
{
    x->pdir_ok = 0;
}

void extract_free(extract_ctx *x)
{
    if (x->pdir_fd >= 0)
        close(x->pdir_fd);
    x->pdir_fd = -1;
    x->pdir_ok = 0;
    map_clear(&x->dir_index);
    map_clear(&x->layer_paths);
    for (size_t i = 0; i < x->n_dirs; i++)
        free(x->dirs[i].path);
    free(x->dirs);
    x->dirs = NULL;
    x->n_dirs = x->cap_dirs = 0;
}

static void forget_dir(extract_ctx *x, const char *path)
{
    int64_t idx;
    if (map_get(&x->dir_index, path, &idx))
        x->dirs[idx].live = 0;
}

static void remember_dir(extract_ctx *x, const char *path, const tar_entry *en)
{
    int64_t idx;
    if (!map_get(&x->dir_index, path, &idx)) {
        if (x->n_dirs == x->cap_dirs) {
            x->cap_dirs = x->cap_dirs ? x->cap_dirs * 2 : 256;
            x->dirs = xrealloc(x->dirs, x->cap_dirs * sizeof *x->dirs);
        }
        idx = (int64_t)x->n_dirs++;
        x->dirs[idx].path = xstrdup(path);
        map_put(&x->dir_index, path, idx);
    }
    dirmeta *d = &x->dirs[idx];
    d->mode = en->mode & 07777;
    d->mtime = en->mtime;
    d->mtime_nsec = en->mtime_nsec;
    d->live = 1;
}

/* Returns 1 if it changed the owner. fresh: the entry was just created by us, so it is owned by x->uid:x->gid
 * (directories are 0700, never set-gid, until extract_finish); then a chown to those ids is skipped. */
static int set_owner(extract_ctx *x, int dfd, const char *leaf, const tar_entry *en, int fresh)
{
    if (!x->keep_owners ||
        (fresh && x->owner_known && en->uid == (uint64_t)x->uid && en->gid == (uint64_t)x->gid))
        return 0;
    int flags = AT_SYMLINK_NOFOLLOW | (*leaf ? 0 : AT_EMPTY_PATH);
    if (fchownat(dfd, leaf, (uid_t)en->uid, (gid_t)en->gid, flags) < 0 && !x->warned_owner) {
        x->warned_owner = 1;
        warnmsg("cannot keep owner %llu:%llu of %s (%s); files keep the caller's owner",
                (unsigned long long)en->uid, (unsigned long long)en->gid, leaf, strerror(errno));
    }
    return 1;
}

/* Makes room for a new entry at dfd/leaf: removes whatever is there unless keep_dir and it's a dir. */
static int clear_slot(int dfd, const char *leaf, int keep_dir, int *is_dir)
{
    struct stat st;
    *is_dir = 0;
    if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode) && keep_dir) {
        *is_dir = 1;
        return 0;
    }
    return remove_tree_at(dfd, leaf);
}

/* An entry's name is taken: removes what is there (a directory too). */
static int make_room(extract_ctx *x, int dfd, const char *leaf, const char *path, oerr *e)
{
    int is_dir;
    forget_parent(x);
    if (clear_slot(dfd, leaf, 0, &is_dir) < 0)
        return oerr_sys(e, errno, NULL, "cannot replace /%s", path);
    return 0;
}

static int write_file(extract_ctx *x, tar_reader *t, int dfd, const char *leaf, const char *path,
                      const tar_entry *en, oerr *e)
{
    mode_t mode = en->mode & 01777; /* set-id bits dropped */
    int fd = openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST) {
        if (make_room(x, dfd, leaf, path, e))
            return -1;
        fd = openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    }
    if (fd < 0)
        return oerr_sys(e, errno, "check free space and permissions", "cannot create /%s", path);
    for (;;) {
        const void *buf; /* straight out of the pipeline's ring where possible (no copy) */
        ssize_t r = tar_read_view(t, &buf, SIZE_MAX, e);
        if (r < 0) {
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        if (write_all(fd, buf, (size_t)r) < 0) {
            int err = errno;
            close(fd);
            return oerr_sys(e, err, "check free space (df -h)", "cannot write /%s", path);
        }
        x->bytes += (uint64_t)r;
    }
    int chowned = set_owner(x, fd, "", en, 1);
    /* open() applied the umask (and a chown may clear bits): set the mode unless it is certainly right */
    if (((mode & x->umask) || (mode & 07000) || chowned) && fchmod(fd, mode) < 0) {
        int err = errno;
        close(fd);
        return oerr_sys(e, err, NULL, "cannot set the mode of /%s", path);
    }
    struct timespec ts[2] = {{en->mtime, en->mtime_nsec}, {en->mtime, en->mtime_nsec}};
    (void)futimens(fd, ts);
    if (close(fd) < 0)
        return oerr_sys(e, errno, "check free space (df -h)", "cannot write /%s", path);
    x->files++;
    return 0;
}

static int opaque_dir(extract_ctx *x, const char *parent, oerr *e)
{
    forget_parent(x);
    int dfd = root_open_dir(x->rootfd, parent, 1);
    if (dfd < 0)
        return oerr_sys(e, errno, NULL, "cannot open /%s in the rootfs", parent);
    int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        int err = errno;
        if (lfd >= 0)
            close(lfd);
        close(dfd);
        return oerr_sys(e, err, NULL, "cannot list /%s in the rootfs", parent);
    }
    struct dirent *de;
    int rc = 0;
    char full[PATH_MAX];
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (strcmp(parent, ".") == 0)
            snprintf(full, sizeof full, "%s", de->d_name);
        else
            snprintf(full, sizeof full, "%s/%s", parent, de->d_name);
        if (map_get(&x->layer_paths, full, NULL))
            continue; /* written by this very layer */
        if (remove_tree_at(dfd, de->d_name) < 0) {
            rc = oerr_sys(e, errno, NULL, "cannot apply opaque whiteout to /%s", full);
            break;
        }
    }
    closedir(d);
    close(dfd);
    return rc;
}

static int whiteout(extract_ctx *x, const char *parent, const char *leaf, oerr *e)
{
    if (strcmp(leaf, ".wh..wh..opq") == 0)
        return opaque_dir(x, parent, e);
    const char *name = leaf + 4;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return oerr_set(e, "layer has a malformed whiteout \"%s\": the image is corrupt", leaf);
    int dfd = root_open_dir(x->rootfd, parent, 0);
    if (dfd < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : oerr_sys(e, errno, NULL, "cannot open /%s", parent);
    forget_parent(x);
    int rc = remove_tree_at(dfd, name);
    int err = errno;
    close(dfd);
    if (rc < 0)
        return oerr_sys(e, err, NULL, "cannot apply whiteout /%s/%s", parent, name);
    return 0;
}

static int entry(extract_ctx *x, tar_reader *t, const tar_entry *en, oerr *e)
{
    char path[PATH_MAX], parent[PATH_MAX], leaf[PATH_MAX];
    if (path_normalize(en->path, path, sizeof path, e))
        return -1;
    if (strcmp(path, ".") == 0)
        return 0; /* the root directory itself keeps 0755 */
    path_split(path, parent, leaf);
    if (strncmp(leaf, ".wh.", 4) == 0)
        return whiteout(x, parent, leaf, e);
    map_put(&x->layer_paths, path, 1);

    if (en->type == '3' || en->type == '4') {
        if (strncmp(path, "dev/", 4) == 0) {
            dbg("skipping device node /%s (the container gets its own /dev)", path);
        } else if (!x->warned_dev) {
            x->warned_dev = 1;
            warnmsg("skipping device node /%s (and any others): device nodes cannot be created rootless; "
                    "use --device",
                    path);
        }
        return 0;
    }
    if (en->type != '0' && en->type != '1' && en->type != '2' && en->type != '5' && en->type != '6') {
        if (!x->warned_type) {
            x->warned_type = 1;
            warnmsg("skipping /%s: unsupported tar entry type '%c'", path, en->type);
        }
        return 0;
    }
    int dfd = parent_dir(x, parent);
    if (dfd < 0)
        return oerr_sys(e, errno, "the image's layers conflict", "cannot create parent directory of /%s", path);
    int is_dir = 0, rc = 0;
    /* Each case creates first and clears the slot only when the name is taken (EEXIST). */
    if (en->type != '5')
        forget_dir(x, path);
    struct timespec ts[2] = {{en->mtime, en->mtime_nsec}, {en->mtime, en->mtime_nsec}};
    switch (en->type) {
    case '5':
        if (mkdirat(dfd, leaf, 0700) < 0) {
            if (errno == EEXIST) {
                if (clear_slot(dfd, leaf, 1, &is_dir) < 0) {
                    rc = oerr_sys(e, errno, NULL, "cannot replace /%s", path);
                    break;
                }
                if (!is_dir)
                    forget_parent(x);
            }
            if (!is_dir && mkdirat(dfd, leaf, 0700) < 0) {
                rc = oerr_sys(e, errno, NULL, "cannot create directory /%s", path);
                break;
            }
        }
        if (is_dir)
            (void)fchmodat(dfd, leaf, 0700, 0);
        set_owner(x, dfd, leaf, en, !is_dir);
        remember_dir(x, path, en);
        break;
    case '0':
        rc = write_file(x, t, dfd, leaf, path, en, e);
        break;
    case '2':
        if (!en->linkpath || !*en->linkpath) {
            rc = oerr_set(e, "symlink /%s has no target: the layer is corrupt", path);
            break;
        }
        if (symlinkat(en->linkpath, dfd, leaf) < 0 &&
            (errno != EEXIST || (rc = make_room(x, dfd, leaf, path, e)) < 0 || symlinkat(en->linkpath, dfd, leaf) < 0)) {
            if (rc)
                break;
            rc = oerr_sys(e, errno, NULL, "cannot create symlink /%s", path);
            break;
        }
        set_owner(x, dfd, leaf, en, 1);
        (void)utimensat(dfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
        break;
    case '1': {
        char tpath[PATH_MAX], tparent[PATH_MAX], tleaf[PATH_MAX];
        if (!en->linkpath || path_normalize(en->linkpath, tpath, sizeof tpath, e)) {
            rc = en->linkpath ? -1 : oerr_set(e, "hard link /%s has no target: the layer is corrupt", path);
            break;
        }
        path_split(tpath, tparent, tleaf);
        int sfd = root_open_dir(x->rootfd, tparent, 0);
        int lr = sfd >= 0 ? linkat(sfd, tleaf, dfd, leaf, 0) : -1;
        if (lr < 0 && sfd >= 0 && errno == EEXIST) {
            /* as if the slot had been cleared first: the target is resolved again afterwards */
            close(sfd);
            if ((rc = make_room(x, dfd, leaf, path, e)) < 0)
                break;
            sfd = root_open_dir(x->rootfd, tparent, 0);
            lr = sfd >= 0 ? linkat(sfd, tleaf, dfd, leaf, 0) : -1;
        }
        if (lr < 0)
            rc = oerr_sys(e, errno, "the layer is corrupt or its layers are out of order",
                          "cannot hard-link /%s to /%s", path, tpath);
        if (sfd >= 0)
            close(sfd);
        break;
    }
    case '6':
        if (mkfifoat(dfd, leaf, en->mode & 0777) < 0 &&
            (errno != EEXIST || (rc = make_room(x, dfd, leaf, path, e)) < 0 || mkfifoat(dfd, leaf, en->mode & 0777) < 0)) {
            if (rc)
                break;
            rc = oerr_sys(e, errno, NULL, "cannot create fifo /%s", path);
            break;
        }
        set_owner(x, dfd, leaf, en, 1);
        (void)utimensat(dfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
        break;
    }
    return rc;
}

int extract_layer(extract_ctx *x, tar_reader *t, oerr *e)
{
    map_clear(&x->layer_paths);
    forget_parent(x);
    for (;;) {
        const tar_entry *en;
        int r = tar_next(t, &en, e);
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        if (entry(x, t, en, e))
            return -1;
    }
}

static int by_depth_desc(const void *a, const void *b)
{
    const dirmeta *x = a, *y = b;
    size_t lx = strlen(x->path), ly = strlen(y->path);
    return lx < ly ? 1 : lx > ly ? -1 : strcmp(x->path, y->path);
}

int extract_finish(extract_ctx *x, oerr *e)
{
    char parent[PATH_MAX], leaf[PATH_MAX];
    (void)e;
    qsort(x->dirs, x->n_dirs, sizeof *x->dirs, by_depth_desc);
    map_clear(&x->dir_index);
    for (size_t i = 0; i < x->n_dirs; i++) {
        dirmeta *d = &x->dirs[i];
        if (!d->live)
            continue;
        path_split(d->path, parent, leaf);
        int dfd = root_open_dir(x->rootfd, parent, 0);
        if (dfd < 0)
            continue; /* removed by a later whiteout */
        struct stat st;
        if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            struct timespec ts[2] = {{d->mtime, d->mtime_nsec}, {d->mtime, d->mtime_nsec}};
            (void)utimensat(dfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
            if (fchmodat(dfd, leaf, d->mode & 07777 & ~(mode_t)S_ISUID, 0) < 0)
                warnmsg("cannot set the mode of /%s: %s", d->path, strerror(errno));
        }
        close(dfd);
    }
    return 0;
}
