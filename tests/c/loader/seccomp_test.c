/* seccomp_profile.c / seccomp_bpf.c / syscall_table.h on both architectures (aarch64 under qemu-user, where
 * filters cannot be installed: this checks names, parsing and compilation; tests/integration/loader checks
 * the installed filters on x86_64). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>

#include "caps.h"
#include "seccomp.h"
#include "seccomp_bpf.h"
#include "seccomp_profile.h"
#include "tap.h"

static char g_path[512];

/* Writes text as the profile file and compiles it with caps; returns the instruction count or -1 (msg in e). */
static int load(const char *text, uint64_t caps, oerr *e)
{
    FILE *f = fopen(g_path, "w");
    fputs(text, f);
    fclose(f);
    seccomp_filter sf;
    if (seccomp_profile_load(g_path, caps, &sf, e))
        return -1;
    int n = sf.len;
    seccomp_filter_free(&sf);
    return n;
}

static void test_names(void)
{
    static const struct {
        const char *name;
        long nr;
    } known[] = {{"read", SYS_read}, {"openat", SYS_openat}, {"mkdirat", SYS_mkdirat}, {"clone3", SYS_clone3},
                 {"pidfd_open", SYS_pidfd_open}, {"io_uring_setup", SYS_io_uring_setup}, {"kill", SYS_kill},
                 {"exit_group", SYS_exit_group}, {"close_range", SYS_close_range}, {"newfstatat", SYS_newfstatat}};
    int all = 1;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (seccomp_syscall_nr(known[i].name) != known[i].nr) {
            printf("# %s: %d, libc says %ld\n", known[i].name, seccomp_syscall_nr(known[i].name), known[i].nr);
            all = 0;
        }
    ok(all, "table numbers agree with the libc's SYS_ constants");
    ok(seccomp_syscall_nr("no_such_syscall") == -1 && seccomp_syscall_nr("") == -1, "unknown names are -1");
#if defined(__x86_64__)
    ok(seccomp_syscall_nr("mkdir") == SYS_mkdir && seccomp_syscall_nr("arch_prctl") == SYS_arch_prctl,
       "x86_64-only names");
#else
    ok(seccomp_syscall_nr("mkdir") == -1 && seccomp_syscall_nr("open") == -1, "no mkdir/open on aarch64");
#endif
}

static void test_profiles(void)
{
    oerr e = {0};
    uint64_t dflt = CAPS_DEFAULT, admin = CAPS_DEFAULT | (1ull << cap_by_name("sys_admin"));
    int base = load("{\"defaultAction\":\"SCMP_ACT_ALLOW\"}", dflt, &e);
    ok(base > 0, "an empty allow profile compiles (%d instructions)", base);
    int one = load("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"kill\"],"
                   "\"action\":\"SCMP_ACT_ERRNO\"}]}",
                   dflt, &e);
    ok(one == base + 2, "one unconditional rule = 2 instructions (%d)", one);
    int same = load("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"kill\"],"
                    "\"action\":\"SCMP_ACT_ALLOW\"}]}",
                    dflt, &e);
    ok(same == base, "a rule with the default action compiles to nothing");
    const char *caps_rule = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"kill\"],"
                            "\"action\":\"SCMP_ACT_ERRNO\",\"includes\":{\"caps\":[\"CAP_SYS_ADMIN\"]}}]}";
    ok(load(caps_rule, dflt, &e) == base && load(caps_rule, admin, &e) == base + 2,
       "includes.caps: applies only with the capability");
    const char *excl = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"kill\"],"
                       "\"action\":\"SCMP_ACT_ERRNO\",\"excludes\":{\"caps\":[\"CAP_SYS_ADMIN\"]}}]}";
    ok(load(excl, dflt, &e) == base + 2 && load(excl, admin, &e) == base, "excludes.caps: skipped with it");
    int arm = load("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"kill\"],"
                   "\"action\":\"SCMP_ACT_ERRNO\",\"includes\":{\"arches\":[\"arm64\"]}}]}",
                   dflt, &e);
#if defined(__aarch64__)
    ok(arm == base + 2, "includes.arches arm64 applies on aarch64");
#else
    ok(arm == base, "includes.arches arm64 is skipped on x86_64");
#endif
    ok(load("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"kill\"],\"action\":"
            "\"SCMP_ACT_ERRNO\",\"includes\":{\"minKernel\":\"99.0\"}}]}",
            dflt, &e) == base,
       "includes.minKernel in the future: skipped");
    int cond = load("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"kill\"],\"action\":"
                    "\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":1,\"value\":9,\"op\":\"SCMP_CMP_EQ\"},"
                    "{\"index\":0,\"value\":7,\"valueTwo\":1,\"op\":\"SCMP_CMP_MASKED_EQ\"}]}]}",
                    dflt, &e);
    ok(cond == base + 2 + 4 + 6 + 1 + 1, "conditional group: JEQ+JA, EQ 4, MASKED_EQ 6, RET, final RET (%d)",
       cond);
    ok(load("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"name\":\"kill\",\"names\":[\"kill\"],"
            "\"action\":\"SCMP_ACT_ERRNO\"}]}",
            dflt, &e) < 0 && strstr(e.msg, "not both"),
       "name and names together: refused");
    ok(load("{\"defaultAction\": 1}", dflt, &e) < 0 && strstr(e.msg, "defaultAction action must be a string") &&
           strstr(e.msg, g_path),
       "messages name the file and the member: %s", e.msg);
    ok(load("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"kill\"],\"action\":"
            "\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":1,\"value\":-1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
            dflt, &e) < 0 && strstr(e.msg, "args[0].value"),
       "negative argument values refused");
    seccomp_filter df;
    ok(seccomp_default_filter(&df, &e) == 0 && df.len > 16 * 2, "the default filter compiles (%u)", df.len);
    seccomp_filter_free(&df);
}

/* ---- what the compiled program decides, run by a classic-BPF interpreter (the subset the compiler emits) ---- */

#if defined(__x86_64__)
#define TEST_ARCH AUDIT_ARCH_X86_64
#else
#define TEST_ARCH AUDIT_ARCH_AARCH64
#endif

static uint32_t run_bpf(const seccomp_filter *sf, const struct seccomp_data *d, int *bad)
{
    const struct sock_filter *f = sf->insns;
    uint32_t a = 0;
    for (size_t pc = 0; pc < sf->len; pc++) {
        const struct sock_filter *i = &f[pc];
        switch (i->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            if (i->k + 4 > sizeof *d || i->k % 4) {
                *bad = 1;
                return 0;
            }
            memcpy(&a, (const char *)d + i->k, 4);
            break;
        case BPF_ALU | BPF_AND | BPF_K: a &= i->k; break;
        case BPF_JMP | BPF_JA: pc += i->k; break;
        case BPF_JMP | BPF_JEQ | BPF_K: pc += a == i->k ? i->jt : i->jf; break;
        case BPF_JMP | BPF_JGT | BPF_K: pc += a > i->k ? i->jt : i->jf; break;
        case BPF_JMP | BPF_JGE | BPF_K: pc += a >= i->k ? i->jt : i->jf; break;
        case BPF_RET | BPF_K: return i->k;
        default: *bad = 1; return 0;
        }
    }
    *bad = 1; /* fell off the end */
    return 0;
}

static uint32_t decide(const seccomp_filter *sf, uint32_t arch, int nr, uint64_t arg, unsigned idx, int *bad)
{
    struct seccomp_data d;
    memset(&d, 0, sizeof d);
    d.arch = arch;
    d.nr = nr;
    d.args[idx] = arg;
    return run_bpf(sf, &d, bad);
}

static int holds(enum seccomp_op op, uint64_t arg, uint64_t v, uint64_t v2)
{
    switch (op) {
    case SC_OP_NE: return arg != v;
    case SC_OP_LT: return arg < v;
    case SC_OP_LE: return arg <= v;
    case SC_OP_EQ: return arg == v;
    case SC_OP_GE: return arg >= v;
    case SC_OP_GT: return arg > v;
    case SC_OP_MASKED_EQ: return (arg & v) == v2;
    }
    return 0;
}

static void test_bpf_semantics(void)
{
    const uint32_t deny = SECCOMP_RET_ERRNO | EPERM, enosys = SECCOMP_RET_ERRNO | ENOSYS;
    const uint32_t dflt = SECCOMP_RET_ALLOW;
    /* 64-bit comparisons as two 32-bit words: values around the word boundary */
    static const uint64_t vals[] = {0, 1, 5, 0xffffffffull, 0x100000000ull, 0x100000005ull, 0x1fffffffeull,
                                    0x200000000ull, 0x8000000000000000ull, 0xfffffffffffffffeull, ~0ull};
    int all = 1, bad = 0;
    for (int op = SC_OP_NE; op <= SC_OP_MASKED_EQ; op++)
        for (size_t vi = 0; vi < sizeof vals / sizeof vals[0]; vi++) {
            seccomp_rule r;
            memset(&r, 0, sizeof r);
            r.nr = SYS_getpid;
            r.action = deny;
            r.n_conds = 1;
            r.conds[0] = (seccomp_cond){3, (enum seccomp_op)op, vals[vi], vals[vi] & 0x1ffffffffull};
            seccomp_filter sf;
            oerr e;
            if (seccomp_bpf_build(&r, 1, dflt, &sf, &e)) {
                all = 0;
                continue;
            }
            for (size_t ai = 0; ai < sizeof vals / sizeof vals[0]; ai++) {
                uint64_t arg = vals[ai];
                uint32_t want = holds((enum seccomp_op)op, arg, r.conds[0].value, r.conds[0].value_two) ? deny : dflt;
                uint32_t got = decide(&sf, TEST_ARCH, SYS_getpid, arg, 3, &bad);
                if (got != want) {
                    all = 0;
                    printf("# op %d value %#llx arg %#llx: got %#x want %#x\n", op, (unsigned long long)vals[vi],
                           (unsigned long long)arg, got, want);
                }
            }
            seccomp_filter_free(&sf);
        }
    ok(all && !bad, "every op agrees with a 64-bit comparison, across the 32-bit word boundary");

    /* many conditional groups: the program is far longer than an 8-bit jump reaches; the last group still works,
     * rules of one syscall are tried in order (AND of conditions), then its unconditional rule, then the default */
    enum { N = 120 };
    seccomp_rule rules[N + 3];
    memset(rules, 0, sizeof rules);
    for (int i = 0; i < N; i++)
        rules[i] = (seccomp_rule){1000 + i, deny, 1, {{0, SC_OP_EQ, (uint64_t)i, 0}}};
    rules[N] = (seccomp_rule){SYS_getppid, SECCOMP_RET_ERRNO | 7, 2,
                              {{0, SC_OP_GE, 10, 0}, {1, SC_OP_LT, 0x100000000ull, 0}}};
    rules[N + 1] = (seccomp_rule){SYS_getppid, SECCOMP_RET_ERRNO | 8, 0, {{0}}};
    rules[N + 2] = (seccomp_rule){SYS_getppid, SECCOMP_RET_ERRNO | 9, 1, {{0, SC_OP_EQ, 3, 0}}};
    seccomp_filter sf;
    oerr e;
    int built = seccomp_bpf_build(rules, N + 3, dflt, &sf, &e) == 0;
    ok(built && sf.len > 600, "120 conditional groups compile (%u instructions)", built ? sf.len : 0);
    if (!built)
        return;
    bad = 0;
    ok(decide(&sf, TEST_ARCH, 1000 + N - 1, N - 1, 0, &bad) == deny &&
           decide(&sf, TEST_ARCH, 1000 + N - 1, N, 0, &bad) == dflt &&
           decide(&sf, TEST_ARCH, 1000, 0, 0, &bad) == deny && decide(&sf, TEST_ARCH, 1000, 1, 0, &bad) == dflt,
       "first and last conditional groups decide by their argument");
    struct seccomp_data d;
    memset(&d, 0, sizeof d);
    d.arch = TEST_ARCH;
    d.nr = SYS_getppid;
    d.args[0] = 10;
    d.args[1] = 0xffffffffull;
    uint32_t both = run_bpf(&sf, &d, &bad);
    d.args[1] = 0x100000000ull;
    uint32_t second_false = run_bpf(&sf, &d, &bad);
    d.args[0] = 3;
    uint32_t third = run_bpf(&sf, &d, &bad);
    ok(both == (SECCOMP_RET_ERRNO | 7) && second_false == (SECCOMP_RET_ERRNO | 8) && third == (SECCOMP_RET_ERRNO | 9),
       "AND of conditions, then the next conditional rule, then the unconditional one (%#x %#x %#x)", both,
       second_false, third);
    ok(decide(&sf, TEST_ARCH ^ 1, 1000, 0, 0, &bad) == enosys, "another architecture: ENOSYS");
#if defined(__x86_64__)
    ok(decide(&sf, TEST_ARCH, 0x40000000 | 1000, 0, 0, &bad) == enosys, "x32 syscall numbers: ENOSYS");
#endif
    ok(decide(&sf, TEST_ARCH, SYS_exit_group, 0, 0, &bad) == SECCOMP_RET_ALLOW && !bad,
       "exit_group allowed; every path ends in a RET inside the program");
    seccomp_filter_free(&sf);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(g_path, sizeof g_path, "%s/seccomp-test-%d.json", t && *t ? t : "/tmp", (int)getpid());
    test_names();
    test_profiles();
    test_bpf_semantics();
    unlink(g_path);
    return tap_done();
}
