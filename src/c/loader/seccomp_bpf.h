/* Seccomp rules (from the default list or a Docker JSON profile) compiled into a classic-BPF program. */
#ifndef OCI2BIN_SECCOMP_BPF_H
#define OCI2BIN_SECCOMP_BPF_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

enum seccomp_op { SC_OP_NE, SC_OP_LT, SC_OP_LE, SC_OP_EQ, SC_OP_GE, SC_OP_GT, SC_OP_MASKED_EQ };

typedef struct seccomp_cond {
    unsigned index;      /* syscall argument 0..5 */
    enum seccomp_op op;
    uint64_t value;      /* MASKED_EQ: the mask */
    uint64_t value_two;  /* MASKED_EQ: the value the masked argument must equal */
} seccomp_cond;

typedef struct seccomp_rule {
    int nr;           /* syscall number on this architecture */
    uint32_t action;  /* SECCOMP_RET_* | data */
    int n_conds;      /* all must hold (AND); 0: unconditional */
    seccomp_cond conds[6];
} seccomp_rule;

/* A compiled filter: struct sock_filter instructions (opaque here, linux/filter.h in the .c files). */
typedef struct seccomp_filter {
    void *insns;
    unsigned short len;
} seccomp_filter;

/* Compiles rules (libseccomp's order: for each syscall, its conditional rules in the given order, then its
 * unconditional rule; the first unconditional rule of a syscall wins) over default_action. Syscalls of other
 * ABIs (x86 32-bit and x32 on x86_64, arm32 on aarch64) fail with ENOSYS; exit and exit_group are always allowed.
 * Returns 0, or -1 with *e. */
int seccomp_bpf_build(const seccomp_rule *rules, size_t n, uint32_t default_action, seccomp_filter *out, oerr *e);
void seccomp_filter_free(seccomp_filter *f);
#endif
