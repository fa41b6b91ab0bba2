/* Rules -> classic BPF. Layout:
 *   load arch; arch != native -> ERRNO(ENOSYS)
 *   load nr; (x86_64: nr >= __X32_SYSCALL_BIT -> ERRNO(ENOSYS)); exit, exit_group -> ALLOW
 *   per syscall with only an unconditional rule:  nr == N ? RET action : next
 *   per syscall with argument rules:              nr != N ? skip the group (JA, 32-bit offset) :
 *       rule 1: each condition, a false one jumps to rule 2; RET action
 *       ...  RET the unconditional action (or the default)
 *   RET default
 * Conditions compare 64-bit arguments as two 32-bit words (classic BPF loads 32 bits): the high word decides
 * unless equal. Every 8-bit jump stays inside one rule (at most 6 conditions of <= 6 instructions). */
#define _GNU_SOURCE
#include "seccomp_bpf.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp_bpf.c: add this architecture's AUDIT_ARCH"
#endif

/* little-endian: the low word of args[i] comes first */
#define ARG_LO(i) ((unsigned)(offsetof(struct seccomp_data, args) + 8 * (i)))
#define ARG_HI(i) (ARG_LO(i) + 4)
#define MAX_INSNS 4096 /* BPF_MAXINSNS */

typedef struct prog {
    struct sock_filter *f;
    size_t n, cap;
} prog;

static void put(prog *p, struct sock_filter ins)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        p->f = xrealloc(p->f, p->cap * sizeof *p->f);
    }
    p->f[p->n++] = ins;
}

static void stmt(prog *p, unsigned short code, uint32_t k)
{
    put(p, (struct sock_filter)BPF_STMT(code, k));
}

/* A conditional jump to absolute instruction indexes (both after this one, within 255). */
static void jump(prog *p, unsigned short op, uint32_t k, size_t t, size_t f)
{
    size_t here = p->n + 1;
    put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | op | BPF_K, k, (unsigned char)(t - here), (unsigned char)(f - here)));
}

static size_t cond_len(const seccomp_cond *c)
{
    switch (c->op) {
    case SC_OP_EQ:
    case SC_OP_NE: return 4;
    case SC_OP_MASKED_EQ: return 6;
    default: return 5;
    }
}

/* One condition at p->n; `fail` is where a false one goes, the next instruction is where a true one goes. */
static void cond(prog *p, const seccomp_cond *c, size_t fail)
{
    size_t pass = p->n + cond_len(c);
    uint32_t vh = (uint32_t)(c->value >> 32), vl = (uint32_t)c->value;
    stmt(p, BPF_LD | BPF_W | BPF_ABS, ARG_HI(c->index));
    switch (c->op) {
    case SC_OP_EQ:
        jump(p, BPF_JEQ, vh, p->n + 1, fail);
        stmt(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(c->index));
        jump(p, BPF_JEQ, vl, pass, fail);
        break;
    case SC_OP_NE:
        jump(p, BPF_JEQ, vh, p->n + 1, pass);
        stmt(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(c->index));
        jump(p, BPF_JEQ, vl, fail, pass);
        break;
    case SC_OP_MASKED_EQ: {
        uint32_t dh = (uint32_t)(c->value_two >> 32), dl = (uint32_t)c->value_two;
        stmt(p, BPF_ALU | BPF_AND | BPF_K, vh);
        jump(p, BPF_JEQ, dh, p->n + 1, fail);
        stmt(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(c->index));
        stmt(p, BPF_ALU | BPF_AND | BPF_K, vl);
        jump(p, BPF_JEQ, dl, pass, fail);
        break;
    }
    case SC_OP_GT:
    case SC_OP_GE:
        jump(p, BPF_JGT, vh, pass, p->n + 1);   /* hi > vh: true */
        jump(p, BPF_JEQ, vh, p->n + 1, fail);   /* hi < vh: false */
        stmt(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(c->index));
        jump(p, c->op == SC_OP_GT ? BPF_JGT : BPF_JGE, vl, pass, fail);
        break;
    case SC_OP_LT:
    case SC_OP_LE:
        jump(p, BPF_JGE, vh, p->n + 1, pass);   /* hi < vh: true */
        jump(p, BPF_JEQ, vh, p->n + 1, fail);   /* hi > vh: false */
        stmt(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(c->index));
        jump(p, c->op == SC_OP_LT ? BPF_JGE : BPF_JGT, vl, fail, pass);
        break;
    }
}

static size_t rule_len(const seccomp_rule *r)
{
    size_t n = 1; /* RET */
    for (int i = 0; i < r->n_conds; i++)
        n += cond_len(&r->conds[i]);
    return n;
}

int seccomp_bpf_build(const seccomp_rule *rules, size_t n, uint32_t default_action, seccomp_filter *out, oerr *e)
{
    prog p = {0};
    const uint32_t enosys = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);
    memset(out, 0, sizeof *out);
    stmt(&p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    jump(&p, BPF_JEQ, NATIVE_ARCH, p.n + 2, p.n + 1);
    stmt(&p, BPF_RET | BPF_K, enosys);
    stmt(&p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    jump(&p, BPF_JGE, 0x40000000u /* __X32_SYSCALL_BIT */, p.n + 1, p.n + 2);
    stmt(&p, BPF_RET | BPF_K, enosys);
#endif
    /* exit/exit_group always work: a profile refusing them (an allow-list without them) would leave the process
     * unable to end, e.g. after its execve was refused. Ending a process is never a privilege. */
    static const int EXITS[] = {SYS_exit_group, SYS_exit};
    for (size_t i = 0; i < 2; i++) {
        jump(&p, BPF_JEQ, (uint32_t)EXITS[i], p.n + 1, p.n + 2);
        stmt(&p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    char *done = xcalloc(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        int nr = rules[i].nr;
        /* this syscall's rules: conditional ones in order, then the first unconditional action */
        const seccomp_rule *uncond = NULL;
        size_t body = 0, n_cond = 0;
        for (size_t j = i; j < n; j++) {
            if (rules[j].nr != nr)
                continue;
            if (rules[j].n_conds) {
                body += rule_len(&rules[j]);
                n_cond++;
            } else if (!uncond) {
                uncond = &rules[j];
            }
        }
        uint32_t last = uncond ? uncond->action : default_action;
        if (!n_cond) {
            for (size_t j = i; j < n; j++)
                if (rules[j].nr == nr)
                    done[j] = 1;
            if (last == default_action)
                continue; /* same as no rule */
            jump(&p, BPF_JEQ, (uint32_t)nr, p.n + 1, p.n + 2);
            stmt(&p, BPF_RET | BPF_K, last);
            continue;
        }
        jump(&p, BPF_JEQ, (uint32_t)nr, p.n + 2, p.n + 1);
        stmt(&p, BPF_JMP | BPF_JA, (uint32_t)(body + 1)); /* past the group (body + its final RET) */
        for (size_t j = i; j < n; j++) {
            if (rules[j].nr != nr)
                continue;
            done[j] = 1;
            if (!rules[j].n_conds)
                continue;
            size_t fail = p.n + rule_len(&rules[j]);
            for (int c = 0; c < rules[j].n_conds; c++)
                cond(&p, &rules[j].conds[c], fail);
            stmt(&p, BPF_RET | BPF_K, rules[j].action);
        }
        stmt(&p, BPF_RET | BPF_K, last);
    }
    free(done);
    stmt(&p, BPF_RET | BPF_K, default_action);
    if (p.n > MAX_INSNS) {
        free(p.f);
        return oerr_set(e, "the seccomp profile compiles to %zu BPF instructions, more than the kernel's %d: "
                           "merge or drop rules",
                        p.n, MAX_INSNS);
    }
    out->insns = p.f;
    out->len = (unsigned short)p.n;
    return 0;
}

void seccomp_filter_free(seccomp_filter *f)
{
    free(f->insns);
    f->insns = NULL;
    f->len = 0;
}
