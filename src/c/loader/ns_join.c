/* --net container:PID / --ipc container:PID. The loader joins the target's namespace itself, right before
 * cloning the container (which inherits it; the clone then leaves out CLONE_NEWNET / CLONE_NEWIPC).
 *
 * Permission: setns() into a network or IPC namespace needs CAP_SYS_ADMIN both in the caller's user namespace
 * and in the one owning the target namespace. Root has both. An unprivileged user has neither, but owns the
 * user namespace of its own containers, so it joins that user namespace first (setns(CLONE_NEWUSER) grants
 * all capabilities there) and then the network/IPC namespace. The container's own user namespace is then
 * nested inside the target's, mapped 1:1 onto it (ns_plan_joined), so the ids seen on the host are the same
 * as the target's and the rootfs cache entry of the same mapping is used.
 *
 * PID: `--detach` prints the loader's PID (the process to signal), which lives in the host's namespaces; a PID
 * in the caller's own user namespace whose child runs in other user and PID namespaces is taken as a loader and
 * that child (the container's PID 1) is used. */
#define _GNU_SOURCE
#include "ns_join.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NS_GET_USERNS
#define NS_GET_USERNS _IO(0xb7, 0x1)
#endif

int ns_join_parse(const char *flag, const char *val, int *pid, oerr *e)
{
    const char *s = strncmp(val, "container:", 10) == 0 ? val + 10 : NULL;
    char *end;
    long v = s && *s >= '1' && *s <= '9' ? strtol(s, &end, 10) : 0;
    if (!s || v <= 0 || *end || v > 0x3fffffff)
        return oerr_set(e, "%s %s: expected container:PID with the PID of a running container (as printed by "
                           "its --detach)", flag, val);
    *pid = (int)v;
    return 0;
}

static int same_ns(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The child of pid that is the container: in another user namespace than ours and making its children in
 * another PID namespace (the container's PID 1 after clone(), or the intermediate of the unshare() start). Not
 * just "another user namespace": pasta runs as the loader's child inside the container's user namespace, yet
 * in the host's network namespace, and after a PID wrap it comes first in /proc. 0 if none. */
static pid_t container_child(pid_t pid)
{
    struct stat my_user, my_pidc, st;
    if (stat("/proc/self/ns/user", &my_user) < 0)
        return 0;
    int have_pidc = stat("/proc/self/ns/pid_for_children", &my_pidc) == 0; /* Linux >= 4.12 */
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    pid_t found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        char *rp = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
        int ppid = 0;
        if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1 || ppid != pid)
            continue;
        /* a namespace we cannot see (another user's or a non-dumpable process, like pasta) is no match */
        snprintf(path, sizeof path, "/proc/%s/ns/user", de->d_name);
        if (stat(path, &st) < 0 || (st.st_dev == my_user.st_dev && st.st_ino == my_user.st_ino))
            continue;
        snprintf(path, sizeof path, "/proc/%s/ns/pid_for_children", de->d_name);
        if (have_pidc &&
            (stat(path, &st) < 0 || (st.st_dev == my_pidc.st_dev && st.st_ino == my_pidc.st_ino)))
            continue;
        found = (pid_t)atoi(de->d_name);
    }
    closedir(d);
    return found;
}

static int open_target(const char *flag, int pid, const char *ns, const char *what, pid_t *target, int *fd,
                       oerr *e)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d", pid);
    if (stat(path, &st) < 0)
        return oerr_set(e, "%s container:%d: no process %d: give the PID printed by the other container's "
                           "--detach (or its PID 1 as seen from here)", flag, pid, pid);
    snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
    pid_t t = pid;
    if (same_ns(path, "/proc/self/ns/user")) {
        pid_t c = container_child(pid);
        if (c) {
            dbg("%s container:%d: a loader; using its container process %d", flag, pid, (int)c);
            t = c;
        }
    }
    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)t, ns);
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        int err = errno;
        if (err == ENOENT || err == ESRCH)
            return oerr_set(e, "%s container:%d: process %d is gone: start the other container first", flag, pid,
                            pid);
        return oerr_sys(e, err, "it belongs to another user: run as that user, or as root",
                        "%s container:%d: cannot open its %s namespace", flag, pid, what);
    }
    *target = t;
    return 0;
}

int ns_join_open(ns_join *j, const options *o, oerr *e)
{
    j->net_fd = j->ipc_fd = -1;
    j->net_pid = j->ipc_pid = 0;
    if (o->net_join_pid && open_target("--net", o->net_join_pid, "net", "network", &j->net_pid, &j->net_fd, e))
        return -1;
    if (o->ipc_join_pid && open_target("--ipc", o->ipc_join_pid, "ipc", "IPC", &j->ipc_pid, &j->ipc_fd, e)) {
        ns_join_close(j);
        return -1;
    }
    return 0;
}

static int join_one(int fd, int nstype, const char *flag, int pid, const char *what, int *in_userns,
                    idmap_info *idm, oerr *e)
{
    const char *hint = "it belongs to another user: run as that user, or as root";
    if (setns(fd, nstype) == 0)
        return 0;
    if (errno != EPERM || *in_userns)
        return oerr_sys(e, errno, hint, "%s container:%d: cannot join its %s namespace", flag, pid, what);
    int u = ioctl(fd, NS_GET_USERNS);
    if (u < 0)
        return oerr_sys(e, errno, hint, "%s container:%d: cannot join its %s namespace", flag, pid, what);
    if (setns(u, CLONE_NEWUSER) < 0) {
        int err = errno;
        close(u);
        return oerr_sys(e, err, hint, "%s container:%d: cannot join the user namespace of its %s namespace", flag,
                        pid, what);
    }
    close(u);
    *in_userns = 1;
    if (ns_plan_joined(idm, e))
        return -1;
    if (setns(fd, nstype) < 0)
        return oerr_sys(e, errno, hint, "%s container:%d: cannot join its %s namespace", flag, pid, what);
    return 0;
}

int ns_join_enter(ns_join *j, idmap_info *idm, oerr *e)
{
    int in_userns = 0;
    if (j->net_fd >= 0) {
        if (join_one(j->net_fd, CLONE_NEWNET, "--net", (int)j->net_pid, "network", &in_userns, idm, e))
            return -1;
        dbg("joined the network namespace of process %d", (int)j->net_pid);
    }
    if (j->ipc_fd >= 0) {
        if (join_one(j->ipc_fd, CLONE_NEWIPC, "--ipc", (int)j->ipc_pid, "IPC", &in_userns, idm, e))
            return -1;
        dbg("joined the IPC namespace of process %d", (int)j->ipc_pid);
    }
    return 0;
}

void ns_join_close(ns_join *j)
{
    if (j->net_fd >= 0)
        close(j->net_fd);
    if (j->ipc_fd >= 0)
        close(j->ipc_fd);
    j->net_fd = j->ipc_fd = -1;
}
