/* The pty is allocated from the host's /dev/ptmx by the loader (the container's own devpts instance
 * cannot be reached from the host); the container's PID 1 makes the slave its controlling terminal. */
#define _GNU_SOURCE
#include "tty.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static volatile sig_atomic_t g_winch;

static void on_winch(int sig)
{
    (void)sig;
    g_winch = 1;
}

static void copy_winsize(int to)
{
    struct winsize ws;
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0)
        if (ioctl(to, TIOCSWINSZ, &ws) < 0)
            dbg("TIOCSWINSZ: %s", strerror(errno));
}

int tty_open(tty *t, oerr *e)
{
    t->master = t->slave = -1;
    t->raw = 0;
    char name[128];
    t->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (t->master < 0)
        return oerr_sys(e, errno, "check that /dev/ptmx and /dev/pts are usable", "-t: cannot allocate a pty");
    if (grantpt(t->master) < 0 || unlockpt(t->master) < 0 || ptsname_r(t->master, name, sizeof name) != 0) {
        int err = errno;
        tty_close(t);
        return oerr_sys(e, err, NULL, "-t: cannot set up the pty");
    }
    t->slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (t->slave < 0) {
        int err = errno;
        tty_close(t);
        return oerr_sys(e, err, NULL, "-t: cannot open %s", name);
    }
    copy_winsize(t->master);
    return 0;
}

int tty_attach(int slave, oerr *e)
{
    if (setsid() < 0)
        return oerr_sys(e, errno, NULL, "-t: setsid failed");
    if (ioctl(slave, TIOCSCTTY, 0) < 0)
        return oerr_sys(e, errno, NULL, "-t: cannot make the pty the controlling terminal");
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0)
            return oerr_sys(e, errno, NULL, "-t: cannot attach the pty");
    if (slave > 2)
        close(slave);
    return 0;
}

void tty_relay(tty *t, int forward_stdin)
{
    if (forward_stdin && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
        struct termios raw = t->saved;
        cfmakeraw(&raw);
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
            t->raw = 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_winch;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGWINCH, &sa, NULL);
    char buf[8192];
    int in_open = forward_stdin;
    for (;;) {
        if (g_winch) {
            g_winch = 0;
            copy_winsize(t->master);
        }
        struct pollfd p[2] = {{t->master, POLLIN, 0}, {in_open ? STDIN_FILENO : -1, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents) {
            ssize_t n = read(t->master, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) /* EIO: every slave fd is closed, the container is gone */
                break;
            if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
                dbg("-t: writing the output: %s", strerror(errno));
        }
        if (in_open && p[1].revents) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                struct termios tio;
                char eof = 4; /* ^D */
                if (tcgetattr(t->master, &tio) == 0)
                    eof = (char)tio.c_cc[VEOF];
                if (write_all(t->master, &eof, 1) < 0)
                    dbg("-t: sending EOF: %s", strerror(errno));
                in_open = 0;
            } else if (write_all(t->master, buf, (size_t)n) < 0) {
                in_open = 0;
            }
        }
    }
    if (t->raw && tcsetattr(STDIN_FILENO, TCSANOW, &t->saved) < 0)
        dbg("restoring the terminal: %s", strerror(errno));
    t->raw = 0;
}

void tty_close(tty *t)
{
    if (t->master >= 0)
        close(t->master);
    if (t->slave >= 0)
        close(t->slave);
    t->master = t->slave = -1;
}
