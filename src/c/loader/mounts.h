/* The container's mount tree: private propagation, rootfs, /proc, /dev, /sys, /tmp, pivot_root. */
#ifndef OCI2BIN_MOUNTS_H
#define OCI2BIN_MOUNTS_H
#include "options.h"
#include "util.h"

/* Makes the mount tree private and mounts a tmpfs on rundir (the per-run scratch space). */
int mounts_private_tmpfs(const char *rundir, oerr *e);
/* Mounts a tmpfs on dir (used for scratch space inside the run dir). */
int mounts_tmpfs(const char *dir, const char *opts, oerr *e);
/* Prepares rootfs (a directory path): makes it a mount point, mounts /proc, /dev, /sys (read-only, best
 * effort), /tmp, writes /etc/resolv.conf and /etc/hosts (the host's, or per --dns/--dns-search/--add-host/
 * --net none), mounts -v/--secret/--tmpfs, and with --read-only remounts the root read-only. */
int mounts_setup_rootfs(const char *rootfs, const options *o, const char *hostname, oerr *e);
/* pivot_root into rootfs (chroot if pivot_root is impossible) and detach the old root. */
int mounts_enter_rootfs(const char *rootfs, oerr *e);
/* Overlay: lower (read-only), upper and work dirs -> target. Returns 0, or -1 with errno. */
int mounts_overlay(const char *lower, const char *upper, const char *work, const char *target);
#endif
