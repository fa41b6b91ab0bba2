/* What the guest's PID 1 runs (--vm): written by the host loader into the initramfs as /.oci2bin-vm.cfg,
 * read by vm_init. Records "KEY\0VALUE\0" (argv and env values can hold any byte but NUL, so no escaping):
 * arg (repeated, in order), env (repeated, KEY=VALUE), workdir, user, hostname. */
#ifndef OCI2BIN_VM_CFG_H
#define OCI2BIN_VM_CFG_H
#include "exec.h"
#include "util.h"

#define VM_CFG_PATH ".oci2bin-vm.cfg"  /* relative to the initramfs root */
#define VM_INIT_PATH ".oci2bin-vm-init" /* the loader itself, run by the kernel as PID 1 (rdinit=) */

typedef struct vm_cfg {
    strv argv, env;
    char *workdir, *user, *hostname;
} vm_cfg;

/* The record blob for plan + hostname (malloc'd, *len bytes). */
char *vm_cfg_encode(const exec_plan *pl, const char *hostname, size_t *len);
/* Parses a blob; -1 with *e if it is malformed (a record without its NUL, an unknown key, no arg). */
int vm_cfg_decode(const char *buf, size_t len, vm_cfg *c, oerr *e);
void vm_cfg_free(vm_cfg *c);
#endif
