/* oci2bin loader: runs the OCI image embedded in its own file as a rootless container.
 * Flow: flags -> payload (footer, metadata) -> image plan -> container (namespaces, rootfs, exec). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "devices.h"
#include "exec.h"
#include "image.h"
#include "options.h"
#include "payload.h"
#include "util.h"
#include "verify.h"
#include "vm.h"
#include "vm_init.h"

#define LOADER_VERSION "0.1.0"

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int main(int argc, char **argv)
{
    oerr e = {0};
    options o;
    payload p = {.fd = -1};
    image img = {0};
    exec_plan plan = {0};
    int status = EXIT_SETUP;
    const char *prog = argc > 0 ? base_name(argv[0]) : "oci2bin";
    const char *dbgenv = getenv("OCI2BIN_DEBUG");

    if (vm_init_wanted()) /* this is the --vm guest's PID 1 (the kernel ran us from the initramfs) */
        vm_init_main();

    if (options_parse(argc, argv, &o, &e))
        goto fail;
    g_debug = o.debug || (dbgenv && *dbgenv && strcmp(dbgenv, "0") != 0);
    if (o.help) {
        options_usage(prog);
        options_free(&o);
        return 0;
    }
    if (o.version) {
        printf("oci2bin loader %s\n", LOADER_VERSION);
        options_free(&o);
        return 0;
    }
    if (payload_open(&p, "/proc/self/exe", &e))
        goto fail;
    /* before the image is even parsed: nothing is extracted or written for a file that fails */
    if (o.verify_key && verify_signature(&p, o.verify_key, &e))
        goto fail;
    if (devices_check(&o.devices, &e))
        goto fail;
    dbg("image %s, config %s, %zu archive entries", p.image ? p.image : "?",
        p.config_digest ? p.config_digest : "?", p.n_entries);
    if (image_load(&p, &img, &e))
        goto fail;
    char hostname[16] = "oci2bin";
    if (o.hostname)
        snprintf(hostname, sizeof hostname, "%s", o.hostname);
    else if (p.config_digest && strncmp(p.config_digest, "sha256:", 7) == 0 && strlen(p.config_digest) >= 19)
        snprintf(hostname, sizeof hostname, "%.12s", p.config_digest + 7);
    const char *hn = o.hostname ? o.hostname : hostname;
    if (exec_plan_build(&img, &o, hn, &plan, &e))
        goto fail;
    if (vm_wanted(&o, &p, prog))
        status = vm_run(&o, &p, &img, &plan, hn, &e);
    else
        status = container_run(&o, &p, &img, &plan, hn, &e);
    if (status < 0)
        goto fail;
    goto out;
fail:
    oerr_print(&e);
    status = e.status ? e.status : EXIT_SETUP;
out:
    exec_plan_free(&plan);
    image_free(&img);
    payload_close(&p);
    options_free(&o);
    return status;
}
