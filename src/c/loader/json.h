/* A small, strict JSON parser (RFC 8259) producing a tree. */
#ifndef OCI2BIN_JSON_H
#define OCI2BIN_JSON_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define JSON_MAX_DEPTH 64

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

typedef struct json {
    enum json_type type;
    char *key;           /* member name (decoded) when the parent is an object */
    char *str;           /* decoded string (JSON_STRING) or number text (JSON_NUMBER) */
    size_t len;          /* strlen(str) */
    size_t count;        /* number of children (arrays, objects) */
    struct json *child;  /* first child */
    struct json *next;   /* next sibling */
} json;

/* Parses exactly one JSON value (surrounding whitespace allowed). NULL + *e on error.
 * Strings containing U+0000 are rejected (the loader uses C strings). */
json *json_parse(const char *text, size_t len, oerr *e);
void json_free(json *j);

/* Member of an object (last one wins on duplicates), or NULL. */
const json *json_get(const json *obj, const char *key);
/* Element i of an array, or NULL. */
const json *json_at(const json *arr, size_t i);
/* The string value, or NULL if j is not a string. */
const char *json_str(const json *j);
/* Non-negative integer value; returns 0 or -1 if j is not one or it overflows. */
int json_u64(const json *j, uint64_t *out);
#endif
