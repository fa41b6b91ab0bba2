/* --security-opt apparmor=PROFILE | label=user:U|role:R|type:T|level:L|disable | no-new-privileges[=BOOL]
 * (seccomp=FILE|unconfined is options.c's: it is --seccomp-profile).
 * No libapparmor/libselinux: what they do at exec is one write to procfs, done here directly
 *   AppArmor: "exec PROFILE" to /proc/self/attr/apparmor/exec (kernel >= 5.8) or /proc/self/attr/exec
 *   SELinux:  the full exec context "user:role:type:level" to /proc/self/attr/exec
 * before no_new_privs and seccomp (an LSM refuses most transitions under no_new_privs). Per the SPEC both are
 * non-fatal: on a host without that LSM the option is ignored with one warning, and a refused write warns. */
#define _GNU_SOURCE
#include "secopt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const LABEL_FIELDS[] = {"user", "role", "type", "level"};

static int parse_bool(const char *v, int *out)
{
    if (!v || !*v || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        *out = 1;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

/* label=FIELD:VALUE -> field index, or -1 (label=disable -> 4). */
static int label_field(const char *v, const char **value)
{
    if (strcmp(v, "disable") == 0)
        return 4;
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(LABEL_FIELDS[i]);
        if (strncmp(v, LABEL_FIELDS[i], n) == 0 && v[n] == ':' && v[n + 1]) {
            *value = v + n + 1;
            return i;
        }
    }
    return -1;
}

int secopt_check(const char *spec, oerr *e)
{
    const char *eq = strchr(spec, '=');
    const char *v = eq ? eq + 1 : NULL, *lv;
    size_t klen = eq ? (size_t)(eq - spec) : strlen(spec);
    int b;
    if (klen == 7 && strncmp(spec, "seccomp", 7) == 0)
        return 0; /* options.c */
    if (klen == 8 && strncmp(spec, "apparmor", 8) == 0) {
        if (!v || !*v || strpbrk(v, " \t\n"))
            return oerr_set(e, "--security-opt %s: give an AppArmor profile name: apparmor=PROFILE", spec);
        return 0;
    }
    if (klen == 5 && strncmp(spec, "label", 5) == 0) {
        if (!v || label_field(v, &lv) < 0)
            return oerr_set(e, "--security-opt %s: use label=user:U, label=role:R, label=type:T, label=level:L or "
                               "label=disable",
                            spec);
        return 0;
    }
    if (strncmp(spec, "no-new-privileges", 17) == 0 && (spec[17] == 0 || spec[17] == '=' || spec[17] == ':')) {
        if (parse_bool(spec[17] ? spec + 18 : NULL, &b))
            return oerr_set(e, "--security-opt %s: use no-new-privileges, no-new-privileges=true or =false", spec);
        return 0;
    }
    return oerr_set(e, "--security-opt %s: unknown option: use seccomp=FILE|unconfined, apparmor=PROFILE, "
                       "label=..., or no-new-privileges",
                    spec);
}

static int apparmor_enabled(void)
{
    char c = 0;
    int fd = open("/sys/module/apparmor/parameters/enabled", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (read(fd, &c, 1) != 1)
        c = 0;
    close(fd);
    return c == 'Y';
}

static int selinux_enabled(void)
{
    return access("/sys/fs/selinux/enforce", F_OK) == 0;
}

/* The process's SELinux context with the given fields replaced (NULL if it cannot be read). */
static char *selinux_context(char *const fields[4])
{
    char *cur;
    size_t len;
    oerr tmp;
    if (read_small_file(AT_FDCWD, "/proc/self/attr/current", 4096, &cur, &len, &tmp))
        return NULL;
    while (len && (cur[len - 1] == '\n' || cur[len - 1] == 0))
        cur[--len] = 0;
    char *part[4] = {NULL, NULL, NULL, NULL}, *s = cur;
    for (int i = 0; i < 3 && s; i++) { /* the level (last) may itself contain ':' */
        part[i] = s;
        s = strchr(s, ':');
        if (s)
            *s++ = 0;
    }
    part[3] = s;
    for (int i = 0; i < 4; i++)
        if (fields[i])
            part[i] = fields[i];
    char *ctx = part[0] && part[1] && part[2] ? xasprintf("%s:%s:%s%s%s", part[0], part[1], part[2],
                                                          part[3] ? ":" : "", part[3] ? part[3] : "")
                                              : NULL;
    free(cur);
    return ctx;
}

int lsm_plan_build(const strv *opts, lsm_plan *lp, oerr *e)
{
    char *fields[4] = {NULL, NULL, NULL, NULL};
    int want_label = 0, disable = 0, warned_aa = 0;
    memset(lp, 0, sizeof *lp);
    for (size_t i = 0; i < opts->n; i++) {
        const char *spec = opts->v[i], *v = strchr(spec, '=') ? strchr(spec, '=') + 1 : NULL, *lv = NULL;
        if (secopt_check(spec, e))
            return -1;
        if (strncmp(spec, "apparmor=", 9) == 0) {
            free(lp->apparmor);
            lp->apparmor = NULL;
            if (strcmp(v, "unconfined") == 0)
                continue;
            if (!apparmor_enabled()) {
                if (!warned_aa++)
                    warnmsg("--security-opt %s: AppArmor is not enabled on this host: running without an AppArmor "
                            "profile",
                            spec);
                continue;
            }
            lp->apparmor = xstrdup(v);
        } else if (strncmp(spec, "label=", 6) == 0) {
            int f = label_field(v, &lv);
            if (f == 4) {
                disable = 1;
                continue;
            }
            fields[f] = (char *)lv;
            want_label = 1;
        } else if (strncmp(spec, "no-new-privileges", 17) == 0) {
            parse_bool(spec[17] ? spec + 18 : NULL, &lp->no_new_privs);
        }
    }
    if (want_label && !disable) {
        if (!selinux_enabled())
            warnmsg("--security-opt label=...: SELinux is not enabled on this host: running without an SELinux label");
        else if (!(lp->selinux = selinux_context(fields)))
            warnmsg("--security-opt label=...: cannot read this process's SELinux context: running without a label");
    }
    return 0;
}

static void write_attr(const char *path, const char *text, const char *what)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) < 0)
        warnmsg("%s: cannot set it (%s: %s): running without it", what, path, strerror(errno));
    else
        dbg("%s: %s <- %s", what, path, text);
    if (fd >= 0)
        close(fd);
}

void lsm_apply(const lsm_plan *lp)
{
    if (lp->apparmor) {
        char *cmd = xasprintf("exec %s", lp->apparmor);
        char what[300];
        snprintf(what, sizeof what, "AppArmor profile %s", lp->apparmor);
        write_attr(access("/proc/self/attr/apparmor/exec", F_OK) == 0 ? "/proc/self/attr/apparmor/exec"
                                                                       : "/proc/self/attr/exec",
                   cmd, what);
        free(cmd);
    }
    if (lp->selinux)
        write_attr("/proc/self/attr/exec", lp->selinux, "SELinux label");
}

void lsm_plan_free(lsm_plan *lp)
{
    free(lp->apparmor);
    free(lp->selinux);
    memset(lp, 0, sizeof *lp);
}
