/* --ulimit TYPE=N[:M] (setrlimit; SPEC: soft = hard = N unless N:M is given). */
#ifndef OCI2BIN_ULIMIT_H
#define OCI2BIN_ULIMIT_H
#include <sys/resource.h>
#include "util.h"

/* Parses "nofile=1024", "nofile=512:1024", "core=unlimited". Returns 0 or -1 with *e. */
int ulimit_parse(const char *spec, int *resource, struct rlimit *rl, oerr *e);
/* Applies every spec (already validated); failures are warnings (SPEC: non-fatal). */
void ulimit_apply(const strv *specs);
#endif
