/* Port forwards of a private network (-p, --net slirp:/pasta: lists). */
#ifndef OCI2BIN_NET_PORTS_H
#define OCI2BIN_NET_PORTS_H
#include "util.h"

typedef struct port_fwd {
    int udp;               /* else tcp */
    char host_ip[16];      /* IPv4 address to bind on the host; "0.0.0.0" when not given */
    unsigned host_port, ctr_port;
} port_fwd;

/* Parses [IP:]HOST_PORT:CTR_PORT[/tcp|/udp] (flag names the option in messages, like "-p"). */
int port_fwd_parse(const char *spec, const char *flag, port_fwd *out, oerr *e);
#endif
