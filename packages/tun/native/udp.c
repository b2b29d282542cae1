/* UDP sockets owned by the addon: dual-stack bind, SO_MARK, batched sendmmsg. */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEND_BATCH 64

static void set_bufs(int fd) {
  int sz = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
}

/*
 * udpOpen(port, ipv6: boolean) -> { fd, port, family }. With ipv6, one AF_INET6 socket
 * with IPV6_V6ONLY=0 serves both families; otherwise AF_INET only.
 */
napi_value js_udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_type(env, "udpOpen(port, ipv6)");
  uint32_t port;
  if (arg_u32(env, argv[0], &port, "port")) return NULL;
  if (port > 65535) return throw_type(env, "port must be 0..65535");
  bool v6 = true;
  napi_get_value_bool(env, argv[1], &v6);
  int fam = v6 ? AF_INET6 : AF_INET;
  int fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int r;
  if (v6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    a.sin6_addr = in6addr_any;
    r = bind(fd, (struct sockaddr *)&a, sizeof a);
  } else {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    r = bind(fd, (struct sockaddr *)&a, sizeof a);
  }
  if (r < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  set_bufs(fd);
  int one = 1;
  int gro = setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof one) == 0;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  int bound = v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  napi_value res, vfd, vport, vfam, vgro;
  napi_get_boolean(env, gro, &vgro);
  napi_create_object(env, &res);
  napi_create_int32(env, fd, &vfd);
  napi_create_int32(env, bound, &vport);
  napi_create_int32(env, v6 ? 6 : 4, &vfam);
  napi_set_named_property(env, res, "fd", vfd);
  napi_set_named_property(env, res, "port", vport);
  napi_set_named_property(env, res, "family", vfam);
  napi_set_named_property(env, res, "gro", vgro);
  return res;
}

/* udpSetMark(fd, mark) */
napi_value js_udp_set_mark(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  uint32_t mark;
  if (argc < 2 || arg_int32(env, argv[0], &fd, "fd") || arg_u32(env, argv[1], &mark, "mark")) return NULL;
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) return throw_errno(env, "SO_MARK", errno);
  return NULL;
}

/* Fills a sockaddr from a 20-byte record; returns its length or 0 if invalid. */
static socklen_t rec_to_sockaddr(const uint8_t *rec, int sock_v6, struct sockaddr_storage *ss) {
  uint16_t port = (uint16_t)((rec[2] << 8) | rec[3]);
  memset(ss, 0, sizeof *ss);
  if (rec[0] == 4 && !sock_v6) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    memcpy(&a->sin_addr, rec + 4, 4);
    return sizeof *a;
  }
  if (!sock_v6) return 0;
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  if (rec[0] == 4) {
    a->sin6_addr.s6_addr[10] = 0xff;
    a->sin6_addr.s6_addr[11] = 0xff;
    memcpy(a->sin6_addr.s6_addr + 12, rec + 4, 4);
  } else if (rec[0] == 6) {
    memcpy(a->sin6_addr.s6_addr, rec + 4, 16);
  } else {
    return 0;
  }
  return sizeof *a;
}

/* Sends one message; returns 1 on success, 0 on EAGAIN (after one short wait), -errno. */
static int send_one(int fd, struct msghdr *m, int *waited) {
  for (;;) {
    ssize_t r = sendmsg(fd, m, 0);
    if (r >= 0) return 1;
    if (errno == EINTR) continue;
    if (errno == EAGAIN && !*waited) {
      *waited = 1;
      if (wait_writable(fd, 2)) continue;
    }
    if (errno == EAGAIN) return 0;
    return -errno;
  }
}

#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000

/*
 * udpSend(fd, sockV6, datagrams: Uint8Array[], addrs: Uint8Array (20 B each), count, gso)
 * -> number sent. With gso, consecutive datagrams to the same address with the same
 * size (the last of a run may be shorter) go out as ONE sendmsg with UDP_SEGMENT, so the
 * kernel's stack runs once per run; if the kernel refuses GSO the run is resent one by
 * one. Messages go out with sendmmsg in chunks of 64. EAGAIN waits up to 2 ms once, then
 * the rest is dropped (the caller counts count - sent).
 */
napi_value js_udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) return throw_type(env, "udpSend(fd, sockV6, datagrams, addrs, count, gso)");
  int32_t fd;
  bool v6 = true, gso = false;
  uint8_t *addrs;
  size_t alen;
  uint32_t count;
  if (arg_int32(env, argv[0], &fd, "fd")) return NULL;
  napi_get_value_bool(env, argv[1], &v6);
  if (arg_bytes(env, argv[3], &addrs, &alen, "addrs")) return NULL;
  if (arg_u32(env, argv[4], &count, "count")) return NULL;
  if (argc >= 6) napi_get_value_bool(env, argv[5], &gso);
  if ((size_t)count * ADDR_REC > alen) return throw_type(env, "addrs too short for count");

  struct mmsghdr msgs[SEND_BATCH];
  struct iovec iovs[SEND_BATCH];
  struct sockaddr_storage names[SEND_BATCH];
  uint16_t segs[SEND_BATCH]; /* datagrams per message */
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctl[SEND_BATCH];
  uint32_t sent = 0, i = 0;
  int waited = 0;
  while (i < count) {
    int n = 0, niov = 0;
    const uint8_t *cur_rec = NULL;
    size_t cur_size = 0, cur_bytes = 0;
    int open_run = 0; /* the last message may take more segments */
    while (i < count && niov < SEND_BATCH) {
      napi_value el;
      napi_get_element(env, argv[2], i, &el);
      uint8_t *p;
      size_t len;
      if (arg_bytes(env, el, &p, &len, "datagram")) return NULL;
      const uint8_t *rec = addrs + (size_t)i * ADDR_REC;
      i++;
      if (gso && open_run && memcmp(rec, cur_rec, ADDR_REC) == 0 && len <= cur_size &&
          segs[n - 1] < GSO_MAX_SEGS && cur_bytes + len <= GSO_MAX_BYTES) {
        iovs[niov].iov_base = p;
        iovs[niov].iov_len = len;
        niov++;
        msgs[n - 1].msg_hdr.msg_iovlen++;
        segs[n - 1]++;
        cur_bytes += len;
        if (len < cur_size) open_run = 0; /* a short segment ends the run */
        continue;
      }
      if (n == SEND_BATCH) {
        i--;
        break;
      }
      socklen_t sl = rec_to_sockaddr(rec, v6, &names[n]);
      if (sl == 0) continue; /* unreachable family: dropped */
      iovs[niov].iov_base = p;
      iovs[niov].iov_len = len;
      memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_name = &names[n];
      msgs[n].msg_hdr.msg_namelen = sl;
      msgs[n].msg_hdr.msg_iov = &iovs[niov];
      msgs[n].msg_hdr.msg_iovlen = 1;
      segs[n] = 1;
      niov++;
      n++;
      cur_rec = rec;
      cur_size = len;
      cur_bytes = len;
      open_run = gso && len > 0;
    }
    /* Attach UDP_SEGMENT to messages carrying several datagrams. */
    for (int k = 0; k < n; k++) {
      if (segs[k] < 2) continue;
      struct msghdr *m = &msgs[k].msg_hdr;
      memset(&ctl[k], 0, sizeof ctl[k]);
      m->msg_control = ctl[k].buf;
      m->msg_controllen = sizeof ctl[k].buf;
      struct cmsghdr *c = CMSG_FIRSTHDR(m);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t gs = (uint16_t)m->msg_iov[0].iov_len;
      memcpy(CMSG_DATA(c), &gs, sizeof gs);
    }
    int off = 0;
    while (off < n) {
      int r = sendmmsg(fd, msgs + off, n - off, 0);
      if (r > 0) {
        for (int k = 0; k < r; k++) sent += segs[off + k];
        off += r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN && !waited) {
        waited = 1;
        if (wait_writable(fd, 2)) continue;
      }
      if (r < 0 && errno == EAGAIN) goto done;
      /* msgs[off] failed. A GSO message is retried datagram by datagram; others dropped. */
      if (segs[off] > 1) {
        struct msghdr one = msgs[off].msg_hdr;
        one.msg_control = NULL;
        one.msg_controllen = 0;
        one.msg_iovlen = 1;
        for (int k = 0; k < segs[off]; k++) {
          one.msg_iov = &msgs[off].msg_hdr.msg_iov[k];
          int s1 = send_one(fd, &one, &waited);
          if (s1 == 0) goto done;
          if (s1 > 0) sent++;
        }
      }
      off++;
    }
  }
done:;
  napi_value res;
  napi_create_uint32(env, sent, &res);
  return res;
}
