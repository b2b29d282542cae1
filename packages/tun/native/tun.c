/* TUN device creation (TUNSETIFF), link MTU/index ioctls and batched packet writes. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int arg_ifname(napi_env env, napi_value v, char out[IFNAMSIZ]) {
  size_t n = 0;
  memset(out, 0, IFNAMSIZ);
  if (napi_get_value_string_utf8(env, v, out, IFNAMSIZ, &n) != napi_ok) {
    throw_type(env, "interface name must be a string");
    return -1;
  }
  size_t full = 0;
  napi_get_value_string_utf8(env, v, NULL, 0, &full);
  if (full == 0 || full >= IFNAMSIZ) {
    throw_type(env, "interface name must be 1 to 15 bytes");
    return -1;
  }
  return 0;
}

/*
 * tunOpen(name, multiQueue, vnetHdr, offload) -> { fd, name }; fd is O_NONBLOCK|O_CLOEXEC.
 * With vnetHdr every read/write carries a 10-byte virtio-net header; with offload the
 * kernel may hand us 64 KB TCP (TSO) packets and partial checksums (TUN_F_CSUM|TSO4|
 * TSO6|TSO_ECN), which the reader splits and completes (vnet.c).
 */
napi_value js_tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_type(env, "tunOpen(name, multiQueue, vnetHdr, offload)");
  char name[IFNAMSIZ];
  if (arg_ifname(env, argv[0], name)) return NULL;
  bool mq = false;
  napi_get_value_bool(env, argv[1], &mq);
  bool vnet = false, offload = false;
  if (argc >= 3) napi_get_value_bool(env, argv[2], &vnet);
  if (argc >= 4) napi_get_value_bool(env, argv[3], &offload);

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, IFNAMSIZ);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (mq ? IFF_MULTI_QUEUE : 0) | (vnet ? IFF_VNET_HDR : 0);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "TUNSETIFF", e);
  }
  unsigned long offloads = offload ? (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) : 0UL;
  if (vnet && ioctl(fd, TUNSETOFFLOAD, offloads) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "TUNSETOFFLOAD", e);
  }
  napi_value res, vfd, vname;
  napi_create_object(env, &res);
  napi_create_int32(env, fd, &vfd);
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &vname);
  napi_set_named_property(env, res, "fd", vfd);
  napi_set_named_property(env, res, "name", vname);
  return res;
}

static int link_ioctl(napi_env env, napi_value vname, unsigned long req, struct ifreq *ifr, const char *what) {
  char name[IFNAMSIZ];
  if (arg_ifname(env, vname, name)) return -1;
  memcpy(ifr->ifr_name, name, IFNAMSIZ);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    throw_errno(env, "socket", errno);
    return -1;
  }
  int r = ioctl(s, req, ifr);
  int e = errno;
  close(s);
  if (r < 0) {
    throw_errno(env, what, e);
    return -1;
  }
  return 0;
}

/* linkSetMtu(name, mtu) */
napi_value js_link_set_mtu(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_type(env, "linkSetMtu(name, mtu)");
  int32_t mtu;
  if (arg_int32(env, argv[1], &mtu, "mtu")) return NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_mtu = mtu;
  link_ioctl(env, argv[0], SIOCSIFMTU, &ifr, "SIOCSIFMTU");
  return NULL;
}

/* An int-valued SIOCGIF* ioctl on the link named by the only argument. */
static napi_value link_get_int(napi_env env, napi_callback_info info, unsigned long req, const char *reqname,
                               const char *usage, int (*field)(const struct ifreq *)) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return throw_type(env, usage);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (link_ioctl(env, argv[0], req, &ifr, reqname)) return NULL;
  napi_value r;
  napi_create_int32(env, field(&ifr), &r);
  return r;
}

static int field_mtu(const struct ifreq *ifr) { return ifr->ifr_mtu; }
static int field_index(const struct ifreq *ifr) { return ifr->ifr_ifindex; }

/* linkGetMtu(name) -> number */
napi_value js_link_get_mtu(napi_env env, napi_callback_info info) {
  return link_get_int(env, info, SIOCGIFMTU, "SIOCGIFMTU", "linkGetMtu(name)", field_mtu);
}

/* linkIndex(name) -> number */
napi_value js_link_index(napi_env env, napi_callback_info info) {
  return link_get_int(env, info, SIOCGIFINDEX, "SIOCGIFINDEX", "linkIndex(name)", field_index);
}

/*
 * writePackets(fd, packets: Uint8Array[], count?, vnet?, err?: Int32Array) -> number written.
 * Plain mode: one write() per packet; EAGAIN waits up to 2 ms for POLLOUT once, then the
 * rest of the batch is dropped. vnet mode (fd opened with IFF_VNET_HDR): see vnet.c (TCP
 * segments coalesced into GSO super-packets). A packet the kernel refuses (EIO while the
 * link is down, EINVAL, ENOBUFS, EBADFD once the interface is gone, ...) is dropped and
 * the rest of the batch still goes out: no errno ever throws (the reader reports a deleted
 * interface). err[0], when given, receives the errno of the first refused packet (0: none).
 */
napi_value js_write_packets(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_type(env, "writePackets(fd, packets, count, vnet, err)");
  int32_t fd;
  if (arg_int32(env, argv[0], &fd, "fd")) return NULL;
  uint32_t n;
  if (napi_get_array_length(env, argv[1], &n) != napi_ok) return throw_type(env, "packets must be an array");
  if (argc >= 3) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t == napi_number) {
      uint32_t c;
      if (arg_u32(env, argv[2], &c, "count")) return NULL;
      if (c < n) n = c;
    }
  }
  bool vnet = false;
  if (argc >= 4) napi_get_value_bool(env, argv[3], &vnet);
  int32_t *err_out = NULL;
  if (argc >= 5) {
    napi_valuetype t;
    napi_typeof(env, argv[4], &t);
    if (t != napi_undefined && t != napi_null) {
      size_t el = 0;
      if (arg_i32s(env, argv[4], &err_out, &el, "err")) return NULL;
      if (el < 1) return throw_type(env, "err must hold at least 1 element");
      err_out[0] = 0;
    }
  }
  int first_err = 0;
  napi_value r;
  if (vnet) {
    uint8_t **ptrs = malloc(sizeof(uint8_t *) * (n ? n : 1));
    size_t *lens = malloc(sizeof(size_t) * (n ? n : 1));
    if (!ptrs || !lens) {
      free(ptrs), free(lens);
      return throw_errno(env, "malloc", ENOMEM);
    }
    for (uint32_t i = 0; i < n; i++) {
      napi_value el;
      napi_get_element(env, argv[1], i, &el);
      if (arg_bytes(env, el, &ptrs[i], &lens[i], "packet")) {
        free(ptrs), free(lens);
        return NULL;
      }
    }
    int w = tun_write_vnet(fd, ptrs, lens, n, &first_err);
    free(ptrs), free(lens);
    if (w < 0) return throw_errno(env, "write", -w);
    if (err_out) err_out[0] = first_err;
    napi_create_uint32(env, (uint32_t)w, &r);
    return r;
  }
  uint32_t written = 0;
  int waited = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    napi_get_element(env, argv[1], i, &el);
    uint8_t *p;
    size_t len;
    if (arg_bytes(env, el, &p, &len, "packet")) return NULL;
    for (;;) {
      ssize_t w = write(fd, p, len);
      if (w >= 0) {
        written++;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN && !waited) {
        waited = 1;
        if (wait_writable(fd, 2)) continue;
      }
      if (errno == EAGAIN) goto done;
      if (first_err == 0) first_err = errno;
      break; /* refused: dropped */
    }
  }
done:
  if (err_out) err_out[0] = first_err;
  napi_create_uint32(env, written, &r);
  return r;
}

/*
 * tunLinkUp(fd) -> 1 (IFF_UP), 0 (down) or -1 (unknown). The interface is found through
 * the fd, wherever it is now: its current name (TUNGETIFF) looked up with SIOCGIFFLAGS in
 * its current network namespace (TUNGETDEVNETNS, Linux >= 5.3; the calling thread enters
 * that namespace only to create the ioctl socket and returns at once). A link moved to
 * another namespace cannot be watched with netlink from ours, and a zero-length write no
 * longer tells (current kernels check the packet before IFF_UP: always EINVAL).
 * Throws EBADFD when the interface was deleted. Unknown = no way to ask (old kernel, no
 * CAP_SYS_ADMIN for setns).
 */
napi_value js_tun_link_up(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || arg_int32(env, argv[0], &fd, "fd")) return NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) return throw_errno(env, "TUNGETIFF", errno);
  char name[IFNAMSIZ];
  memcpy(name, ifr.ifr_name, IFNAMSIZ);
  name[IFNAMSIZ - 1] = 0;
  int s = -1;
  int devns = ioctl(fd, TUNGETDEVNETNS);
  if (devns >= 0) {
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    struct stat a, b;
    if (self >= 0 && fstat(devns, &a) == 0 && fstat(self, &b) == 0) {
      if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      } else if (setns(devns, CLONE_NEWNET) == 0) {
        s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (setns(self, CLONE_NEWNET) != 0) {
          /* Cannot happen for a process that could enter: never keep running elsewhere. */
          abort();
        }
      }
    }
    if (self >= 0) close(self);
    close(devns);
  }
  int result = -1;
  if (s < 0 && devns < 0) s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); /* old kernel: our namespace */
  if (s >= 0) {
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, name, IFNAMSIZ);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) result = (ifr.ifr_flags & IFF_UP) ? 1 : 0;
    close(s);
  }
  napi_value r;
  napi_create_int32(env, result, &r);
  return r;
}
