/* Building a root filesystem from the image's layers. */
#ifndef OCI2BIN_ROOTFS_H
#define OCI2BIN_ROOTFS_H
#include "image.h"
#include "payload.h"
#include "util.h"

/* Extracts every layer in order into rootfd, verifying each blob's sha256 when its name carries one.
 * keep_owners: chown to the tar owners (only useful with a full id map). */
int rootfs_extract(const payload *p, const image *img, int rootfd, int keep_owners, oerr *e);
#endif
