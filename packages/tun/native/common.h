/*
 * Shared declarations of the @lattice/tun native addon: Linux TUN devices and batched
 * UDP sockets read with uv_poll on the JS thread (no libuv threadpool), one JS callback
 * per batch of packets.
 */
#ifndef LATTICE_TUN_COMMON_H
#define LATTICE_TUN_COMMON_H

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Bytes per address record handed to/from JS. Remote part: [0] family (4|6), [1] 0,
 * [2..3] port (BE u16), [4..19] address (4 or 16 bytes, zero padded). Local part (the
 * sticky source: the address a datagram arrived at / is to be sent from): [20] family
 * (0 = none, 4, 6), [21] flags (REC_SRC_REFUSED: udpSend dropped a source the kernel
 * refused), [22..23] 0, [24..27] ifindex (BE u32), [28..43] address.
 */
#define ADDR_REC 44
#define REC_LOCAL 20
#define REC_SRC_REFUSED 1

struct msghdr;
/* udp.c: fills the local part of `rec` from the IP_PKTINFO / IPV6_PKTINFO cmsg of a received message. */
void udp_rec_local(struct msghdr *m, uint8_t *rec);
/* udp.c: control space per received message (GRO segment size + both pktinfo kinds). */
size_t udp_recv_ctl_size(void);

/* Throws a JS Error whose `code` is the errno name and `errno` the number; returns NULL. */
napi_value throw_errno(napi_env env, const char *what, int err);
/* Throws a TypeError with the message; returns NULL. */
napi_value throw_type(napi_env env, const char *msg);

/* Argument helpers: each returns 0 on success, or throws and returns -1. */
int arg_int32(napi_env env, napi_value v, int32_t *out, const char *name);
int arg_u32(napi_env env, napi_value v, uint32_t *out, const char *name);
int arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len, const char *name);
int arg_u32s(napi_env env, napi_value v, uint32_t **data, size_t *len, const char *name);
int arg_i32s(napi_env env, napi_value v, int32_t **data, size_t *len, const char *name);

/* TUN: open/configure. */
napi_value js_tun_open(napi_env env, napi_callback_info info);
napi_value js_link_set_mtu(napi_env env, napi_callback_info info);
napi_value js_link_get_mtu(napi_env env, napi_callback_info info);
napi_value js_link_index(napi_env env, napi_callback_info info);
napi_value js_write_packets(napi_env env, napi_callback_info info);
napi_value js_tun_link_up(napi_env env, napi_callback_info info);
napi_value js_close_fd(napi_env env, napi_callback_info info);
napi_value js_peer_cred(napi_env env, napi_callback_info info);

/* UDP: open/bind, mark, batched send. */
napi_value js_udp_open(napi_env env, napi_callback_info info);
napi_value js_udp_set_mark(napi_env env, napi_callback_info info);
napi_value js_udp_send(napi_env env, napi_callback_info info);

/* Readers (uv_poll based, batched). */
napi_value js_reader_start(napi_env env, napi_callback_info info);
napi_value js_reader_stop(napi_env env, napi_callback_info info);

/* vnet.c: writes a batch to an IFF_VNET_HDR TUN with TCP coalescing; count written or
 * -ENOMEM; the errno of the first refused write goes to *first_err (left alone if none). */
int tun_write_vnet(int fd, uint8_t *const *pkts, const size_t *lens, uint32_t n, int *first_err);

/* vnet.c: splits one virtio-net-framed TUN read into plain packets; returns the new count. */
uint32_t vnet_split(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *off, uint32_t *offs, uint32_t *lens,
                    uint32_t n, uint32_t max_out);

/* Waits up to timeout_ms for fd to become writable (used after EAGAIN). */
int wait_writable(int fd, int timeout_ms);

#endif
