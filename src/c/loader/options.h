/* Runtime flags of an oci2bin binary (docker run style). */
#ifndef OCI2BIN_OPTIONS_H
#define OCI2BIN_OPTIONS_H
#include "cgroup.h"
#include "util.h"

enum { NET_SLIRP = 1, NET_PASTA = 2 };

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
    strv volumes;       /* -v HOST:CTR[:ro|rw] */
    strv secrets;       /* --secret HOST[:CTR] */
    strv tmpfs;         /* --tmpfs PATH */
    int read_only;      /* --read-only */
    int ssh_agent;      /* --ssh-agent */
    char *overlay_persist; /* --overlay-persist DIR */
    int init;           /* --init */
    int net_none;       /* --net none (else host) */
    int net_set;        /* --net was given (else -p implies --net slirp) */
    int net_helper;     /* --net slirp|pasta: NET_SLIRP/NET_PASTA wire an own netns up (net_helper.c), else 0 */
    int net_join_pid, ipc_join_pid; /* --net container:PID, --ipc container:PID (ns_join.c), else 0 */
    strv publish;       /* port forwards [IP:]HOST:CTR[/tcp|/udp] from -p and --net slirp:/pasta: */
    strv dns, dns_search, add_hosts; /* --dns, --dns-search, --add-host */
    strv ulimits;       /* --ulimit TYPE=N[:M] */
    cg_limits limits;   /* --memory, --cpus, --pids-limit */
    strv cap_drop, cap_add;
    int no_seccomp;     /* --no-seccomp, --seccomp-profile unconfined */
    char *seccomp_profile; /* --seccomp-profile FILE / --security-opt seccomp=FILE */
    strv security_opts; /* --security-opt values other than seccomp= */
    strv devices;       /* --device HOST[:CTR][:PERMS] */
    char *verify_key;   /* --verify-key PUBLIC.pem */
    int vm;             /* --vm (also: footer VM flag, oci2vm* name; decided in main) */
    char *vmm;          /* --vmm NAME|PATH */
    char *vm_accel;     /* --vm-accel kvm|tcg|auto (NULL: $OCI2BIN_VM_ACCEL, else kvm) */
    char *vm_kernel;    /* --kernel PATH */
    int tty, interactive, detach; /* -t, -i, -d */
    char *name;         /* --name */
    strv owned;         /* strings owned by the options (from --config files) */
    char **args;        /* command arguments after the flags (not owned) */
    int n_args;
} options;

/* Parses argv. Flags come first; the first non-flag argument or "--" ends them. --config FILE inserts the
 * file's flags at its place (key=value -> --key value, key -> --key; # comments; no nested --config). */
int options_parse(int argc, char **argv, options *o, oerr *e);
void options_usage(const char *prog);
void options_free(options *o);
#endif
