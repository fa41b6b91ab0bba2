/* Resolving paths inside a root directory without ever leaving it. */
#ifndef OCI2BIN_PATHRES_H
#define OCI2BIN_PATHRES_H
#include "util.h"

/* Normalises an archive member name into a relative path: strips leading "./" and "/" runs,
 * collapses "//" and "/./". Rejects ".." components and absolute names (returns -1 with *e).
 * An empty result (the root itself) is returned as ".". */
int path_normalize(const char *in, char *out, size_t outsz, oerr *e);

/* Opens directory `rel` (relative, normalised) under rootfd as an O_PATH fd, resolving symlinks as if
 * rootfd were "/" (openat2 RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS; a component-by-component O_NOFOLLOW
 * walk on kernels without openat2). create != 0 makes missing directories (mode 0755).
 * Returns the fd or -1 with errno set. */
int root_open_dir(int rootfd, const char *rel, int create);
/* Opens `rel` under rootfd with flags (O_NOFOLLOW is added for the last component), resolving the
 * parent as root_open_dir does. Returns fd or -1/errno. */
int root_open(int rootfd, const char *rel, int flags, mode_t mode);
/* Splits a normalised path into parent ("." if none) and leaf; buffers of PATH_MAX. */
void path_split(const char *rel, char *parent, char *leaf);
/* Tests only: 1 forces the component walk even where openat2 exists. */
void pathres_force_walk(int on);
/* Removes path (a file or a whole tree) relative to dirfd, without following symlinks. */
int remove_tree_at(int dirfd, const char *name);
#endif
