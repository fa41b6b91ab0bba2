/* --device /dev/HOST[:CTR][:PERMS]: a host device node (or a directory of them, like /dev/snd) bind-mounted into
 * the container. The SPEC's mknod-first step is left out: inside a user namespace mknod of a device always fails
 * (EPERM), and a node made on the container's /dev tmpfs could not be opened anyway (a filesystem mounted in a
 * user namespace is nodev). A bind mount of the host's node keeps the host's devtmpfs, so the node works for
 * whoever the host lets open it: root for /dev/kvm (0600), nobody else.
 * The container path is resolved inside the rootfs (pathres.c) like -v's. PERMS (docker's r/w/m device-cgroup
 * rule) cannot be enforced without a device cgroup: anything narrower than rwm is accepted with a warning. */
#define _GNU_SOURCE
#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pathres.h"

void device_spec_free(device_spec *d)
{
    free(d->host);
    free(d->ctr);
    memset(d, 0, sizeof *d);
}

static int perms_ok(const char *s)
{
    return *s && strlen(s) <= 3 && strspn(s, "rwm") == strlen(s);
}

int device_parse(const char *spec, device_spec *out, oerr *e)
{
    memset(out, 0, sizeof *out);
    char *s = xstrdup(spec), *parts[3] = {s, NULL, NULL};
    int n = 1;
    for (char *c = s; *c && n <= 3; c++)
        if (*c == ':') {
            *c = 0;
            if (n == 3) {
                free(s);
                return oerr_set(e, "--device %s: too many ':': use /dev/HOST[:/dev/CONTAINER][:rwm]", spec);
            }
            parts[n++] = c + 1;
        }
    const char *ctr = parts[0], *perms = "rwm";
    if (n == 3) {
        ctr = parts[1];
        perms = parts[2];
    } else if (n == 2) {
        if (perms_ok(parts[1]))
            perms = parts[1]; /* docker: HOST:rwm */
        else
            ctr = parts[1];
    }
    int rc = 0;
    char norm[PATH_MAX];
    oerr tmp;
    if (strncmp(parts[0], "/dev/", 5) != 0 || !parts[0][5])
        rc = oerr_set(e, "--device %s: the host path must be under /dev/: give a device like /dev/fuse", spec);
    else if (!perms_ok(perms))
        rc = oerr_set(e, "--device %s: permissions \"%s\" are not a combination of r, w and m", spec, perms);
    else if (ctr[0] != '/' || path_normalize(ctr + 1, norm, sizeof norm, &tmp) < 0 || strcmp(norm, ".") == 0)
        rc = oerr_set(e, "--device %s: container path \"%s\" must be absolute, without \"..\", and not /", spec, ctr);
    if (rc == 0) {
        out->host = xstrdup(parts[0]);
        out->ctr = xasprintf("/%s", norm);
        snprintf(out->perms, sizeof out->perms, "%s", perms);
    }
    free(s);
    return rc;
}

/* Resolves the host path (symlinks followed: /dev/disk/by-id/...) and checks it: under /dev, and a character or
 * block device or a directory. Returns an O_PATH fd of the node, or -1 with *e. */
static int host_node(const device_spec *d, struct stat *st, oerr *e)
{
    char real[PATH_MAX];
    if (!realpath(d->host, real))
        return oerr_sys(e, errno, "check the path (ls -l /dev)", "--device %s: not found on this host", d->host);
    if (strncmp(real, "/dev/", 5) != 0)
        return oerr_set(e, "--device %s: resolves to %s, outside /dev: give the device node itself", d->host, real);
    int fd = open(real, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, st) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return oerr_sys(e, err, NULL, "--device %s: cannot open it", d->host);
    }
    /* what was opened, not what realpath saw: a directory on the way (e.g. under the world-writable /dev/shm)
     * may have been swapped for a symlink out of /dev in between */
    char fdp[32], got[PATH_MAX];
    snprintf(fdp, sizeof fdp, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(fdp, got, sizeof got - 1);
    if (n < 0 || (got[n] = 0, strncmp(got, "/dev/", 5) != 0)) {
        close(fd);
        return oerr_set(e, "--device %s: resolves outside /dev: give the device node itself", d->host);
    }
    if (!S_ISCHR(st->st_mode) && !S_ISBLK(st->st_mode) && !S_ISDIR(st->st_mode)) {
        close(fd);
        return oerr_set(e, "--device %s: not a device node: give a character or block device (or a directory of "
                           "them) under /dev",
                        d->host);
    }
    return fd;
}

int devices_check(const strv *devices, oerr *e)
{
    for (size_t i = 0; i < devices->n; i++) {
        device_spec d;
        struct stat st;
        char fdp[32];
        if (device_parse(devices->v[i], &d, e))
            return -1;
        int fd = host_node(&d, &st, e);
        if (fd >= 0) {
            snprintf(fdp, sizeof fdp, "/proc/self/fd/%d", fd);
            if (!S_ISDIR(st.st_mode) && access(fdp, R_OK | W_OK) < 0)
                warnmsg("--device %s: you cannot open it on this host (mode %04o, uid %u): it will be in the "
                        "container but unusable",
                        d.host, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
            if (!strchr(d.perms, 'r') || !strchr(d.perms, 'w'))
                warnmsg("--device %s:%s: read/write restrictions need a device cgroup, which oci2bin does not use: "
                        "the container gets the host's permissions",
                        d.host, d.perms);
            close(fd);
        }
        device_spec_free(&d);
        if (fd < 0)
            return -1;
    }
    return 0;
}

/* The mount point for ctr inside the rootfs: a directory, or an empty file for a node. */
static int mount_point(int rootfd, const char *ctr, int is_dir, oerr *e)
{
    const char *rel = ctr + 1;
    int fd;
    if (is_dir) {
        fd = root_open_dir(rootfd, rel, 1);
    } else {
        char parent[PATH_MAX], leaf[PATH_MAX];
        path_split(rel, parent, leaf);
        int dfd = root_open_dir(rootfd, parent, 1);
        fd = -1;
        if (dfd >= 0) {
            (void)unlinkat(dfd, leaf, 0); /* whatever the image or /dev had there (not a directory) */
            fd = openat(dfd, leaf, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            int err = errno;
            close(dfd);
            errno = err;
        }
    }
    if (fd < 0)
        oerr_sys(e, errno, "the image has something else at that path", "--device: cannot create %s", ctr);
    return fd;
}

int devices_mount(int rootfd, const strv *devices, oerr *e)
{
    for (size_t i = 0; i < devices->n; i++) {
        device_spec d;
        if (device_parse(devices->v[i], &d, e))
            return -1;
        struct stat st;
        int rc = -1, tfd = -1, hfd = host_node(&d, &st, e); /* still the host's /dev: not pivoted yet */
        if (hfd < 0)
            goto next;
        if ((tfd = mount_point(rootfd, d.ctr, S_ISDIR(st.st_mode), e)) < 0)
            goto next;
        char src[32], dst[32];
        snprintf(src, sizeof src, "/proc/self/fd/%d", hfd);
        snprintf(dst, sizeof dst, "/proc/self/fd/%d", tfd);
        if (mount(src, dst, NULL, MS_BIND | (S_ISDIR(st.st_mode) ? MS_REC : 0), NULL) < 0) {
            oerr_sys(e, errno, NULL, "--device %s: cannot bind-mount it at %s", d.host, d.ctr);
            goto next;
        }
        dbg("--device %s -> %s (%s)", d.host, d.ctr, d.perms);
        rc = 0;
    next:
        if (tfd >= 0)
            close(tfd);
        if (hfd >= 0)
            close(hfd);
        device_spec_free(&d);
        if (rc)
            return -1;
    }
    return 0;
}
