/* The pty comes from the container's own devpts instance (so `tty` inside can name it): its PID 1 opens
 * /dev/ptmx after pivot_root, keeps the slave as its controlling terminal and hands the master to the
 * loader over a socketpair (SCM_RIGHTS); the loader relays between the master and its own stdio. */
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
#include <sys/socket.h>
#include <sys/uio.h>
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
    t->master = -1;
    t->raw = 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t->sock) < 0) {
        t->sock[0] = t->sock[1] = -1;
        return oerr_sys(e, errno, NULL, "-t: socketpair");
    }
    return 0;
}

static int attach(int slave, oerr *e)
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

int tty_child(tty *t, oerr *e)
{
    close(t->sock[0]);
    t->sock[0] = -1;
    char name[128];
    int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0)
        return oerr_sys(e, errno, "the container has no usable /dev/pts", "-t: cannot allocate a pty");
    int slave = -1;
    if (unlockpt(m) < 0 || ptsname_r(m, name, sizeof name) != 0 ||
        (slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
        int err = errno;
        close(m);
        return oerr_sys(e, err, NULL, "-t: cannot set up the pty");
    }
    char byte = 't';
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &m, sizeof(int));
    ssize_t n;
    while ((n = sendmsg(t->sock[1], &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    int err = errno;
    close(m);
    close(t->sock[1]);
    t->sock[1] = -1;
    if (n != 1) {
        close(slave);
        return oerr_sys(e, err, NULL, "-t: cannot hand the pty to the loader");
    }
    return attach(slave, e);
}

int tty_receive(tty *t, oerr *e)
{
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    ssize_t n;
    while ((n = recvmsg(t->sock[0], &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
        return oerr_sys(e, n < 0 ? errno : EPROTO, NULL, "-t: the container did not hand over its pty");
    memcpy(&t->master, CMSG_DATA(c), sizeof(int));
    copy_winsize(t->master);
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
    for (int i = 0; i < 2; i++)
        if (t->sock[i] >= 0)
            close(t->sock[i]);
    t->master = t->sock[0] = t->sock[1] = -1;
}
