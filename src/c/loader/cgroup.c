/* Container cgroups for --memory, --cpus and --pids-limit.
 *
 * Where: under the cgroup this process is in (/proc/self/cgroup), as "oci2bin-<random>".
 *  - cgroup v2 (pure, or the hybrid "unified" mount when it holds the controllers): the caller must be able
 *    to write there (root, or a subtree systemd delegates to the user: user@UID.service/...). The controllers
 *    must be enabled in the parent's cgroup.subtree_control, and the parent must hold no processes ("no
 *    internal processes"; only the real root is exempt). If the loader is the only process there (e.g.
 *    started with `systemd-run --user --scope -p Delegate=yes`), it moves itself into a leaf
 *    "oci2bin-<random>-loader" first, as crun/podman do with their own processes; if others are there too,
 *    root uses the top of the hierarchy and anyone else stops with a hint (it never moves processes it does
 *    not own).
 *  - cgroup v1 (the controllers are bound to v1 hierarchies): one "oci2bin-<random>" per controller
 *    (memory, cpu, pids) under this process's path in each; writable only by root.
 * The limits are written before the container starts; the container's PID 1 is moved in by the loader
 * once its set-up is done, right before it execs the command (so the set-up's own memory, threads and the
 * page cache of a first extraction are not charged to the container).
 *
 * Cleanup: each dir's path is appended to the run dir's record file (rundir.c) before the mkdir. At exit
 * the loader removes the dirs once the container's processes are gone, undoes a leaf move in reverse
 * (disables the controllers it enabled, unless other cgroups there may rely on them; moves itself back;
 * rmdirs the leaf), then removes the run dir (which therefore stays until exit when limits are used). A
 * step that fails leaves the rest recorded for the next start's sweep. If the loader is killed, the container dies with it
 * (PDEATHSIG, pid namespace), the run dir's lock is released, and the next start's run-dir sweep rmdirs
 * the recorded cgroups (rmdir only succeeds on an empty cgroup) before it removes the run dir. */
#define _GNU_SOURCE
#include "cgroup.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PREFIX "oci2bin-"
#define LOADER_SUFFIX "-loader"

/* ---- flag values ---- */

/* Decimal "W[.F]" into W and the fraction scaled to 1e9 (extra digits are truncated). */
static int parse_decimal(const char **p, uint64_t *whole, uint64_t *nanos)
{
    const char *s = *p;
    if (!isdigit((unsigned char)*s))
        return -1;
    *whole = 0;
    *nanos = 0;
    for (; isdigit((unsigned char)*s); s++) {
        if (*whole > (UINT64_MAX - 9) / 10)
            return -2;
        *whole = *whole * 10 + (uint64_t)(*s - '0');
    }
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        uint64_t scale = 100000000;
        for (; isdigit((unsigned char)*s); s++, scale /= 10)
            *nanos += (uint64_t)(*s - '0') * scale;
    }
    *p = s;
    return 0;
}

int cgroup_parse_memory(const char *s, uint64_t *bytes, oerr *e)
{
    const char *p = s;
    uint64_t whole, nanos, mult = 1;
    int rc = parse_decimal(&p, &whole, &nanos);
    if (rc == 0) {
        switch (tolower((unsigned char)*p)) {
        case 'k': mult = 1ull << 10; p++; break;
        case 'm': mult = 1ull << 20; p++; break;
        case 'g': mult = 1ull << 30; p++; break;
        case 't': mult = 1ull << 40; p++; break;
        default: break;
        }
        if (mult > 1 && tolower((unsigned char)*p) == 'i')
            p++;
        if (tolower((unsigned char)*p) == 'b')
            p++;
        if (*p)
            rc = -1;
    }
    if (rc == 0 && whole > (uint64_t)INT64_MAX / mult)
        rc = -2;
    if (rc == -1)
        return oerr_set(e, "--memory %s is not a size: give a number with an optional b, k, m or g suffix "
                           "(e.g. 512m)", s);
    uint64_t v = whole * mult + (uint64_t)((unsigned __int128)nanos * mult / 1000000000u);
    if (rc == -2 || v > (uint64_t)INT64_MAX)
        return oerr_set(e, "--memory %s is too large: give a size below 8 EiB, or 0 for no limit", s);
    if (v && v < CG_MEMORY_MIN)
        return oerr_set(e, "--memory %s is below the minimum of 6m: give at least 6m (or 0 for no limit)", s);
    *bytes = v;
    return 0;
}

int cgroup_parse_cpus(const char *s, uint64_t *quota, oerr *e)
{
    const char *p = s;
    uint64_t whole, nanos;
    int rc = parse_decimal(&p, &whole, &nanos);
    if (rc == -1 || (rc == 0 && *p))
        return oerr_set(e, "--cpus %s is not a number of CPUs: give a decimal like 0.5 or 2", s);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    if (rc == -2 || whole > (uint64_t)ncpu || (whole == (uint64_t)ncpu && nanos))
        return oerr_set(e, "--cpus %s is more than the %ld CPUs available: give 0.01 to %ld", s, ncpu, ncpu);
    uint64_t n = whole * 1000000000u + nanos; /* docker's NanoCPUs */
    if (n && n < 10000000u)
        return oerr_set(e, "--cpus %s is below 0.01: give 0.01 to %ld (or 0 for no limit)", s, ncpu);
    *quota = n / (1000000000u / CG_CPU_PERIOD);
    return 0;
}

int cgroup_parse_pids(const char *s, int64_t *pids, oerr *e)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || isspace((unsigned char)*s) || v < -1)
        return oerr_set(e, "--pids-limit %s is not a process count: give a number like 100 (-1 for no limit)", s);
    if (v > CG_PIDS_MAX)
        return oerr_set(e, "--pids-limit %s is above the kernel's maximum %d: give less (-1 for no limit)", s,
                        CG_PIDS_MAX);
    *pids = v > 0 ? v : 0;
    return 0;
}

/* ---- where this process's cgroups are ---- */

enum { C_MEMORY, C_CPU, C_PIDS, N_CTRL };
static const char *const CTRL[N_CTRL] = {"memory", "cpu", "pids"};
static const char *const FLAG[N_CTRL] = {"--memory", "--cpus", "--pids-limit"};

typedef struct cg_where {
    char v2[PATH_MAX];         /* this process's v2 cgroup dir, "" if none */
    char v2_mnt[PATH_MAX];     /* the cgroup2 mount point */
    char v1[N_CTRL][PATH_MAX]; /* its v1 cgroup dir per controller, "" if the controller is not on v1 */
} cg_where;

/* mountpoint + the part of path below the mount's root; "" if the path is outside it. */
static void join_mount(char *out, const char *mnt, const char *root, const char *path)
{
    size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
    out[0] = 0;
    if (rl && (strncmp(path, root, rl) != 0 || (path[rl] && path[rl] != '/')))
        return;
    const char *rest = path + rl;
    if (strstr(rest, "/..") || snprintf(out, PATH_MAX, "%s%s", mnt, strcmp(rest, "/") == 0 ? "" : rest) >= PATH_MAX)
        out[0] = 0;
}

static int has_word(const char *list, const char *word, char sep)
{
    size_t n = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *q = strchr(p, sep);
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return 1;
        p = q ? q + 1 : NULL;
    }
    return 0;
}

/* Splits s in place at sep into at most max fields; returns the count. */
static int split(char *s, char sep, char **f, int max)
{
    int n = 0;
    while (s && n < max) {
        f[n++] = s;
        s = strchr(s, sep);
        if (s)
            *s++ = 0;
    }
    return n;
}

static void locate(cg_where *w)
{
    memset(w, 0, sizeof *w);
    char *self = NULL, *mi = NULL;
    oerr ignore;
    if (read_small_file(AT_FDCWD, "/proc/self/cgroup", 1u << 16, &self, NULL, &ignore) ||
        read_small_file(AT_FDCWD, "/proc/self/mountinfo", 1u << 22, &mi, NULL, &ignore)) {
        free(self);
        return;
    }
    /* /proc/self/cgroup: "0::PATH" (v2) or "N:ctrl,ctrl:PATH" (v1) */
    char *lines[64], *v2path = NULL, *v1path[N_CTRL] = {0};
    int nl = split(self, '\n', lines, 64);
    for (int i = 0; i < nl; i++) {
        char *f[3];
        if (split(lines[i], ':', f, 3) != 3)
            continue;
        if (strcmp(f[0], "0") == 0 && !f[1][0])
            v2path = f[2];
        for (int c = 0; c < N_CTRL; c++)
            if (has_word(f[1], CTRL[c], ','))
                v1path[c] = f[2];
    }
    /* mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE SUPEROPTS */
    for (char *line = mi, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *f[40];
        int n = split(line, ' ', f, 40), dash = 6;
        while (dash < n && strcmp(f[dash], "-") != 0)
            dash++;
        if (dash + 3 >= n)
            continue;
        if (strcmp(f[dash + 1], "cgroup2") == 0 && v2path && !w->v2[0])
        {
            join_mount(w->v2, f[4], f[3], v2path);
            snprintf(w->v2_mnt, sizeof w->v2_mnt, "%s", f[4]);
        }
        else if (strcmp(f[dash + 1], "cgroup") == 0)
            for (int c = 0; c < N_CTRL; c++)
                if (v1path[c] && !w->v1[c][0] && has_word(f[dash + 3], CTRL[c], ','))
                    join_mount(w->v1[c], f[4], f[3], v1path[c]);
    }
    free(self);
    free(mi);
}

/* ---- small cgroupfs I/O ---- */

static int write_file(const char *dir, const char *file, const char *text)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    /* cgroupfs takes a whole value per write(); a short or failed write sets errno */
    ssize_t n = write(fd, text, strlen(text));
    int err = errno;
    close(fd);
    if (n == (ssize_t)strlen(text))
        return 0;
    errno = n < 0 ? err : EIO;
    return -1;
}

static int read_line(const char *dir, const char *file, char *out, size_t sz)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, out, sz - 1);
    close(fd);
    if (n < 0)
        return -1;
    out[n] = 0;
    out[strcspn(out, "\n")] = 0;
    return 0;
}

/* ---- making, locking and sweeping our dirs ---- */

/* Appends a line to the run dir's record (before the dir exists, so a kill leaves no unrecorded dir). */
static int record(const char *rundir, const char *path)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/" CG_RECORD, rundir);
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    char *line = xasprintf("%s\n", path);
    int rc = write_all(fd, line, strlen(line));
    free(line);
    if (close(fd) < 0)
        rc = -1;
    return rc;
}

/* mkdir parent/NAME, NAME = name_base+suffix if given, else oci2bin-<random>+suffix; records it in cg. */
static int make_dir(cgroup *cg, const char *rundir, const char *parent, const char *name_base, const char *suffix,
                    int attach, char *name_out, size_t name_sz)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        unsigned char rnd[6];
        char name[64], path[PATH_MAX];
        if (name_base && attempt == 0) {
            snprintf(name, sizeof name, "%s%s", name_base, suffix);
        } else {
            if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
                unsigned long t = (unsigned long)time(NULL) ^ ((unsigned long)getpid() << 16) ^ (unsigned long)attempt;
                memcpy(rnd, &t, sizeof rnd);
            }
            snprintf(name, sizeof name, PREFIX "%02x%02x%02x%02x%02x%02x%s", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
                     rnd[5], suffix);
        }
        if (snprintf(path, sizeof path, "%s/%s", parent, name) >= (int)sizeof path) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (record(rundir, path) < 0)
            return -1;
        if (mkdir(path, 0755) < 0) {
            if (errno == EEXIST)
                continue;
            return -1;
        }
        snprintf(cg->dir[cg->n], PATH_MAX, "%s", path);
        cg->attach[cg->n] = attach;
        cg->n++;
        snprintf(name_out, name_sz, "%s", name);
        return 0;
    }
    errno = EEXIST;
    return -1;
}

static const char *HINT =
    "use a cgroup v2 host whose systemd delegates a subtree to you (e.g. systemd-run --user --scope -p "
    "Delegate=yes ./app ...), run as root, or drop the flag";

static void flags_of(unsigned need, char *out, size_t sz)
{
    out[0] = 0;
    for (int c = 0; c < N_CTRL; c++)
        if (need & (1u << c))
            snprintf(out + strlen(out), sz - strlen(out), "%s%s", out[0] ? "/" : "", FLAG[c]);
}

static int write_limits(const char *dir, int v2, unsigned need, const cg_limits *l, oerr *e)
{
    char v[64];
    if (need & (1u << C_MEMORY)) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)l->memory);
        if (write_file(dir, v2 ? "memory.max" : "memory.limit_in_bytes", v) < 0)
            return oerr_sys(e, errno, NULL, "--memory: cannot write the limit in %s", dir);
        /* no swap beyond the limit, so it is hard (missing without swap accounting: nothing to bound) */
        if (write_file(dir, v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes", v2 ? "0" : v) < 0 &&
            errno != ENOENT)
            return oerr_sys(e, errno, NULL, "--memory: cannot limit swap in %s", dir);
    }
    if (need & (1u << C_CPU)) {
        int rc;
        if (v2) {
            snprintf(v, sizeof v, "%llu %d", (unsigned long long)l->cpu_quota, CG_CPU_PERIOD);
            rc = write_file(dir, "cpu.max", v);
        } else {
            snprintf(v, sizeof v, "%d", CG_CPU_PERIOD);
            rc = write_file(dir, "cpu.cfs_period_us", v);
            snprintf(v, sizeof v, "%llu", (unsigned long long)l->cpu_quota);
            rc = rc ? rc : write_file(dir, "cpu.cfs_quota_us", v);
        }
        if (rc < 0)
            return oerr_sys(e, errno, errno == EINVAL ? "a parent cgroup's CPU quota is lower: ask for fewer CPUs"
                                                      : NULL,
                            "--cpus: cannot write the CPU quota in %s", dir);
    }
    if (need & (1u << C_PIDS)) {
        snprintf(v, sizeof v, "%lld", (long long)l->pids);
        if (write_file(dir, "pids.max", v) < 0)
            return oerr_sys(e, errno, NULL, "--pids-limit: cannot write pids.max in %s", dir);
    }
    return 0;
}

/* Processes in the v2 cgroup dir: 0 none, 1 only this one, 2 others too. */
static int procs_in(const char *dir)
{
    char p[PATH_MAX + 32], *text;
    oerr ignore;
    snprintf(p, sizeof p, "%s/cgroup.procs", dir);
    if (read_small_file(AT_FDCWD, p, 1u << 20, &text, NULL, &ignore))
        return 2;
    char *end;
    long first = strtol(text, &end, 10);
    int n = end == text ? 0 : first == (long)getpid() && strspn(end, "\n") == strlen(end) ? 1 : 2;
    free(text);
    return n;
}

static int setup_v2(cgroup *cg, const char *rundir, const char *parent, const char *mnt, unsigned need,
                    const cg_limits *l, const char *flags, oerr *e)
{
    char enabled[512] = "", want[64] = "", name[64] = "", p[PATH_MAX + 32];
    /* "No internal processes": a cgroup with processes cannot have domain controllers (memory) enabled for
     * its children, and with threaded ones (cpu, pids) it turns into a thread root whose new children cannot
     * take processes. Only the real root (no cgroup.type) is exempt. */
    snprintf(p, sizeof p, "%s/cgroup.type", parent);
    int procs = access(p, F_OK) < 0 && errno == ENOENT ? 0 : procs_in(parent);
    if (procs == 2 && geteuid() == 0 && strcmp(parent, mnt) != 0) {
        /* root may use the top of the hierarchy instead (as docker does) */
        dbg("cgroup: %s holds other processes; using %s", parent, mnt);
        return setup_v2(cg, rundir, mnt, mnt, need, l, flags, e);
    }
    if (procs == 2)
        return oerr_set(e, "%s cannot be enforced: cgroup %s holds other processes, so the container's cgroup "
                           "cannot go below it (cgroup v2 \"no internal processes\" rule): start the binary in a "
                           "scope of its own, e.g. systemd-run --user --scope -p Delegate=yes ./app ...",
                        flags, parent);
    if (procs == 1) { /* only this process: move it into a leaf first, as crun/podman do with their own */
        char pid[24];
        if (make_dir(cg, rundir, parent, NULL, LOADER_SUFFIX, 0, name, sizeof name) < 0)
            return oerr_sys(e, errno, HINT, "%s cannot be enforced: cannot create a cgroup in %s", flags, parent);
        snprintf(cg->left_from, sizeof cg->left_from, "%s", parent); /* cgroup_remove moves it back */
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        if (write_file(cg->dir[cg->n - 1], "cgroup.procs", pid) < 0)
            return oerr_sys(e, errno, HINT, "%s cannot be enforced: cannot move the loader into %s", flags,
                            cg->dir[cg->n - 1]);
        dbg("cgroup: moved the loader into %s", cg->dir[cg->n - 1]);
    }
    if (read_line(parent, "cgroup.subtree_control", enabled, sizeof enabled) < 0)
        return oerr_sys(e, errno, HINT, "%s cannot be enforced: cannot read %s/cgroup.subtree_control", flags,
                        parent);
    for (int c = 0; c < N_CTRL; c++)
        if ((need & (1u << c)) && !has_word(enabled, CTRL[c], ' '))
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s+%s", want[0] ? " " : "", CTRL[c]);
    if (want[0] && write_file(parent, "cgroup.subtree_control", want) < 0)
        return oerr_sys(e, errno, HINT, "%s cannot be enforced: cannot enable %s in %s (not delegated to uid %u?)",
                        flags, want, parent, (unsigned)geteuid());
    if (want[0] && cg->left_from[0]) { /* what cgroup_remove disables again before it moves the loader back */
        snprintf(cg->enabled, sizeof cg->enabled, "%s", want);
        for (char *c = cg->enabled; (c = strchr(c, '+')); )
            *c = '-';
    }
    /* the container's dir shares the loader leaf's random part, if any, for easy matching */
    char base[64] = "";
    if (cg->n)
        snprintf(base, sizeof base, "%.*s", (int)(strlen(name) - strlen(LOADER_SUFFIX)), name);
    if (make_dir(cg, rundir, parent, base[0] ? base : NULL, "", 1, name, sizeof name) < 0)
        return oerr_sys(e, errno, HINT, "%s cannot be enforced: cannot create a cgroup in %s", flags, parent);
    cg->version = 2;
    return write_limits(cg->dir[cg->n - 1], 1, need, l, e);
}

static int setup_v1(cgroup *cg, const char *rundir, const cg_where *w, unsigned need, const cg_limits *l,
                    const char *flags, const char *why_not_v2, oerr *e)
{
    char base[64] = "", name[64];
    for (int c = 0; c < N_CTRL; c++) {
        if (!(need & (1u << c)))
            continue;
        if (make_dir(cg, rundir, w->v1[c], base[0] ? base : NULL, "", 1, name, sizeof name) < 0) {
            int err = errno;
            return oerr_set(e, "%s cannot be enforced: cannot create a cgroup in %s: %s (cgroup v1 needs root; %s): %s",
                            flags, w->v1[c], strerror(err), why_not_v2, HINT);
        }
        snprintf(base, sizeof base, "%s", name); /* the same name in every hierarchy */
        if (write_limits(cg->dir[cg->n - 1], 0, 1u << c, l, e))
            return -1;
    }
    cg->version = 1;
    return 0;
}

int cgroup_setup(cgroup *cg, const cg_limits *l, const char *rundir, oerr *e)
{
    memset(cg, 0, sizeof *cg);
    unsigned need = (l->memory ? 1u << C_MEMORY : 0) | (l->cpu_quota ? 1u << C_CPU : 0) |
                    (l->pids ? 1u << C_PIDS : 0);
    if (!need)
        return 0;
    cg_where w;
    locate(&w);
    char flags[64], avail[512] = "", why[PATH_MAX + 128];
    flags_of(need, flags, sizeof flags);
    int rc;
    if (w.v2[0] && read_line(w.v2, "cgroup.controllers", avail, sizeof avail) == 0) {
        unsigned missing = 0;
        for (int c = 0; c < N_CTRL; c++)
            if ((need & (1u << c)) && !has_word(avail, CTRL[c], ' '))
                missing |= 1u << c;
        if (!missing) {
            rc = setup_v2(cg, rundir, w.v2, w.v2_mnt, need, l, flags, e);
            goto done;
        }
        char m[64];
        flags_of(missing, m, sizeof m);
        snprintf(why, sizeof why, "cgroup v2 %s does not offer the controller for %s", w.v2, m);
    } else {
        snprintf(why, sizeof why, "no cgroup v2 for this process");
    }
    for (int c = 0; c < N_CTRL; c++)
        if ((need & (1u << c)) && !w.v1[c][0])
            return oerr_set(e, "%s cannot be enforced: %s, and no cgroup v1 %s hierarchy: %s", flags, why, CTRL[c],
                            HINT);
    rc = setup_v1(cg, rundir, &w, need, l, flags, why, e);
done:
    if (rc)
        return -1; /* the caller removes what was made (cgroup_remove) */
    for (size_t i = 0; i < cg->n; i++)
        if (cg->attach[i])
            dbg("cgroup v%d: %s", cg->version, cg->dir[i]);
    return 0;
}

int cgroup_attach(const cgroup *cg, pid_t pid, oerr *e)
{
    char v[24];
    snprintf(v, sizeof v, "%d", (int)pid);
    for (size_t i = 0; i < cg->n; i++)
        if (cg->attach[i] && write_file(cg->dir[i], "cgroup.procs", v) < 0)
            return oerr_sys(e, errno, NULL, "cannot move the container into cgroup %s", cg->dir[i]);
    return 0;
}

/* rmdir, waiting a moment for the last exiting tasks to leave the cgroup. */
static int remove_dir(const char *path)
{
    for (int tries = 0; rmdir(path) < 0; tries++) {
        if (errno == ENOENT)
            return 0;
        if (errno != EBUSY || tries >= 200)
            return -1;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Whether the v2 cgroup dir has child cgroups other than the one named keep (e.g. another loader's). */
static int other_children(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return 1;
    int found = 0;
    for (struct dirent *de; !found && (de = readdir(d));)
        found = de->d_type == DT_DIR && strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
                strcmp(de->d_name, keep) != 0;
    closedir(d);
    return found;
}

/* Undoes the loader's move into its v2 leaf, in reverse: disables the controllers it enabled in the cgroup
 * it left (else that cgroup refuses processes), moves back there, removes the leaf. -1 (with a debug note;
 * the leaf stays recorded for the next start's sweep) if a step fails. */
static int leave_leaf(const cgroup *cg, const char *leaf)
{
    const char *from = cg->left_from, *name = strrchr(leaf, '/') + 1;
    char pid[24];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    /* another loader's cgroups there rely on the controllers (it found them enabled and did not enable them) */
    if (cg->enabled[0] && other_children(from, name)) {
        dbg("cgroup: %s has other cgroups: leaving %s enabled and %s in place", from, cg->enabled, leaf);
        return -1;
    }
    if (cg->enabled[0] && write_file(from, "cgroup.subtree_control", cg->enabled) < 0) {
        dbg("cgroup: cannot write \"%s\" to %s/cgroup.subtree_control: %s", cg->enabled, from, strerror(errno));
        return -1;
    }
    if (write_file(from, "cgroup.procs", pid) < 0) {
        dbg("cgroup: cannot move the loader back into %s: %s", from, strerror(errno));
        return -1;
    }
    if (remove_dir(leaf) < 0) {
        dbg("cgroup: cannot remove %s: %s", leaf, strerror(errno));
        return -1;
    }
    dbg("cgroup: moved the loader back into %s", from);
    return 0;
}

int cgroup_remove(cgroup *cg)
{
    int left = 0;
    for (size_t k = cg->n; k-- > 0;) {
        if (!cg->attach[k]) { /* the leaf holding the loader itself: made first, so the container's are gone */
            if (left || !cg->left_from[0] || leave_leaf(cg, cg->dir[k]) < 0)
                left++;
        } else if (remove_dir(cg->dir[k]) < 0) {
            warnmsg("cannot remove cgroup %s: %s (the next start removes it once it is empty)", cg->dir[k],
                    strerror(errno));
            left++;
        }
    }
    cg->n = 0;
    return left ? -1 : 0;
}

int cgroup_sweep_record(int rundir_fd)
{
    char *text;
    oerr ignore;
    if (faccessat(rundir_fd, CG_RECORD, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
        return 0; /* the usual case: no limits were used */
    if (read_small_file(rundir_fd, CG_RECORD, 1u << 16, &text, NULL, &ignore))
        return -1;
    int rc = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        const char *base = strrchr(line, '/');
        /* only what cgroup_setup makes: absolute paths ending in /oci2bin-... */
        if (line[0] != '/' || !base || strncmp(base + 1, PREFIX, strlen(PREFIX)) != 0 || strstr(line, "/../"))
            continue;
        if (rmdir(line) == 0)
            dbg("removed stale cgroup %s", line);
        else if (errno != ENOENT)
            rc = -1;
    }
    free(text);
    if (rc == 0 && unlinkat(rundir_fd, CG_RECORD, 0) < 0 && errno != ENOENT)
        rc = -1;
    return rc;
}
