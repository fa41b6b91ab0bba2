/* The process structure:
 *   loader (host namespaces) --clone(NEWUSER|NEWNS|NEWPID|NEWUTS|NEWIPC)--> child = PID 1 of the container
 * The loader writes the child's id maps, then waits for it, forwarding SIGTERM/SIGINT/SIGHUP/SIGUSR1/2,
 * and finally removes the (empty) run directory it created. The child builds the rootfs on a tmpfs mounted
 * on that run directory (so it vanishes with the mount namespace), sets up mounts, pivot_roots and execs
 * the command, staying PID 1. */
#define _GNU_SOURCE
#include "container.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "cgroup.h"
#include "mounts.h"
#include "ns.h"
#include "patch.h"
#include "rootfs.h"
#include "rundir.h"
#include "init.h"
#include "net.h"
#include "net_helper.h"
#include "ns_join.h"
#include "state.h"
#include "tty.h"

/* sigaction/sigprocmask below only fail with EINVAL for invalid arguments, which these constants are not. */
static const int FORWARDED[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT};
#define N_FORWARDED (sizeof FORWARDED / sizeof FORWARDED[0])

typedef struct run {
    const options *o;
    const payload *p;
    const image *img;
    exec_plan *plan;
    const char *hostname;
    char rundir[4096];
    int rundir_lock;      /* flock held while the run dir may be in use (rundir.c) */
    int sync_rd, sync_wr; /* parent -> child: "id maps written" */
    int exec_rd, exec_wr; /* closed (CLOEXEC) when the child execs */
    int ready_rd, ready_wr; /* fallback path: "namespaces created, write the maps" */
    idmap_info idm;
    int use_cache;
    cache cache;
    tty t;                /* -t: the pty (else -1s) */
    int out_fd;           /* --detach: the command's stdout/stderr (log or /dev/null), else -1 */
    net_helper nh;        /* --net slirp|pasta: the helper wiring the new network namespace up */
    ns_join join;         /* --net/--ipc container:PID: the namespaces to join */
    cgroup cg;            /* --memory/--cpus/--pids-limit: the container's cgroup (version 0: none) */
} run;

static volatile pid_t g_child;
static volatile sig_atomic_t g_setup_killed_by;
static int g_exec_rd = -1;
static volatile sig_atomic_t g_started, g_forward_all;

static void forward(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    int saved = errno;
    struct pollfd pfd = {g_exec_rd, POLLIN, 0};
    int execd = g_started || poll(&pfd, 1, 0) == 1;
    if (!execd) {
        g_setup_killed_by = sig;
        kill(g_child, SIGKILL); /* still setting up: stop now (PID 1 ignores default-action signals) */
    }
    else if (g_forward_all || !si || si->si_code != SI_KERNEL)
        kill(g_child, sig);     /* terminal-generated signals reach the container's process group directly */
    errno = saved;
}

/* Private extraction into the run dir's tmpfs (--no-cache, and the fallback when overlay is unavailable). */
static int private_rootfs(run *r, char *rootfs, size_t sz, oerr *e)
{
    snprintf(rootfs, sz, "%s/rootfs", r->rundir);
    if (mkdir(rootfs, 0755) < 0)
        return oerr_sys(e, errno, NULL, "cannot create %s", rootfs);
    int rootfd = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return oerr_sys(e, errno, NULL, "cannot open %s", rootfs);
    dbg("extracting %zu layers into a private tmpfs", r->img->n_layers);
    int rc = rootfs_extract(r->p, r->img, rootfd, !r->idm.single_id, e);
    if (rc == 0 && r->idm.single_id)
        rc = patch_single_id(rootfd, e);
    close(rootfd);
    return rc;
}

/* The cached rootfs as the read-only lower layer of an overlay whose upper layer lives in the tmpfs. */
static int cached_rootfs(run *r, char *rootfs, size_t sz, int *fallback, oerr *e)
{
    char upper[4200], work[4200];
    const char *persist = r->o->overlay_persist;
    *fallback = 0;
    if (cache_ensure(&r->cache, r->p, r->img, !r->idm.single_id, r->idm.single_id, e))
        return -1;
    if (persist) {
        char dir[PATH_MAX];
        if ((mkdir(persist, 0700) < 0 && errno != EEXIST) || !realpath(persist, dir))
            return oerr_sys(e, errno, NULL, "--overlay-persist: cannot create %s", persist);
        if (strpbrk(dir, ",:"))
            return oerr_set(e, "--overlay-persist %s: the path contains ',' or ':', which overlayfs cannot take: "
                               "pick another directory", dir);
        snprintf(upper, sizeof upper, "%s/upper", dir);
        snprintf(work, sizeof work, "%s/work", dir);
        if ((mkdir(upper, 0755) < 0 && errno != EEXIST) || (mkdir(work, 0700) < 0 && errno != EEXIST))
            return oerr_sys(e, errno, NULL, "--overlay-persist: cannot create %s/upper and work", dir);
    } else {
        snprintf(upper, sizeof upper, "%s/upper", r->rundir);
        snprintf(work, sizeof work, "%s/work", r->rundir);
        if (mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0)
            return oerr_sys(e, errno, NULL, "cannot create directories in %s", r->rundir);
    }
    snprintf(rootfs, sz, "%s/merged", r->rundir);
    if (mkdir(rootfs, 0755) < 0)
        return oerr_sys(e, errno, NULL, "cannot create directories in %s", r->rundir);
    const char *no_overlay = getenv("OCI2BIN_NO_OVERLAY"); /* tests: exercise the fallback */
    if ((no_overlay && *no_overlay && strcmp(no_overlay, "0") != 0 && (errno = EPERM)) ||
        mounts_overlay(r->cache.entry, upper, work, rootfs) < 0) {
        if (persist)
            return oerr_sys(e, errno, "the directory must be on a filesystem overlayfs accepts as upper layer "
                                      "(ext4, xfs, btrfs; tmpfs on kernels >= 6.6)",
                            "--overlay-persist %s: cannot mount the overlay", persist);
        dbg("overlay over %s: %s; using a private extraction instead", r->cache.entry, strerror(errno));
        *fallback = 1;
        return 0;
    }
    dbg("rootfs: overlay of %s with a private writable layer", r->cache.entry);
    return 0;
}

/* The command's stdio: the pty (-t), stdin /dev/null unless -i, the log/null for --detach. */
static int child_stdio(run *r, oerr *e)
{
    if (r->t.sock[1] >= 0) {
        if (tty_child(&r->t, e))
            return -1;
    } else if (!r->o->interactive) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
            return oerr_sys(e, errno, NULL, "cannot redirect stdin from /dev/null");
        close(fd);
    }
    if (r->out_fd >= 0 && (dup2(r->out_fd, STDOUT_FILENO) < 0 || dup2(r->out_fd, STDERR_FILENO) < 0))
        return oerr_sys(e, errno, NULL, "--detach: cannot redirect the output");
    return 0;
}

static int child_setup(run *r, int *status, oerr *e)
{
    char rootfs[4200];
    char c;
    ssize_t n;
    do
        n = read(r->sync_rd, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        return oerr_set(e, "the loader stopped before the container started: see the message above");
    r->plan->life_fd = r->sync_rd; /* stays open (CLOEXEC): exec_run re-arms PDEATHSIG after a user switch */
    if (c == '1' && !r->idm.single_id) {
        /* the parent fell back to the single-id map after planning: the cache key no longer fits */
        r->idm.single_id = 1;
        r->use_cache = 0;
    }
    if (net_private(r->o) && net_loopback_up(e))
        return -1;
    if (mounts_private_tmpfs(r->rundir, e))
        return -1;
    int fallback = 1;
    if (r->use_cache && cached_rootfs(r, rootfs, sizeof rootfs, &fallback, e))
        return -1;
    if (fallback && private_rootfs(r, rootfs, sizeof rootfs, e))
        return -1;
    if (mounts_setup_rootfs(rootfs, r->o, r->hostname, e))
        return -1;
    if (r->hostname && sethostname(r->hostname, strlen(r->hostname)) < 0)
        dbg("sethostname: %s", strerror(errno));
    if (mounts_enter_rootfs(rootfs, e))
        return -1;
    if (child_stdio(r, e))
        return -1;
    /* --net slirp|pasta: the command starts once the helper has configured tap0 and the port forwards */
    if (r->o->net_helper) {
        do
            n = read(r->sync_rd, &c, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
            return oerr_set(e, "the loader stopped before the network was up: see the message above");
    }
    /* set-up done (pivoted, old root detached): tell the loader, which may now remove the run dir */
    if (write_all(r->exec_wr, "x", 1) < 0)
        return oerr_sys(e, errno, NULL, "the loader is gone");
    if (r->cg.version) {
        /* the loader moves this process into the container's cgroup: wait for that before exec */
        do
            n = read(r->sync_rd, &c, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
            return oerr_set(e, "the loader stopped before the container started: see the message above");
        if (unshare(CLONE_NEWCGROUP) < 0) /* the container sees its own cgroup as / */
            dbg("cgroup namespace: %s", strerror(errno));
    }
    if (r->o->init) {
        int fds[] = {r->exec_wr, r->rundir_lock, r->cache.lockfd};
        *status = init_run(r->plan, r->idm.single_id, fds, 3, e);
        return *status < 0 ? -1 : 0;
    }
    return exec_run(r->plan, r->idm.single_id, e);
}

static int child_main(run *r)
{
    oerr e = {0};
    struct sigaction sa = {0};
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaction(FORWARDED[i], &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close(r->sync_wr);
    close(r->exec_rd);
    if (r->ready_wr >= 0)
        close(r->ready_wr);
    if (r->ready_rd >= 0)
        close(r->ready_rd);
    /* If the loader dies (even by SIGKILL), the container goes with it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        dbg("PR_SET_PDEATHSIG: %s", strerror(errno));
    int status = -1;
    if (child_setup(r, &status, &e) == 0 && status >= 0)
        return status; /* --init: the command's status */
    oerr_print(&e);
    return e.status ? e.status : EXIT_SETUP;
}

static volatile pid_t g_grandchild;

static void relay(int sig)
{
    int saved = errno;
    kill(g_grandchild, sig);
    errno = saved;
}

/* Fallback for environments whose clone() refuses namespace flags (qemu-user): this intermediate process
 * unshares the namespaces, forks the container's PID 1, relays signals to it and exits with its status. */
static int unshare_child(run *r)
{
    oerr e = {0};
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        dbg("PR_SET_PDEATHSIG: %s", strerror(errno));
    close(r->ready_rd);
    r->ready_rd = -1;
    const char *how = "u";
    int others = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | (r->o->ipc_join_pid ? 0 : CLONE_NEWIPC) |
                 (net_private(r->o) ? CLONE_NEWNET : 0);
    if (unshare(CLONE_NEWUSER | others) < 0) {
        int err = errno;
        /* A multi-threaded process (qemu-user always is) cannot unshare a user namespace. Real root can
         * still isolate mounts/pids without one. */
        if (err == EINVAL && geteuid() == 0 && unshare(others) == 0) {
            how = "n";
            dbg("no user namespace (multi-threaded host process, e.g. qemu-user): running as real root");
        } else {
            oerr_sys(&e, err,
                     err == EINVAL ? "this process cannot create a user namespace (under qemu-user, run as root "
                                     "or natively)"
                                   : ns_userns_hint(err),
                     "cannot create the container's namespaces");
            oerr_print(&e);
            return EXIT_SETUP;
        }
    }
    if (write_all(r->ready_wr, how, 1) < 0)
        return EXIT_SETUP;
    pid_t pid = fork();
    if (pid == 0)
        return child_main(r);
    /* the loader needs PID 1's pid (its view) to move it into the cgroup */
    if (pid > 0 && r->cg.version && write_all(r->ready_wr, &pid, sizeof pid) < 0)
        dbg("cannot report the container's pid: %s", strerror(errno));
    close(r->ready_wr);
    if (pid < 0) {
        oerr_sys(&e, errno, NULL, "cannot start the container's first process");
        oerr_print(&e);
        return EXIT_SETUP;
    }
    close(r->sync_rd);
    close(r->exec_wr);
    g_grandchild = pid;
    struct sigaction sa = {0};
    sa.sa_handler = relay;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaction(FORWARDED[i], &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    return wait_exit_status(pid);
}

static int wait_child(pid_t pid, oerr *e)
{
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, 0);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return oerr_sys(e, errno, NULL, "waiting for the container failed");
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + (WTERMSIG(st) == SIGKILL && g_setup_killed_by ? g_setup_killed_by : WTERMSIG(st));
    return EXIT_SETUP;
}

int container_run(const options *o, const payload *p, const image *img, exec_plan *plan,
                  const char *hostname, oerr *e)
{
    run r = {.o = o, .p = p, .img = img, .plan = plan, .hostname = hostname, .out_fd = -1};
    r.t.master = r.t.sock[0] = r.t.sock[1] = -1;
    r.join.net_fd = r.join.ipc_fd = -1;
    int fds[2], notify_fd = -1;
    state st = {.fd = -1};
    if (o->overlay_persist && o->no_cache)
        return oerr_set(e, "--overlay-persist needs the rootfs cache: drop --no-cache");
    if (o->detach && o->tty)
        return oerr_set(e, "-t with --detach is not supported: drop -t");
    if (net_helper_check(&r.nh, o, e) || ns_join_open(&r.join, o, e))
        return -1;
    if (o->name && state_open(&st, o->name, e)) {
        ns_join_close(&r.join);
        return -1;
    }
    if (o->detach) {
        if ((r.out_fd = state_output_fd(&st, o->name != NULL, e)) < 0 || (notify_fd = detach_begin(e)) < 0) {
            state_close(&st);
            return -1;
        }
    }
    if (o->tty && tty_open(&r.t, e)) {
        state_close(&st);
        return -1;
    }
    g_forward_all = o->tty;
    if (rundir_create(rundir_base(), r.rundir, sizeof r.rundir, &r.rundir_lock, e))
        return -1;
    if (pipe2(fds, O_CLOEXEC) < 0) {
        int err = errno;
        rundir_remove(r.rundir);
        close(r.rundir_lock);
        return oerr_sys(e, err, NULL, "pipe");
    }
    r.sync_rd = fds[0], r.sync_wr = fds[1];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        int err = errno;
        rundir_remove(r.rundir);
        close(r.rundir_lock);
        return oerr_sys(e, err, NULL, "pipe");
    }
    r.exec_rd = fds[0], r.exec_wr = fds[1];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        int err = errno;
        rundir_remove(r.rundir);
        close(r.rundir_lock);
        return oerr_sys(e, err, NULL, "pipe");
    }
    r.ready_rd = fds[0], r.ready_wr = fds[1];

    sigset_t block, old;
    sigemptyset(&block);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaddset(&block, FORWARDED[i]);
    sigprocmask(SIG_BLOCK, &block, &old);

    int rc = -1, rundir_gone = 0;
    if (cgroup_setup(&r.cg, &o->limits, r.rundir, e))
        goto out;
    ns_plan_maps(&r.idm);
    if (ns_join_enter(&r.join, &r.idm, e))
        goto out;
    r.cache.lockfd = -1;
    if (!o->no_cache) {
        oerr ce = {0};
        char key[72];
        cache_key_digest(p->config_digest, img, key);
        r.use_cache = cache_open(&r.cache, o, key, r.idm.mode, &ce) == 0;
        if (!r.use_cache && o->overlay_persist) {
            oerr_set(e, "--overlay-persist needs the rootfs cache: %s", ce.msg);
            goto out;
        }
        if (!r.use_cache)
            warnmsg("%s; running without the rootfs cache", ce.msg);
    }

    unsigned long flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | SIGCHLD |
                          (o->ipc_join_pid ? 0 : CLONE_NEWIPC) | (net_private(o) ? CLONE_NEWNET : 0);
    int via_unshare = 0;
    pid_t pid = (pid_t)syscall(SYS_clone, flags, 0, 0, 0, 0);
    if (pid < 0 && errno == EINVAL) {
        dbg("clone with namespace flags: %s; using fork+unshare", strerror(errno));
        via_unshare = 1;
        pid = fork();
        if (pid == 0)
            _exit(unshare_child(&r));
    } else if (pid == 0) {
        _exit(child_main(&r));
    }
    if (pid < 0) {
        oerr_sys(e, errno, ns_userns_hint(errno), "cannot create the container's namespaces");
        goto out;
    }
    close(r.sync_rd);
    close(r.exec_wr);
    close(r.ready_wr);
    r.sync_rd = r.exec_wr = r.ready_wr = -1;
    g_child = pid;
    g_exec_rd = r.exec_rd;
    dbg("container pid %d (host view)", (int)pid);
    char how = 'u';
    if (via_unshare) {
        ssize_t got;
        while ((got = read(r.ready_rd, &how, 1)) < 0 && errno == EINTR)
            ;
        if (got != 1) {
            rc = wait_child(pid, e); /* it printed why */
            goto out;
        }
    }
    if (how == 'n') {
        r.idm.single_id = 0; /* no user namespace: real ids */
    } else if (ns_write_maps(pid, &r.idm, e)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto out;
    }
    /* The byte tells the child how ids are mapped: '1' single id, 'F' full range. */
    if (write_all(r.sync_wr, r.idm.single_id ? "1" : "F", 1) < 0) {
        oerr_sys(e, errno, NULL, "cannot start the container");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto out;
    }
    /* the helper configures tap0 while the child builds its rootfs; a second byte releases the exec */
    if (o->net_helper && (net_helper_start(&r.nh, o, pid, r.rundir, e) || write_all(r.sync_wr, "N", 1) < 0)) {
        if (r.nh.stopped_by)
            rc = 128 + r.nh.stopped_by; /* Ctrl-C/SIGTERM while it waited: no message, as for one during setup */
        else if (!e->msg[0])
            oerr_sys(e, errno, NULL, "cannot start the container");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto out;
    }
    struct sigaction sa = {0};
    sa.sa_sigaction = forward;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaction(FORWARDED[i], &sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    /* The exec pipe closes when the child execs (or dies). By then it has pivoted into the rootfs and
     * detached the old root, so the run directory is no longer a mount point anywhere: remove it now,
     * so that not even a SIGKILL of the loader leaves it behind. */
    if (r.t.sock[1] >= 0) {
        close(r.t.sock[1]);
        r.t.sock[1] = -1;
    }
    char c;
    ssize_t n;
    while ((n = read(r.exec_rd, &c, 1)) < 0 && errno == EINTR)
        ;
    if (n == 1 && r.cg.version) {
        pid_t pid1 = pid;
        ssize_t got = 0;
        if (via_unshare)
            while ((got = read(r.ready_rd, &pid1, sizeof pid1)) < 0 && errno == EINTR)
                ;
        if ((via_unshare && got != (ssize_t)sizeof pid1 && oerr_set(e, "the container's first process is gone")) ||
            cgroup_attach(&r.cg, pid1, e)) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            goto out;
        }
        if (write_all(r.sync_wr, "c", 1) < 0)
            dbg("the container is gone before its start: %s", strerror(errno));
    }
    g_started = n == 1;
    /* once gone, its name may be reused by another start. With cgroups it holds their record until exit. */
    rundir_gone = !r.cg.n && rundir_remove(r.rundir) == 0;
    if (!rundir_gone && !r.cg.n)
        dbg("cannot remove %s yet: %s", r.rundir, strerror(errno));
    if (g_started) {
        if (o->name)
            state_write(&st, o->name, p->image, plan->argv.v, getpid(), pid, "running", 0);
        if (notify_fd >= 0) {
            detach_ready(notify_fd);
            notify_fd = -1;
            if (dup2(r.out_fd, STDOUT_FILENO) < 0 || dup2(r.out_fd, STDERR_FILENO) < 0)
                dbg("--detach: cannot redirect the loader's output: %s", strerror(errno));
        }
        oerr te = {0};
        if (r.t.sock[0] >= 0 && tty_receive(&r.t, &te) < 0)
            oerr_print(&te);
        if (r.t.master >= 0)
            tty_relay(&r.t, o->interactive);
    }
    rc = wait_child(pid, e);
    dbg("container exited with status %d", rc);
    net_helper_stop(&r.nh);
    if (o->name && g_started)
        state_write(&st, o->name, p->image, plan->argv.v, getpid(), pid, "exited", rc);
out:
    net_helper_stop(&r.nh);
    ns_join_close(&r.join);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (r.sync_rd >= 0)
        close(r.sync_rd);
    if (r.sync_wr >= 0)
        close(r.sync_wr);
    if (r.exec_wr >= 0)
        close(r.exec_wr);
    close(r.exec_rd);
    close(r.ready_rd);
    if (r.ready_wr >= 0)
        close(r.ready_wr);
    /* the container's processes are gone (its PID 1 was waited for); a cgroup that stays keeps the run dir
     * and its record for the next start's sweep */
    int cg_left = cgroup_remove(&r.cg) < 0;
    if (!rundir_gone && !cg_left && rundir_remove(r.rundir) < 0)
        warnmsg("cannot remove %s: %s", r.rundir, strerror(errno));
    close(r.rundir_lock);
    cache_close(&r.cache);
    tty_close(&r.t);
    if (r.out_fd >= 0)
        close(r.out_fd);
    if (notify_fd >= 0)
        close(notify_fd); /* the command never started: the waiting parent exits with our status */
    state_close(&st);
    return rc;
}
