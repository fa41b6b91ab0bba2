/* --ulimit: resource limits for the container's command, set just before exec. */
#include "ulimit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int res;
} TYPES[] = {
    {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},           {"data", RLIMIT_DATA},
    {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},       {"memlock", RLIMIT_MEMLOCK},
    {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},       {"nofile", RLIMIT_NOFILE},
    {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},           {"rtprio", RLIMIT_RTPRIO},
    {"rttime", RLIMIT_RTTIME},   {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
    {"as", RLIMIT_AS},
};

static int parse_value(const char *s, size_t n, rlim_t *out)
{
    if ((n == 9 && strncmp(s, "unlimited", 9) == 0) || (n == 2 && strncmp(s, "-1", 2) == 0)) {
        *out = RLIM_INFINITY;
        return 0;
    }
    if (n == 0 || n > 20 || strspn(s, "0123456789") < n)
        return -1;
    char buf[24];
    memcpy(buf, s, n);
    buf[n] = 0;
    errno = 0;
    unsigned long long v = strtoull(buf, NULL, 10);
    if (errno)
        return -1;
    *out = (rlim_t)v;
    return 0;
}

int ulimit_parse(const char *spec, int *resource, struct rlimit *rl, oerr *e)
{
    const char *eq = strchr(spec, '=');
    if (!eq)
        return oerr_set(e, "--ulimit %s: expected TYPE=N (like nofile=1024)", spec);
    size_t nl = (size_t)(eq - spec);
    *resource = -1;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (strlen(TYPES[i].name) == nl && strncmp(TYPES[i].name, spec, nl) == 0)
            *resource = TYPES[i].res;
    if (*resource < 0)
        return oerr_set(e, "--ulimit %s: unknown type \"%.*s\": use nofile, nproc, cpu, as, fsize, core, data, "
                           "stack, memlock, locks, sigpending, msgqueue, nice, rtprio, rttime or rss",
                        spec, (int)nl, spec);
    const char *v = eq + 1, *colon = strchr(v, ':');
    if (parse_value(v, colon ? (size_t)(colon - v) : strlen(v), &rl->rlim_cur) ||
        parse_value(colon ? colon + 1 : v, strlen(colon ? colon + 1 : v), &rl->rlim_max))
        return oerr_set(e, "--ulimit %s: \"%s\" is not a number: give N, SOFT:HARD or unlimited", spec, v);
    if (rl->rlim_max != RLIM_INFINITY && (rl->rlim_cur == RLIM_INFINITY || rl->rlim_cur > rl->rlim_max))
        return oerr_set(e, "--ulimit %s: the soft limit is above the hard limit: give SOFT:HARD with SOFT <= HARD",
                        spec);
    return 0;
}

void ulimit_apply(const strv *specs)
{
    for (size_t i = 0; i < specs->n; i++) {
        int res;
        struct rlimit rl;
        oerr e;
        if (ulimit_parse(specs->v[i], &res, &rl, &e)) {
            warnmsg("%s", e.msg);
            continue;
        }
        if (setrlimit(res, &rl) < 0)
            warnmsg("--ulimit %s: %s (not applied)", specs->v[i], strerror(errno));
    }
}
