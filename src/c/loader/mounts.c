/* Mount setup inside the container's user+mount namespace. Every mount target inside the rootfs is first
 * opened with in-root resolution (pathres.c) and mounted through /proc/self/fd/N, so a hostile image
 * cannot redirect a mount with symlinks. */
#define _GNU_SOURCE
#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "devices.h"
#include "net.h"
#include "pathres.h"
#include "volumes.h"

int mounts_private_tmpfs(const char *rundir, oerr *e)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return oerr_sys(e, errno, NULL, "cannot make the mount namespace private");
    /* It holds the --no-cache rootfs or the overlay's upper layer, in RAM: a size limit (half of the memory
     * available now, at least 64 MiB) so that a decompression bomb or a runaway write hits ENOSPC (and the
     * extraction's free-space check) instead of exhausting the host's memory. */
    char opts[64];
    unsigned long long avail_kb = 0;
    FILE *f = fopen("/proc/meminfo", "re");
    if (f) {
        char line[128];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &avail_kb) == 1)
                break;
        fclose(f);
    }
    if (avail_kb) {
        unsigned long long kb = avail_kb / 2 < 65536 ? 65536 : avail_kb / 2;
        snprintf(opts, sizeof opts, "mode=0755,size=%lluk", kb);
    } else {
        snprintf(opts, sizeof opts, "mode=0755");
    }
    dbg("run tmpfs: %s", opts);
    return mounts_tmpfs(rundir, opts, e);
}

int mounts_tmpfs(const char *dir, const char *opts, oerr *e)
{
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        return oerr_sys(e, errno, NULL, "cannot mount a tmpfs on %s", dir);
    return 0;
}

int mounts_overlay(const char *lower, const char *upper, const char *work, const char *target)
{
    char opts[3 * 4096 + 64];
    int n = snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s,userxattr", lower, upper, work);
    if (n < 0 || (size_t)n >= sizeof opts) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (mount("overlay", target, "overlay", MS_NOSUID | MS_NODEV, opts) == 0)
        return 0;
    /* kernels before 5.11 have no "userxattr" (and no unprivileged overlay anyway) */
    snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
    return mount("overlay", target, "overlay", MS_NOSUID | MS_NODEV, opts);
}

static void fdpath(int fd, char buf[32])
{
    snprintf(buf, 32, "/proc/self/fd/%d", fd);
}

/* Opens (creating if needed) directory rel in the rootfs. */
static int target_dir(int rootfd, const char *rel, oerr *e)
{
    int fd = root_open_dir(rootfd, rel, 1);
    if (fd < 0)
        oerr_sys(e, errno, "the image has an unusual layout there", "cannot create /%s in the rootfs", rel);
    return fd;
}

/* Opens (creating if needed) a regular file rel in the rootfs, as a bind-mount target. */
static int target_file(int rootfd, const char *rel, oerr *e)
{
    int fd = root_open(rootfd, rel, O_RDONLY | O_CREAT, 0644);
    if (fd < 0 && errno == ELOOP) { /* a symlink: replace it */
        char parent[4096], leaf[4096];
        path_split(rel, parent, leaf);
        int dfd = root_open_dir(rootfd, parent, 1);
        if (dfd >= 0) {
            (void)unlinkat(dfd, leaf, 0);
            fd = openat(dfd, leaf, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
            close(dfd);
        }
    }
    if (fd < 0)
        oerr_sys(e, errno, NULL, "cannot create /%s in the rootfs", rel);
    return fd;
}

static int mount_at(const char *src, int fd, const char *fstype, unsigned long flags, const char *data,
                    const char *what, oerr *e)
{
    char p[32];
    fdpath(fd, p);
    int rc = mount(src, p, fstype, flags, data);
    int err = errno;
    close(fd);
    if (rc < 0)
        return oerr_sys(e, err, NULL, "cannot mount %s", what);
    return 0;
}

static int setup_dev(int rootfd, oerr *e)
{
    int fd = target_dir(rootfd, "dev", e);
    if (fd < 0 || mount_at("tmpfs", fd, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536k", "/dev", e))
        return -1;
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        char rel[32], host[32];
        snprintf(rel, sizeof rel, "dev/%s", nodes[i]);
        snprintf(host, sizeof host, "/dev/%s", nodes[i]);
        if (access(host, F_OK) < 0)
            continue;
        int nfd = target_file(rootfd, rel, e);
        if (nfd < 0 || mount_at(host, nfd, NULL, MS_BIND, NULL, host, e))
            return -1;
    }
    int dfd = root_open_dir(rootfd, "dev", 0);
    if (dfd < 0)
        return oerr_sys(e, errno, NULL, "cannot open /dev in the rootfs");
    static const char *const links[][2] = {{"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"},
                                           {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"},
                                           {"core", "/proc/kcore"}};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
        if (symlinkat(links[i][1], dfd, links[i][0]) < 0 && errno != EEXIST) {
            int err = errno;
            close(dfd);
            return oerr_sys(e, err, NULL, "cannot create /dev/%s", links[i][0]);
        }
    if (mkdirat(dfd, "pts", 0755) < 0 || mkdirat(dfd, "shm", 01777) < 0) {
        int err = errno;
        close(dfd);
        return oerr_sys(e, err, NULL, "cannot create /dev/pts or /dev/shm");
    }
    close(dfd);
    fd = target_dir(rootfd, "dev/pts", e);
    if (fd < 0)
        return -1;
    char p[32];
    fdpath(fd, p);
    if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") == 0) {
        close(fd);
        dfd = root_open_dir(rootfd, "dev", 0);
        if (dfd < 0 || symlinkat("pts/ptmx", dfd, "ptmx") < 0) {
            int err = errno;
            if (dfd >= 0)
                close(dfd);
            return oerr_sys(e, err, NULL, "cannot create /dev/ptmx");
        }
        close(dfd);
    } else {
        dbg("devpts: %s; binding the host's /dev/pts", strerror(errno));
        if (mount("/dev/pts", p, NULL, MS_BIND | MS_REC, NULL) < 0)
            dbg("bind /dev/pts: %s (no pseudo-terminals in the container)", strerror(errno));
        close(fd);
        int pfd = target_file(rootfd, "dev/ptmx", e);
        if (pfd >= 0 && mount_at("/dev/ptmx", pfd, NULL, MS_BIND, NULL, "/dev/ptmx", e) < 0)
            dbg("%s", e->msg);
    }
    fd = target_dir(rootfd, "dev/shm", e);
    if (fd < 0 || mount_at("shm", fd, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k", "/dev/shm", e))
        return -1;
    fd = target_dir(rootfd, "dev/mqueue", e);
    if (fd >= 0) {
        fdpath(fd, p);
        if (mount("mqueue", p, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            dbg("mqueue: %s (skipped)", strerror(errno));
        close(fd);
    }
    return 0;
}

static void setup_sys(int rootfd, int own_netns)
{
    oerr e;
    int fd = target_dir(rootfd, "sys", &e);
    if (fd < 0) {
        dbg("%s", e.msg);
        return;
    }
    char p[32];
    fdpath(fd, p);
    /* With its own network namespace the container may mount a sysfs of its own (showing only its
     * interfaces); the host's /sys would list the host's. */
    if (own_netns && mount("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) {
        close(fd);
        return;
    }
    if (own_netns)
        dbg("sysfs: %s; binding the host's /sys", strerror(errno));
    if (mount("/sys", p, NULL, MS_BIND | MS_REC, NULL) < 0) {
        dbg("/sys: %s (skipped)", strerror(errno));
        close(fd);
        return;
    }
    close(fd);
    fd = root_open_dir(rootfd, "sys", 0); /* now the bind mount itself */
    if (fd < 0)
        return;
    fdpath(fd, p);
    if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(fd), NULL) < 0)
        dbg("/sys read-only: %s (left read-write; it is still the host's view)", strerror(errno));
    close(fd);
}

/* Writes text as file rel in the rootfs (replacing whatever is there, symlinks included). */
static int write_root_file(int rootfd, const char *rel, const char *text, oerr *e)
{
    size_t len = strlen(text);
    char parent[4096], leaf[4096];
    path_split(rel, parent, leaf);
    int dfd = root_open_dir(rootfd, parent, 1);
    int rc = 0;
    if (dfd < 0) {
        rc = oerr_sys(e, errno, NULL, "cannot create /%s in the rootfs", parent);
    } else {
        (void)remove_tree_at(dfd, leaf);
        int fd = openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 || write_all(fd, text, len) < 0 || close(fd) < 0)
            rc = oerr_sys(e, errno, NULL, "cannot write /%s in the rootfs", rel);
        close(dfd);
    }
    return rc;
}

/* /etc/resolv.conf and /etc/hosts: the host's, changed by --dns, --dns-search, --add-host, --net none. */
static int resolver_files(int rootfd, const options *o, const char *hostname, oerr *e)
{
    char *host_text[2] = {NULL, NULL};
    const char *files[2] = {"/etc/resolv.conf", "/etc/hosts"};
    for (int i = 0; i < 2; i++) {
        oerr tmp;
        if (read_small_file(AT_FDCWD, files[i], 1u << 20, &host_text[i], NULL, &tmp) < 0)
            dbg("%s: not copied (%s)", files[i], tmp.msg);
    }
    char *resolv = net_resolv_conf(o, host_text[0]);
    char *hosts = (o->add_hosts.n || net_isolated(o) || !host_text[1]) ? net_hosts(o, host_text[1], hostname) : NULL;
    int rc = 0;
    if (resolv || host_text[0])
        rc = write_root_file(rootfd, "etc/resolv.conf", resolv ? resolv : host_text[0], e);
    if (rc == 0 && (hosts || host_text[1]))
        rc = write_root_file(rootfd, "etc/hosts", hosts ? hosts : host_text[1], e);
    free(resolv);
    free(hosts);
    free(host_text[0]);
    free(host_text[1]);
    return rc;
}

/* Docker's masked and read-only paths. As real root the container's uid 0 is host uid 0: these keep it
 * away from host kernel knobs (sysctls, sysrq, kcore, keys). The container cannot undo them: it has no
 * CAP_SYS_ADMIN (caps.c), and a nested user namespace sees them as locked mounts. */
static int mask_paths(int rootfd, oerr *e)
{
    static const char *const masked[] = {"proc/asound",     "proc/acpi",   "proc/kcore",        "proc/keys",
                                         "proc/latency_stats", "proc/timer_list", "proc/timer_stats",
                                         "proc/sched_debug", "proc/scsi",  "sys/firmware"};
    static const char *const ro[] = {"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"};
    char what[64], p[32];
    for (size_t i = 0; i < sizeof masked / sizeof masked[0]; i++) {
        int fd = root_open(rootfd, masked[i], O_PATH, 0);
        struct stat st;
        if (fd < 0 && errno == ENOENT)
            continue;
        if (fd < 0 || fstat(fd, &st) < 0) {
            int err = errno;
            if (fd >= 0)
                close(fd);
            return oerr_sys(e, err, NULL, "cannot mask /%s", masked[i]);
        }
        snprintf(what, sizeof what, "over /%s (masking it)", masked[i]);
        if (S_ISDIR(st.st_mode) ? mount_at("tmpfs", fd, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                           "mode=0555,size=4k", what, e)
                                : mount_at("/dev/null", fd, NULL, MS_BIND, NULL, what, e))
            return -1;
    }
    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) {
        int fd = root_open(rootfd, ro[i], O_PATH, 0);
        if (fd < 0 && errno == ENOENT)
            continue;
        int rc = -1, err = errno;
        if (fd >= 0) {
            fdpath(fd, p);
            rc = mount(p, p, NULL, MS_BIND | MS_REC, NULL);
            err = errno;
            close(fd);
        }
        if (rc == 0) { /* reopened: now the bind mount itself */
            fd = root_open(rootfd, ro[i], O_PATH, 0);
            err = errno;
            if (fd >= 0) {
                fdpath(fd, p);
                rc = mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
                err = errno;
                close(fd);
            } else {
                rc = -1;
            }
        }
        if (rc < 0)
            return oerr_sys(e, err, NULL, "cannot make /%s read-only", ro[i]);
    }
    return 0;
}

static int setup_in_root(int rootfd, const options *o, const char *hostname, oerr *e)
{
    int fd = target_dir(rootfd, "proc", e);
    if (fd < 0 || mount_at("proc", fd, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, "/proc", e))
        return -1;
    if (setup_dev(rootfd, e) || devices_mount(rootfd, &o->devices, e))
        return -1;
    setup_sys(rootfd, net_private(o));
    fd = target_dir(rootfd, "tmp", e);
    if (fd < 0 || mount_at("tmpfs", fd, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", "/tmp", e))
        return -1;
    if (resolver_files(rootfd, o, hostname, e))
        return -1;
    if (volumes_mount(rootfd, o, e))
        return -1;
    return mask_paths(rootfd, e);
}

int mounts_setup_rootfs(const char *rootfs, const options *o, const char *hostname, oerr *e)
{
    if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        return oerr_sys(e, errno, NULL, "cannot bind-mount the rootfs %s", rootfs);
    /* Opened after the bind so that every later mount lands on top of it. */
    int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return oerr_sys(e, errno, NULL, "cannot open %s", rootfs);
    int rc = setup_in_root(rootfd, o, hostname, e);
    close(rootfd);
    if (rc == 0 && o->read_only) {
        /* only the root mount: /proc, /dev, /tmp, -v, --tmpfs keep their own flags */
        struct statvfs sv;
        unsigned long keep = MS_NOSUID | MS_NODEV;
        if (statvfs(rootfs, &sv) == 0 && (sv.f_flag & ST_NOEXEC))
            keep |= MS_NOEXEC;
        if (mount(NULL, rootfs, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL) < 0)
            return oerr_sys(e, errno, NULL, "--read-only: cannot make the root filesystem read-only");
        dbg("rootfs read-only");
    }
    return rc;
}

int mounts_enter_rootfs(const char *rootfs, oerr *e)
{
    if (chdir(rootfs) < 0)
        return oerr_sys(e, errno, NULL, "cannot enter the rootfs %s", rootfs);
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (umount2(".", MNT_DETACH) < 0)
            return oerr_sys(e, errno, NULL, "cannot detach the host's root");
        if (chdir("/") < 0)
            return oerr_sys(e, errno, NULL, "cannot chdir to the new root");
        return 0;
    }
    dbg("pivot_root: %s; using chroot", strerror(errno));
    if (chroot(".") < 0 || chdir("/") < 0)
        return oerr_sys(e, errno, NULL, "cannot chroot into the rootfs");
    return 0;
}
