/* --vm: the image runs in a qemu microVM instead of namespaces (host side; the guest side is vm_init.c).
 * The rootfs (cache or private extraction, in a user namespace so owners are the image's) is streamed
 * into a newc initramfs together with the loader itself as the guest's init and the run description;
 * qemu boots the embedded (or --kernel) kernel with it; the command's stdout/stderr come back over two
 * serial ports, its exit status over a third. */
#ifndef OCI2BIN_VM_H
#define OCI2BIN_VM_H
#include "exec.h"
#include "image.h"
#include "options.h"
#include "payload.h"

#define VM_DEFAULT_MEM_MB 256
#define VM_DEFAULT_CPUS 1
#define VM_MIN_MEM_MB 64

/* VM mode: --vm, the footer's VM flag (oci_vm_binary / oci2vm builds), or an invocation name oci2vm*. */
int vm_wanted(const options *o, const payload *p, const char *prog);
/* Boots the VM and returns the command's exit status, or -1 with *e (status 125). */
int vm_run(const options *o, const payload *p, const image *img, exec_plan *plan, const char *hostname, oerr *e);
#endif
