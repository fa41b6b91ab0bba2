/* Network namespace and resolver files. --net none gives the container a new network namespace
 * (CLONE_NEWNET) with only `lo`, brought up here; --net host (default) shares the host's. */
#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int net_check_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1 ? 0 : -1;
}

int net_check_add_host(const char *spec, oerr *e)
{
    const char *c = strchr(spec, ':');
    if (!c || c == spec || strpbrk(spec, " \t\n#") || (size_t)(c - spec) > 253)
        return oerr_set(e, "--add-host %s: expected NAME:IP (like db.internal:10.0.0.5)", spec);
    if (net_check_ip(c + 1))
        return oerr_set(e, "--add-host %s: \"%s\" is not an IP address: expected NAME:IP", spec, c + 1);
    return 0;
}

static void append(char **buf, size_t *len, const char *s)
{
    size_t n = strlen(s);
    *buf = xrealloc(*buf, *len + n + 1);
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

char *net_resolv_conf(const options *o, const char *host_text)
{
    if (!o->dns.n && !o->dns_search.n)
        return NULL;
    char *out = xstrdup("");
    size_t len = 0;
    if (o->dns_search.n) {
        append(&out, &len, "search");
        for (size_t i = 0; i < o->dns_search.n; i++) {
            append(&out, &len, " ");
            append(&out, &len, o->dns_search.v[i]);
        }
        append(&out, &len, "\n");
    }
    if (o->dns.n) {
        for (size_t i = 0; i < o->dns.n; i++) {
            append(&out, &len, "nameserver ");
            append(&out, &len, o->dns.v[i]);
            append(&out, &len, "\n");
        }
    }
    /* keep the host's other lines (options, and nameservers when only --dns-search is given) */
    if (host_text) {
        char *copy = xstrdup(host_text);
        for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
            const char *t = line + strspn(line, " \t");
            int is_ns = strncmp(t, "nameserver", 10) == 0;
            int is_search = strncmp(t, "search", 6) == 0 || strncmp(t, "domain", 6) == 0;
            if ((is_ns && o->dns.n) || (is_search && o->dns_search.n))
                continue;
            append(&out, &len, line);
            append(&out, &len, "\n");
        }
        free(copy);
    }
    return out;
}

char *net_hosts(const options *o, const char *host_text, const char *hostname)
{
    char *out = xstrdup("");
    size_t len = 0;
    if (host_text && !o->net_none) {
        append(&out, &len, host_text);
        if (len && out[len - 1] != '\n')
            append(&out, &len, "\n");
    } else {
        append(&out, &len, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        if (hostname && *hostname) {
            char *l = xasprintf("127.0.1.1\t%s\n", hostname);
            append(&out, &len, l);
            free(l);
        }
    }
    for (size_t i = 0; i < o->add_hosts.n; i++) {
        const char *spec = o->add_hosts.v[i];
        const char *c = strchr(spec, ':');
        char *l = xasprintf("%s\t%.*s\n", c + 1, (int)(c - spec), spec);
        append(&out, &len, l);
        free(l);
    }
    return out;
}

int net_loopback_up(oerr *e)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return oerr_sys(e, errno, NULL, "--net none: cannot open a socket to bring lo up");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int rc = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        rc = oerr_sys(e, errno, NULL, "--net none: cannot read the flags of lo");
    else if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            rc = oerr_sys(e, errno, NULL, "--net none: cannot bring lo up");
    }
    close(s);
    return rc;
}
