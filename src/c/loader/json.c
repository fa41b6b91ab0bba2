/* A small, strict JSON parser: recursive descent over a tokenizer, depth-limited, with full string
 * unescaping (\uXXXX including surrogate pairs -> UTF-8) and UTF-8 validation of raw string bytes. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const unsigned char *p, *end, *start;
    oerr *e;
} parser;

static int fail(parser *ps, const char *what)
{
    return oerr_set(ps->e, "malformed JSON at byte %zu: %s: the file is corrupt, rebuild it with oci2bin",
                    (size_t)(ps->p - ps->start), what);
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static json *new_node(enum json_type t)
{
    json *j = xcalloc(1, sizeof *j);
    j->type = t;
    return j;
}

void json_free(json *j)
{
    while (j) {
        json *next = j->next;
        json_free(j->child);
        free(j->key);
        free(j->str);
        free(j);
        j = next;
    }
}

static int hex4(parser *ps, unsigned *out)
{
    if (ps->end - ps->p < 4)
        return fail(ps, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = ps->p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return fail(ps, "bad hex digit in \\u escape");
        v = v * 16 + d;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of a valid UTF-8 sequence starting at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    unsigned cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Parses a string token at ps->p (which is '"'); returns a malloc'd decoded string. */
static char *parse_string(parser *ps, size_t *lenp)
{
    ps->p++; /* opening quote */
    const unsigned char *s = ps->p;
    /* Decoded output is never longer than the raw text. */
    size_t cap = 0;
    while (s + cap < ps->end && s[cap] != '"') {
        if (s[cap] == '\\')
            cap++;
        cap++;
    }
    unsigned char *out = xmalloc(cap + 1), *o = out;
    for (;;) {
        if (ps->p >= ps->end) {
            fail(ps, "unterminated string");
            goto bad;
        }
        unsigned c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            fail(ps, "control character in string");
            goto bad;
        }
        if (c != '\\') {
            size_t n = utf8_len(ps->p, ps->end);
            if (!n) {
                fail(ps, "invalid UTF-8 in string");
                goto bad;
            }
            memcpy(o, ps->p, n);
            o += n;
            ps->p += n;
            continue;
        }
        ps->p++;
        if (ps->p >= ps->end) {
            fail(ps, "unterminated escape");
            goto bad;
        }
        c = *ps->p++;
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(ps, &cp))
                goto bad;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    fail(ps, "unpaired surrogate in \\u escape");
                    goto bad;
                }
                ps->p += 2;
                if (hex4(ps, &lo))
                    goto bad;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(ps, "bad low surrogate in \\u escape");
                    goto bad;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(ps, "unpaired surrogate in \\u escape");
                goto bad;
            }
            if (cp == 0) {
                fail(ps, "\\u0000 is not supported in strings");
                goto bad;
            }
            o += put_utf8(o, cp);
            break;
        }
        default:
            ps->p--;
            fail(ps, "bad escape");
            goto bad;
        }
    }
    *o = 0;
    *lenp = (size_t)(o - out);
    return (char *)out;
bad:
    free(out);
    return NULL;
}

static int is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

static json *parse_number(parser *ps)
{
    const unsigned char *s = ps->p;
    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    if (ps->p >= ps->end || !is_digit(*ps->p)) {
        fail(ps, "bad number");
        return NULL;
    }
    if (*ps->p == '0')
        ps->p++;
    else
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p)) {
            fail(ps, "bad number fraction");
            return NULL;
        }
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p)) {
            fail(ps, "bad number exponent");
            return NULL;
        }
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    }
    json *j = new_node(JSON_NUMBER);
    j->len = (size_t)(ps->p - s);
    j->str = xstrndup((const char *)s, j->len);
    return j;
}

static json *parse_value(parser *ps, int depth);

static int literal(parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, "unexpected character");
    ps->p += n;
    return 0;
}

static json *parse_container(parser *ps, int depth, int is_obj)
{
    json *j = new_node(is_obj ? JSON_OBJECT : JSON_ARRAY), **tail = &j->child;
    char close = is_obj ? '}' : ']';
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return j;
    }
    for (;;) {
        char *key = NULL;
        size_t klen;
        skip_ws(ps);
        if (is_obj) {
            if (ps->p >= ps->end || *ps->p != '"') {
                fail(ps, "expected a member name");
                goto bad;
            }
            key = parse_string(ps, &klen);
            if (!key)
                goto bad;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                fail(ps, "expected ':'");
                goto bad;
            }
            ps->p++;
        }
        json *v = parse_value(ps, depth + 1);
        if (!v) {
            free(key);
            goto bad;
        }
        v->key = key;
        *tail = v;
        tail = &v->next;
        j->count++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return j;
        }
        fail(ps, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        goto bad;
    }
bad:
    json_free(j);
    return NULL;
}

static json *parse_value(parser *ps, int depth)
{
    if (depth > JSON_MAX_DEPTH) {
        fail(ps, "nesting too deep");
        return NULL;
    }
    skip_ws(ps);
    if (ps->p >= ps->end) {
        fail(ps, "unexpected end of input");
        return NULL;
    }
    switch (*ps->p) {
    case '{':
        return parse_container(ps, depth, 1);
    case '[':
        return parse_container(ps, depth, 0);
    case '"': {
        size_t len;
        char *s = parse_string(ps, &len);
        if (!s)
            return NULL;
        json *j = new_node(JSON_STRING);
        j->str = s;
        j->len = len;
        return j;
    }
    case 't':
        return literal(ps, "true") ? NULL : new_node(JSON_TRUE);
    case 'f':
        return literal(ps, "false") ? NULL : new_node(JSON_FALSE);
    case 'n':
        return literal(ps, "null") ? NULL : new_node(JSON_NULL);
    default:
        return parse_number(ps);
    }
}

json *json_parse(const char *text, size_t len, oerr *e)
{
    parser ps = {(const unsigned char *)text, (const unsigned char *)text + len, (const unsigned char *)text, e};
    json *j = parse_value(&ps, 0);
    if (!j)
        return NULL;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        fail(&ps, "trailing data after the value");
        json_free(j);
        return NULL;
    }
    return j;
}

const json *json_get(const json *obj, const char *key)
{
    const json *found = NULL;
    if (!obj || obj->type != JSON_OBJECT)
        return NULL;
    for (const json *c = obj->child; c; c = c->next)
        if (strcmp(c->key, key) == 0)
            found = c;
    return found;
}

const json *json_at(const json *arr, size_t i)
{
    if (!arr || arr->type != JSON_ARRAY)
        return NULL;
    const json *c = arr->child;
    while (c && i--)
        c = c->next;
    return c;
}

const char *json_str(const json *j)
{
    return j && j->type == JSON_STRING ? j->str : NULL;
}

int json_u64(const json *j, uint64_t *out)
{
    if (!j || j->type != JSON_NUMBER || j->str[0] == '-')
        return -1;
    uint64_t v = 0;
    for (const char *p = j->str; *p; p++) {
        if (!is_digit((unsigned char)*p))
            return -1;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}
