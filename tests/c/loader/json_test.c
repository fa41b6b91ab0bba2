/* Unit tests for json.c. */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tap.h"

static json *parse(const char *s, oerr *e)
{
    return json_parse(s, strlen(s), e);
}

static int rejects(const char *s)
{
    oerr e = {0};
    json *j = parse(s, &e);
    json_free(j);
    return j == NULL && e.msg[0] != 0;
}

int main(void)
{
    oerr e = {0};
    json *j = parse(" {\"a\": [1, -2.5e3, true, false, null, \"x\"], \"b\": {\"c\": \"d\"}, \"n\": 18446744073709551615} ", &e);
    ok(j != NULL, "parses a nested document");
    ok(j && j->type == JSON_OBJECT && j->count == 3, "object with 3 members");
    const json *a = json_get(j, "a");
    ok(a && a->type == JSON_ARRAY && a->count == 6, "array with 6 elements");
    ok(json_at(a, 0)->type == JSON_NUMBER && strcmp(json_at(a, 1)->str, "-2.5e3") == 0, "numbers keep their text");
    ok(json_at(a, 2)->type == JSON_TRUE && json_at(a, 3)->type == JSON_FALSE && json_at(a, 4)->type == JSON_NULL,
       "literals");
    is_str(json_str(json_at(a, 5)), "x", "string element");
    ok(json_at(a, 6) == NULL, "json_at past the end is NULL");
    is_str(json_str(json_get(json_get(j, "b"), "c")), "d", "nested object member");
    uint64_t u;
    ok(json_u64(json_get(j, "n"), &u) == 0 && u == UINT64_MAX, "u64 max");
    ok(json_u64(json_at(a, 1), &u) == -1, "json_u64 rejects a fraction");
    ok(json_get(j, "missing") == NULL && json_str(json_get(j, "b")) == NULL, "missing member / wrong type -> NULL");
    json_free(j);

    j = parse("{\"k\":1,\"k\":2}", &e);
    ok(j && json_u64(json_get(j, "k"), &u) == 0 && u == 2, "duplicate keys: last wins");
    json_free(j);

    j = parse("\"a\\n\\t\\\"\\\\\\/\\u00e9\\ud83d\\ude00\"", &e);
    is_str(json_str(j), "a\n\t\"\\/\xc3\xa9\xf0\x9f\x98\x80", "escapes, \\u and surrogate pairs decode to UTF-8");
    json_free(j);
    j = parse("\"caf\xc3\xa9\"", &e);
    is_str(json_str(j), "caf\xc3\xa9", "raw UTF-8 passes");
    json_free(j);
    j = parse("18446744073709551616", &e);
    ok(j && json_u64(j, &u) == -1, "u64 overflow detected");
    json_free(j);

    ok(rejects(""), "empty input");
    ok(rejects("{\"a\":1,}"), "trailing comma in object");
    ok(rejects("[1,]"), "trailing comma in array");
    ok(rejects("{\"a\" 1}"), "missing colon");
    ok(rejects("\"abc"), "unterminated string");
    ok(rejects("\"a\nb\""), "raw control character");
    ok(rejects("\"\\x\""), "bad escape");
    ok(rejects("\"\\u12\""), "short \\u");
    ok(rejects("\"\\ud800\""), "lone high surrogate");
    ok(rejects("\"\\udc00\""), "lone low surrogate");
    ok(rejects("\"\\u0000\""), "\\u0000 rejected");
    ok(rejects("\"\xc3\x28\""), "invalid UTF-8");
    ok(rejects("\"\xed\xa0\x80\""), "UTF-8 encoded surrogate");
    ok(rejects("\"\xc0\xaf\""), "overlong UTF-8");
    ok(rejects("01"), "leading zero");
    ok(rejects("1."), "bare fraction dot");
    ok(rejects("-"), "bare minus");
    ok(rejects("1e"), "bare exponent");
    ok(rejects("tru"), "truncated literal");
    ok(rejects("{} x"), "trailing garbage");
    ok(rejects("{1:2}"), "non-string key");

    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    ok(rejects(deep) && strstr((parse(deep, &e), e.msg), "too deep"), "nesting beyond the depth limit rejected");
    memset(deep, '[', 60);
    memset(deep + 60, ']', 60);
    j = json_parse(deep, 120, &e);
    ok(j != NULL, "nesting within the limit accepted");
    json_free(j);
    return tap_done();
}
