/* Capabilities. Inside the user namespace the container's root starts with every capability (over the
 * namespace's resources only); the container gets docker's default set (CAPS_DEFAULT). --cap-drop removes capabilities from the bounding set and the process
 * sets; --cap-add keeps them and raises them as ambient so they survive exec, even after --user. */
#define _GNU_SOURCE
#include "caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const NAMES[] = {
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
    "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
    "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
    "checkpoint_restore",
};
#define N_CAPS ((int)(sizeof NAMES / sizeof NAMES[0]))

int cap_by_name(const char *name)
{
    if (strncasecmp(name, "CAP_", 4) == 0)
        name += 4;
    for (int i = 0; i < N_CAPS; i++)
        if (strcasecmp(NAMES[i], name) == 0)
            return i;
    return -1;
}

static int last_cap(void)
{
    static int last = -1;
    if (last < 0) {
        FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
        if (!f || fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
            last = N_CAPS - 1;
        if (f)
            fclose(f);
    }
    return last;
}

static int bits(const strv *names, uint64_t *out, const char *flag, oerr *e)
{
    *out = 0;
    for (size_t i = 0; i < names->n; i++) {
        if (strcasecmp(names->v[i], "all") == 0) {
            *out = ~(uint64_t)0;
            continue;
        }
        int c = cap_by_name(names->v[i]);
        if (c < 0)
            return oerr_set(e, "%s %s: unknown capability: use a name like net_raw or CAP_NET_RAW", flag,
                            names->v[i]);
        *out |= (uint64_t)1 << c;
    }
    return 0;
}

/* Docker's default set. Everything else (SYS_ADMIN above all: no remounting /sys rw, no unmounting the
 * masks over /proc) is dropped for every caller: as real root the container's uid 0 is host uid 0. */
#define B(c) ((uint64_t)1 << (c))
const uint64_t CAPS_DEFAULT = B(CAP_CHOWN) | B(CAP_DAC_OVERRIDE) | B(CAP_FSETID) | B(CAP_FOWNER) | B(CAP_MKNOD) |
                              B(CAP_NET_RAW) | B(CAP_SETGID) | B(CAP_SETUID) | B(CAP_SETFCAP) | B(CAP_SETPCAP) |
                              B(CAP_NET_BIND_SERVICE) | B(CAP_SYS_CHROOT) | B(CAP_KILL) | B(CAP_AUDIT_WRITE);
#undef B

int caps_plan_build(const strv *drop, const strv *add, caps_plan *cp, oerr *e)
{
    memset(cp, 0, sizeof *cp);
    if (bits(drop, &cp->drop, "--cap-drop", e) || bits(add, &cp->add, "--cap-add", e))
        return -1;
    cp->drop |= ~CAPS_DEFAULT;
    cp->drop &= ~cp->add;
    cp->active = 1;
    return 0;
}

void caps_before_user(const caps_plan *cp)
{
    if (!cp->active)
        return;
    /* the bounding set first, while CAP_SETPCAP is still effective (a user switch clears it) */
    int last = last_cap();
    for (int c = 0; c <= last; c++)
        if ((cp->drop >> c) & 1 && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            warnmsg("--cap-drop %s: %s", c < N_CAPS ? NAMES[c] : "?", strerror(errno));
    if (cp->add && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        warnmsg("--cap-add: PR_SET_KEEPCAPS: %s", strerror(errno));
}

void caps_apply(const caps_plan *cp)
{
    if (!cp->active)
        return;
    int last = last_cap();
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0) {
        warnmsg("capget: %s (capabilities left unchanged)", strerror(errno));
        return;
    }
    uint64_t eff = data[0].effective | (uint64_t)data[1].effective << 32;
    uint64_t prm = data[0].permitted | (uint64_t)data[1].permitted << 32;
    uint64_t inh = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
    uint64_t valid = last >= 63 ? ~(uint64_t)0 : (((uint64_t)1 << (last + 1)) - 1);
    uint64_t add = cp->add & valid & prm; /* only what we hold can be raised */
    if ((cp->add & valid) != add)
        warnmsg("--cap-add: some capabilities are not held and cannot be added");
    prm &= ~cp->drop;
    eff = (eff | add) & prm;
    inh = (inh & ~cp->drop) | add;
    data[0].effective = (uint32_t)eff, data[1].effective = (uint32_t)(eff >> 32);
    data[0].permitted = (uint32_t)prm, data[1].permitted = (uint32_t)(prm >> 32);
    data[0].inheritable = (uint32_t)inh, data[1].inheritable = (uint32_t)(inh >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        warnmsg("capset: %s (capabilities left unchanged)", strerror(errno));
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        dbg("PR_CAP_AMBIENT_CLEAR_ALL: %s", strerror(errno));
    for (int c = 0; c <= last; c++)
        if ((add >> c) & 1 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
            warnmsg("--cap-add %s: ambient: %s", c < N_CAPS ? NAMES[c] : "?", strerror(errno));
}
