/* Entrypoint/Cmd/env/workdir planning (host side) and the final execve (container side). */
#define _GNU_SOURCE
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seccomp.h"
#include "seccomp_profile.h"
#include "ulimit.h"
#include "volumes.h"

static size_t key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

void env_set(strv *env, const char *kv)
{
    size_t kl = key_len(kv);
    for (size_t i = 0; i < env->n; i++)
        if (key_len(env->v[i]) == kl && strncmp(env->v[i], kv, kl) == 0) {
            free(env->v[i]);
            env->v[i] = xstrdup(kv);
            return;
        }
    strv_push(env, xstrdup(kv));
}

static const char *env_get(const strv *env, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < env->n; i++)
        if (key_len(env->v[i]) == kl && strncmp(env->v[i], key, kl) == 0)
            return env->v[i][kl] == '=' ? env->v[i] + kl + 1 : "";
    return NULL;
}

/* -e KEY=VAL, or -e KEY copied from the host (warn if unset). */
static void env_arg(strv *env, const char *arg)
{
    if (strchr(arg, '=')) {
        env_set(env, arg);
        return;
    }
    const char *v = getenv(arg);
    if (!v) {
        warnmsg("-e %s: not set on the host, skipped", arg);
        return;
    }
    char *kv = xasprintf("%s=%s", arg, v);
    env_set(env, kv);
    free(kv);
}

static int env_file(strv *env, const char *path, oerr *e)
{
    char *text;
    if (read_small_file(AT_FDCWD, path, 16u << 20, &text, NULL, e)) {
        char tmp[OERR_MSG_MAX];
        snprintf(tmp, sizeof tmp, "--env-file: %s", e->msg);
        return oerr_set(e, "%s", tmp);
    }
    int lineno = 0, rc = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[--n] = 0;
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#')
            continue;
        if (*s == '=') {
            rc = oerr_set(e, "--env-file %s line %d has no variable name: fix the line (KEY=VALUE)", path, lineno);
            break;
        }
        env_arg(env, s);
    }
    free(text);
    return rc;
}

int exec_plan_build(const image *img, const options *o, const char *hostname, exec_plan *pl, oerr *e)
{
    memset(pl, 0, sizeof *pl);
    if (o->has_entrypoint) {
        if (o->entrypoint[0])
            strv_push(&pl->argv, xstrdup(o->entrypoint));
    } else {
        for (size_t i = 0; i < img->entrypoint.n; i++)
            strv_push(&pl->argv, xstrdup(img->entrypoint.v[i]));
    }
    if (o->n_args > 0) {
        for (int i = 0; i < o->n_args; i++)
            strv_push(&pl->argv, xstrdup(o->args[i]));
    } else if (!o->has_entrypoint) {
        for (size_t i = 0; i < img->cmd.n; i++)
            strv_push(&pl->argv, xstrdup(img->cmd.v[i]));
    }
    if (pl->argv.n == 0)
        return oerr_set(e, "no command to run: the image has no Entrypoint or Cmd; give a command after the flags");

    for (size_t i = 0; i < img->env.n; i++)
        if (img->env.v[i][0] && img->env.v[i][0] != '=')
            env_set(&pl->env, img->env.v[i]);
    for (size_t i = 0; i < o->env_files.n; i++)
        if (env_file(&pl->env, o->env_files.v[i], e))
            return -1;
    for (size_t i = 0; i < o->env.n; i++)
        env_arg(&pl->env, o->env.v[i]);
    if (!env_get(&pl->env, "PATH"))
        env_set(&pl->env, "PATH=" DEFAULT_PATH);
    if (hostname && !env_get(&pl->env, "HOSTNAME")) {
        char *kv = xasprintf("HOSTNAME=%s", hostname);
        env_set(&pl->env, kv);
        free(kv);
    }

    const char *wd = o->workdir ? o->workdir : img->workdir ? img->workdir : "/";
    pl->workdir = wd[0] == '/' ? xstrdup(wd) : xasprintf("/%s", wd);
    if (o->ssh_agent) {
        if (ssh_agent_socket())
            env_set(&pl->env, "SSH_AUTH_SOCK=" SSH_AGENT_CTR);
        else
            warnmsg("--ssh-agent: SSH_AUTH_SOCK is unset or not a socket: running without agent forwarding");
    }
    if (caps_plan_build(&o->cap_drop, &o->cap_add, &pl->caps, e))
        return -1;
    pl->ulimits = &o->ulimits;
    if (!o->no_seccomp) {
        /* compiled here, on the host, so that a bad profile stops the run before anything is set up */
        uint64_t held = ~pl->caps.drop; /* the container's capabilities, for the profile's includes/excludes */
        pl->seccomp_custom = o->seccomp_profile != NULL;
        if (pl->seccomp_custom ? seccomp_profile_load(o->seccomp_profile, held, &pl->filter, e)
                               : seccomp_default_filter(&pl->filter, e))
            return -1;
    }
    if (lsm_plan_build(&o->security_opts, &pl->lsm, e))
        return -1;
    if (pl->lsm.no_new_privs && !pl->filter.insns)
        dbg("no-new-privileges without a seccomp filter: set on its own");
    pl->life_fd = -1;
    if (o->user) {
        pl->user = xstrdup(o->user);
    } else if (img->user) {
        pl->user = xstrdup(img->user);
        pl->user_from_image = 1;
    }
    return 0;
}

void exec_plan_free(exec_plan *pl)
{
    strv_free(&pl->argv);
    strv_free(&pl->env);
    free(pl->workdir);
    free(pl->user);
    seccomp_filter_free(&pl->filter);
    lsm_plan_free(&pl->lsm);
    memset(pl, 0, sizeof *pl);
}

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

/* Looks a user name (or a numeric uid, matched against the uid field) up in the container's /etc/passwd;
 * home (if non-NULL, PATH_MAX bytes) receives the home directory. */
static int lookup_passwd(const char *name, unsigned long *uid, unsigned long *gid, char *home, int *found)
{
    *found = 0;
    /* The image's file: it may be a FIFO (a blocking open would hang) or a device. Non-blocking, and
     * only a regular file is read. (Runs after pivot_root, so any symlink resolves inside the rootfs.) */
    int fd = open("/etc/passwd", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return 0;
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *fields[7] = {0};
        char *s = line;
        for (int i = 0; i < 7 && s; i++) {
            fields[i] = s;
            s = strchr(s, ':');
            if (s)
                *s++ = 0;
        }
        int numeric = name[0] && strspn(name, "0123456789") == strlen(name);
        if (!fields[3] || (numeric ? strcmp(fields[2], name) : strcmp(fields[0], name)) != 0)
            continue;
        *uid = strtoul(fields[2], NULL, 10);
        *gid = strtoul(fields[3], NULL, 10);
        if (home && fields[5] && fields[5][0] == '/')
            snprintf(home, PATH_MAX, "%s", fields[5]);
        *found = 1;
        break;
    }
    fclose(f);
    return 0;
}

static int parse_id(const char *s, unsigned long *out)
{
    char *end;
    if (!*s || strspn(s, "0123456789") != strlen(s))
        return -1;
    *out = strtoul(s, &end, 10);
    return *out > 65534 ? -1 : 0;
}

static void set_home(exec_plan *pl, unsigned long uid, const char *home)
{
    if (env_get(&pl->env, "HOME"))
        return;
    char *kv = xasprintf("HOME=%s", home[0] ? home : uid == 0 ? "/root" : "/");
    env_set(&pl->env, kv);
    free(kv);
}

static int switch_user(exec_plan *pl, int single_id, oerr *e)
{
    char home[PATH_MAX] = "";
    int found;
    if (!pl->user) {
        unsigned long u, g;
        lookup_passwd("0", &u, &g, home, &found);
        set_home(pl, 0, home);
        return 0;
    }
    char ubuf[256];
    snprintf(ubuf, sizeof ubuf, "%s", pl->user);
    char *gpart = strchr(ubuf, ':');
    if (gpart)
        *gpart++ = 0;
    unsigned long uid = 0, gid = 0, pu, pg;
    if (ubuf[0] && strspn(ubuf, "0123456789") == strlen(ubuf) && parse_id(ubuf, &uid) < 0)
        return oerr_set(e, "user id %s is out of range: use a numeric id <= 65534", ubuf);
    if (parse_id(ubuf, &uid) == 0) {
        gid = uid; /* SPEC: --user 1000 means 1000:1000 */
        lookup_passwd(ubuf, &pu, &pg, home, &found);
    } else {
        lookup_passwd(ubuf, &uid, &gid, home, &found);
        if (!found)
            return oerr_set(e, "user \"%s\" is not in the image's /etc/passwd: use --user UID[:GID]", ubuf);
    }
    if (gpart && parse_id(gpart, &gid))
        return oerr_set(e, "group \"%s\" is not a number <= 65534: use --user UID:GID", gpart);
    set_home(pl, uid, home);
    if (uid == 0 && gid == 0)
        return 0;
    if (single_id && pl->user_from_image) {
        dbg("image User %s (%lu:%lu) runs as 0: only one id is mapped (install uidmap and add a range in "
            "/etc/subuid for real user switching)",
            pl->user, uid, gid);
        return 0;
    }
    if (setgroups(0, NULL) < 0 && errno != EPERM)
        return oerr_sys(e, errno, NULL, "setgroups failed for --user %s", pl->user);
    if (setgid((gid_t)gid) < 0)
        return oerr_sys(e, errno,
                        single_id ? "only one id is mapped without newgidmap and an /etc/subgid range" : NULL,
                        "cannot switch to group %lu", gid);
    if (setuid((uid_t)uid) < 0)
        return oerr_sys(e, errno,
                        single_id ? "only one id is mapped without newuidmap and an /etc/subuid range" : NULL,
                        "cannot switch to user %lu", uid);
    return 0;
}

/* PATH lookup with the container's PATH. */
static int find_command(const char *name, const char *path_env, char *out, size_t outsz, int *saw_eacces)
{
    *saw_eacces = 0;
    if (strchr(name, '/')) {
        snprintf(out, outsz, "%s", name);
        return 0;
    }
    const char *p = path_env && *path_env ? path_env : DEFAULT_PATH;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t dl = colon ? (size_t)(colon - p) : strlen(p);
        int n = snprintf(out, outsz, "%.*s/%s", (int)dl, dl ? p : ".", name);
        struct stat st;
        if (n > 0 && (size_t)n < outsz && stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(out, X_OK) == 0)
                return 0;
            *saw_eacces = 1;
        }
        p += dl + (colon ? 1 : 0);
        if (!colon)
            break;
    }
    return -1;
}

int exec_run(exec_plan *pl, int single_id, oerr *e)
{
    if (mkdir_p(pl->workdir) < 0 || chdir(pl->workdir) < 0)
        return oerr_sys(e, errno, "check --workdir / the image's WorkingDir", "cannot enter working directory %s",
                        pl->workdir);
    if (pl->ulimits)
        ulimit_apply(pl->ulimits);
    caps_before_user(&pl->caps);
    if (switch_user(pl, single_id, e))
        return -1;
    const char *name = pl->argv.v[0];
    char path[PATH_MAX];
    int eacces;
    if (find_command(name, env_get(&pl->env, "PATH"), path, sizeof path, &eacces) < 0) {
        if (eacces)
            return oerr_setst(e, EXIT_NOEXEC, "%s: found in $PATH but not executable: chmod +x it or pick "
                                              "another command",
                              name);
        return oerr_setst(e, EXIT_NOTFOUND, "%s: executable file not found in $PATH: check the command, or "
                                            "the image's Entrypoint/Cmd (--entrypoint overrides it)",
                          name);
    }
    dbg("exec %s (argv[0]=%s, %zu args) in %s", path, name, pl->argv.n, pl->workdir);
    caps_apply(&pl->caps);
    /* A user switch (or a capability change) cleared the parent-death signal set at clone: set it again,
     * then make sure the loader did not die in between, so that killing the loader (even with SIGKILL)
     * still takes the container with it. */
    if (pl->life_fd >= 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
            dbg("PR_SET_PDEATHSIG: %s", strerror(errno));
        struct pollfd pf = {pl->life_fd, POLLIN, 0};
        if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR)))
            return oerr_set(e, "the loader exited before the command started: nothing to do");
    }
    lsm_apply(&pl->lsm); /* before no_new_privs: LSMs refuse most transitions under it */
    if (pl->filter.insns ? seccomp_install(&pl->filter, pl->seccomp_custom, e)
                         : pl->lsm.no_new_privs && seccomp_set_no_new_privs(e))
        return -1;
    execve(path, pl->argv.v, pl->env.v);
    int err = errno;
    if (err == ENOENT || err == ENOTDIR)
        return oerr_setst(e, EXIT_NOTFOUND, "%s: no such file or directory (or its #! interpreter is missing): "
                                            "check the command and the image",
                          path);
    if (err == ENOEXEC)
        return oerr_setst(e, EXIT_NOEXEC, "%s: exec format error: the program is for another architecture "
                                          "or is not a program",
                          path);
    return oerr_setst(e, EXIT_NOEXEC, "%s: cannot execute: %s: check its permissions", path, strerror(err));
}
