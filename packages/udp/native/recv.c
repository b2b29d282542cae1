/*
 * Receive path: when the socket is readable, call recvmmsg into per-socket scratch slots
 * (up to max_loops times, stopping at a short batch or EAGAIN) and make ONE JS callback
 * per recvmmsg batch:
 *   onBatch(data: Buffer, meta: Uint32Array, addresses: string[], count)
 * `data` is a fresh Buffer holding the datagrams back to back (the callee owns it);
 * meta holds META_WORDS u32 per datagram: offset in data, length, source port, family
 * (4|6), index into `addresses` (one string per distinct source address of the batch:
 * IPv4 and IPv4-mapped IPv6 sources as a dotted quad, IPv6 in RFC 5952 text).
 * A UDP GRO receive (cmsg UDP_GRO = segment size) is split into its datagrams.
 */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int rx_alloc(udp_t *u) {
  uint32_t n = u->slots;
  u->rbuf = malloc((size_t)n * RX_SLOT);
  u->rmsgs = calloc(n, sizeof *u->rmsgs);
  u->riovs = calloc(n, sizeof *u->riovs);
  u->rnames = calloc(n, sizeof *u->rnames);
  u->rctl = calloc(n, RX_CTL);
  u->ruq = malloc((size_t)n * 16);
  if (!u->rbuf || !u->rmsgs || !u->riovs || !u->rnames || !u->rctl || !u->ruq) {
    rx_free(u);
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    u->riovs[i].iov_base = u->rbuf + (size_t)i * RX_SLOT;
    u->riovs[i].iov_len = RX_SLOT;
    u->rmsgs[i].msg_hdr.msg_iov = &u->riovs[i];
    u->rmsgs[i].msg_hdr.msg_iovlen = 1;
    u->rmsgs[i].msg_hdr.msg_name = &u->rnames[i];
  }
  return 0;
}

void rx_free(udp_t *u) {
  free(u->rbuf);
  free(u->rmsgs);
  free(u->riovs);
  free(u->rnames);
  free(u->rctl);
  free(u->ruq);
  u->rbuf = NULL;
  u->rmsgs = NULL;
  u->riovs = NULL;
  u->rnames = NULL;
  u->rctl = NULL;
  u->ruq = NULL;
}

/* Calls a JS callback the way libuv-driven Node callbacks are called (microtasks run after). */
static void call_js(udp_t *u, napi_ref fn_ref, size_t argc, napi_value *argv) {
  napi_env env = u->env;
  napi_value fn, recv;
  if (!fn_ref || napi_get_reference_value(env, fn_ref, &fn) != napi_ok || !fn) return;
  napi_get_global(env, &recv); /* napi_make_callback needs an object receiver */
  napi_status s = napi_make_callback(env, u->actx, recv, fn, argc, argv, NULL);
  if (s == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc); /* like an exception thrown from an event listener */
  }
}

static void report_error(udp_t *u, int err) {
  u->st.rx_errors++;
  napi_env env = u->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[2];
  napi_create_int32(env, err, &argv[0]);
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &argv[1]);
  call_js(u, u->on_error, 2, argv);
  napi_close_handle_scope(env, scope);
}

/* Source of message i as a 16-byte IPv6-form address and a host-order port. */
static void source_of(const udp_t *u, uint32_t i, uint8_t addr[16], uint32_t *port) {
  const struct sockaddr_in6 *sa = &u->rnames[i];
  if (sa->sin6_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    memcpy(addr, V4_MAPPED, 12);
    memcpy(addr + 12, &a->sin_addr, 4);
    *port = ntohs(a->sin_port);
  } else {
    memcpy(addr, sa->sin6_addr.s6_addr, 16);
    *port = ntohs(sa->sin6_port);
  }
}

static napi_value address_string(napi_env env, const uint8_t addr[16], uint32_t *family) {
  char text[INET6_ADDRSTRLEN];
  if (memcmp(addr, V4_MAPPED, 12) == 0) {
    *family = 4;
    inet_ntop(AF_INET, addr + 12, text, sizeof text);
  } else {
    *family = 6;
    inet_ntop(AF_INET6, addr, text, sizeof text);
  }
  napi_value s;
  napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &s);
  return s;
}

/* GRO segment size of message m, or 0. */
static uint32_t gro_size(struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int g;
      memcpy(&g, CMSG_DATA(c), sizeof g);
      return g > 0 ? (uint32_t)g : 0;
    }
  }
  return 0;
}

/* Builds the JS batch from k received messages and calls onBatch. */
static void deliver(udp_t *u, int k) {
  size_t total = 0;
  uint32_t n = 0;
  for (int i = 0; i < k; i++) {
    struct msghdr *m = &u->rmsgs[i].msg_hdr;
    uint32_t len = u->rmsgs[i].msg_len;
    if (m->msg_flags & MSG_TRUNC) { /* cannot happen with 64 KiB slots; dropped if it does */
      u->st.rx_errors++;
      u->rmsgs[i].msg_len = UINT32_MAX;
      continue;
    }
    uint32_t seg = u->gro ? gro_size(m) : 0;
    if (seg && seg < len) {
      n += (len + seg - 1) / seg;
      u->st.rx_gro_msgs++;
    } else {
      n += 1;
    }
    total += len;
  }
  if (n == 0) return;
  napi_env env = u->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  void *dp, *mp;
  napi_value data, meta, ab, addrs, argv[4];
  if (napi_create_buffer(env, total, &dp, &data) != napi_ok ||
      napi_create_arraybuffer(env, (size_t)n * META_WORDS * 4, &mp, &ab) != napi_ok) {
    napi_close_handle_scope(env, scope);
    u->st.rx_errors += n; /* out of memory: the batch is dropped */
    return;
  }
  napi_create_typedarray(env, napi_uint32_array, (size_t)n * META_WORDS, ab, 0, &meta);
  napi_create_array(env, &addrs);
  uint8_t *d = dp;
  uint32_t *mw = mp;
  uint32_t nuq = 0, last = 0, fam_last = 0, j = 0;
  size_t off = 0;
  for (int i = 0; i < k; i++) {
    uint32_t len = u->rmsgs[i].msg_len;
    if (len == UINT32_MAX) continue;
    uint8_t addr[16];
    uint32_t port, idx = nuq, fam = 0;
    source_of(u, (uint32_t)i, addr, &port);
    if (nuq && memcmp(u->ruq + (size_t)last * 16, addr, 16) == 0) {
      idx = last;
      fam = fam_last;
    } else {
      for (uint32_t q = 0; q < nuq; q++)
        if (memcmp(u->ruq + (size_t)q * 16, addr, 16) == 0) idx = q;
      if (idx == nuq) {
        memcpy(u->ruq + (size_t)nuq * 16, addr, 16);
        napi_set_element(env, addrs, nuq, address_string(env, addr, &fam));
        nuq++;
      } else {
        fam = memcmp(addr, V4_MAPPED, 12) == 0 ? 4 : 6;
      }
      last = idx;
      fam_last = fam;
    }
    memcpy(d + off, u->riovs[i].iov_base, len);
    uint32_t seg = u->gro ? gro_size(&u->rmsgs[i].msg_hdr) : 0;
    if (!seg || seg >= len) seg = len ? len : 1;
    uint32_t s = 0;
    do {
      uint32_t l = len - s < seg ? len - s : seg;
      uint32_t *w = mw + (size_t)j * META_WORDS;
      w[0] = (uint32_t)off + s;
      w[1] = l;
      w[2] = port;
      w[3] = fam;
      w[4] = idx;
      j++;
      s += seg;
    } while (s < len);
    off += len;
  }
  u->st.rx_batches++;
  u->st.rx_datagrams += n;
  u->st.rx_bytes += (double)total;
  argv[0] = data;
  argv[1] = meta;
  argv[2] = addrs;
  napi_create_uint32(env, n, &argv[3]);
  call_js(u, u->on_batch, 4, argv);
  napi_close_handle_scope(env, scope);
}

/* One recvmmsg; returns messages received, or -1 (EAGAIN / error reported). */
static int rx_once(udp_t *u) {
  for (uint32_t i = 0; i < u->slots; i++) {
    struct msghdr *m = &u->rmsgs[i].msg_hdr;
    m->msg_namelen = sizeof(struct sockaddr_in6);
    m->msg_flags = 0;
    m->msg_control = u->gro ? u->rctl + (size_t)i * RX_CTL : NULL;
    m->msg_controllen = u->gro ? RX_CTL : 0;
  }
  int k;
  do {
    u->st.rx_syscalls++;
    k = recvmmsg(u->fd, u->rmsgs, u->slots, MSG_DONTWAIT, NULL);
  } while (k < 0 && errno == EINTR);
  if (k < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) report_error(u, errno);
    return -1;
  }
  deliver(u, k);
  return k;
}

void on_readable(uv_poll_t *h, int status, int events) {
  udp_t *u = h->data;
  if (u->closed) return;
  if (status < 0) {
    report_error(u, -status);
    return;
  }
  for (uint32_t loop = 0; loop < u->max_loops && !u->closed; loop++) {
    int k = rx_once(u);
    if (k < (int)u->slots) break; /* queue drained (short batch), EAGAIN or error */
  }
}
