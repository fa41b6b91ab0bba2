/* Errors as values, logging and small I/O helpers. */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int g_debug;

/* Copies src into dst (size dstsz), eliding every run of non-blank characters longer than 200 bytes to
 * its first and last 80 bytes: messages echo paths from the image, and a long one must not push the
 * reason (errno text) and the hint past the end of the message. */
static void elide_long_words(char *dst, size_t dstsz, const char *src)
{
    size_t o = 0;
    const char *p = src;
    while (*p && o + 1 < dstsz) {
        size_t run = strcspn(p, " \t\n");
        if (run == 0)
            run = 1; /* a blank */
        size_t keep_head = run, skip_to = run;
        if (run > 200 && p[0] != ' ' && p[0] != '\t' && p[0] != '\n')
            keep_head = 80, skip_to = run - 80;
        for (size_t i = 0; i < keep_head && o + 1 < dstsz; i++)
            dst[o++] = p[i];
        if (skip_to != keep_head) {
            for (const char *d = "..."; *d && o + 1 < dstsz; d++)
                dst[o++] = *d;
            for (size_t i = skip_to; i < run && o + 1 < dstsz; i++)
                dst[o++] = p[i];
        }
        p += run;
    }
    dst[o] = 0;
}

static int vset(oerr *e, int status, const char *fmt, va_list ap)
{
    if (e) {
        e->status = status;
        va_list cp;
        va_copy(cp, ap);
        char *full = NULL;
        if (vasprintf(&full, fmt, cp) >= 0 && full) {
            elide_long_words(e->msg, sizeof e->msg, full);
            free(full);
        } else {
            vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        }
        va_end(cp);
    }
    return -1;
}

int oerr_set(oerr *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(e, EXIT_SETUP, fmt, ap);
    va_end(ap);
    return -1;
}

int oerr_setst(oerr *e, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(e, status, fmt, ap);
    va_end(ap);
    return -1;
}

int oerr_sys(oerr *e, int errnum, const char *hint, const char *fmt, ...)
{
    va_list ap;
    if (!e)
        return -1;
    va_start(ap, fmt);
    vset(e, EXIT_SETUP, fmt, ap);
    va_end(ap);
    size_t n = strlen(e->msg);
    /* keep room for the reason and the hint even when the message filled the buffer */
    char tail[512];
    snprintf(tail, sizeof tail, ": %s%s%s", strerror(errnum), hint ? ": " : "", hint ? hint : "");
    size_t tl = strlen(tail);
    if (n + tl >= sizeof e->msg)
        n = sizeof e->msg - tl - 1;
    memcpy(e->msg + n, tail, tl + 1);
    return -1;
}

void oerr_print(const oerr *e)
{
    char line[OERR_MSG_MAX + 16];
    int n = snprintf(line, sizeof line, "oci2bin: %s\n", e->msg[0] ? e->msg : "unknown error: rerun with --debug");
    if (n > 0)
        (void)write_all(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
    char line[2048];
    int n = snprintf(line, sizeof line, "oci2bin: %s", prefix);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    (void)write_all(2, line, len);
}

void dbg(const char *fmt, ...)
{
    if (!g_debug)
        return;
    static double t0;
    double t = now_ms();
    if (t0 == 0)
        t0 = t;
    char prefix[48];
    snprintf(prefix, sizeof prefix, "debug: [%7.1f ms] ", t - t0);
    va_list ap;
    va_start(ap, fmt);
    vlog(prefix, fmt, ap);
    va_end(ap);
}

void warnmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("warning: ", fmt, ap);
    va_end(ap);
}

int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int read_small_file(int dirfd, const char *path, size_t max, char **out, size_t *lenp, oerr *e)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return oerr_sys(e, errno, "check that it exists and is readable", "cannot open %s", path);
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max) {
                free(buf);
                close(fd);
                return oerr_set(e, "%s is larger than %zu bytes: use a smaller file", path, max);
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            free(buf);
            close(fd);
            return oerr_sys(e, err, "check the file", "cannot read %s", path);
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (len > max) {
        free(buf);
        return oerr_set(e, "%s is larger than %zu bytes: use a smaller file", path, max);
    }
    buf[len] = 0;
    *out = buf;
    if (lenp)
        *lenp = len;
    return 0;
}

static void oom(void)
{
    static const char m[] = "oci2bin: out of memory: free some memory and retry\n";
    (void)write_all(2, m, sizeof m - 1);
    _exit(EXIT_SETUP);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    char *p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void strv_push(strv *s, char *owned)
{
    if (s->n + 2 > s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = owned;
    s->v[s->n] = NULL;
}

void strv_free(strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int exit_status_of(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    return WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : EXIT_SETUP;
}

int wait_exit_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return EXIT_SETUP;
    return exit_status_of(st);
}

void hex_encode(const unsigned char *d, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = 0;
}
