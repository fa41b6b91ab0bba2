/* Runtime flag parsing, table driven so --help always lists every flag. */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_id {
    O_HELP, O_VERSION, O_DEBUG, O_ENTRYPOINT, O_WORKDIR, O_ENV, O_ENV_FILE, O_USER, O_HOSTNAME,
    O_CACHE_DIR, O_NO_CACHE,
};

typedef struct opt_def {
    const char *name; /* long name without "--" */
    char short_name;  /* 0 if none */
    int has_arg;
    enum opt_id id;
    const char *metavar;
    const char *help;
} opt_def;

static const opt_def OPTS[] = {
    {"entrypoint", 0, 1, O_ENTRYPOINT, "CMD", "replace the image's Entrypoint (\"\" clears it; also clears Cmd)"},
    {"workdir", 'w', 1, O_WORKDIR, "DIR", "working directory inside the container (default: image WorkingDir or /)"},
    {"env", 'e', 1, O_ENV, "KEY[=VAL]", "set a variable; KEY alone copies it from the host (repeatable)"},
    {"env-file", 0, 1, O_ENV_FILE, "FILE", "read KEY=VALUE lines from FILE (repeatable; -e wins)"},
    {"user", 'u', 1, O_USER, "UID[:GID]", "run as this numeric user (and group) inside the container"},
    {"hostname", 0, 1, O_HOSTNAME, "NAME", "container hostname (default: from the image name)"},
    {"cache-dir", 0, 1, O_CACHE_DIR, "DIR", "rootfs cache directory (default: $OCI2BIN_CACHE_DIR, "
                                             "$XDG_CACHE_HOME/oci2bin or ~/.cache/oci2bin)"},
    {"no-cache", 0, 0, O_NO_CACHE, NULL, "extract privately for this run and remove it at exit"},
    {"debug", 0, 0, O_DEBUG, NULL, "print what the loader does, with timings"},
    {"version", 0, 0, O_VERSION, NULL, "print the loader version and exit"},
    {"help", 'h', 0, O_HELP, NULL, "show this help and exit"},
};
#define N_OPTS (sizeof OPTS / sizeof OPTS[0])

void options_usage(const char *prog)
{
    printf("Usage: %s [FLAGS] [--] [COMMAND [ARG...]]\n\n"
           "Runs the embedded OCI image as a rootless container. COMMAND replaces the image's Cmd.\n"
           "This file is also a docker-archive: `docker load < %s`.\n\nFlags:\n",
           prog, prog);
    for (size_t i = 0; i < N_OPTS; i++) {
        char left[64];
        const opt_def *d = &OPTS[i];
        if (d->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", d->short_name, d->name, d->has_arg ? " " : "",
                     d->has_arg ? d->metavar : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", d->name, d->has_arg ? " " : "",
                     d->has_arg ? d->metavar : "");
        printf("  %-28s %s\n", left, d->help);
    }
    printf("  %-28s %s\n", "    --", "end of flags; what follows is the command");
    printf("\nExit status: the command's status; 125 loader error, 126 command cannot be run,\n"
           "127 command not found, 128+N killed by signal N.\n");
}

static int apply(options *o, const opt_def *d, char *val, oerr *e)
{
    switch (d->id) {
    case O_HELP: o->help = 1; break;
    case O_VERSION: o->version = 1; break;
    case O_DEBUG: o->debug = 1; break;
    case O_NO_CACHE: o->no_cache = 1; break;
    case O_ENTRYPOINT: o->has_entrypoint = 1; o->entrypoint = val; break;
    case O_WORKDIR:
        if (val[0] != '/')
            return oerr_set(e, "--workdir %s is not absolute: give a path starting with /", val);
        o->workdir = val;
        break;
    case O_ENV:
        if (!val[0] || val[0] == '=')
            return oerr_set(e, "-e \"%s\" has no variable name: use -e KEY=VALUE or -e KEY", val);
        strv_push(&o->env, xstrdup(val));
        break;
    case O_ENV_FILE: strv_push(&o->env_files, xstrdup(val)); break;
    case O_USER: o->user = val; break;
    case O_HOSTNAME: o->hostname = val; break;
    case O_CACHE_DIR: o->cache_dir = val; break;
    }
    return 0;
}

int options_parse(int argc, char **argv, options *o, oerr *e)
{
    memset(o, 0, sizeof *o);
    int i = 1;
    while (i < argc) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == 0)
            break;
        const opt_def *d = NULL;
        char *val = NULL;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
            for (size_t k = 0; k < N_OPTS; k++)
                if (strlen(OPTS[k].name) == nlen && strncmp(OPTS[k].name, name, nlen) == 0)
                    d = &OPTS[k];
            if (!d)
                return oerr_set(e, "unknown flag: %.*s: run with --help to list the flags", (int)(nlen + 2), a);
            if (eq) {
                if (!d->has_arg)
                    return oerr_set(e, "flag --%s takes no value: remove \"=%s\"", d->name, eq + 1);
                val = (char *)eq + 1;
            }
        } else {
            for (size_t k = 0; k < N_OPTS; k++)
                if (OPTS[k].short_name == a[1])
                    d = &OPTS[k];
            if (!d)
                return oerr_set(e, "unknown flag: -%c: run with --help to list the flags", a[1]);
            if (a[2]) {
                if (!d->has_arg)
                    return oerr_set(e, "unknown flag: %s: run with --help to list the flags", a);
                val = a + 2;
            }
        }
        i++;
        if (d->has_arg && !val) {
            if (i >= argc)
                return oerr_set(e, "flag %s needs a value (%s): see --help", a, d->metavar);
            val = argv[i++];
        }
        if (apply(o, d, val, e))
            return -1;
    }
    o->args = argv + i;
    o->n_args = argc - i;
    return 0;
}

void options_free(options *o)
{
    strv_free(&o->env);
    strv_free(&o->env_files);
}
