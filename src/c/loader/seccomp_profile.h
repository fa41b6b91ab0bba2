/* --seccomp-profile FILE: a Docker-format JSON seccomp profile compiled into a BPF filter (no libseccomp). */
#ifndef OCI2BIN_SECCOMP_PROFILE_H
#define OCI2BIN_SECCOMP_PROFILE_H
#include <stdint.h>
#include "seccomp_bpf.h"
#include "util.h"

/* Reads and compiles the profile at path for this architecture. caps: the container's capability set
 * (bit N = capability N), for the rules' "includes"/"excludes" "caps" (as docker filters them).
 * Unknown syscall names are skipped (--debug lists them). Returns 0, or -1 with *e naming the problem. */
int seccomp_profile_load(const char *path, uint64_t caps, seccomp_filter *out, oerr *e);
/* The number of this architecture's syscall for name, or -1. */
int seccomp_syscall_nr(const char *name);
#endif
