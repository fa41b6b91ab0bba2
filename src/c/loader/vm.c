/* --vm host side (see vm.h). Process structure:
 *   loader --clone(NEWUSER|NEWNS)--> prep: rootfs (cache or private tmpfs) -> initramfs file in the run dir
 *   loader --fork/exec--> qemu-system-ARCH (PR_SET_PDEATHSIG: dies with the loader)
 * The loader relays the guest's stdout/stderr serial ports (FIFOs of qemu "pipe" chardevs in the run dir)
 * to its own stdout/stderr, reads the exit status from the control port, keeps the kernel console for error
 * reports, and removes the run dir. Signals (TERM/INT/HUP/QUIT/USR1/USR2) stop the VM: exit 128+N. */
#define _GNU_SOURCE
#include "vm.h"

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
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "json.h"
#include "mounts.h"
#include "ns.h"
#include "patch.h"
#include "rootfs.h"
#include "rundir.h"
#include "sha256.h"
#include "vm_cfg.h"
#include "vm_cpio.h"
#include "vm_init.h"

#define FOOTER_FLAG_VM 1u
#define CONSOLE_KEEP 4096 /* bytes of the kernel console kept for an error report */

static const int STOP_SIGNALS[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define N_STOP (sizeof STOP_SIGNALS / sizeof STOP_SIGNALS[0])
static volatile pid_t g_vm_child;
static volatile sig_atomic_t g_vm_signal;

static void on_stop(int sig)
{
    int saved = errno;
    g_vm_signal = sig;
    if (g_vm_child > 0)
        kill(g_vm_child, SIGKILL); /* the guest is disposable: nothing in it outlives the run */
    errno = saved;
}

int vm_wanted(const options *o, const payload *p, const char *prog)
{
    return o->vm || (p->flags & FOOTER_FLAG_VM) || strncmp(prog, "oci2vm", 6) == 0;
}

/* Namespace-mode features a VM run would silently drop: refuse them instead. */
static int check_flags(const options *o, oerr *e)
{
    const char *bad = o->volumes.n            ? "-v/--volume"
                      : o->secrets.n          ? "--secret"
                      : o->tmpfs.n            ? "--tmpfs"
                      : o->ssh_agent          ? "--ssh-agent"
                      : o->read_only          ? "--read-only"
                      : o->overlay_persist    ? "--overlay-persist"
                      : o->dns.n || o->dns_search.n ? "--dns/--dns-search"
                      : o->add_hosts.n        ? "--add-host"
                      : o->publish.n          ? "-p/--publish"
                      : o->net_helper         ? "--net slirp/pasta"
                      : o->net_join_pid || o->ipc_join_pid ? "--net/--ipc container:PID"
                      : o->ulimits.n          ? "--ulimit"
                      : o->limits.pids        ? "--pids-limit"
                      : o->cap_drop.n || o->cap_add.n ? "--cap-drop/--cap-add"
                      : o->seccomp_profile    ? "--seccomp-profile"
                      : o->security_opts.n    ? "--security-opt"
                      : o->devices.n          ? "--device"
                      : o->tty                ? "-t/--tty"
                      : o->interactive        ? "-i/--interactive"
                      : o->detach             ? "-d/--detach"
                      : o->name               ? "--name"
                                              : NULL;
    if (bad)
        return oerr_set(e, "%s is not supported with --vm (this loader's VM mode runs a command with its output "
                           "and exit status only): drop it, or run without --vm",
                        bad);
    return 0;
}

/* The first executable `name` on $PATH (out: its path). */
static int path_lookup(const char *name, char *out, size_t sz)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *s = path; *s;) {
        const char *c = strchr(s, ':');
        size_t n = c ? (size_t)(c - s) : strlen(s);
        if (n && (size_t)snprintf(out, sz, "%.*s/%s", (int)n, s, name) < sz && access(out, X_OK) == 0)
            return 0;
        s += n + (c ? 1 : 0);
    }
    return -1;
}

static int find_vmm(const options *o, const char *arch, char *out, size_t sz, oerr *e)
{
    const char *v = o->vmm ? o->vmm : "qemu";
    if (strcmp(v, "cloud-hypervisor") == 0 || strcmp(v, "libkrun") == 0 || strcmp(v, "krun") == 0 ||
        strcmp(v, "firecracker") == 0)
        return oerr_set(e, "--vmm %s is not available in this build (only qemu is): use --vmm qemu (the default)",
                        v);
    if (strchr(v, '/')) {
        if (access(v, X_OK) < 0)
            return oerr_sys(e, errno, "give the path of a qemu-system binary", "--vmm %s", v);
        snprintf(out, sz, "%s", v);
        return 0;
    }
    char name[64];
    if (strcmp(v, "qemu") == 0)
        snprintf(name, sizeof name, "qemu-system-%s", arch);
    else if (strncmp(v, "qemu-system-", 12) == 0)
        snprintf(name, sizeof name, "%s", v);
    else
        return oerr_set(e, "--vmm %s is not a known VMM: use --vmm qemu or the path of a qemu-system binary", v);
    if (path_lookup(name, out, sz) < 0)
        return oerr_set(e, "--vm needs %s on $PATH: install qemu (Debian/Ubuntu: apt-get install qemu-system-x86) "
                           "or give --vmm PATH",
                        name);
    return 0;
}

/* "kvm" or "tcg" for qemu's -accel, from --vm-accel / $OCI2BIN_VM_ACCEL (default kvm: required). */
static int pick_accel(const options *o, const char **accel, oerr *e)
{
    const char *want = o->vm_accel ? o->vm_accel : getenv("OCI2BIN_VM_ACCEL");
    if (!want || !*want)
        want = "kvm";
    if (strcmp(want, "tcg") == 0) {
        *accel = "tcg";
        return 0;
    }
    if (strcmp(want, "kvm") != 0 && strcmp(want, "auto") != 0)
        return oerr_set(e, "OCI2BIN_VM_ACCEL=%s is not known: use kvm, tcg or auto", want);
    const char *why = NULL;
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int err = errno;
    if (fd >= 0)
        close(fd);
    if (fd < 0 && (err == EACCES || err == EPERM))
        why = "--vm needs /dev/kvm, which this user cannot open (add yourself to group kvm)";
    else if (fd < 0)
        why = "--vm needs /dev/kvm, which this machine does not have (enable KVM / nested virtualization)";
    else if (access("/sys/module/kvm_pvm", F_OK) == 0)
        why = "/dev/kvm here is PVM (paravirtual nested KVM), which cannot boot a standard kernel";
    if (!why) {
        *accel = "kvm";
        return 0;
    }
    if (strcmp(want, "auto") == 0) {
        dbg("%s: using software emulation (tcg)", why);
        *accel = "tcg";
        return 0;
    }
    return oerr_set(e, "%s: use --vm-accel tcg (software emulation, much slower) or --vm-accel auto", why);
}

static uint64_t meta_u64(const payload *p, const char *key, uint64_t dflt)
{
    uint64_t v;
    const json *j = p->meta ? json_get(p->meta, key) : NULL;
    return j && json_u64(j, &v) == 0 ? v : dflt;
}

/* The embedded kernel section (metadata "vm_kernel": {offset, size, sha256}), copied to `dst` with its
 * digest checked. 1 if the file has none. */
static int write_embedded_kernel(const payload *p, const char *dst, oerr *e)
{
    const json *k = p->meta ? json_get(p->meta, "vm_kernel") : NULL;
    if (!k)
        return 1;
    uint64_t off, size;
    const char *hex = json_str(json_get(k, "sha256"));
    if (json_u64(json_get(k, "offset"), &off) || json_u64(json_get(k, "size"), &size) || !hex ||
        strlen(hex) != 64 || off < 512 || size == 0 || off > p->tar_end || size > p->tar_end - off)
        return oerr_set(e, "the embedded VM kernel's metadata is corrupt: rebuild the binary with --kernel");
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return oerr_sys(e, errno, NULL, "cannot create %s", dst);
    oci2bin_sha256_ctx ctx;
    oci2bin_sha256_init(&ctx);
    static char buf[1 << 20];
    for (uint64_t done = 0; done < size;) {
        size_t n = size - done < sizeof buf ? (size_t)(size - done) : sizeof buf;
        if (pread_all(p->fd, buf, n, off + done) < 0 || write_all(out, buf, n) < 0) {
            int err = errno;
            close(out);
            return oerr_sys(e, err, NULL, "cannot copy the embedded VM kernel to %s", dst);
        }
        oci2bin_sha256_update(&ctx, buf, n);
        done += n;
    }
    close(out);
    unsigned char d[32];
    char got[65];
    oci2bin_sha256_final(&ctx, d);
    for (int i = 0; i < 32; i++)
        snprintf(got + 2 * i, 3, "%02x", d[i]);
    if (strcmp(got, hex) != 0)
        return oerr_set(e, "the embedded VM kernel does not match its sha256 (%.12s, expected %.12s): the file is "
                           "corrupt, rebuild it",
                        got, hex);
    return 0;
}

/* The loader ELF as it was before the writer embedded it (program headers' p_offset -= L_OFF). */
static int loader_elf(const payload *p, char **out, size_t *len, oerr *e)
{
    uint64_t size = meta_u64(p, "loader_size", 0), off = p->loader_off;
    if (size < 64 || size > (64u << 20) || off > p->tar_end || size > p->tar_end - off)
        return oerr_set(e, "the file's loader_size metadata is wrong: rebuild the binary");
    char *b = xmalloc(size);
    if (pread_all(p->fd, b, size, off) < 0) {
        free(b);
        return oerr_sys(e, errno, NULL, "cannot read the loader from this file");
    }
    uint64_t phoff;
    uint16_t phentsize, phnum;
    memcpy(&phoff, b + 32, 8);
    memcpy(&phentsize, b + 54, 2);
    memcpy(&phnum, b + 56, 2);
    if (memcmp(b, "\x7f" "ELF", 4) != 0 || phentsize != 56 || phoff > size || (uint64_t)phnum * 56 > size - phoff) {
        free(b);
        return oerr_set(e, "the embedded loader is not an ELF64 file: the binary is corrupt");
    }
    for (unsigned i = 0; i < phnum; i++) {
        uint64_t po;
        memcpy(&po, b + phoff + i * 56u + 8, 8);
        po -= off;
        memcpy(b + phoff + i * 56u + 8, &po, 8);
    }
    *out = b;
    *len = size;
    return 0;
}

typedef struct vmrun {
    const options *o;
    const payload *p;
    const image *img;
    char rundir[4096];
    idmap_info idm;
    int use_cache;
    cache cache;
    int sync_rd, sync_wr;
    int err_wr;           /* prep -> loader: its oerr, if it fails */
    int initrd_fd;
    char *init_elf;
    size_t init_len;
    char *cfg;
    size_t cfg_len;
} vmrun;

/* In the user namespace: the rootfs, then the initramfs. Returns the process's exit status. */
static int prep_child(vmrun *v)
{
    oerr e = {0};
    char c = 0, root[4200];
    close(v->sync_wr);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        dbg("PR_SET_PDEATHSIG: %s", strerror(errno));
    while (read(v->sync_rd, &c, 1) < 0 && errno == EINTR)
        ;
    if (c != '1' && c != 'F')
        return EXIT_SETUP; /* the loader said why */
    if (c == '1' && !v->idm.single_id) { /* fell back to the single-id map: the cache key no longer fits */
        v->idm.single_id = 1;
        v->use_cache = 0;
    }
    int rootfd = -1;
    if (v->use_cache) {
        if (cache_ensure(&v->cache, v->p, v->img, !v->idm.single_id, v->idm.single_id, &e))
            goto fail;
        snprintf(root, sizeof root, "%s", v->cache.entry);
    } else {
        snprintf(root, sizeof root, "%s/vm-rootfs", v->rundir);
        if (mounts_private_tmpfs(root, &e))
            goto fail;
    }
    rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        oerr_sys(&e, errno, NULL, "cannot open %s", root);
        goto fail;
    }
    if (!v->use_cache) {
        dbg("extracting %zu layers into a private tmpfs", v->img->n_layers);
        if (rootfs_extract(v->p, v->img, rootfd, !v->idm.single_id, &e) ||
            (v->idm.single_id && patch_single_id(rootfd, &e)))
            goto fail;
    }
    double t0 = now_ms();
    cpio_out *cp = xmalloc(sizeof *cp);
    cpio_init(cp, v->initrd_fd);
    int rc = cpio_add_tree(cp, rootfd, &e) ||
             cpio_add_data(cp, VM_INIT_PATH, 0755, v->init_elf, v->init_len, &e) ||
             cpio_add_data(cp, VM_CFG_PATH, 0600, v->cfg, v->cfg_len, &e) || cpio_finish(cp, &e);
    dbg("initramfs: %zu entries, %llu bytes in %.0f ms", cp->n_entries, (unsigned long long)cp->pos,
        now_ms() - t0);
    cpio_free(cp);
    free(cp);
    close(rootfd);
    if (rc == 0)
        return 0;
fail:
    if (!e.status)
        e.status = EXIT_SETUP;
    if (write_all(v->err_wr, &e, sizeof e) < 0)
        oerr_print(&e);
    return e.status;
}

/* Builds rundir/vm-initrd from the image's rootfs (in a user namespace, like a container's set-up). */
static int build_initramfs(vmrun *v, oerr *e)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/vm-initrd", v->rundir);
    v->initrd_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (v->initrd_fd < 0)
        return oerr_sys(e, errno, NULL, "cannot create %s", path);
    snprintf(path, sizeof path, "%s/vm-rootfs", v->rundir);
    if (mkdir(path, 0700) < 0)
        return oerr_sys(e, errno, NULL, "cannot create %s", path);
    ns_plan_maps(&v->idm);
    v->cache.lockfd = -1;
    if (!v->o->no_cache) {
        oerr ce = {0};
        char key[72];
        cache_key_digest(v->p->config_digest, v->img, key);
        v->use_cache = cache_open(&v->cache, v->o, key, v->idm.mode, &ce) == 0;
        if (!v->use_cache)
            warnmsg("%s; running without the rootfs cache", ce.msg);
    }
    int fds[2], errp[2];
    if (pipe2(errp, O_CLOEXEC) < 0)
        return oerr_sys(e, errno, NULL, "pipe");
    if (pipe2(fds, O_CLOEXEC) < 0) {
        close(errp[0]);
        close(errp[1]);
        return oerr_sys(e, errno, NULL, "pipe");
    }
    v->sync_rd = fds[0], v->sync_wr = fds[1], v->err_wr = errp[1];
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        close(errp[0]);
        _exit(prep_child(v));
    }
    close(v->sync_rd);
    close(errp[1]);
    if (pid < 0) {
        close(errp[0]);
        close(v->sync_wr);
        return oerr_sys(e, errno, ns_userns_hint(errno), "cannot create a user namespace for the VM's rootfs");
    }
    g_vm_child = pid;
    if (g_vm_signal)
        kill(pid, SIGKILL);
    int rc = ns_write_maps(pid, &v->idm, e);
    if (rc == 0 && write_all(v->sync_wr, v->idm.single_id ? "1" : "F", 1) < 0)
        rc = oerr_sys(e, errno, NULL, "cannot start the VM's rootfs preparation");
    close(v->sync_wr);
    if (rc)
        kill(pid, SIGKILL);
    oerr ce = {0};
    ssize_t got;
    while ((got = read(errp[0], &ce, sizeof ce)) < 0 && errno == EINTR)
        ;
    close(errp[0]);
    int st = wait_exit_status(pid);
    g_vm_child = 0;
    if (rc)
        return -1;
    if (g_vm_signal)
        return oerr_setst(e, 128 + g_vm_signal, "stopped by signal %d while preparing the VM", (int)g_vm_signal);
    if (got == (ssize_t)sizeof ce) {
        ce.msg[sizeof ce.msg - 1] = 0;
        *e = ce;
        return -1;
    }
    if (st)
        return oerr_setst(e, st, "preparing the VM's rootfs failed (status %d): rerun with --debug", st);
    /* the guest has its own copy now: let pruners at the cache entry */
    cache_close(&v->cache);
    v->cache.lockfd = -1;
    return 0;
}

/* "a,b" -> "a,,b" (qemu option values) */
static char *qemu_escape(const char *s)
{
    size_t n = 0;
    for (const char *c = s; *c; c++)
        n += *c == ',' ? 2 : 1;
    char *out = xmalloc(n + 1), *o = out;
    for (const char *c = s; *c; c++) {
        *o++ = *c;
        if (*c == ',')
            *o++ = ',';
    }
    *o = 0;
    return out;
}

static const char *const PORTS[] = {"vm-out", "vm-err", "vm-ctl", "vm-con"};
#define N_PORTS 4

/* Reads whatever is available on port i: stdout/stderr are passed on, control and console are kept.
 * -1 once our stdout is a closed pipe (EPIPE; SIGPIPE is ignored while the VM runs). */
static int drain(int fd, int i, char *ctl, size_t *ctl_n, char *con, size_t *con_n)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        if (i == 0 || i == 1) {
            if (write_all(i == 0 ? STDOUT_FILENO : STDERR_FILENO, buf, (size_t)n) < 0 && errno == EPIPE)
                return i == 0 ? -1 : 0;
        } else if (i == 2) {
            size_t k = (size_t)n < 255 - *ctl_n ? (size_t)n : 255 - *ctl_n;
            memcpy(ctl + *ctl_n, buf, k);
            *ctl_n += k;
            ctl[*ctl_n] = 0;
        } else {
            if (g_debug)
                write_all(STDERR_FILENO, buf, (size_t)n);
            if ((size_t)n >= CONSOLE_KEEP) {
                memcpy(con, buf + n - CONSOLE_KEEP, CONSOLE_KEEP);
                *con_n = CONSOLE_KEEP;
            } else {
                if (*con_n + (size_t)n > CONSOLE_KEEP) {
                    size_t drop = *con_n + (size_t)n - CONSOLE_KEEP;
                    memmove(con, con + drop, *con_n - drop);
                    *con_n -= drop;
                }
                memcpy(con + *con_n, buf, (size_t)n);
                *con_n += (size_t)n;
            }
        }
    }
}

static int boot(vmrun *v, const char *qemu, const char *accel, const char *kernel, unsigned mem_mb, unsigned cpus,
                oerr *e)
{
    int pfd[N_PORTS];
    char path[4200];
    for (int i = 0; i < N_PORTS; i++)
        pfd[i] = -1;
    strv argv = {0};
    int rc = -1;
    for (int i = 0; i < N_PORTS; i++) {
        snprintf(path, sizeof path, "%s/%s.in", v->rundir, PORTS[i]);
        if (mkfifo(path, 0600) < 0) {
            oerr_sys(e, errno, NULL, "cannot create %s", path);
            goto out;
        }
        snprintf(path, sizeof path, "%s/%s.out", v->rundir, PORTS[i]);
        if (mkfifo(path, 0600) < 0 || (pfd[i] = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
            oerr_sys(e, errno, NULL, "cannot create %s", path);
            goto out;
        }
    }
    strv_push(&argv, xstrdup(qemu));
    const char *fixed[] = {"-M", "pc", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                           "-monitor", "none", "-parallel", "none"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        strv_push(&argv, xstrdup(fixed[i]));
    strv_push(&argv, xstrdup("-accel"));
    strv_push(&argv, xstrdup(accel));
    strv_push(&argv, xstrdup("-cpu"));
    strv_push(&argv, xstrdup(strcmp(accel, "kvm") == 0 ? "host" : "max"));
    strv_push(&argv, xstrdup("-m"));
    strv_push(&argv, xasprintf("%u", mem_mb));
    strv_push(&argv, xstrdup("-smp"));
    strv_push(&argv, xasprintf("%u", cpus));
    strv_push(&argv, xstrdup("-kernel"));
    strv_push(&argv, xstrdup(kernel));
    strv_push(&argv, xstrdup("-initrd"));
    strv_push(&argv, xasprintf("%s/vm-initrd", v->rundir));
    strv_push(&argv, xstrdup("-append"));
    strv_push(&argv, xasprintf("console=" VM_CONSOLE " rdinit=/" VM_INIT_PATH " OCI2BIN_VM_INIT=1 panic=-1 %s",
                               g_debug ? "OCI2BIN_DEBUG=1" : "quiet"));
    for (int i = 0; i < N_PORTS; i++) {
        snprintf(path, sizeof path, "%s/%s", v->rundir, PORTS[i]);
        char *esc = qemu_escape(path);
        strv_push(&argv, xstrdup("-chardev"));
        strv_push(&argv, xasprintf("pipe,id=p%d,path=%s", i, esc));
        strv_push(&argv, xstrdup("-serial"));
        strv_push(&argv, xasprintf("chardev:p%d", i));
        free(esc);
    }
    if (g_debug) {
        char *line = xstrdup("");
        for (size_t i = 0; i < argv.n; i++) {
            char *n = xasprintf("%s%s%s", line, i ? " " : "", argv.v[i]);
            free(line);
            line = n;
        }
        dbg("%s", line);
        free(line);
    }
    double t0 = now_ms();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* the loader died before the line above: nobody would stop this VM */
            _exit(EXIT_SETUP);
        setpgid(0, 0); /* terminal signals reach the loader only, which stops qemu itself (no qemu chatter) */
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC); /* dup2 gives stdin without the flag */
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL); /* ignored by the loader, and SIG_IGN survives exec */
        execv(qemu, argv.v);
        fprintf(stderr, "oci2bin: cannot run %s: %s: check --vmm\n", qemu, strerror(errno));
        _exit(EXIT_SETUP);
    }
    if (pid < 0) {
        oerr_sys(e, errno, NULL, "cannot start %s", qemu);
        goto out;
    }
    g_vm_child = pid;
    if (g_vm_signal)
        kill(pid, SIGKILL);
    char ctl[256] = "", con[CONSOLE_KEEP];
    size_t ctl_n = 0, con_n = 0;
    int st = 0, done = 0, out_closed = 0;
    while (!done) {
        struct pollfd p[N_PORTS];
        for (int i = 0; i < N_PORTS; i++)
            p[i] = (struct pollfd){pfd[i], POLLIN, 0};
        poll(p, N_PORTS, 50);
        pid_t w = waitpid(pid, &st, WNOHANG);
        done = w == pid || (w < 0 && errno != EINTR);
        for (int i = 0; i < N_PORTS; i++)
            if ((done || (p[i].revents & POLLIN)) && drain(pfd[i], i, ctl, &ctl_n, con, &con_n) < 0 &&
                !out_closed++)
                kill(pid, SIGKILL); /* nobody reads the output any more: end like a command killed by SIGPIPE */
    }
    g_vm_child = 0;
    dbg("VM ran %.0f ms (qemu exit %d)", now_ms() - t0, exit_status_of(st));
    if (g_vm_signal) {
        rc = oerr_setst(e, 128 + g_vm_signal, "the VM was stopped by signal %d", (int)g_vm_signal);
        goto out;
    }
    if (out_closed) {
        rc = 128 + SIGPIPE; /* silently, as a shell reports a pipeline's early reader */
        goto out;
    }
    const char *tag = strstr(ctl, VM_EXIT_TAG);
    int status;
    if (tag && sscanf(tag + strlen(VM_EXIT_TAG), "%d", &status) == 1 && status >= 0 && status <= 255) {
        rc = status;
        goto out;
    }
    if (con_n) {
        fprintf(stderr, "oci2bin: the VM's console (last lines):\n");
        fwrite(con, 1, con_n, stderr);
        if (con[con_n - 1] != '\n')
            fputc('\n', stderr);
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        oerr_set(e, "%s failed (exit status %d) before the command ran: see its message above", qemu,
                 WEXITSTATUS(st));
    else
        oerr_set(e, "the VM stopped without reporting the command's exit status: check the kernel (--kernel) "
                    "and --memory (the image is unpacked into the VM's RAM); --debug shows the console");
out:
    for (int i = 0; i < N_PORTS; i++)
        if (pfd[i] >= 0)
            close(pfd[i]);
    strv_free(&argv);
    return rc;
}

/* Removes what this run put in the run dir, then the dir (rundir.c sweeps a killed run's leftovers). */
static void cleanup(vmrun *v)
{
    char path[4200];
    const char *files[] = {"vm-initrd", "vm-kernel"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", v->rundir, files[i]);
        unlink(path);
    }
    for (int i = 0; i < N_PORTS; i++) {
        snprintf(path, sizeof path, "%s/%s.in", v->rundir, PORTS[i]);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s.out", v->rundir, PORTS[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/vm-rootfs", v->rundir);
    rmdir(path);
    if (rundir_remove(v->rundir) < 0)
        warnmsg("cannot remove %s: %s", v->rundir, strerror(errno));
}

int vm_run(const options *o, const payload *p, const image *img, exec_plan *plan, const char *hostname, oerr *e)
{
    vmrun v = {.o = o, .p = p, .img = img, .initrd_fd = -1, .sync_rd = -1, .sync_wr = -1};
    v.cache.lockfd = -1;
    struct utsname un;
    char qemu[4096], kernel[4200];
    const char *accel;
    if (check_flags(o, e))
        return -1;
    if (uname(&un) < 0 || strcmp(un.machine, "x86_64") != 0)
        return oerr_set(e, "--vm is only supported on x86_64 hosts in this build (this is %s): run without --vm",
                        un.machine);
    const char *kpath = o->vm_kernel ? o->vm_kernel : getenv("OCI2BIN_VM_KERNEL");
    const json *kmeta = p->meta ? json_get(p->meta, "vm_kernel") : NULL;
    if (kpath && *kpath) {
        struct stat st;
        if (stat(kpath, &st) < 0 || !S_ISREG(st.st_mode) || access(kpath, R_OK) < 0)
            return oerr_sys(e, errno ? errno : EINVAL, "give a readable kernel image (vmlinuz/bzImage)",
                            "--kernel %s", kpath);
        if (!realpath(kpath, kernel))
            return oerr_sys(e, errno, NULL, "--kernel %s", kpath);
    } else if (!kmeta) {
        return oerr_set(e, "this binary has no embedded VM kernel: build it with `oci2bin --vm --kernel VMLINUZ "
                           "...`, or give --kernel PATH (or $OCI2BIN_VM_KERNEL)");
    }
    if (find_vmm(o, un.machine, qemu, sizeof qemu, e) || pick_accel(o, &accel, e))
        return -1;
    uint64_t mem_mb = o->limits.memory ? (o->limits.memory + (1u << 20) - 1) >> 20
                                       : meta_u64(p, "vm_mem_mb", VM_DEFAULT_MEM_MB);
    uint64_t cpus = o->limits.cpu_quota ? (o->limits.cpu_quota + CG_CPU_PERIOD - 1) / CG_CPU_PERIOD
                                        : meta_u64(p, "vm_cpus", VM_DEFAULT_CPUS);
    if (mem_mb < VM_MIN_MEM_MB || mem_mb > (1u << 20))
        return oerr_set(e, "--memory %lluM is not a VM size: give 64m to 1t", (unsigned long long)mem_mb);
    if (cpus < 1 || cpus > 255)
        return oerr_set(e, "%llu vCPUs: give --cpus 1 to 255", (unsigned long long)cpus);

    sigset_t block, old;
    sigemptyset(&block);
    for (size_t i = 0; i < N_STOP; i++)
        sigaddset(&block, STOP_SIGNALS[i]);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct sigaction sa = {0}, olds[N_STOP], old_pipe, ign = {0};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_STOP; i++)
        sigaction(STOP_SIGNALS[i], &sa, &olds[i]);
    /* the loader relays the guest's output: a closed stdout must be an EPIPE it handles (stop the VM, clean
     * the run dir), not a SIGPIPE that kills it with the initramfs left in TMPDIR */
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old_pipe);
    int lockfd = -1, rc = -1;
    if (rundir_create(rundir_base(), v.rundir, sizeof v.rundir, &lockfd, e)) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        return -1;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    double t0 = now_ms();
    if (!(kpath && *kpath)) {
        snprintf(kernel, sizeof kernel, "%s/vm-kernel", v.rundir);
        if (write_embedded_kernel(p, kernel, e))
            goto out;
    }
    if (loader_elf(p, &v.init_elf, &v.init_len, e))
        goto out;
    v.cfg = vm_cfg_encode(plan, hostname, &v.cfg_len);
    if (build_initramfs(&v, e))
        goto out;
    struct stat ist;
    if (fstat(v.initrd_fd, &ist) < 0) {
        oerr_sys(e, errno, NULL, "cannot stat the VM's initramfs");
        goto out;
    }
    close(v.initrd_fd);
    v.initrd_fd = -1;
    /* The kernel unpacks the initramfs into a tmpfs limited to half the RAM it manages, while the initramfs
     * itself is still held (reserved) in RAM: ~3.2x its size plus the kernel's ~96 MiB (measured: a 135 MB
     * rootfs needs 490m, fails at 440m). */
    uint64_t need_mb = (uint64_t)ist.st_size * 16 / 5 / (1u << 20) + 96;
    if (mem_mb < need_mb) {
        if (o->limits.memory || meta_u64(p, "vm_mem_mb", 0)) {
            oerr_set(e, "--memory %lluM is too small for this image: its rootfs (%llu MiB) lives in the VM's RAM: "
                        "give --memory %llum or more",
                     (unsigned long long)mem_mb, (unsigned long long)(ist.st_size >> 20),
                     (unsigned long long)need_mb);
            goto out;
        }
        dbg("raising the VM's RAM from %llu to %llu MiB for a %llu MiB rootfs", (unsigned long long)mem_mb,
            (unsigned long long)need_mb, (unsigned long long)(ist.st_size >> 20));
        mem_mb = need_mb;
    }
    dbg("VM prepared in %.0f ms: %s, accel %s, %llu MiB, %llu vCPUs, kernel %s", now_ms() - t0, qemu, accel,
        (unsigned long long)mem_mb, (unsigned long long)cpus, kernel);
    rc = boot(&v, qemu, accel, kernel, (unsigned)mem_mb, (unsigned)cpus, e);
out:
    if (v.initrd_fd >= 0)
        close(v.initrd_fd);
    cache_close(&v.cache);
    free(v.init_elf);
    free(v.cfg);
    cleanup(&v);
    close(lockfd);
    for (size_t i = 0; i < N_STOP; i++)
        sigaction(STOP_SIGNALS[i], &olds[i], NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    return rc;
}
