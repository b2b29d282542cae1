/*
 * UDP sockets owned by the addon: dual-stack bind, SO_MARK, batched sendmmsg, and sticky
 * sources: the local address each datagram arrived at (IP_PKTINFO / IPV6_PKTINFO) is
 * reported with it, and a send may name the local address to send from.
 */
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
  /* Report the local address of each datagram (v4 ones too on a dual-stack socket). */
  setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
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

size_t udp_recv_ctl_size(void) {
  return CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(struct in6_pktinfo));
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void udp_rec_local(struct msghdr *m, uint8_t *rec) {
  uint8_t *l = rec + REC_LOCAL;
  memset(l, 0, ADDR_REC - REC_LOCAL);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      l[0] = 4;
      put_be32(l + 4, (uint32_t)pi.ipi_ifindex);
      memcpy(l + 8, &pi.ipi_spec_dst, 4);
      return; /* preferred for v4: the address the kernel would answer from */
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      put_be32(l + 4, pi.ipi6_ifindex);
      if (memcmp(pi.ipi6_addr.s6_addr, v4mapped, 12) == 0) {
        l[0] = 4;
        memcpy(l + 8, pi.ipi6_addr.s6_addr + 12, 4);
      } else {
        l[0] = 6;
        memcpy(l + 8, pi.ipi6_addr.s6_addr, 16);
      }
      /* keep looking: an IP_PKTINFO of a v4 datagram takes precedence */
    }
  }
}

/* Fills a sockaddr from a record's remote part; returns its length or 0 if invalid. */
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
#define SEND_CTL (CMSG_SPACE(sizeof(uint16_t)) + CMSG_SPACE(sizeof(struct in6_pktinfo)))

typedef union {
  char buf[SEND_CTL];
  struct cmsghdr align;
} send_ctl_t;

/* Whether the record names a usable local source for its destination on this socket. */
static int rec_has_src(const uint8_t *rec, int sock_v6) {
  const uint8_t *l = rec + REC_LOCAL;
  if (l[0] == 4) return rec[0] == 4;
  if (l[0] == 6) return rec[0] == 6 && sock_v6;
  return 0;
}

static int is_link_local6(const uint8_t *a) { return a[0] == 0xfe && (a[1] & 0xc0) == 0x80; }

/*
 * Sets the control data of `m`: UDP_SEGMENT when gso_size > 0, and the source of `rec`
 * (IP_PKTINFO ipi_spec_dst for v4; IPV6_PKTINFO ipi6_addr for v6, with the ifindex when
 * the source or the destination is link-local) when src is set.
 */
static void set_ctl(struct msghdr *m, send_ctl_t *ctl, uint16_t gso_size, const uint8_t *rec, int src) {
  size_t len = 0;
  if (gso_size) len += CMSG_SPACE(sizeof(uint16_t));
  if (src) len += CMSG_SPACE(rec[REC_LOCAL] == 4 ? sizeof(struct in_pktinfo) : sizeof(struct in6_pktinfo));
  if (len == 0) {
    m->msg_control = NULL;
    m->msg_controllen = 0;
    return;
  }
  memset(ctl, 0, sizeof *ctl);
  m->msg_control = ctl->buf;
  m->msg_controllen = len;
  struct cmsghdr *c = CMSG_FIRSTHDR(m);
  if (gso_size) {
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &gso_size, sizeof gso_size);
    c = CMSG_NXTHDR(m, c);
  }
  if (!src) return;
  const uint8_t *l = rec + REC_LOCAL;
  if (l[0] == 4) {
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    memcpy(&pi.ipi_spec_dst, l + 8, 4); /* ifindex 0: routed by source, like the kernel module */
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
  } else {
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    memcpy(pi.ipi6_addr.s6_addr, l + 8, 16);
    if (is_link_local6(l + 8) || is_link_local6(rec + 4))
      pi.ipi6_ifindex = ((uint32_t)l[4] << 24) | ((uint32_t)l[5] << 16) | ((uint32_t)l[6] << 8) | l[7];
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
  }
}

/* Errors meaning "that source address is not (or no longer) usable". */
static int src_refused(int err) { return err == EINVAL || err == ENETUNREACH || err == EADDRNOTAVAIL; }

/*
 * udpSend(fd, sockV6, datagrams: Uint8Array[], addrs: Uint8Array (ADDR_REC B each), count, gso)
 * -> number sent. A record with a local part sends from that address (sticky source). With
 * gso, consecutive datagrams with the same record (destination AND source) and the same size
 * (the last of a run may be shorter) go out as ONE sendmsg with UDP_SEGMENT, so the kernel's
 * stack runs once per run; if the kernel refuses GSO the run is resent one by one. If the
 * kernel refuses the source (EINVAL, ENETUNREACH, EADDRNOTAVAIL: the address is gone), the
 * message is resent without it and REC_SRC_REFUSED is set in the flags of its records, so the
 * caller can forget that source. Messages go out with sendmmsg in chunks of 64. EAGAIN waits
 * up to 2 ms once, then the rest is dropped (the caller counts count - sent). Any other
 * refusal (ENETUNREACH, EMSGSIZE, ENOBUFS, EPERM, ...) drops that message and the rest still
 * goes out; err[0] (optional Int32Array) receives the errno of the first one (0: none).
 */
napi_value js_udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
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
  int32_t *err_out = NULL;
  if (argc >= 7) {
    napi_valuetype t;
    napi_typeof(env, argv[6], &t);
    if (t != napi_undefined && t != napi_null) {
      size_t el = 0;
      if (arg_i32s(env, argv[6], &err_out, &el, "err")) return NULL;
      if (el < 1) return throw_type(env, "err must hold at least 1 element");
    }
  }
  int first_err = 0;

  struct mmsghdr msgs[SEND_BATCH];
  struct iovec iovs[SEND_BATCH];
  struct sockaddr_storage names[SEND_BATCH];
  uint16_t segs[SEND_BATCH];  /* datagrams per message */
  uint32_t first[SEND_BATCH]; /* index of the message's first record */
  uint8_t src[SEND_BATCH];    /* message carries a source */
  send_ctl_t ctl[SEND_BATCH];
  uint32_t sent = 0, i = 0;
  int waited = 0;
  while (i < count) {
    int n = 0, niov = 0;
    uint8_t *cur_rec = NULL;
    size_t cur_size = 0, cur_bytes = 0;
    int open_run = 0; /* the last message may take more segments */
    while (i < count && niov < SEND_BATCH) {
      napi_value el;
      napi_get_element(env, argv[2], i, &el);
      uint8_t *p;
      size_t len;
      if (arg_bytes(env, el, &p, &len, "datagram")) return NULL;
      uint8_t *rec = addrs + (size_t)i * ADDR_REC;
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
      if (sl == 0) { /* unreachable family: dropped (and a run's records stay contiguous) */
        open_run = 0;
        continue;
      }
      iovs[niov].iov_base = p;
      iovs[niov].iov_len = len;
      memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_name = &names[n];
      msgs[n].msg_hdr.msg_namelen = sl;
      msgs[n].msg_hdr.msg_iov = &iovs[niov];
      msgs[n].msg_hdr.msg_iovlen = 1;
      segs[n] = 1;
      first[n] = i - 1;
      src[n] = (uint8_t)rec_has_src(rec, v6);
      niov++;
      n++;
      cur_rec = rec;
      cur_size = len;
      cur_bytes = len;
      open_run = gso && len > 0;
    }
    /* UDP_SEGMENT for messages carrying several datagrams, pktinfo for sticky sources. */
    for (int k = 0; k < n; k++) {
      struct msghdr *m = &msgs[k].msg_hdr;
      uint16_t gs = segs[k] > 1 ? (uint16_t)m->msg_iov[0].iov_len : 0;
      set_ctl(m, &ctl[k], gs, addrs + (size_t)first[k] * ADDR_REC, src[k]);
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
      int err = r < 0 ? errno : EIO;
      struct msghdr *m = &msgs[off].msg_hdr;
      const uint8_t *rec = addrs + (size_t)first[off] * ADDR_REC;
      if (src[off] && src_refused(err)) {
        /* The source is gone: resend from the kernel's choice and tell the caller. */
        src[off] = 0;
        for (int k = 0; k < segs[off]; k++) addrs[(size_t)(first[off] + k) * ADDR_REC + REC_LOCAL + 1] |= REC_SRC_REFUSED;
        set_ctl(m, &ctl[off], segs[off] > 1 ? (uint16_t)m->msg_iov[0].iov_len : 0, rec, 0);
        continue;
      }
      /* msgs[off] failed. A GSO message is retried datagram by datagram; others dropped. */
      if (first_err == 0 && segs[off] == 1) first_err = err;
      if (segs[off] > 1) {
        struct msghdr one = *m;
        send_ctl_t c1;
        set_ctl(&one, &c1, 0, rec, src[off]);
        one.msg_iovlen = 1;
        for (int k = 0; k < segs[off]; k++) {
          one.msg_iov = &m->msg_iov[k];
          int s1 = send_one(fd, &one, &waited);
          if (s1 == 0) goto done;
          if (s1 > 0) sent++;
          else if (first_err == 0) first_err = -s1;
        }
      }
      off++;
    }
  }
done:;
  if (err_out) err_out[0] = first_err;
  napi_value res;
  napi_create_uint32(env, sent, &res);
  return res;
}
