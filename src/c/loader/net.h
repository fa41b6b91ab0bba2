/* --net modes, -p, --dns, --dns-search, --add-host. */
#ifndef OCI2BIN_NET_H
#define OCI2BIN_NET_H
#include "options.h"
#include "util.h"

/* The container's view of a slirp4netns/pasta network (the same for both helpers). */
#define NET_HELPER_ADDR "10.0.2.100"
#define NET_HELPER_GW "10.0.2.2"
#define NET_HELPER_DNS "10.0.2.3"
#define NET_HELPER_IF "tap0"

/* --net VALUE: host, none, slirp[:PORTS], pasta[:PORTS], container:PID. */
int net_parse_flag(options *o, const char *val, oerr *e);
/* Checks and records one port forward (-p SPEC, or one entry of --net slirp:SPEC,SPEC). */
int net_add_publish(options *o, const char *flag, const char *spec, oerr *e);
/* After all flags: -p without --net implies --net slirp; -p with another network mode is an error. */
int net_options_finish(options *o, oerr *e);
/* 1 if the container gets a network namespace of its own (none, slirp, pasta). */
int net_private(const options *o);
/* 1 if the container does not use the host's network (private, or joined with container:PID). */
int net_isolated(const options *o);
/* 0 if s is an IPv4 or IPv6 address. */
int net_check_ip(const char *s);
/* Checks --add-host NAME:IP (IPv6 addresses contain ':', so the name ends at the first ':'). */
int net_check_add_host(const char *spec, oerr *e);
/* The container's /etc/resolv.conf when --dns/--dns-search are given (malloc'd), or NULL to copy the host's.
 * Without --dns the host's nameservers are kept and only the search line is replaced. */
char *net_resolv_conf(const options *o, const char *host_text);
/* The container's /etc/hosts: the host's (a minimal one when not on the host's network), then --add-host lines. */
char *net_hosts(const options *o, const char *host_text, const char *hostname);
/* In a new network namespace: brings the loopback interface up. */
int net_loopback_up(oerr *e);
#endif
