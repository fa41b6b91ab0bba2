/* Errors as values (crun style), logging and small I/O helpers. */
#ifndef OCI2BIN_UTIL_H
#define OCI2BIN_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define OERR_MSG_MAX 1024

/* Exit statuses, as `docker run` uses them. */
#define EXIT_SETUP 125   /* the loader itself failed */
#define EXIT_NOEXEC 126  /* command cannot be invoked */
#define EXIT_NOTFOUND 127 /* command not found */

/* An error: the exit status it implies and one line "<problem>: <what to do>". */
typedef struct oerr {
    int status;
    char msg[OERR_MSG_MAX];
} oerr;

/* Sets *e (status 125) from a printf format; returns -1 so callers can `return oerr_set(...)`. */
int oerr_set(oerr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like oerr_set with an explicit exit status. */
int oerr_setst(oerr *e, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "<formatted problem>: <strerror(errnum)>: <hint>" */
int oerr_sys(oerr *e, int errnum, const char *hint, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Prints "oci2bin: <msg>" on stderr. */
void oerr_print(const oerr *e);

extern int g_debug;
void dbg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warnmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes all of buf; returns 0 or -1 with errno set. */
int write_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes at off; returns 0, or -1 with errno (EIO on short read). */
int pread_all(int fd, void *buf, size_t len, uint64_t off);
/* Reads a whole (small) file relative to dirfd into a NUL-terminated malloc'd buffer. */
int read_small_file(int dirfd, const char *path, size_t max, char **out, size_t *len, oerr *e);
/* Allocators that never return NULL (abort with a message on OOM). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Growable array of strings (NULL terminated). */
typedef struct strv {
    char **v;
    size_t n, cap;
} strv;
void strv_push(strv *s, char *owned);
void strv_free(strv *s);
/* Monotonic milliseconds, for --debug timings. */
double now_ms(void);
/* docker-run status of a wait status: the exit code, or 128+N for death by signal N. */
int exit_status_of(int wstatus);
/* waitpid(pid) (EINTR retried) as exit_status_of; EXIT_SETUP if it cannot be waited for. */
int wait_exit_status(pid_t pid);
/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void hex_encode(const unsigned char *d, size_t n, char *out);
#endif
