/* The image plan: manifest.json -> config + layers; config -> Entrypoint/Cmd/Env/WorkingDir/User. */
#ifndef OCI2BIN_IMAGE_H
#define OCI2BIN_IMAGE_H
#include "payload.h"
#include "util.h"

typedef struct image_layer {
    const payload_entry *ent;
    char hex[65]; /* expected sha256 of the blob, "" if the name does not carry it */
    char diff_hex[65]; /* expected sha256 of the uncompressed tar (config rootfs.diff_ids), "" if none */
} image_layer;

typedef struct image {
    const payload_entry *config_ent;
    char config_hex[65];
    image_layer *layers;
    size_t n_layers;
    strv entrypoint, cmd, env;
    char *workdir; /* NULL if unset */
    char *user;    /* NULL if unset */
} image;

int image_load(const payload *p, image *img, oerr *e);
void image_free(image *img);
#endif
