/* Starting the container: clone into new namespaces, id maps, rootfs, exec; waiting and forwarding. */
#ifndef OCI2BIN_CONTAINER_H
#define OCI2BIN_CONTAINER_H
#include "exec.h"
#include "image.h"
#include "options.h"
#include "payload.h"

/* Runs the container to completion; returns the exit status for the loader (or -1 with *e). */
int container_run(const options *o, const payload *p, const image *img, exec_plan *plan,
                  const char *hostname, oerr *e);
#endif
