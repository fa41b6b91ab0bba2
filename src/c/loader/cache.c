/* The rootfs cache.
 *   <cache>/rootfs/<hex>-<mode>            published rootfs (complete: it appears by rename only)
 *   <cache>/rootfs/<hex>-<mode>.lock       flock: exclusive while extracting, shared while in use
 *   <cache>/rootfs/.tmp-<hex>-<mode>-XXXXXX  extraction in progress (or left by a killed one)
 * A temp dir whose key lock can be taken exclusively belongs to nobody and is removed. A published entry
 * is only ever used read-only (as the overlay lower layer). Removing entries (prune) must take the
 * exclusive lock without waiting and skip entries it cannot lock. */
#define _GNU_SOURCE
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "codec.h"
#include "patch.h"
#include "pathres.h"
#include "rootfs.h"

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char ch = *p;
            *p = 0;
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -1;
            *p = ch;
            if (!ch)
                break;
        }
    }
    return 0;
}

static void tighten_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        dbg("cannot open %s: %s", path, strerror(errno));
    } else {
        if (st.st_uid != geteuid())
            warnmsg("the cache directory %s is owned by uid %u: another user can change the images it holds",
                    path, (unsigned)st.st_uid);
        if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0)
            warnmsg("cannot make the cache directory %s private (chmod 0700): %s", path, strerror(errno));
    }
    if (fd >= 0)
        close(fd);
}

static int base_dir(const options *o, char *out, size_t outsz, oerr *e)
{
    const char *v;
    if (o->cache_dir)
        snprintf(out, outsz, "%s", o->cache_dir);
    else if ((v = getenv("OCI2BIN_CACHE_DIR")) && *v)
        snprintf(out, outsz, "%s", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && *v == '/')
        snprintf(out, outsz, "%s/oci2bin", v);
    else if ((v = getenv("HOME")) && *v == '/')
        snprintf(out, outsz, "%s/.cache/oci2bin", v);
    else
        return oerr_set(e, "no cache directory: set HOME, OCI2BIN_CACHE_DIR or --cache-dir, or use --no-cache");
    if (out[0] != '/')
        return oerr_set(e, "cache directory %s is not absolute: give an absolute path", out);
    return 0;
}

void cache_key_digest(const char *config_digest, const image *img, char out[72])
{
    snprintf(out, 72, "%s", config_digest ? config_digest : "");
    if (!config_digest || strncmp(config_digest, "sha256:", 7) != 0 || strlen(config_digest) != 71)
        return; /* cache_open reports it */
    /* The config digest alone does not bind the layers: an image made of a trusted image's config and
     * other layers would publish its rootfs under the trusted image's key. */
    size_t cap = 128 + img->n_layers * 80, n = 0;
    for (size_t i = 0; i < img->n_layers; i++)
        if (!img->layers[i].hex[0])
            cap += strlen(img->layers[i].ent->name) + 32;
    char *text = xmalloc(cap);
    n += (size_t)snprintf(text + n, cap - n, "oci2bin-rootfs-key-v2\nconfig %s\nconfig-blob %s\n", config_digest,
                          img->config_hex);
    for (size_t i = 0; i < img->n_layers; i++) {
        const image_layer *l = &img->layers[i];
        if (l->hex[0])
            n += (size_t)snprintf(text + n, cap - n, "layer sha256:%s\n", l->hex);
        else
            n += (size_t)snprintf(text + n, cap - n, "layer %s %llu\n", l->ent->name,
                                  (unsigned long long)l->ent->size);
    }
    char hex[65];
    sha256_hex(text, n, hex);
    free(text);
    snprintf(out, 72, "sha256:%s", hex);
}

void cache_set_mode(cache *c, const char *config_digest, const char *mode)
{
    snprintf(c->key, sizeof c->key, "%s-%s", config_digest + 7, mode);
    snprintf(c->entry, sizeof c->entry, "%s/%s", c->dir, c->key);
}

int cache_open(cache *c, const options *o, const char *config_digest, const char *mode, oerr *e)
{
    memset(c, 0, sizeof *c);
    c->lockfd = -1;
    if (!config_digest || strncmp(config_digest, "sha256:", 7) != 0 || strlen(config_digest) != 71 ||
        strspn(config_digest + 7, "0123456789abcdef") != 64)
        return oerr_set(e, "the metadata has no valid config_digest: rebuild the binary, or use --no-cache");
    char base[PATH_MAX - 64];
    if (base_dir(o, base, sizeof base, e))
        return -1;
    snprintf(c->dir, sizeof c->dir, "%s/rootfs", base);
    if (mkdir_p(c->dir, 0700) < 0)
        return oerr_sys(e, errno, "pass --cache-dir DIR or --no-cache", "cannot create the cache directory %s",
                        c->dir);
    /* mkdir_p leaves existing directories as they are: tighten the cache root and <cache>/rootfs on every
     * open, so that no other local user can reach a published entry (its world-writable directories) */
    tighten_dir(base);
    tighten_dir(c->dir);
    cache_set_mode(c, config_digest, mode);
    char lock[PATH_MAX + 8];
    snprintf(lock, sizeof lock, "%s.lock", c->entry);
    c->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lockfd < 0)
        return oerr_sys(e, errno, "pass --cache-dir DIR or --no-cache", "cannot open %s", lock);
    return 0;
}

static int lock(int fd, int op)
{
    while (flock(fd, op) < 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

/* Removes temp dirs nobody is extracting into (their key lock is free). Our own key's lock is held. */
static void sweep(cache *c, int own_locked)
{
    DIR *d = opendir(c->dir);
    if (!d)
        return;
    int dfd = dirfd(d);
    struct dirent *de;
    size_t klen = strlen(c->key);
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, ".tmp-", 5) != 0)
            continue;
        const char *k = de->d_name + 5;
        const char *dash = strrchr(k, '-');
        if (!dash || (size_t)(dash - k) >= 180)
            continue;
        char key[192];
        snprintf(key, sizeof key, "%.*s", (int)(dash - k), k);
        int mine = strlen(key) == klen && strcmp(key, c->key) == 0;
        int lfd = -1;
        if (mine && !own_locked)
            continue;
        if (!mine) {
            char lockname[256];
            snprintf(lockname, sizeof lockname, "%s.lock", key);
            lfd = openat(dfd, lockname, O_RDWR | O_CLOEXEC);
            if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) < 0) {
                if (lfd >= 0)
                    close(lfd);
                continue;
            }
        }
        dbg("removing stale extraction %s/%s", c->dir, de->d_name);
        if (remove_tree_at(dfd, de->d_name) < 0)
            dbg("cannot remove %s: %s", de->d_name, strerror(errno));
        if (lfd >= 0)
            close(lfd);
    }
    closedir(d);
}

static int populate(cache *c, const payload *p, const image *img, int keep_owners, int single_id, oerr *e)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s/.tmp-%s-XXXXXX", c->dir, c->key) >= (int)sizeof tmp)
        return oerr_set(e, "cache path too long: use a shorter --cache-dir");
    if (!mkdtemp(tmp))
        return oerr_sys(e, errno, "check free space and permissions, or use --no-cache",
                        "cannot create a directory in %s", c->dir);
    if (chmod(tmp, 0755) < 0)
        dbg("chmod %s: %s", tmp, strerror(errno));
    int rootfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = rootfd < 0 ? oerr_sys(e, errno, NULL, "cannot open %s", tmp) : 0;
    double t0 = now_ms();
    if (rc == 0)
        rc = rootfs_extract(p, img, rootfd, keep_owners, e);
    if (rc == 0 && single_id)
        rc = patch_single_id(rootfd, e);
    if (rc == 0 && syncfs(rootfd) < 0)
        rc = oerr_sys(e, errno, "check the disk", "cannot sync the extracted rootfs");
    if (rootfd >= 0)
        close(rootfd);
    if (rc == 0 && rename(tmp, c->entry) < 0)
        rc = oerr_sys(e, errno, NULL, "cannot publish %s", c->entry);
    if (rc == 0) {
        int dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (fsync(dfd) < 0)
                dbg("fsync %s: %s", c->dir, strerror(errno));
            close(dfd);
        }
        dbg("cached rootfs %s in %.1f ms", c->entry, now_ms() - t0);
        return 0;
    }
    /* Nothing half-done stays behind. */
    int topfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (topfd >= 0) {
        remove_tree_at(topfd, tmp + 1);
        close(topfd);
    }
    return -1;
}

int cache_ensure(cache *c, const payload *p, const image *img, int keep_owners, int single_id, oerr *e)
{
    struct stat st;
    /* Fast path: a published entry is complete (it only appears by rename). */
    if (stat(c->entry, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (lock(c->lockfd, LOCK_SH) < 0)
            return oerr_sys(e, errno, NULL, "cannot lock the cache entry %s", c->entry);
        if (stat(c->entry, &st) == 0) {
            dbg("using cached rootfs %s", c->entry);
            return 0;
        }
        flock(c->lockfd, LOCK_UN); /* pruned in between: build it again */
    }
    /* Take LOCK_EX only when nobody holds the lock. A blocking LOCK_EX would also wait for every running
     * container of this image (they hold LOCK_SH for their lifetime), so instead wait with LOCK_SH, which
     * is granted once a concurrent extractor publishes the entry and converts its lock to LOCK_SH. */
    for (;;) {
        if (flock(c->lockfd, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return oerr_sys(e, errno, NULL, "cannot lock the cache entry %s", c->entry);
        dbg("waiting for the cache lock of %s", c->key);
        if (lock(c->lockfd, LOCK_SH) < 0)
            return oerr_sys(e, errno, NULL, "cannot lock the cache entry %s", c->entry);
        if (stat(c->entry, &st) == 0 && S_ISDIR(st.st_mode)) {
            dbg("rootfs %s was extracted by another start", c->entry);
            return 0;
        }
        (void)flock(c->lockfd, LOCK_UN); /* the other extraction failed: try ourselves (cannot fail: fd ok) */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int rc = 0;
    if (stat(c->entry, &st) == 0) {
        dbg("rootfs %s was extracted by another start", c->entry);
    } else {
        sweep(c, 1);
        dbg("extracting %zu layers into the cache", img->n_layers);
        rc = populate(c, p, img, keep_owners, single_id, e);
    }
    if (lock(c->lockfd, LOCK_SH) < 0 && rc == 0)
        rc = oerr_sys(e, errno, NULL, "cannot lock the cache entry %s", c->entry);
    return rc;
}

void cache_close(cache *c)
{
    if (c->lockfd >= 0)
        close(c->lockfd);
    c->lockfd = -1;
}
