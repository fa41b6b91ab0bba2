/* The guest side of --vm: the loader runs as the VM's PID 1 (the kernel's rdinit=, with OCI2BIN_VM_INIT=1 on
 * its command line, which the kernel hands to init as an environment variable). */
#ifndef OCI2BIN_VM_INIT_H
#define OCI2BIN_VM_INIT_H

/* Serial ports of the guest (qemu -serial order): the command's stdout, its stderr, the control channel
 * (one line "oci2bin-exit N"), and the kernel console (kept by the host for error reports / --debug). */
#define VM_TTY_OUT "/dev/ttyS0"
#define VM_TTY_ERR "/dev/ttyS1"
#define VM_TTY_CTL "/dev/ttyS2"
#define VM_CONSOLE "ttyS3"
#define VM_EXIT_TAG "oci2bin-exit "

/* True when this process is the VM's init (PID 1 and OCI2BIN_VM_INIT=1). */
int vm_init_wanted(void);
/* Mounts /proc /sys /dev, reads /.oci2bin-vm.cfg, runs the command (docker run semantics), reaps every
 * process, reports the status on the control port and powers the VM off. Never returns. */
void vm_init_main(void) __attribute__((noreturn));
#endif
