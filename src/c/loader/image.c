/* Reads manifest.json and the image config from the payload and turns them into an image plan. */
#include "image.h"

#include "codec.h"

#include <stdlib.h>
#include <string.h>

#define MANIFEST_MAX (16u << 20)
#define CONFIG_MAX (64u << 20)

/* "blobs/sha256/<64 hex>" -> hex, else "". */
static void digest_from_name(const char *name, char hex[65])
{
    static const char pre[] = "blobs/sha256/";
    hex[0] = 0;
    if (strncmp(name, pre, sizeof pre - 1) != 0)
        return;
    const char *h = name + sizeof pre - 1;
    if (strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64)
        return;
    memcpy(hex, h, 65);
}

static int string_list(const json *j, strv *out, const char *what, oerr *e)
{
    if (!j || j->type == JSON_NULL)
        return 0;
    if (j->type == JSON_STRING) { /* tolerated: a single string */
        strv_push(out, xstrdup(j->str));
        return 0;
    }
    if (j->type != JSON_ARRAY)
        return oerr_set(e, "image config %s is not a list of strings: the image is malformed", what);
    for (const json *c = j->child; c; c = c->next) {
        if (c->type != JSON_STRING)
            return oerr_set(e, "image config %s is not a list of strings: the image is malformed", what);
        strv_push(out, xstrdup(c->str));
    }
    return 0;
}

static int load_config(const payload *p, image *img, oerr *e)
{
    char *text;
    if (payload_read(p, img->config_ent, CONFIG_MAX, &text, e))
        return -1;
    if (img->config_hex[0]) {
        char got[65];
        sha256_hex(text, img->config_ent->size, got);
        if (strcmp(got, img->config_hex) != 0) {
            free(text);
            return oerr_set(e, "image config does not match its digest sha256:%s: the file is corrupt, rebuild it",
                            img->config_hex);
        }
    }
    json *cfg = json_parse(text, img->config_ent->size, e);
    free(text);
    if (!cfg)
        return -1;
    int rc = 0;
    /* rootfs.diff_ids binds the config to the layers' content: each layer's decoded tar is checked against
     * it while extracting (tar_guard). A config without the list is not checked. */
    const json *rfs = json_get(cfg, "rootfs");
    const json *ids = rfs && rfs->type == JSON_OBJECT ? json_get(rfs, "diff_ids") : NULL;
    if (ids && ids->type == JSON_ARRAY && (ids->count || img->n_layers)) {
        if (ids->count != img->n_layers) {
            json_free(cfg);
            return oerr_set(e, "the image config lists %zu diff_ids for %zu layers: the image is malformed, "
                               "rebuild it",
                            ids->count, img->n_layers);
        }
        size_t i = 0;
        for (const json *d = ids->child; d && i < img->n_layers; d = d->next, i++) {
            const char *s = json_str(d);
            if (!s || strncmp(s, "sha256:", 7) != 0 || strlen(s) != 71 ||
                strspn(s + 7, "0123456789abcdef") != 64) {
                json_free(cfg);
                return oerr_set(e, "the image config's rootfs.diff_ids[%zu] is not a sha256 digest: the image is "
                                   "malformed, rebuild it",
                                i);
            }
            memcpy(img->layers[i].diff_hex, s + 7, 65);
        }
    }
    const json *c = json_get(cfg, "config");
    if (c && c->type == JSON_OBJECT) {
        const char *wd = json_str(json_get(c, "WorkingDir"));
        const char *user = json_str(json_get(c, "User"));
        if (wd && *wd)
            img->workdir = xstrdup(wd);
        if (user && *user)
            img->user = xstrdup(user);
        if (string_list(json_get(c, "Entrypoint"), &img->entrypoint, "Entrypoint", e) ||
            string_list(json_get(c, "Cmd"), &img->cmd, "Cmd", e) ||
            string_list(json_get(c, "Env"), &img->env, "Env", e))
            rc = -1;
    }
    json_free(cfg);
    return rc;
}

int image_load(const payload *p, image *img, oerr *e)
{
    memset(img, 0, sizeof *img);
    const payload_entry *me = payload_find(p, "manifest.json");
    if (!me)
        return oerr_set(e, "the embedded image has no manifest.json: the file is corrupt, rebuild it");
    char *text;
    if (payload_read(p, me, MANIFEST_MAX, &text, e))
        return -1;
    json *m = json_parse(text, me->size, e);
    free(text);
    if (!m)
        return -1;
    int rc = -1;
    const json *first = json_at(m, 0);
    const char *cfg = json_str(json_get(first, "Config"));
    const json *layers = json_get(first, "Layers");
    if (!first || first->type != JSON_OBJECT || !cfg || !layers || layers->type != JSON_ARRAY) {
        oerr_set(e, "manifest.json has no Config/Layers: the file is corrupt, rebuild it");
        goto out;
    }
    if (m->count != 1)
        warnmsg("manifest.json lists %zu images; running the first", m->count);
    img->config_ent = payload_find(p, cfg);
    if (!img->config_ent) {
        oerr_set(e, "image config %s is missing from the archive: the file is corrupt, rebuild it", cfg);
        goto out;
    }
    digest_from_name(cfg, img->config_hex);
    img->layers = xcalloc(layers->count, sizeof *img->layers);
    for (const json *l = layers->child; l; l = l->next) {
        const char *name = json_str(l);
        const payload_entry *le = name ? payload_find(p, name) : NULL;
        if (!le) {
            oerr_set(e, "layer %s is missing from the archive: the file is corrupt, rebuild it",
                     name ? name : "(not a string)");
            goto out;
        }
        image_layer *il = &img->layers[img->n_layers++];
        il->ent = le;
        digest_from_name(name, il->hex);
    }
    rc = load_config(p, img, e);
out:
    json_free(m);
    return rc;
}

void image_free(image *img)
{
    free(img->layers);
    strv_free(&img->entrypoint);
    strv_free(&img->cmd);
    strv_free(&img->env);
    free(img->workdir);
    free(img->user);
    memset(img, 0, sizeof *img);
}
