/* --net slirp / --net pasta. The container is cloned into a new network namespace (as for --net none); once
 * its id maps are written the loader starts the helper for that namespace, waits until it has configured tap0
 * (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3 for both helpers), sets up the port forwards and only then
 * lets the container exec its command (container.c). The helper is the loader's child: SIGTERM when the
 * container exits; if the loader itself is killed, PR_SET_PDEATHSIG (and slirp4netns' --exit-fd) end it.
 *
 * slirp4netns: --configure --mtu=65520 --disable-host-loopback (the container cannot reach the host's
 *   127.0.0.1 through 10.0.2.2), --ready-fd (written once tap0 is configured), --exit-fd, and --api-socket
 *   in the run dir for add_hostfwd requests (removed once the forwards are in place).
 * pasta: --config-net -f, slirp's address layout (-a/-n/-g), --dns-forward 10.0.2.3, --no-map-gw (no host
 *   loopback through the gateway either), -T/-U none (no namespace-to-host port mirroring), -t/-u for the
 *   forwards, and --pid pointing at a FIFO in the run dir: pasta writes its PID there "once initialisation is
 *   done", which is the readiness signal. */
#define _GNU_SOURCE
#include "net_helper.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "net_ports.h"

#define READY_TIMEOUT_MS 30000

static const char *mode_name(const options *o)
{
    return o->net_helper == NET_SLIRP ? "slirp" : "pasta";
}

static int find_on_path(const char *name, char *out, size_t sz)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        if (n && n + strlen(name) + 2 <= sz) {
            snprintf(out, sz, "%.*s/%s", (int)n, p, name);
            struct stat st;
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
                return 0;
        }
        p += n;
        if (*p == ':')
            p++;
    }
    return -1;
}

int net_helper_check(net_helper *h, const options *o, oerr *e)
{
    memset(h, 0, sizeof *h);
    h->exit_wr = h->log_fd = -1;
    if (!o->net_helper)
        return 0;
    const char *bin = o->net_helper == NET_SLIRP ? "slirp4netns" : "pasta";
    const char *pkg = o->net_helper == NET_SLIRP ? "slirp4netns" : "passt";
    if (find_on_path(bin, h->path, sizeof h->path))
        return oerr_set(e, "--net %s needs %s on PATH: apt install %s (or dnf install %s)", mode_name(o), bin, pkg,
                        pkg);
    if (access("/dev/net/tun", R_OK | W_OK) < 0) {
        if (errno == ENOENT)
            return oerr_set(e, "--net %s needs /dev/net/tun, which is missing: load the tun module (modprobe tun)",
                            mode_name(o));
        return oerr_sys(e, errno, "run as root, or have an administrator make it mode 0666 (the usual mode)",
                        "--net %s needs read/write access to /dev/net/tun", mode_name(o));
    }
    return 0;
}

/* The last non-empty line the helper printed (for error messages), "" if none. */
static void last_line(int fd, char *out, size_t sz)
{
    char buf[4096];
    out[0] = 0;
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t start = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, start);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *best = NULL;
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
        if (l[strspn(l, " \t\r")] && !strstr(l, "to syslog")) /* pasta: "Failed to send N bytes to syslog" */
            best = l;
    if (best)
        snprintf(out, sz, "%s", best);
}

static int helper_failed(net_helper *h, const options *o, const char *what, oerr *e)
{
    char line[512];
    last_line(h->log_fd, line, sizeof line);
    const char *bin = strrchr(h->path, '/') ? strrchr(h->path, '/') + 1 : h->path;
    return oerr_set(e, "--net %s: %s %s%s%s%s", mode_name(o), bin, what, line[0] ? " (" : "", line,
                    line[0] ? ")" : g_debug ? "" : ": run with --debug to see its output");
}

static pid_t spawn(net_helper *h, char **argv, const int *keep, size_t n_keep, oerr *e)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return oerr_sys(e, errno, NULL, "cannot start %s", argv[0]);
    if (pid > 0)
        return pid;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the loader blocks signals around the clone */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC); /* dup2 gives stdin without the flag */
    if (nul >= 0)
        dup2(nul, STDIN_FILENO);
    if (h->log_fd >= 0) {
        dup2(h->log_fd, STDOUT_FILENO);
        dup2(h->log_fd, STDERR_FILENO);
    } else if (nul >= 0) {
        dup2(STDERR_FILENO, STDOUT_FILENO); /* --debug: the helper talks on our stderr */
    }
    for (size_t i = 0; i < n_keep; i++)
        fcntl(keep[i], F_SETFD, 0);
    execv(h->path, argv);
    dprintf(STDERR_FILENO, "cannot execute %s: %s\n", h->path, strerror(errno));
    _exit(127);
}

/* The loader blocks its forwarded signals from before the clone until the container may exec (container.c),
 * so a Ctrl-C or SIGTERM during the wait below would only be seen after it. A pending SIGINT/SIGTERM/SIGHUP is
 * taken here instead (so that it does not kill the loader with the default action once the mask is restored,
 * before its clean-up): the start is abandoned and the loader exits 128+N. */
static int stop_signal_pending(void)
{
    static const int stop[] = {SIGINT, SIGTERM, SIGHUP};
    sigset_t pending;
    if (sigpending(&pending) < 0)
        return 0;
    for (size_t i = 0; i < sizeof stop / sizeof stop[0]; i++) {
        if (!sigismember(&pending, stop[i]))
            continue;
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, stop[i]);
        struct timespec now = {0, 0};
        sigtimedwait(&one, NULL, &now);
        return stop[i];
    }
    return 0;
}

/* Waits until fd is readable (or the helper exits, or the time is up, or a stop signal comes: errno EINTR,
 * h->stopped_by); returns what read() returned. */
static ssize_t wait_ready(net_helper *h, int fd, char *buf, size_t sz, int *exited)
{
    *exited = 0;
    for (int waited = 0; waited < READY_TIMEOUT_MS; waited += 50) {
        if ((h->stopped_by = stop_signal_pending())) {
            dbg("signal %d while %s configures " NET_HELPER_IF ": not starting the container", h->stopped_by,
                h->path);
            errno = EINTR;
            return -1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 50);
        if (r > 0) {
            ssize_t n;
            while ((n = read(fd, buf, sz)) < 0 && errno == EINTR)
                ;
            if (n < 0 && errno == EAGAIN)
                continue;
            return n;
        }
        int st;
        if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
            h->pid = 0;
            *exited = 1;
            return 0;
        }
    }
    errno = ETIMEDOUT;
    return -1;
}

static int open_log(net_helper *h, const char *rundir, oerr *e)
{
    if (g_debug)
        return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/helper.log", rundir);
    h->log_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (h->log_fd < 0)
        return oerr_sys(e, errno, NULL, "cannot create %s", path);
    unlink(path);
    return 0;
}

/* One slirp4netns API request; the reply is {"return": {...}} or {"error": {"desc": "..."}}. */
static int slirp_hostfwd(const char *sock, const port_fwd *f, const char *spec, oerr *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return oerr_sys(e, err, NULL, "-p %s: cannot reach the slirp4netns API socket", spec);
    }
    char req[256], resp[1024];
    int n = snprintf(req, sizeof req,
                     "{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"%s\", \"host_addr\": \"%s\", "
                     "\"host_port\": %u, \"guest_addr\": \"" NET_HELPER_ADDR "\", \"guest_port\": %u}}",
                     f->udp ? "udp" : "tcp", f->host_ip, f->host_port, f->ctr_port);
    size_t got = 0;
    if (write_all(fd, req, (size_t)n) < 0 || shutdown(fd, SHUT_WR) < 0) {
        int err = errno;
        close(fd);
        return oerr_sys(e, err, NULL, "-p %s: slirp4netns API request failed", spec);
    }
    for (;;) {
        ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (got += (size_t)r) == sizeof resp - 1)
            break;
    }
    close(fd);
    resp[got] = 0;
    if (strstr(resp, "\"return\""))
        return 0;
    const char *desc = strstr(resp, "\"desc\"");
    char why[256] = "no answer";
    if (desc && (desc = strchr(desc + 6, '"')))
        snprintf(why, sizeof why, "%.*s", (int)strcspn(desc + 1, "\""), desc + 1);
    return oerr_set(e, "-p %s: slirp4netns cannot publish host port %u (%s): pick a free port", spec, f->host_port,
                    why);
}

static int start_slirp(net_helper *h, const options *o, const char *pidstr, const char *rundir, oerr *e)
{
    int ready[2], ex[2];
    char api[4200] = "", a_ready[32], a_exit[32];
    if (o->publish.n) {
        snprintf(api, sizeof api, "%s/slirp.sock", rundir);
        if (strlen(api) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return oerr_set(e, "-p: the run directory %s is too long for a socket path: set a shorter TMPDIR", rundir);
    }
    if (pipe2(ready, O_CLOEXEC) < 0)
        return oerr_sys(e, errno, NULL, "pipe");
    if (pipe2(ex, O_CLOEXEC) < 0) {
        int err = errno;
        close(ready[0]);
        close(ready[1]);
        return oerr_sys(e, err, NULL, "pipe");
    }
    snprintf(a_ready, sizeof a_ready, "--ready-fd=%d", ready[1]);
    snprintf(a_exit, sizeof a_exit, "--exit-fd=%d", ex[0]);
    char *argv[16];
    int k = 0;
    argv[k++] = h->path;
    argv[k++] = "--configure";
    argv[k++] = "--mtu=65520";
    argv[k++] = "--disable-host-loopback";
    argv[k++] = a_ready;
    argv[k++] = a_exit;
    if (api[0]) {
        argv[k++] = "--api-socket";
        argv[k++] = api;
    }
    argv[k++] = (char *)pidstr;
    argv[k++] = NET_HELPER_IF;
    argv[k] = NULL;
    int keep[] = {ready[1], ex[0]};
    h->pid = spawn(h, argv, keep, 2, e);
    close(ready[1]);
    close(ex[0]);
    if (h->pid < 0) {
        h->pid = 0;
        close(ready[0]);
        close(ex[1]);
        return -1;
    }
    h->exit_wr = ex[1];
    char c = 0;
    int exited;
    ssize_t n = wait_ready(h, ready[0], &c, 1, &exited);
    int err = errno;
    close(ready[0]);
    int rc = 0;
    if (h->stopped_by)
        rc = -1;
    else if (n != 1 || c != '1')
        rc = helper_failed(h, o, exited ? "exited before tap0 was configured" : n < 0 && err == ETIMEDOUT
                                                                                 ? "did not configure tap0 in 30 s"
                                                                                 : "failed to configure tap0", e);
    for (size_t i = 0; rc == 0 && i < o->publish.n; i++) {
        port_fwd f;
        if (port_fwd_parse(o->publish.v[i], "-p", &f, e) || slirp_hostfwd(api, &f, o->publish.v[i], e))
            rc = -1;
    }
    if (api[0])
        unlink(api);
    return rc;
}

/* pasta does not report a port it cannot bind: check that the host ports are free before starting it. */
static int check_free(const port_fwd *f, const char *spec, oerr *e)
{
    int s = socket(AF_INET, (f->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (s < 0)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->host_port)};
    inet_pton(AF_INET, f->host_ip, &sa.sin_addr);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = 0;
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0)
        rc = oerr_sys(e, errno, "pick a free port", "-p %s: cannot publish host port %u", spec, f->host_port);
    close(s);
    return rc;
}

static int start_pasta(net_helper *h, const options *o, const char *pidstr, const char *rundir, oerr *e)
{
    char fifo[4200];
    strv tcp = {0}, udp = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < o->publish.n; i++) {
        port_fwd f;
        if (port_fwd_parse(o->publish.v[i], "-p", &f, e) || check_free(&f, o->publish.v[i], e)) {
            rc = -1;
            break;
        }
        strv_push(f.udp ? &udp : &tcp, strcmp(f.host_ip, "0.0.0.0") == 0
                                           ? xasprintf("%u:%u", f.host_port, f.ctr_port)
                                           : xasprintf("%s/%u:%u", f.host_ip, f.host_port, f.ctr_port));
    }
    snprintf(fifo, sizeof fifo, "%s/pasta.pid", rundir);
    if (rc == 0 && mkfifo(fifo, 0600) < 0)
        rc = oerr_sys(e, errno, NULL, "cannot create %s", fifo);
    int rd = rc == 0 ? open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC) : -1;
    if (rc == 0 && rd < 0)
        rc = oerr_sys(e, errno, NULL, "cannot open %s", fifo);
    if (rc == 0) {
        strv argv = {0};
        const char *fixed[] = {"--config-net", "--foreground", "--quiet", "--ns-ifname", NET_HELPER_IF,
                               "--address", NET_HELPER_ADDR, "--netmask", "24", "--gateway", NET_HELPER_GW,
                               "--dns-forward", NET_HELPER_DNS, "--no-map-gw", "--tcp-ns", "none", "--udp-ns",
                               "none", "--pid", fifo};
        strv_push(&argv, xstrdup(h->path));
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            strv_push(&argv, xstrdup(fixed[i]));
        if (geteuid() == 0) { /* else pasta drops to nobody, who may not enter the container's namespaces */
            strv_push(&argv, xstrdup("--runas"));
            strv_push(&argv, xstrdup("0"));
        }
        strv *lists[2] = {&tcp, &udp};
        for (int l = 0; l < 2; l++) {
            if (!lists[l]->n) {
                strv_push(&argv, xstrdup(l ? "-u" : "-t"));
                strv_push(&argv, xstrdup("none"));
            }
            for (size_t i = 0; i < lists[l]->n; i++) {
                strv_push(&argv, xstrdup(l ? "-u" : "-t"));
                strv_push(&argv, xstrdup(lists[l]->v[i]));
            }
        }
        strv_push(&argv, xstrdup(pidstr));
        h->pid = spawn(h, argv.v, NULL, 0, e);
        strv_free(&argv);
        if (h->pid < 0) {
            h->pid = 0;
            rc = -1;
        }
    }
    if (rc == 0) {
        char buf[32];
        int exited;
        ssize_t n = wait_ready(h, rd, buf, sizeof buf, &exited);
        int err = errno;
        if (h->stopped_by)
            rc = -1;
        else if (n <= 0)
            rc = helper_failed(h, o, exited ? "exited before tap0 was configured" : n < 0 && err == ETIMEDOUT
                                                                                     ? "did not configure tap0 in 30 s"
                                                                                     : "failed to configure tap0", e);
    }
    if (rd >= 0)
        close(rd);
    unlink(fifo);
    strv_free(&tcp);
    strv_free(&udp);
    return rc;
}

int net_helper_start(net_helper *h, const options *o, pid_t target, const char *rundir, oerr *e)
{
    if (!o->net_helper)
        return 0;
    char pidstr[24];
    snprintf(pidstr, sizeof pidstr, "%d", (int)target);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (open_log(h, rundir, e))
        return -1;
    int rc = o->net_helper == NET_SLIRP ? start_slirp(h, o, pidstr, rundir, e) : start_pasta(h, o, pidstr, rundir, e);
    if (rc) {
        net_helper_stop(h);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    dbg("%s (pid %d) configured " NET_HELPER_IF " in %.1f ms, %zu port forward(s)", h->path, (int)h->pid,
        (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6, o->publish.n);
    return 0;
}

void net_helper_stop(net_helper *h)
{
    if (h->pid > 0) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        kill(h->pid, SIGTERM);
        int st;
        for (int waited = 0; waitpid(h->pid, &st, WNOHANG) == 0; waited++) {
            if (waited >= 2000) {
                kill(h->pid, SIGKILL);
                waitpid(h->pid, &st, 0);
                break;
            }
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        dbg("%s stopped in %.1f ms", h->path,
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
        h->pid = 0;
    }
    if (h->exit_wr >= 0)
        close(h->exit_wr);
    if (h->log_fd >= 0)
        close(h->log_fd);
    h->exit_wr = h->log_fd = -1;
}
