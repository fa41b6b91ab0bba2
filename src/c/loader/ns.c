/* Id maps for the container's user namespace. */
#define _GNU_SOURCE
#include "ns.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int write_proc(pid_t pid, const char *file, const char *text, oerr *e)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return oerr_sys(e, errno, NULL, "cannot open %s", path);
    if (write_all(fd, text, strlen(text)) < 0) {
        int err = errno;
        close(fd);
        return oerr_sys(e, err, "user namespaces may be restricted on this host", "cannot write %s", path);
    }
    if (close(fd) < 0)
        return oerr_sys(e, errno, NULL, "cannot write %s", path);
    return 0;
}

int ns_write_maps(pid_t pid, idmap_info *info, oerr *e)
{
    char map[64];
    info->single_id = 1;
    /* setgroups must be denied before an unprivileged gid_map write (missing on < 3.19: fine). */
    oerr tmp;
    if (write_proc(pid, "setgroups", "deny", &tmp) < 0 && errno != ENOENT)
        dbg("setgroups deny: %s", tmp.msg);
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)geteuid());
    if (write_proc(pid, "uid_map", map, e))
        return -1;
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)getegid());
    if (write_proc(pid, "gid_map", map, e))
        return -1;
    dbg("id map: container 0 -> host %u:%u (single id)", (unsigned)geteuid(), (unsigned)getegid());
    return 0;
}

const char *ns_userns_hint(int err)
{
    switch (err) {
    case EPERM:
    case EACCES:
        return "unprivileged user namespaces are disabled or restricted here (check sysctl "
               "kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns, or a seccomp "
               "policy of the surrounding container)";
    case ENOSPC:
    case EUSERS:
        return "the user namespace limit is reached (sysctl user.max_user_namespaces)";
    case EINVAL:
        return "this kernel lacks user/pid namespaces";
    default:
        return "check that this kernel allows unprivileged user namespaces";
    }
}
