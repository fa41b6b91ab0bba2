/* Port-forward specs, docker style: [IP:]HOST_PORT:CTR_PORT[/tcp|/udp]. IPv4 host addresses only (slirp4netns'
 * add_hostfwd takes IPv4 only; one syntax for both helpers). */
#include "net_ports.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, size_t n, unsigned *out)
{
    if (n == 0 || n > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *out = v;
    return 0;
}

int port_fwd_parse(const char *spec, const char *flag, port_fwd *out, oerr *e)
{
    memset(out, 0, sizeof *out);
    strcpy(out->host_ip, "0.0.0.0");
    const char *usage = "expected [IP:]HOST_PORT:CTR_PORT[/tcp|/udp] like 8080:80";
    size_t len = strlen(spec);
    const char *slash = strchr(spec, '/');
    if (slash) {
        if (strcmp(slash, "/udp") == 0)
            out->udp = 1;
        else if (strcmp(slash, "/tcp") != 0)
            return oerr_set(e, "%s %s: unknown protocol \"%s\": use /tcp or /udp", flag, spec, slash + 1);
        len = (size_t)(slash - spec);
    }
    /* split at the last two ':' within [0, len) */
    const char *c2 = NULL, *c1 = NULL;
    for (const char *p = spec + len; p > spec; p--) {
        if (p[-1] != ':')
            continue;
        if (!c2)
            c2 = p - 1;
        else {
            c1 = p - 1;
            break;
        }
    }
    if (!c2)
        return oerr_set(e, "%s %s: %s", flag, spec, usage);
    const char *hp = c1 ? c1 + 1 : spec;
    if (c1) {
        size_t iplen = (size_t)(c1 - spec);
        char ip[64];
        if (iplen == 0 || iplen >= sizeof ip)
            return oerr_set(e, "%s %s: %s", flag, spec, usage);
        memcpy(ip, spec, iplen);
        ip[iplen] = 0;
        unsigned char buf[4];
        if (inet_pton(AF_INET, ip, buf) != 1)
            return oerr_set(e, "%s %s: \"%s\" is not an IPv4 address: give one like 127.0.0.1, or leave it out", flag,
                            spec, ip);
        snprintf(out->host_ip, sizeof out->host_ip, "%s", ip);
    }
    if (parse_port(hp, (size_t)(c2 - hp), &out->host_port) ||
        parse_port(c2 + 1, (size_t)(spec + len - c2 - 1), &out->ctr_port))
        return oerr_set(e, "%s %s: ports must be numbers from 1 to 65535: %s", flag, spec, usage);
    return 0;
}
