/* Extra mounts in the container: -v HOST:CTR[:ro|rw], --secret FILE[:CTR], --tmpfs PATH. */
#ifndef OCI2BIN_VOLUMES_H
#define OCI2BIN_VOLUMES_H
#include "options.h"
#include "util.h"

typedef struct mount_spec {
    char *host; /* NULL for tmpfs */
    char *ctr;  /* absolute, normalised, never "/" */
    int ro;
} mount_spec;

/* Syntax checks only (existence is checked when mounting). Return 0, or -1 with *e. */
int volume_parse(const char *spec, mount_spec *out, oerr *e);
int secret_parse(const char *spec, mount_spec *out, oerr *e);
int tmpfs_parse(const char *spec, mount_spec *out, oerr *e);
void mount_spec_free(mount_spec *m);
#define SSH_AGENT_CTR "/run/ssh-agent.sock"
/* --ssh-agent: $SSH_AUTH_SOCK if it is an absolute path to a socket, else NULL. */
const char *ssh_agent_socket(void);
/* In the container's mount namespace, before pivot_root: mounts every -v, --secret and --tmpfs of o
 * into the rootfs (rootfd: O_PATH of the rootfs mount), creating mount points in-root. */
int volumes_mount(int rootfd, const options *o, oerr *e);
/* Flags of the mount holding fd that an unprivileged bind remount must keep (the kernel locks them). */
unsigned long locked_flags(int fd);

#endif
