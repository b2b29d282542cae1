/*
 * Shared declarations of the @lattice/udp native addon: one UDP socket per udp_t, read
 * with uv_poll + recvmmsg on the JS thread (one JS callback per recvmmsg batch, UDP GRO
 * split), written with sendmmsg + UDP GSO.
 */
#ifndef LATTICE_UDP_COMMON_H
#define LATTICE_UDP_COMMON_H

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <uv.h>

/* Receive slot size: the largest UDP payload, or a whole GRO-coalesced receive. */
#define RX_SLOT 65536
/* Messages per sendmmsg call, and datagrams per GSO message. */
#define TX_MSGS 64
#define GSO_MAX_SEGS 64
/* u32 words per destination record handed from JS: 4 words of IPv6 address, port. */
#define DST_WORDS 5
/* u32 words per received datagram in the meta array: offset, length, port, family, address index. */
#define META_WORDS 5
/* Control buffer per received message (UDP_GRO segment size, an int). */
#define RX_CTL CMSG_SPACE(sizeof(int))
#define TX_CTL CMSG_SPACE(sizeof(uint16_t))

/* Counters, reported by stats(). */
typedef struct {
  double rx_syscalls, rx_datagrams, rx_bytes, rx_batches, rx_gro_msgs, rx_errors;
  double tx_syscalls, tx_datagrams, tx_bytes, tx_gso_msgs, tx_drops, tx_errors;
  double rx_drops;  /* kernel drops on this socket (SO_MEMINFO), sampled by stats() and at close */
  int tx_last_errno;
} udp_stats_t;

typedef struct udp_s {
  uv_poll_t poll;
  napi_env env;
  int fd;
  int v6;            /* AF_INET6 socket (else AF_INET) */
  int gso;           /* UDP_SEGMENT usable on send */
  int gro;           /* UDP_GRO enabled on receive */
  int closed;        /* close() ran: fd closed, no more JS callbacks */
  int polling;       /* uv_poll handle initialised and not yet closed */
  int ext_alive;     /* the JS external still refers to this struct */
  napi_async_cleanup_hook_handle hook; /* env teardown hook, removed once the uv handle is closed */
  uint32_t slots;    /* recvmmsg slots */
  uint32_t max_loops;/* recvmmsg calls per readable event */
  napi_ref on_batch, on_error;
  napi_ref self;     /* strong ref to the external while open: an open socket is never collected */
  napi_async_context actx;
  /* receive scratch */
  uint8_t *rbuf;
  struct mmsghdr *rmsgs;
  struct iovec *riovs;
  struct sockaddr_in6 *rnames;
  char *rctl;
  uint8_t *ruq;      /* distinct source addresses of a batch, 16 bytes each */
  /* send scratch */
  struct mmsghdr tmsgs[TX_MSGS];
  struct sockaddr_in6 tnames[TX_MSGS];
  uint16_t tsegs[TX_MSGS];
  union {
    char buf[TX_CTL];
    struct cmsghdr align;
  } tctl[TX_MSGS];
  struct iovec tiovs[TX_MSGS * GSO_MAX_SEGS];
  udp_stats_t st;
} udp_t;

/* addon.c: errors and argument helpers. Each arg_* returns 0, or throws and returns -1. */
napi_value throw_errno(napi_env env, const char *what, int err);
napi_value throw_type(napi_env env, const char *msg);
int arg_u32(napi_env env, napi_value v, uint32_t *out, const char *name);
int arg_bool(napi_env env, napi_value v, int *out, const char *name);
int arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len, const char *name);
int arg_u32s(napi_env env, napi_value v, uint32_t **data, size_t *len, const char *name);
/* Returns the live udp_t of a handle, or throws (bad handle) and returns NULL. */
udp_t *arg_udp(napi_env env, napi_value v);
/* The errno name ("EAGAIN"), or "EUNKNOWN". */
const char *errno_name(int err);

/* sock.c */
napi_value js_open(napi_env env, napi_callback_info info);
napi_value js_close(napi_env env, napi_callback_info info);
napi_value js_stats(napi_env env, napi_callback_info info);
napi_value js_set_ref(napi_env env, napi_callback_info info);
napi_value js_parse_address(napi_env env, napi_callback_info info);
/* Stops polling, closes the fd, releases JS references; idempotent. */
void udp_shutdown(udp_t *u);

/* recv.c */
int rx_alloc(udp_t *u);
void rx_free(udp_t *u);
void on_readable(uv_poll_t *h, int status, int events);

/* send.c */
napi_value js_send(napi_env env, napi_callback_info info);

#endif
