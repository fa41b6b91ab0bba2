/* Named containers and --detach. NAME.json is held with flock(LOCK_EX) by the (detached) loader for
 * the container's lifetime, so a second start with the same name fails while the first runs, and
 * `oci2bin ps` can tell running entries (lock taken) from exited ones. */
#define _GNU_SOURCE
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int mkdir_p(char *path, mode_t mode)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, mode);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(path, mode) < 0 && errno != EEXIST ? -1 : 0;
}

int state_dir(char *out, size_t outsz, oerr *e)
{
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    int n;
    if (x && x[0] == '/')
        n = snprintf(out, outsz, "%s/oci2bin/containers", x);
    else if (h && h[0] == '/')
        n = snprintf(out, outsz, "%s/.cache/oci2bin/containers", h);
    else
        return oerr_set(e, "--name: neither XDG_CACHE_HOME nor HOME is set: set HOME");
    if (n < 0 || (size_t)n >= outsz)
        return oerr_set(e, "--name: the state directory path is too long: set XDG_CACHE_HOME");
    return 0;
}

int state_open(state *s, const char *name, oerr *e)
{
    char dir[PATH_MAX - 80];
    s->fd = -1;
    if (state_dir(dir, sizeof dir, e))
        return -1;
    if (mkdir_p(dir, 0700) < 0)
        return oerr_sys(e, errno, NULL, "--name: cannot create %s", dir);
    snprintf(s->path, sizeof s->path, "%s/%s.json", dir, name);
    snprintf(s->log, sizeof s->log, "%s/%s.log", dir, name);
    s->fd = open(s->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (s->fd < 0)
        return oerr_sys(e, errno, NULL, "--name: cannot open %s", s->path);
    if (flock(s->fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        close(s->fd);
        s->fd = -1;
        if (err == EWOULDBLOCK)
            return oerr_set(e, "a container named \"%s\" is running: stop it or pick another --name", name);
        return oerr_sys(e, err, NULL, "--name: cannot lock %s", s->path);
    }
    s->started = (long)time(NULL);
    return 0;
}

int state_output_fd(const state *s, int named, oerr *e)
{
    int fd = named ? open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600)
                   : open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        oerr_sys(e, errno, NULL, "--detach: cannot open %s", named ? s->log : "/dev/null");
    return fd;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void state_write(state *s, const char *name, const char *image, char *const *argv, pid_t pid, pid_t ctr_pid,
                 const char *status, int exit_code)
{
    if (s->fd < 0)
        return;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return;
    fputs("{\"name\": ", f);
    json_str(f, name);
    fprintf(f, ", \"pid\": %d, \"container_pid\": %d, \"image\": ", (int)pid, (int)ctr_pid);
    json_str(f, image ? image : "");
    /* the binary that runs the container: `oci2bin ps` shows it after the exit too (/proc/PID/exe is gone then) */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    fputs(", \"binary\": ", f);
    json_str(f, exe);
    fputs(", \"command\": [", f);
    for (int i = 0; argv && argv[i]; i++) {
        if (i)
            fputs(", ", f);
        json_str(f, argv[i]);
    }
    fprintf(f, "], \"started\": %ld, \"log\": ", s->started);
    json_str(f, s->log);
    fputs(", \"status\": ", f);
    json_str(f, status);
    if (strcmp(status, "exited") == 0)
        fprintf(f, ", \"exit_code\": %d", exit_code);
    fputs("}\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return;
    }
    if (ftruncate(s->fd, 0) < 0 || pwrite(s->fd, buf, len, 0) != (ssize_t)len)
        warnmsg("--name: cannot write %s: %s", s->path, strerror(errno));
    free(buf);
}

void state_close(state *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

int detach_begin(oerr *e)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return oerr_sys(e, errno, NULL, "--detach: pipe");
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(p[0]);
        close(p[1]);
        return oerr_sys(e, err, NULL, "--detach: cannot fork");
    }
    if (pid > 0) { /* the caller's process: wait for "started" or the child's end */
        close(p[1]);
        char c;
        ssize_t n;
        while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
            ;
        if (n == 1) {
            printf("%d\n", (int)pid);
            fflush(stdout);
            _exit(0);
        }
        _exit(wait_exit_status(pid));
    }
    close(p[0]);
    if (setsid() < 0)
        dbg("--detach: setsid: %s", strerror(errno));
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nul < 0 || dup2(nul, STDIN_FILENO) < 0)
        return oerr_sys(e, errno, NULL, "--detach: cannot redirect stdin");
    close(nul);
    return p[1];
}

void detach_ready(int notify_fd)
{
    if (notify_fd < 0)
        return;
    if (write_all(notify_fd, "1", 1) < 0)
        dbg("--detach: cannot notify: %s", strerror(errno));
    close(notify_fd);
}
