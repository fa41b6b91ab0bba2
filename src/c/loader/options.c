/* Runtime flag parsing, table driven so --help always lists every flag. */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <fcntl.h>

#include "caps.h"
#include "devices.h"
#include "secopt.h"
#include "cgroup.h"
#include "net.h"
#include "ns_join.h"
#include "ulimit.h"
#include "volumes.h"

enum opt_id {
    O_HELP, O_VERSION, O_DEBUG, O_ENTRYPOINT, O_WORKDIR, O_ENV, O_ENV_FILE, O_USER, O_HOSTNAME,
    O_CACHE_DIR, O_NO_CACHE, O_VOLUME, O_SECRET, O_TMPFS, O_READ_ONLY, O_OVERLAY_PERSIST, O_INIT, O_NET,
    O_DNS, O_DNS_SEARCH, O_ADD_HOST, O_ULIMIT, O_CAP_DROP, O_CAP_ADD, O_NO_SECCOMP, O_TTY, O_INTERACTIVE,
    O_DETACH, O_NAME, O_CONFIG, O_SSH_AGENT, O_SECCOMP_PROFILE, O_SECURITY_OPT, O_DEVICE, O_VERIFY_KEY, O_MEMORY, O_CPUS, O_PIDS_LIMIT,
    O_VM, O_VMM, O_KERNEL, O_VM_ACCEL,
    O_PUBLISH, O_IPC,
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
    {"volume", 'v', 1, O_VOLUME, "HOST:CTR[:ro]", "bind-mount a host path (must exist) at CTR (created) (repeatable)"},
    {"secret", 0, 1, O_SECRET, "FILE[:CTR]", "mount a host file read-only, nosuid/nodev/noexec at CTR "
                                            "(default /run/secrets/NAME) (repeatable)"},
    {"ssh-agent", 0, 0, O_SSH_AGENT, NULL, "forward $SSH_AUTH_SOCK (read-only) at /run/ssh-agent.sock"},
    {"tmpfs", 0, 1, O_TMPFS, "PATH", "mount a fresh tmpfs at PATH (absolute, no \"..\") (repeatable)"},
    {"read-only", 0, 0, O_READ_ONLY, NULL, "mount the container's root filesystem read-only"},
    {"overlay-persist", 0, 1, O_OVERLAY_PERSIST, "DIR", "keep the rootfs changes in DIR/upper across runs"},
    {"init", 0, 0, O_INIT, NULL, "run a tiny init as PID 1 that reaps zombies and forwards signals"},
    {"net", 0, 1, O_NET, "MODE", "network: host (default, the host's), none (only loopback), slirp[:PORTS] or "
                                 "pasta[:PORTS] (own network via slirp4netns/pasta; PORTS like 8080:80,8443:443), "
                                 "container:PID (join that container's)"},
    {"publish", 'p', 1, O_PUBLISH, "[IP:]HOST:CTR[/udp]", "forward host port HOST to container port CTR "
                                                          "(repeatable; implies --net slirp)"},
    {"ipc", 0, 1, O_IPC, "container:PID", "join that container's IPC namespace (SysV IPC, message queues)"},
    {"dns", 0, 1, O_DNS, "IP", "nameserver for the container's /etc/resolv.conf (repeatable, up to 8)"},
    {"dns-search", 0, 1, O_DNS_SEARCH, "DOMAIN", "search domain for /etc/resolv.conf (repeatable, up to 8)"},
    {"add-host", 0, 1, O_ADD_HOST, "NAME:IP", "add a line to the container's /etc/hosts (repeatable, up to 32)"},
    {"ulimit", 0, 1, O_ULIMIT, "TYPE=N[:M]", "resource limit (nofile, nproc, cpu, as, fsize, core, ...; "
                                            "N or soft:hard or unlimited) (repeatable)"},
    {"memory", 0, 1, O_MEMORY, "SIZE", "hard memory limit of the whole container, no swap (b/k/m/g; min 6m; "
                                       "cgroup, see docs)"},
    {"cpus", 0, 1, O_CPUS, "N", "CPU time limit in CPUs, e.g. 0.5 or 2 (cgroup cpu quota per 100 ms)"},
    {"pids-limit", 0, 1, O_PIDS_LIMIT, "N", "max processes/threads in the container (-1: no limit) (cgroup)"},
    {"cap-drop", 0, 1, O_CAP_DROP, "CAP", "drop a capability (name like net_raw or CAP_NET_RAW; all) (repeatable)"},
    {"cap-add", 0, 1, O_CAP_ADD, "CAP", "keep/raise a capability, also as ambient for non-root users (repeatable)"},
    {"no-seccomp", 0, 0, O_NO_SECCOMP, NULL, "do not install the default seccomp filter"},
    {"seccomp-profile", 0, 1, O_SECCOMP_PROFILE, "FILE", "use this Docker-format JSON seccomp profile instead of the "
                                                         "default filter (unconfined: none)"},
    {"security-opt", 0, 1, O_SECURITY_OPT, "OPT", "seccomp=FILE|unconfined, apparmor=PROFILE, label=type:T|user:U|"
                                                  "role:R|level:L|disable, no-new-privileges (repeatable)"},
    {"device", 0, 1, O_DEVICE, "DEV[:CTR][:rwm]", "bind-mount host device node DEV (under /dev) at CTR "
                                                  "(default: same path) (repeatable)"},
    {"verify-key", 0, 1, O_VERIFY_KEY, "PUB.pem", "check the file's ECDSA P-256 signature with this public key "
                                                  "before anything runs; refuse to run if it fails"},
    {"vm", 0, 0, O_VM, NULL, "run the image in a microVM (qemu) instead of namespaces; also when the file is "
                              "marked VM or named oci2vm*"},
    {"vmm", 0, 1, O_VMM, "NAME|PATH", "VMM for --vm: qemu (default: qemu-system-ARCH on $PATH) or its path"},
    {"vm-accel", 0, 1, O_VM_ACCEL, "kvm|tcg|auto", "--vm accelerator: kvm (default; needs /dev/kvm), tcg "
                                                   "(software, slow) or auto (kvm if usable, else tcg)"},
    {"kernel", 0, 1, O_KERNEL, "PATH", "--vm guest kernel (bzImage/vmlinuz) instead of the embedded one "
                                       "(also $OCI2BIN_VM_KERNEL)"},
    {"tty", 't', 0, O_TTY, NULL, "allocate a pseudo-terminal for the command"},
    {"interactive", 'i', 0, O_INTERACTIVE, NULL, "keep stdin attached (without it stdin is /dev/null)"},
    {"detach", 'd', 0, O_DETACH, NULL, "run in the background: print the PID to stop it with, and exit"},
    {"name", 0, 1, O_NAME, "NAME", "name the container: state in <cache>/containers/NAME.json (+ NAME.log "
                                   "with --detach)"},
    {"config", 0, 1, O_CONFIG, "FILE", "read flags from FILE: key=value or key lines (# comments)"},
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

static int push_limited(strv *v, const char *val, size_t max, const char *flag, oerr *e)
{
    if (v->n >= max)
        return oerr_set(e, "%s given more than %zu times: remove some", flag, max);
    strv_push(v, xstrdup(val));
    return 0;
}

static int apply(options *o, const opt_def *d, char *val, oerr *e)
{
    mount_spec ms;
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
    case O_VOLUME:
    case O_SECRET:
    case O_TMPFS:
        if ((d->id == O_VOLUME ? volume_parse : d->id == O_SECRET ? secret_parse : tmpfs_parse)(val, &ms, e))
            return -1;
        mount_spec_free(&ms);
        strv_push(d->id == O_VOLUME ? &o->volumes : d->id == O_SECRET ? &o->secrets : &o->tmpfs, xstrdup(val));
        break;
    case O_READ_ONLY: o->read_only = 1; break;
    case O_SSH_AGENT: o->ssh_agent = 1; break;
    case O_OVERLAY_PERSIST:
        if (!val[0])
            return oerr_set(e, "--overlay-persist needs a directory: give --overlay-persist DIR");
        o->overlay_persist = val;
        break;
    case O_INIT: o->init = 1; break;
    case O_NET: return net_parse_flag(o, val, e);
    case O_PUBLISH: return net_add_publish(o, "-p", val, e);
    case O_IPC: return ns_join_parse("--ipc", val, &o->ipc_join_pid, e);
    case O_DNS:
        if (net_check_ip(val))
            return oerr_set(e, "--dns %s is not an IPv4 or IPv6 address: give an address like 1.1.1.1", val);
        return push_limited(&o->dns, val, 8, "--dns", e);
    case O_DNS_SEARCH:
        if (!val[0] || strpbrk(val, " \t\n"))
            return oerr_set(e, "--dns-search \"%s\" is not a domain: give one domain per flag", val);
        return push_limited(&o->dns_search, val, 8, "--dns-search", e);
    case O_ADD_HOST:
        if (net_check_add_host(val, e))
            return -1;
        return push_limited(&o->add_hosts, val, 32, "--add-host", e);
    case O_ULIMIT: {
        int res;
        struct rlimit rl;
        if (ulimit_parse(val, &res, &rl, e))
            return -1;
        strv_push(&o->ulimits, xstrdup(val));
        break;
    }
    case O_MEMORY: return cgroup_parse_memory(val, &o->limits.memory, e);
    case O_CPUS: return cgroup_parse_cpus(val, &o->limits.cpu_quota, e);
    case O_PIDS_LIMIT: return cgroup_parse_pids(val, &o->limits.pids, e);
    case O_CAP_DROP:
    case O_CAP_ADD:
        if (strcasecmp(val, "all") != 0 && cap_by_name(val) < 0)
            return oerr_set(e, "%s %s: unknown capability: use a name like net_raw or CAP_NET_RAW, or all",
                            d->id == O_CAP_DROP ? "--cap-drop" : "--cap-add", val);
        strv_push(d->id == O_CAP_DROP ? &o->cap_drop : &o->cap_add, xstrdup(val));
        break;
    case O_NO_SECCOMP: o->no_seccomp = 1; o->seccomp_profile = NULL; break;
    case O_SECURITY_OPT:
        if (secopt_check(val, e))
            return -1;
        if (strncmp(val, "seccomp=", 8) != 0) {
            strv_push(&o->security_opts, xstrdup(val));
            break;
        }
        val += 8; /* seccomp=X is --seccomp-profile X */
        __attribute__((fallthrough));
    case O_SECCOMP_PROFILE:
        if (!val[0])
            return oerr_set(e, "--seccomp-profile needs a file: give a JSON profile, or unconfined");
        o->no_seccomp = strcmp(val, "unconfined") == 0; /* the last of these flags wins */
        o->seccomp_profile = o->no_seccomp ? NULL : val;
        break;
    case O_DEVICE: {
        device_spec ds;
        if (device_parse(val, &ds, e))
            return -1;
        device_spec_free(&ds);
        strv_push(&o->devices, xstrdup(val));
        break;
    }
    case O_VERIFY_KEY:
        if (!val[0])
            return oerr_set(e, "--verify-key needs a file: give the PEM public key");
        o->verify_key = val;
        break;
    case O_VM: o->vm = 1; break;
    case O_VMM:
        if (!val[0])
            return oerr_set(e, "--vmm needs a name or path: give --vmm qemu or --vmm /path/to/qemu-system-x86_64");
        o->vmm = val;
        break;
    case O_VM_ACCEL:
        if (strcmp(val, "kvm") != 0 && strcmp(val, "tcg") != 0 && strcmp(val, "auto") != 0)
            return oerr_set(e, "--vm-accel %s is not known: use kvm, tcg or auto", val);
        o->vm_accel = val;
        break;
    case O_KERNEL:
        if (!val[0])
            return oerr_set(e, "--kernel needs a file: give the path of a kernel image (vmlinuz)");
        o->vm_kernel = val;
        break;
    case O_TTY: o->tty = 1; break;
    case O_INTERACTIVE: o->interactive = 1; break;
    case O_DETACH: o->detach = 1; break;
    case O_NAME: {
        size_t n = strlen(val);
        if (n == 0 || n > 64 || !isalnum((unsigned char)val[0]) ||
            strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n)
            return oerr_set(e, "--name \"%s\" is not a valid name: use up to 64 of [A-Za-z0-9_.-], starting "
                               "with a letter or digit", val);
        o->name = val;
        break;
    }
    case O_CONFIG: break; /* handled by parse_flags */
    }
    return 0;
}

static const opt_def *find_long(const char *name, size_t nlen)
{
    for (size_t k = 0; k < N_OPTS; k++)
        if (strlen(OPTS[k].name) == nlen && strncmp(OPTS[k].name, name, nlen) == 0)
            return &OPTS[k];
    return NULL;
}

static const opt_def *find_short(char c)
{
    for (size_t k = 0; k < N_OPTS; k++)
        if (OPTS[k].short_name == c)
            return &OPTS[k];
    return NULL;
}

static int parse_flags(options *o, int argc, char **argv, int i, int in_config, int *end, oerr *e);

/* --config FILE: "key=value" -> --key value, "key" -> --key; '#' comments and blank lines ignored. */
static int apply_config(options *o, const char *path, oerr *e)
{
    char *text;
    if (read_small_file(AT_FDCWD, path, 1u << 20, &text, NULL, e)) {
        char tmp[OERR_MSG_MAX];
        snprintf(tmp, sizeof tmp, "--config: %s", e->msg);
        return oerr_set(e, "%s", tmp);
    }
    strv_push(&o->owned, text); /* values point into it */
    strv args = {0};
    strv_push(&args, xstrdup("oci2bin"));
    int lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        lineno++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = 0;
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line || *line == '#')
            continue;
        char *eq = strchr(line, '=');
        if (eq) { /* "key = value": trim around the '=' */
            *eq = 0;
            for (char *k = eq - 1; k >= line && (*k == ' ' || *k == '\t'); k--)
                *k = 0;
            while (eq[1] == ' ' || eq[1] == '\t')
                eq++;
        }
        const char *key = line[0] == '-' && line[1] == '-' ? line + 2 : line;
        const opt_def *d = find_long(key, strlen(key));
        if (!d) {
            strv_free(&args);
            return oerr_set(e, "--config %s line %d: unknown key \"%s\": use the long flag names of --help", path,
                            lineno, key);
        }
        if (!d->has_arg && eq && (strcmp(eq + 1, "false") == 0 || strcmp(eq + 1, "0") == 0))
            continue;
        strv_push(&args, xasprintf("--%s", d->name));
        if (d->has_arg) {
            if (!eq) {
                strv_free(&args);
                return oerr_set(e, "--config %s line %d: %s needs a value: write %s=%s", path, lineno, key, key,
                                d->metavar);
            }
            strv_push(&args, xstrdup(eq + 1));
        }
    }
    /* the argument strings must outlive the options: keep them */
    int end = 0, rc = parse_flags(o, (int)args.n, args.v, 1, 1, &end, e);
    if (rc == 0 && end != (int)args.n)
        rc = oerr_set(e, "--config %s: \"%s\" is not a flag: a config file holds flags only", path, args.v[end]);
    for (size_t k = 0; k < args.n; k++)
        strv_push(&o->owned, args.v[k]);
    free(args.v);
    return rc;
}

static int parse_flags(options *o, int argc, char **argv, int i, int in_config, int *end, oerr *e)
{
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
            d = find_long(name, nlen);
            if (!d)
                return oerr_set(e, "unknown flag: %.*s: run with --help to list the flags", (int)(nlen + 2), a);
            if (eq) {
                if (!d->has_arg)
                    return oerr_set(e, "flag --%s takes no value: remove \"=%s\"", d->name, eq + 1);
                val = (char *)eq + 1;
            }
        } else {
            /* a cluster of short flags (-it); one that takes a value ends it (-vHOST:CTR or -v HOST:CTR) */
            for (int k = 1; a[k]; k++) {
                d = find_short(a[k]);
                if (!d)
                    return oerr_set(e, "unknown flag: -%c: run with --help to list the flags", a[k]);
                if (d->has_arg) {
                    if (a[k + 1])
                        val = a + k + 1;
                    break;
                }
                if (a[k + 1] && apply(o, d, NULL, e))
                    return -1;
            }
        }
        i++;
        if (d->has_arg && !val) {
            if (i >= argc)
                return oerr_set(e, "flag %s needs a value (%s): see --help", a, d->metavar);
            val = argv[i++];
        }
        if (d->id == O_CONFIG) {
            if (in_config)
                return oerr_set(e, "--config inside a config file is not allowed: merge the files");
            if (apply_config(o, val, e))
                return -1;
            continue;
        }
        if (apply(o, d, val, e))
            return -1;
    }
    *end = i;
    return 0;
}

int options_parse(int argc, char **argv, options *o, oerr *e)
{
    memset(o, 0, sizeof *o);
    int i = 1;
    if (parse_flags(o, argc, argv, 1, 0, &i, e))
        return -1;
    o->args = argv + i;
    o->n_args = argc - i;
    return net_options_finish(o, e);
}

void options_free(options *o)
{
    strv *all[] = {&o->env, &o->env_files, &o->volumes, &o->secrets, &o->tmpfs, &o->dns, &o->dns_search,
                   &o->add_hosts, &o->ulimits, &o->cap_drop, &o->cap_add, &o->publish, &o->owned,
                   &o->security_opts, &o->devices};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        strv_free(all[k]);
}
