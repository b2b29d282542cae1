/*
 * Send path: datagrams go out with sendmmsg, up to TX_MSGS messages per call. With GSO,
 * a run of consecutive datagrams to the same destination with the same size (the last of
 * the run may be shorter) becomes ONE message whose iovecs are the datagrams and whose
 * UDP_SEGMENT cmsg is that size: the kernel builds the datagrams from it.
 *
 * Never throws for network conditions. EAGAIN/ENOBUFS (socket buffer or queue full): wait
 * for POLLOUT at most once per call for waitMs (0 = never), then drop the rest of the call
 * and count them in txDrops (WireGuard semantics: the transport is lossy). Other errors
 * (EMSGSIZE, ENETUNREACH, EACCES...) drop that message, count txErrors and continue. A GSO
 * message the kernel refuses is resent datagram by datagram; EIO (the route's device
 * cannot checksum-offload) also turns GSO off for the socket.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int wait_writable(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  int r;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r > 0 && (p.revents & POLLOUT);
}

/* Fills name from a destination record; returns its length, or 0 if the socket can't reach it. */
static socklen_t dst_name(const udp_t *u, const uint32_t *dst, struct sockaddr_in6 *name, int *is_v4) {
  const uint8_t *a = (const uint8_t *)dst;
  uint16_t port = (uint16_t)dst[4];
  *is_v4 = memcmp(a, V4_MAPPED, 12) == 0;
  memset(name, 0, sizeof *name);
  if (u->v6) {
    name->sin6_family = AF_INET6;
    name->sin6_port = htons(port);
    memcpy(name->sin6_addr.s6_addr, a, 16);
    return sizeof *name;
  }
  if (!*is_v4) return 0;
  struct sockaddr_in *n4 = (struct sockaddr_in *)name;
  n4->sin_family = AF_INET;
  n4->sin_port = htons(port);
  memcpy(&n4->sin_addr, a + 12, 4);
  return sizeof *n4;
}

static size_t msg_bytes(const struct msghdr *m) {
  size_t b = 0;
  for (size_t k = 0; k < m->msg_iovlen; k++) b += m->msg_iov[k].iov_len;
  return b;
}

static void count_error(udp_t *u, int err, double n) {
  u->st.tx_errors += n;
  u->st.tx_last_errno = err;
}

/* Sends the datagrams of a refused GSO message one by one. */
static void send_segments(udp_t *u, struct msghdr *gm) {
  struct msghdr one = *gm;
  one.msg_control = NULL;
  one.msg_controllen = 0;
  one.msg_iovlen = 1;
  for (size_t k = 0; k < gm->msg_iovlen; k++) {
    one.msg_iov = &gm->msg_iov[k];
    ssize_t r;
    do {
      u->st.tx_syscalls++;
      r = sendmsg(u->fd, &one, 0);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
      u->st.tx_datagrams++;
      u->st.tx_bytes += (double)one.msg_iov->iov_len;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      u->st.tx_drops += (double)(gm->msg_iovlen - k);
      u->st.tx_last_errno = errno;
      return;
    } else {
      count_error(u, errno, 1);
    }
  }
}

/*
 * send(handle, datas: Uint8Array[], dsts: Uint32Array, dstStride: 0|5, count, waitMs)
 * -> datagrams the kernel accepted. dsts holds DST_WORDS u32 per datagram (stride 5) or
 * one record for all (stride 0): 16 bytes of IPv6-form address, then the port.
 */
napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) return throw_type(env, "send(handle, datas, dsts, dstStride, count, waitMs)");
  udp_t *u = arg_udp(env, argv[0]);
  uint32_t *dsts, stride, count, wait_ms;
  size_t dlen;
  if (!u || arg_u32s(env, argv[2], &dsts, &dlen, "dsts") || arg_u32(env, argv[3], &stride, "dstStride") ||
      arg_u32(env, argv[4], &count, "count") || arg_u32(env, argv[5], &wait_ms, "waitMs"))
    return NULL;
  if (stride != 0 && stride != DST_WORDS) return throw_type(env, "dstStride must be 0 or 5");
  if (dlen < (stride ? (size_t)count * DST_WORDS : DST_WORDS)) return throw_type(env, "dsts too short for count");
  napi_value res;
  if (u->closed) {
    napi_create_uint32(env, 0, &res);
    return res;
  }
  double sent_before = u->st.tx_datagrams;
  int waited = wait_ms == 0;
  uint32_t i = 0;
  while (i < count) {
    /* Build up to TX_MSGS messages. */
    int n = 0;
    size_t niov = 0, cur_size = 0, cur_bytes = 0, max_bytes = 0;
    const uint32_t *cur = NULL;
    int open_run = 0;
    while (i < count) {
      napi_value el;
      uint8_t *p;
      size_t len;
      if (napi_get_element(env, argv[1], i, &el) != napi_ok || arg_bytes(env, el, &p, &len, "datagram")) return NULL;
      const uint32_t *dst = dsts + (size_t)(stride ? i : 0) * DST_WORDS;
      if (open_run && len > 0 && len <= cur_size && u->tsegs[n - 1] < GSO_MAX_SEGS &&
          cur_bytes + len <= max_bytes && (dst == cur || memcmp(dst, cur, DST_WORDS * 4) == 0)) {
        u->tiovs[niov].iov_base = p;
        u->tiovs[niov].iov_len = len;
        niov++;
        u->tmsgs[n - 1].msg_hdr.msg_iovlen++;
        u->tsegs[n - 1]++;
        cur_bytes += len;
        if (len < cur_size) open_run = 0; /* a short datagram ends the run */
        i++;
        continue;
      }
      if (n == TX_MSGS) break;
      int is_v4;
      socklen_t nl = dst_name(u, dst, &u->tnames[n], &is_v4);
      if (nl == 0) { /* IPv6 destination on an IPv4 socket */
        count_error(u, EAFNOSUPPORT, 1);
        i++;
        continue;
      }
      struct msghdr *m = &u->tmsgs[n].msg_hdr;
      memset(m, 0, sizeof *m);
      m->msg_name = &u->tnames[n];
      m->msg_namelen = nl;
      m->msg_iov = &u->tiovs[niov];
      m->msg_iovlen = 1;
      u->tiovs[niov].iov_base = p;
      u->tiovs[niov].iov_len = len;
      u->tsegs[n] = 1;
      niov++;
      n++;
      i++;
      cur = dst;
      cur_size = len;
      cur_bytes = len;
      max_bytes = is_v4 ? 65507 : 65527;
      open_run = u->gso && len > 0;
    }
    for (int k = 0; k < n; k++) {
      if (u->tsegs[k] < 2) continue;
      struct msghdr *m = &u->tmsgs[k].msg_hdr;
      memset(&u->tctl[k], 0, sizeof u->tctl[k]);
      m->msg_control = u->tctl[k].buf;
      m->msg_controllen = sizeof u->tctl[k].buf;
      struct cmsghdr *c = CMSG_FIRSTHDR(m);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t gs = (uint16_t)m->msg_iov[0].iov_len;
      memcpy(CMSG_DATA(c), &gs, sizeof gs);
    }
    int off = 0;
    while (off < n) {
      u->st.tx_syscalls++;
      int r = sendmmsg(u->fd, u->tmsgs + off, (unsigned)(n - off), 0);
      if (r > 0) {
        for (int k = off; k < off + r; k++) {
          u->st.tx_datagrams += u->tsegs[k];
          u->st.tx_bytes += (double)msg_bytes(&u->tmsgs[k].msg_hdr);
          if (u->tsegs[k] > 1) u->st.tx_gso_msgs++;
        }
        off += r;
        continue;
      }
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
        if (!waited) {
          waited = 1;
          if (wait_writable(u->fd, (int)wait_ms)) continue;
        }
        double rest = (double)(count - i);
        for (int k = off; k < n; k++) rest += u->tsegs[k];
        u->st.tx_drops += rest;
        u->st.tx_last_errno = err;
        goto done;
      }
      if (u->tsegs[off] > 1) {
        if (err == EIO) u->gso = 0;
        send_segments(u, &u->tmsgs[off].msg_hdr);
      } else {
        count_error(u, err, 1);
      }
      off++;
    }
  }
done:
  napi_create_double(env, u->st.tx_datagrams - sent_before, &res);
  return res;
}
