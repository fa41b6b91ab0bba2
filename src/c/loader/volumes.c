/* -v, --secret and --tmpfs. Mount points are created and opened with in-root resolution (pathres.c) and
 * mounted through /proc/self/fd/N, like every other mount, so image symlinks cannot redirect them. Host
 * paths are opened (O_PATH) first and bound from /proc/self/fd/N too. */
#define _GNU_SOURCE
#include "volumes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "pathres.h"

void mount_spec_free(mount_spec *m)
{
    free(m->host);
    free(m->ctr);
    m->host = m->ctr = NULL;
}

/* Container path: absolute, no ".." component, not the root itself. */
static int ctr_path(const char *flag, const char *p, char **out, oerr *e)
{
    if (p[0] != '/')
        return oerr_set(e, "%s: container path \"%s\" is not absolute: give a path starting with /", flag, p);
    char norm[4096];
    oerr tmp;
    const char *rel = p + strspn(p, "/");
    if (strlen(p) >= sizeof norm || path_normalize(rel[0] ? rel : ".", norm, sizeof norm, &tmp) < 0)
        return oerr_set(e, "%s: container path \"%s\" contains \"..\" or is too long: give a plain absolute path",
                        flag, p);
    if (strcmp(norm, ".") == 0)
        return oerr_set(e, "%s: cannot mount over the container's root /: pick a directory", flag);
    *out = xasprintf("/%s", norm);
    return 0;
}

int volume_parse(const char *spec, mount_spec *out, oerr *e)
{
    memset(out, 0, sizeof *out);
    char *s = xstrdup(spec);
    char *c1 = strchr(s, ':');
    if (!c1 || c1 == s) {
        free(s);
        return oerr_set(e, "-v %s: expected HOST:CONTAINER[:ro]", spec);
    }
    *c1 = 0;
    char *ctr = c1 + 1;
    char *c2 = strchr(ctr, ':');
    if (c2) {
        *c2 = 0;
        if (strcmp(c2 + 1, "ro") == 0)
            out->ro = 1;
        else if (strcmp(c2 + 1, "rw") != 0) {
            free(s);
            return oerr_set(e, "-v %s: unknown option \"%s\": use ro or rw", spec, c2 + 1);
        }
    }
    if (ctr_path("-v", ctr, &out->ctr, e)) {
        free(s);
        return -1;
    }
    out->host = xstrdup(s);
    free(s);
    return 0;
}

int secret_parse(const char *spec, mount_spec *out, oerr *e)
{
    memset(out, 0, sizeof *out);
    out->ro = 1;
    char *s = xstrdup(spec);
    char *c = strchr(s, ':');
    if (c)
        *c = 0;
    if (!s[0]) {
        free(s);
        return oerr_set(e, "--secret %s: no host file: expected FILE[:CONTAINER_PATH]", spec);
    }
    int rc;
    if (c) {
        rc = ctr_path("--secret", c + 1, &out->ctr, e);
    } else {
        size_t n = strlen(s);
        while (n > 1 && s[n - 1] == '/')
            s[--n] = 0;
        const char *base = strrchr(s, '/');
        base = base ? base + 1 : s;
        if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
            free(s);
            return oerr_set(e, "--secret %s: cannot name the secret from that path: give FILE:CONTAINER_PATH", spec);
        }
        char *p = xasprintf("/run/secrets/%s", base);
        rc = ctr_path("--secret", p, &out->ctr, e);
        free(p);
    }
    if (rc) {
        free(s);
        return -1;
    }
    out->host = s;
    return 0;
}

const char *ssh_agent_socket(void)
{
    const char *s = getenv("SSH_AUTH_SOCK");
    struct stat st;
    if (!s || s[0] != '/' || stat(s, &st) < 0 || !S_ISSOCK(st.st_mode))
        return NULL;
    return s;
}

int tmpfs_parse(const char *spec, mount_spec *out, oerr *e)
{
    memset(out, 0, sizeof *out);
    return ctr_path("--tmpfs", spec, &out->ctr, e);
}

/* Flags of the mount holding fd that an unprivileged bind remount must keep (they are locked). */
unsigned long locked_flags(int fd)
{
    struct statvfs sv;
    unsigned long keep = 0;
    if (fstatvfs(fd, &sv) == 0) {
        if (sv.f_flag & ST_NOSUID)
            keep |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV)
            keep |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC)
            keep |= MS_NOEXEC;
        if (sv.f_flag & ST_NOATIME)
            keep |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME)
            keep |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME)
            keep |= MS_RELATIME;
    }
    return keep;
}

/* Opens (creating) the mount point for m->ctr inside the rootfs: a directory, or a file if is_file. */
static int mount_point(int rootfd, const char *ctr, int is_file, const char *flag, oerr *e)
{
    const char *rel = ctr + 1;
    int fd;
    if (!is_file) {
        fd = root_open_dir(rootfd, rel, 1);
    } else {
        char parent[4096], leaf[4096];
        path_split(rel, parent, leaf);
        int dfd = root_open_dir(rootfd, parent, 1);
        fd = -1;
        if (dfd >= 0) {
            fd = openat(dfd, leaf, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (fd < 0 && errno == ELOOP) { /* an image symlink there: replace it with the mount point */
                if (unlinkat(dfd, leaf, 0) == 0)
                    fd = openat(dfd, leaf, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
            }
            int err = errno;
            close(dfd);
            errno = err;
        }
    }
    if (fd < 0)
        oerr_sys(e, errno, "the image has something else at that path", "%s: cannot create the mount point %s",
                 flag, ctr);
    return fd;
}

static int bind_one(int rootfd, const mount_spec *m, int secret, oerr *e)
{
    const char *flag = secret ? "--secret" : "-v";
    int hfd = open(m->host, O_PATH | O_CLOEXEC);
    if (hfd < 0)
        return oerr_sys(e, errno, "the host path must exist", "%s %s: cannot open the host path", flag, m->host);
    struct stat st;
    if (fstat(hfd, &st) < 0) {
        int err = errno;
        close(hfd);
        return oerr_sys(e, err, NULL, "%s %s: cannot stat the host path", flag, m->host);
    }
    if (secret && !S_ISREG(st.st_mode)) {
        close(hfd);
        return oerr_set(e, "--secret %s: not a regular file: a secret is a single file", m->host);
    }
    int tfd = mount_point(rootfd, m->ctr, !S_ISDIR(st.st_mode), flag, e);
    if (tfd < 0) {
        close(hfd);
        return -1;
    }
    char src[32], dst[32];
    snprintf(src, sizeof src, "/proc/self/fd/%d", hfd);
    snprintf(dst, sizeof dst, "/proc/self/fd/%d", tfd);
    int rc = 0;
    if (mount(src, dst, NULL, MS_BIND | (secret ? 0 : MS_REC), NULL) < 0) {
        rc = oerr_sys(e, errno, NULL, "%s %s: cannot bind-mount it at %s", flag, m->host, m->ctr);
        goto out;
    }
    close(tfd);
    tfd = root_open(rootfd, m->ctr + 1, O_PATH, 0); /* now the mount itself */
    if (tfd < 0) {
        rc = oerr_sys(e, errno, NULL, "%s: cannot open the new mount %s", flag, m->ctr);
        goto out;
    }
    snprintf(dst, sizeof dst, "/proc/self/fd/%d", tfd);
    if (m->ro || secret) {
        unsigned long fl = MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(hfd);
        if (secret)
            fl |= MS_NOSUID | MS_NODEV | MS_NOEXEC;
        if (mount(NULL, dst, NULL, fl, NULL) < 0) {
            int err = errno;
            if (umount2(dst, MNT_DETACH) < 0)
                return oerr_sys(e, errno, NULL, "%s: cannot undo the mount of %s", flag, m->ctr);
            if (secret) { /* SPEC: a secret that cannot be made read-only is not mounted at all */
                warnmsg("--secret %s: cannot make it read-only (%s): not mounted", m->host, strerror(err));
                goto out;
            }
            rc = oerr_sys(e, err, NULL, "-v %s: cannot make %s read-only", m->host, m->ctr);
            goto out;
        }
    }
    dbg("%s %s -> %s%s", flag, m->host, m->ctr, m->ro || secret ? " (read-only)" : "");
out:
    if (tfd >= 0)
        close(tfd);
    close(hfd);
    return rc;
}

static int tmpfs_one(int rootfd, const mount_spec *m, oerr *e)
{
    int fd = mount_point(rootfd, m->ctr, 0, "--tmpfs", e);
    if (fd < 0)
        return -1;
    char dst[32];
    snprintf(dst, sizeof dst, "/proc/self/fd/%d", fd);
    int rc = 0;
    if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
        rc = oerr_sys(e, errno, NULL, "--tmpfs: cannot mount a tmpfs at %s", m->ctr);
    close(fd);
    return rc;
}

int volumes_mount(int rootfd, const options *o, oerr *e)
{
    const strv *lists[] = {&o->volumes, &o->secrets, &o->tmpfs};
    int (*parsers[])(const char *, mount_spec *, oerr *) = {volume_parse, secret_parse, tmpfs_parse};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < lists[k]->n; i++) {
            mount_spec m;
            if (parsers[k](lists[k]->v[i], &m, e))
                return -1;
            int rc = k == 2 ? tmpfs_one(rootfd, &m, e) : bind_one(rootfd, &m, k == 1, e);
            mount_spec_free(&m);
            if (rc)
                return -1;
        }
    const char *sock = o->ssh_agent ? ssh_agent_socket() : NULL;
    if (sock) { /* (exec.c warned if there is none and left SSH_AUTH_SOCK unset) */
        mount_spec m = {(char *)sock, (char *)SSH_AGENT_CTR, 1};
        if (bind_one(rootfd, &m, 0, e))
            return -1;
    }
    return 0;
}
