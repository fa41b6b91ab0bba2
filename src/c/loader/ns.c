/* Id maps for the container's user namespace: root maps the whole id space 1:1; an unprivileged caller
 * with an /etc/subuid + /etc/subgid range and newuidmap/newgidmap maps 0 -> itself and 1..N -> the range
 * (owners in layers are kept); otherwise only container 0 -> the caller (the rootfs is then patched, see
 * patch.c). */
#define _GNU_SOURCE
#include "ns.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

static int find_helper(const char *name, char *out, size_t outsz)
{
    static const char *const dirs[] = {"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(out, outsz, "%s/%s", dirs[i], name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

/* First "name:start:count" or "uid:start:count" line of file for this user. */
static int sub_range(const char *file, const char *name, uid_t id, unsigned long *start, unsigned long *count)
{
    FILE *f = fopen(file, "re");
    if (!f)
        return -1;
    char line[512], idstr[32];
    snprintf(idstr, sizeof idstr, "%u", (unsigned)id);
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = 0;
        if (strcmp(line, idstr) != 0 && (!name || strcmp(line, name) != 0))
            continue;
        char *end;
        *start = strtoul(c1 + 1, &end, 10);
        *count = strtoul(c2 + 1, &end, 10);
        if (*count > 0) {
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

void ns_plan_maps(idmap_info *info)
{
    memset(info, 0, sizeof *info);
    const char *force = getenv("OCI2BIN_SINGLE_ID");
    if (force && *force && strcmp(force, "0") != 0) {
        info->single_id = 1;
        strcpy(info->mode, "s");
        return;
    }
    if (geteuid() == 0) {
        info->full_root = 1;
        strcpy(info->mode, "r0");
        return;
    }
    struct passwd *pw = getpwuid(geteuid());
    const char *name = pw ? pw->pw_name : NULL;
    if (sub_range("/etc/subuid", name, geteuid(), &info->uid_start, &info->uid_count) == 0 &&
        sub_range("/etc/subgid", name, geteuid(), &info->gid_start, &info->gid_count) == 0 &&
        find_helper("newuidmap", info->newuidmap, sizeof info->newuidmap) == 0 &&
        find_helper("newgidmap", info->newgidmap, sizeof info->newgidmap) == 0) {
        info->helpers = 1;
        snprintf(info->mode, sizeof info->mode, "r%lu.%lu", info->uid_start, info->gid_start);
        return;
    }
    info->single_id = 1;
    strcpy(info->mode, "s");
}

static int run_helper(const char *helper, pid_t pid, unsigned id, unsigned long start, unsigned long count,
                      oerr *e)
{
    char a_pid[24], a_id[24], a_start[24], a_count[24];
    snprintf(a_pid, sizeof a_pid, "%d", (int)pid);
    snprintf(a_id, sizeof a_id, "%u", id);
    snprintf(a_start, sizeof a_start, "%lu", start);
    snprintf(a_count, sizeof a_count, "%lu", count);
    char *argv[] = {(char *)helper, a_pid, "0", a_id, "1", "1", a_start, a_count, NULL};
    pid_t h = fork();
    if (h < 0)
        return oerr_sys(e, errno, NULL, "cannot run %s", helper);
    if (h == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0 && !g_debug) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execv(helper, argv);
        _exit(127);
    }
    int st;
    while (waitpid(h, &st, 0) < 0)
        if (errno != EINTR)
            return oerr_sys(e, errno, NULL, "waiting for %s", helper);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return oerr_set(e, "%s failed (status %d): check /etc/subuid and /etc/subgid", helper,
                        exit_status_of(st));
    return 0;
}

/* Reads /proc/self/{uid,gid}_map ("inside outside count" lines; outside is relative to the parent namespace
 * when read from inside) into the identity lines; first_out, range_out: outside start of the first line and
 * of the line starting at inside id 1 (the subordinate range), *total: the number of ids. */
static int joined_map(const char *file, char *lines, size_t sz, unsigned long *first_out,
                      unsigned long *range_out, unsigned long long *total, int *n_lines, oerr *e)
{
    char *text;
    if (read_small_file(AT_FDCWD, file, 1u << 16, &text, NULL, e))
        return -1;
    size_t len = 0;
    lines[0] = 0;
    *total = 0;
    *n_lines = 0;
    *first_out = *range_out = 0;
    for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
        unsigned long in, out, cnt;
        if (sscanf(l, "%lu %lu %lu", &in, &out, &cnt) != 3)
            continue;
        int n = snprintf(lines + len, sz - len, "%lu %lu %lu\n", in, in, cnt);
        if (n < 0 || (size_t)n >= sz - len) {
            free(text);
            return oerr_set(e, "%s: too many lines to nest a user namespace in it", file);
        }
        len += (size_t)n;
        if (*n_lines == 0)
            *first_out = out;
        if (in == 1)
            *range_out = out;
        *total += cnt;
        (*n_lines)++;
    }
    free(text);
    if (!*n_lines)
        return oerr_set(e, "%s is empty: the joined container has no id map yet; try again", file);
    return 0;
}

int ns_plan_joined(idmap_info *info, oerr *e)
{
    unsigned long ufirst, urange, gfirst, grange;
    unsigned long long utotal, gtotal;
    int un, gn;
    if (joined_map("/proc/self/uid_map", info->uid_lines, sizeof info->uid_lines, &ufirst, &urange, &utotal, &un,
                   e) ||
        joined_map("/proc/self/gid_map", info->gid_lines, sizeof info->gid_lines, &gfirst, &grange, &gtotal, &gn, e))
        return -1;
    char *sg = NULL;
    oerr tmp;
    info->deny_setgroups = read_small_file(AT_FDCWD, "/proc/self/setgroups", 64, &sg, NULL, &tmp) == 0 &&
                           strncmp(sg, "deny", 4) == 0;
    free(sg);
    info->joined = 1;
    info->helpers = info->full_root = 0;
    info->single_id = utotal == 1 || gtotal == 1;
    /* the same cache mode strings as ns_plan_maps gives the map the joined container was started with */
    if (info->single_id)
        strcpy(info->mode, "s");
    else if (un == 1 && ufirst == 0 && gfirst == 0)
        strcpy(info->mode, "r0");
    else if (urange && grange)
        snprintf(info->mode, sizeof info->mode, "r%lu.%lu", urange, grange);
    else
        snprintf(info->mode, sizeof info->mode, "j%lu.%lu", ufirst, gfirst);
    dbg("id map: nested 1:1 in the joined user namespace (%llu ids, cache mode %s)", utotal, info->mode);
    return 0;
}

int ns_write_maps(pid_t pid, idmap_info *info, oerr *e)
{
    char map[64];
    if (info->joined) { /* full capabilities in the joined namespace: write the nested maps directly */
        oerr tmp;
        if (info->deny_setgroups && write_proc(pid, "setgroups", "deny", &tmp) < 0)
            dbg("setgroups deny: %s", tmp.msg);
        return write_proc(pid, "uid_map", info->uid_lines, e) || write_proc(pid, "gid_map", info->gid_lines, e)
                   ? -1
                   : 0;
    }
    if (info->full_root) {
        if (write_proc(pid, "uid_map", "0 0 4294967295\n", e) || write_proc(pid, "gid_map", "0 0 4294967295\n", e))
            return -1;
        dbg("id map: all ids 1:1 (caller is root)");
        return 0;
    }
    if (info->helpers) {
        oerr he = {0};
        if (run_helper(info->newuidmap, pid, (unsigned)geteuid(), info->uid_start, info->uid_count, &he) < 0) {
            /* Nothing written yet: the single-id map still works. */
            dbg("%s; falling back to the single-id map", he.msg);
            info->helpers = 0;
            info->single_id = 1;
            strcpy(info->mode, "s");
        } else if (run_helper(info->newgidmap, pid, (unsigned)getegid(), info->gid_start, info->gid_count, &he) < 0) {
            /* The uid map is written and cannot be rewritten. */
            return oerr_set(e, "%s: fix /etc/subgid or the uidmap package, or set OCI2BIN_SINGLE_ID=1", he.msg);
        } else {
            dbg("id map: 0 -> %u, 1..%lu -> %lu.. (uid), %lu.. (gid) via newuidmap/newgidmap", (unsigned)geteuid(),
                info->uid_count, info->uid_start, info->gid_start);
            return 0;
        }
    }
    /* setgroups must be denied before an unprivileged gid_map write (missing on < 3.19: fine). */
    oerr tmp;
    if (write_proc(pid, "setgroups", "deny", &tmp) < 0)
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
