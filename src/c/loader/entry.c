/* Process entry (linked with -Wl,-e,oci2bin_entry): makes AT_PHDR point at our program headers, then
 * enters musl's normal start-up (_start_c).
 *
 * Why: in the polyglot (docs/format.md) the loader's segments sit at file offset L_OFF, and the header
 * at offset 0 has e_phoff += L_OFF. Linux (>= 5.18) computes AT_PHDR from the PT_LOAD that contains
 * e_phoff, which is right; qemu-user 7.2 (Debian 12) computes lowest p_vaddr + e_phoff, which is off by
 * L_OFF (unmapped for aarch64's 64 KiB L_OFF), and musl's static TLS set-up walks AT_PHDR before main.
 * The embedded loader's own ELF header is mapped at __ehdr_start (first PT_LOAD, file offset L_OFF),
 * with its original e_phoff, so __ehdr_start + e_phoff is always where the program headers are.
 * This runs before libc is initialised: no libc calls, no TLS, no stack protector. */
#include <elf.h>
#include <stddef.h>

extern const Elf64_Ehdr __ehdr_start;
void _start_c(long *p);
void oci2bin_start_c(long *p);

__attribute__((used, noinline, no_stack_protector)) void oci2bin_start_c(long *p)
{
    long argc = p[0];
    char **envp = (char **)(p + 1 + argc + 1);
    while (*envp)
        envp++;
    for (size_t *aux = (size_t *)(envp + 1); aux[0] != AT_NULL; aux += 2)
        if (aux[0] == AT_PHDR)
            aux[1] = (size_t)((const char *)&__ehdr_start + __ehdr_start.e_phoff);
    _start_c(p);
}

#if defined(__x86_64__)
__asm__(".text\n"
        ".global oci2bin_entry\n"
        ".type oci2bin_entry,%function\n"
        "oci2bin_entry:\n"
        "	xor %rbp,%rbp\n"
        "	mov %rsp,%rdi\n"
        "	andq $-16,%rsp\n"
        "	call oci2bin_start_c\n"
        "	hlt\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".global oci2bin_entry\n"
        ".type oci2bin_entry,%function\n"
        "oci2bin_entry:\n"
        "	mov x29, #0\n"
        "	mov x30, #0\n"
        "	mov x0, sp\n"
        "	and sp, x0, #-16\n"
        "	b oci2bin_start_c\n");
#else
#error "oci2bin loader: add an entry stub for this architecture"
#endif
