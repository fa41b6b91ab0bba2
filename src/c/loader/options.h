/* Runtime flags of an oci2bin binary (docker run style). */
#ifndef OCI2BIN_OPTIONS_H
#define OCI2BIN_OPTIONS_H
#include "util.h"

typedef struct options {
    int help, version, debug, no_cache;
    int has_entrypoint;
    char *entrypoint;   /* --entrypoint ("" clears the image's) */
    char *workdir;      /* --workdir / -w */
    char *user;         /* --user / -u UID[:GID] */
    char *hostname;     /* --hostname */
    char *cache_dir;    /* --cache-dir */
    strv env;           /* -e / --env values, in order */
    strv env_files;     /* --env-file paths, in order */
    char **args;        /* command arguments after the flags (not owned) */
    int n_args;
} options;

/* Parses argv. Flags come first; the first non-flag argument or "--" ends them. */
int options_parse(int argc, char **argv, options *o, oerr *e);
void options_usage(const char *prog);
void options_free(options *o);
#endif
