/* With one mapped id, switching users fails with EPERM/EINVAL. The rootfs is patched so common images
 * still work: every passwd/group id except 65534 (nobody) becomes 0, apt's sandbox user is root, and the
 * user-switching tools become shims that run their command as-is. All writes resolve inside the rootfs. */
#define _GNU_SOURCE
#include "patch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pathres.h"

#define ETC_MAX (8u << 20)

/* Replaces rel (file or symlink) with new content. */
static int put_file(int rootfd, const char *rel, const char *text, size_t len, mode_t mode, oerr *e)
{
    char parent[4096], leaf[4096];
    path_split(rel, parent, leaf);
    int dfd = root_open_dir(rootfd, parent, 1);
    if (dfd < 0)
        return oerr_sys(e, errno, NULL, "cannot open /%s in the rootfs", parent);
    char tmpname[4200];
    snprintf(tmpname, sizeof tmpname, ".%s.oci2bin-tmp", leaf);
    (void)unlinkat(dfd, tmpname, 0);
    int fd = openat(dfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    int rc = 0;
    if (fd < 0 || write_all(fd, text, len) < 0 || fchmod(fd, mode) < 0 || close(fd) < 0 ||
        renameat(dfd, tmpname, dfd, leaf) < 0) {
        rc = oerr_sys(e, errno, NULL, "cannot patch /%s in the rootfs", rel);
        (void)unlinkat(dfd, tmpname, 0);
    }
    close(dfd);
    return rc;
}

/* Reads rel if it is a regular file inside the rootfs; 1 if read, 0 if absent/not regular. */
static int get_file(int rootfd, const char *rel, char **text, size_t *len, oerr *e)
{
    /* O_NONBLOCK: a FIFO must not hang the open (it is then refused by the S_ISREG check) */
    int fd = root_open(rootfd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0)
        return 0; /* absent, or a symlink: left alone */
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > ETC_MAX) {
        close(fd);
        return 0;
    }
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int rc = read_small_file(AT_FDCWD, path, ETC_MAX, text, len, e);
    close(fd);
    return rc < 0 ? -1 : 1;
}

/* Sets the numeric fields (1-based indexes f1, f2; 0 = none) of every line to 0 unless they are 65534. */
static char *zero_ids(const char *in, int f1, int f2, int *changed)
{
    size_t n = strlen(in);
    char *out = xmalloc(n + 1), *o = out;
    const char *p = in;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t llen = eol ? (size_t)(eol - p) : strlen(p);
        int field = 1;
        const char *q = p, *end = p + llen;
        while (q < end) {
            const char *c = memchr(q, ':', (size_t)(end - q));
            const char *fend = c ? c : end;
            size_t flen = (size_t)(fend - q);
            int numeric = flen > 0 && strspn(q, "0123456789") >= flen;
            if ((field == f1 || field == f2) && numeric && !(flen == 5 && memcmp(q, "65534", 5) == 0) &&
                !(flen == 1 && q[0] == '0')) {
                *o++ = '0';
                *changed = 1;
            } else {
                memcpy(o, q, flen);
                o += flen;
            }
            if (!c)
                break;
            *o++ = ':';
            q = c + 1;
            field++;
            if (q == end) /* trailing ':' */
                break;
        }
        p += llen;
        if (eol) {
            *o++ = '\n';
            p++;
        }
    }
    *o = 0;
    return out;
}

static int patch_ids(int rootfd, const char *rel, int f1, int f2, oerr *e)
{
    char *text;
    size_t len;
    int r = get_file(rootfd, rel, &text, &len, e);
    if (r <= 0)
        return r;
    int changed = 0;
    char *out = zero_ids(text, f1, f2, &changed);
    free(text);
    int rc = changed ? put_file(rootfd, rel, out, strlen(out), 0644, e) : 0;
    free(out);
    return rc;
}

static const char SHIM_SKIP_USER[] = "#!/bin/sh\n"
                                     "# oci2bin: only one user id is mapped, so user switching is impossible;\n"
                                     "# this shim skips the USER[:GROUP] argument and runs the command as is.\n"
                                     "shift\n"
                                     "exec \"$@\"\n";

static const char SHIM_SETPRIV[] =
    "#!/bin/sh\n"
    "# oci2bin: only one user id is mapped, so setpriv's id changes are impossible;\n"
    "# this shim skips setpriv's options and runs the command as is.\n"
    "while [ $# -gt 0 ]; do\n"
    "  case \"$1\" in\n"
    "    --) shift; break ;;\n"
    "    --*=*) shift ;;\n"
    "    --reuid|--regid|--ruid|--euid|--rgid|--egid|--groups|--inh-caps|--ambient-caps|--bounding-set|"
    "--securebits|--pdeathsig|--selinux-label|--apparmor-profile|--landlock-access|--landlock-rule) shift 2 ;;\n"
    "    -*) shift ;;\n"
    "    *) break ;;\n"
    "  esac\n"
    "done\n"
    "exec \"$@\"\n";

int patch_single_id(int rootfd, oerr *e)
{
    if (patch_ids(rootfd, "etc/passwd", 3, 4, e) < 0 || patch_ids(rootfd, "etc/group", 3, 0, e) < 0)
        return -1;
    int fd = root_open_dir(rootfd, "etc/apt", 0);
    if (fd >= 0) {
        close(fd);
        static const char apt[] = "APT::Sandbox::User \"root\";\n";
        if (put_file(rootfd, "etc/apt/apt.conf.d/99oci2bin", apt, sizeof apt - 1, 0644, e))
            return -1;
    }
    static const char *const skip_user[] = {"usr/local/bin/gosu", "usr/bin/gosu", "usr/sbin/gosu", "bin/gosu",
                                            "sbin/su-exec", "usr/sbin/su-exec", "usr/bin/su-exec",
                                            "usr/local/bin/su-exec", "bin/su-exec"};
    static const char *const setpriv[] = {"usr/bin/setpriv", "bin/setpriv", "usr/sbin/setpriv"};
    struct stat st;
    for (size_t i = 0; i < sizeof skip_user / sizeof skip_user[0]; i++) {
        char parent[256], leaf[256];
        path_split(skip_user[i], parent, leaf);
        int dfd = root_open_dir(rootfd, parent, 0);
        int present = dfd >= 0 && fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (dfd >= 0)
            close(dfd);
        if (present && put_file(rootfd, skip_user[i], SHIM_SKIP_USER, sizeof SHIM_SKIP_USER - 1, 0755, e))
            return -1;
    }
    for (size_t i = 0; i < sizeof setpriv / sizeof setpriv[0]; i++) {
        char parent[256], leaf[256];
        path_split(setpriv[i], parent, leaf);
        int dfd = root_open_dir(rootfd, parent, 0);
        int present = dfd >= 0 && fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(st.st_mode);
        if (dfd >= 0)
            close(dfd);
        if (present && put_file(rootfd, setpriv[i], SHIM_SETPRIV, sizeof SHIM_SETPRIV - 1, 0755, e))
            return -1;
    }
    dbg("rootfs patched for a single-id user namespace: passwd/group ids -> 0 (except 65534), apt sandbox "
        "user root, gosu/su-exec/setpriv shims (install uidmap and add /etc/subuid+subgid ranges to keep real "
        "users)");
    return 0;
}
