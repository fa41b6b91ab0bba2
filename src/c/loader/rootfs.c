/* Layer blobs -> codec -> tar -> extract, in manifest order. */
#include "rootfs.h"

#include <string.h>

#include "codec.h"
#include "extract.h"
#include "tar.h"

static ssize_t codec_source(void *ctx, void *buf, size_t len, oerr *e)
{
    return codec_read(ctx, buf, len, e);
}

int rootfs_extract(const payload *p, const image *img, int rootfd, int keep_owners, oerr *e)
{
    extract_ctx x;
    extract_init(&x, rootfd);
    x.keep_owners = keep_owners;
    int rc = 0;
    for (size_t i = 0; i < img->n_layers && rc == 0; i++) {
        const image_layer *l = &img->layers[i];
        codec c;
        tar_reader t;
        double t0 = now_ms();
        if (codec_open(&c, p->fd, l->ent->off, l->ent->size, l->hex[0] != 0, l->ent->name, e)) {
            codec_close(&c);
            rc = -1;
            break;
        }
        tar_init(&t, codec_source, &c);
        rc = extract_layer(&x, &t, e);
        if (rc == 0)
            rc = codec_verify(&c, l->hex, e);
        dbg("layer %zu/%zu %s (%s, %llu bytes): %s in %.1f ms", i + 1, img->n_layers, l->ent->name,
            codec_kind_name(c.kind), (unsigned long long)l->ent->size, rc ? "failed" : "extracted",
            now_ms() - t0);
        tar_free(&t);
        codec_close(&c);
    }
    if (rc == 0)
        rc = extract_finish(&x, e);
    dbg("rootfs: %llu files, %llu bytes", (unsigned long long)x.files, (unsigned long long)x.bytes);
    extract_free(&x);
    return rc;
}
