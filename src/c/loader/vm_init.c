/* PID 1 of the --vm guest (see vm_init.h). The rootfs is the kernel's tmpfs root, unpacked from the
 * initramfs the host loader wrote; this process is the loader itself (/.oci2bin-vm-init). */
#define _GNU_SOURCE
#include "vm_init.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "exec.h"
#include "net.h"
#include "vm_cfg.h"

int vm_init_wanted(void)
{
    const char *v = getenv("OCI2BIN_VM_INIT");
    return getpid() == 1 && v && strcmp(v, "1") == 0;
}

static void mount_one(const char *src, const char *dir, const char *type, unsigned long flags, const char *opts)
{
    mkdir(dir, 0755);
    if (mount(src, dir, type, flags, opts) < 0 && errno != EBUSY)
        warnmsg("vm init: cannot mount %s on %s: %s", type, dir, strerror(errno));
}

/* A serial port as a plain byte pipe: no CR/LF translation, no echo, no signals from its bytes. */
static int open_raw(const char *path)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct termios t;
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        cfsetspeed(&t, B115200);
        tcsetattr(fd, TCSANOW, &t);
    }
    return fd;
}

__attribute__((noreturn)) static void power_off(int ctl, int status)
{
    char line[32];
    int n = snprintf(line, sizeof line, VM_EXIT_TAG "%d\n", status);
    if (ctl >= 0) {
        write_all(ctl, line, (size_t)n);
        tcdrain(ctl);
    }
    tcdrain(STDOUT_FILENO);
    tcdrain(STDERR_FILENO);
    sync();
    reboot(RB_POWER_OFF);
    reboot(RB_AUTOBOOT); /* qemu runs with -no-reboot: a reset ends it too */
    for (;;)
        pause();
}

static int load_cfg(vm_cfg *c, oerr *e)
{
    char *buf;
    size_t len;
    if (read_small_file(AT_FDCWD, "/" VM_CFG_PATH, 16u << 20, &buf, &len, e))
        return -1;
    int rc = vm_cfg_decode(buf, len, c, e);
    free(buf);
    /* the container sees its image's rootfs, not the VM plumbing (unlinking a running binary is fine) */
    unlink("/" VM_CFG_PATH);
    unlink("/" VM_INIT_PATH);
    return rc;
}

void vm_init_main(void)
{
    oerr e = {0};
    const char *dbgenv = getenv("OCI2BIN_DEBUG");
    g_debug = dbgenv && strcmp(dbgenv, "1") == 0;
    mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
    mount_one("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    /* without a /dev/console in the initramfs the kernel started us with no fds 0-2: fill them first */
    int fd;
    while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd < 3)
        ;
    if (fd >= 3)
        close(fd);
    int out = open_raw(VM_TTY_OUT), err = open_raw(VM_TTY_ERR), ctl = open_raw(VM_TTY_CTL);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || dup2(null, STDIN_FILENO) < 0 || (out >= 0 && dup2(out, STDOUT_FILENO) < 0) ||
        (err >= 0 && dup2(err, STDERR_FILENO) < 0)) {
        warnmsg("vm init: cannot set up the command's stdio: %s", strerror(errno));
        power_off(ctl, EXIT_SETUP);
    }
    vm_cfg c;
    if (load_cfg(&c, &e)) {
        oerr_print(&e);
        power_off(ctl, EXIT_SETUP);
    }
    if (c.hostname && sethostname(c.hostname, strlen(c.hostname)) < 0)
        dbg("sethostname: %s", strerror(errno));
    if (net_loopback_up(&e)) {
        dbg("%s", e.msg);
        e.msg[0] = 0;
    }
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        exec_plan pl = {0};
        pl.argv = c.argv;
        pl.env = c.env;
        pl.workdir = c.workdir;
        pl.user = c.user;
        pl.life_fd = -1;
        /* the VM is the isolation boundary: the command is root of its own kernel (no caps/seccomp layer) */
        exec_run(&pl, 0, &e);
        oerr_print(&e);
        _exit(e.status ? e.status : EXIT_SETUP);
    }
    if (pid < 0) {
        warnmsg("vm init: cannot start the command: %s", strerror(errno));
        power_off(ctl, EXIT_SETUP);
    }
    /* PID 1: reap everything; the container ends with its main process (docker semantics) */
    int status = EXIT_SETUP;
    for (;;) {
        int st;
        pid_t w = wait(&st);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (w == pid) {
            status = exit_status_of(st);
            break;
        }
    }
    kill(-1, SIGKILL);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    power_off(ctl, status);
}
