/* seccomp_profile.c / seccomp_bpf.c / syscall_table.h on both architectures (aarch64 under qemu-user, where
 * filters cannot be installed: this checks names, parsing and compilation; tests/integration/loader checks
 * the installed filters on x86_64). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"
#include "seccomp.h"
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

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(g_path, sizeof g_path, "%s/seccomp-test-%d.json", t && *t ? t : "/tmp", (int)getpid());
    test_names();
    test_profiles();
    unlink(g_path);
    return tap_done();
}
