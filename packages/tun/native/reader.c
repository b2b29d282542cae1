/*
 * Batched readers on the JS thread: uv_poll on a non-blocking fd; when readable, read up
 * to maxBatch packets (read() for TUN, recvmmsg() for UDP) into JS-owned buffers and make
 * ONE JS callback `cb(count, errno)` per batch. The buffers are reused for the next batch,
 * so JS must consume (or copy) them before returning. `cb(count, errno, fatal)`: errno != 0
 * with fatal = true means the reader stopped for good (EBADFD when the TUN interface was
 * deleted, a poll error); with fatal = false, one read failed (that packet is lost) and
 * reading goes on.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

enum { KIND_TUN = 0, KIND_UDP = 1, KIND_TUN_VNET = 2 };

#define SCRATCH (65536 + 64)

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb, buf_ref, off_ref, len_ref, addr_ref;
  napi_async_context actx;
  uint8_t *buf;
  size_t cap;
  uint32_t *offs, *lens;
  uint8_t *addrs;
  uint32_t max_batch, slot, max_out;
  char *ctl; /* per-message control buffers (UDP GRO segment size) */
  uint8_t *scratch; /* one raw TUN read (vnet mode) */
  int fd, kind, stopped;
  uint32_t errs_in_row; /* consecutive polls that read nothing but an error */
  struct mmsghdr *msgs;
  struct iovec *iovs;
  struct sockaddr_in6 *names;
} reader_t;

static void on_closed(uv_handle_t *h) {
  reader_t *r = h->data;
  free(r->msgs);
  free(r->iovs);
  free(r->names);
  free(r->ctl);
  free(r->scratch);
  free(r);
}

static void release(reader_t *r) {
  if (r->stopped) return;
  r->stopped = 1;
  uv_poll_stop(&r->poll);
  napi_env env = r->env;
  napi_delete_reference(env, r->cb);
  napi_delete_reference(env, r->buf_ref);
  napi_delete_reference(env, r->off_ref);
  napi_delete_reference(env, r->len_ref);
  if (r->addr_ref) napi_delete_reference(env, r->addr_ref);
  napi_async_destroy(env, r->actx);
  uv_close((uv_handle_t *)&r->poll, on_closed);
}

static void call_js(reader_t *r, int count, int err, int fatal) {
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, argv[3];
  napi_get_reference_value(env, r->cb, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, count, &argv[0]);
  napi_create_int32(env, err, &argv[1]);
  napi_get_boolean(env, fatal != 0, &argv[2]);
  napi_status s = napi_make_callback(env, r->actx, recv, cb, 3, argv, NULL);
  if (s == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

static void addr_rec(uint8_t *rec, const struct sockaddr_in6 *sa) {
  memset(rec, 0, ADDR_REC);
  if (sa->sin6_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    rec[0] = 4;
    memcpy(rec + 2, &a->sin_port, 2);
    memcpy(rec + 4, &a->sin_addr, 4);
    return;
  }
  const uint8_t *b = sa->sin6_addr.s6_addr;
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  memcpy(rec + 2, &sa->sin6_port, 2);
  if (memcmp(b, mapped, 12) == 0) {
    rec[0] = 4;
    memcpy(rec + 4, b + 12, 4);
  } else {
    rec[0] = 6;
    memcpy(rec + 4, b, 16);
  }
}

static int read_tun(reader_t *r, int *err) {
  uint32_t n = 0;
  size_t off = 0;
  while (n < r->max_batch && r->cap - off >= r->slot) {
    ssize_t k = read(r->fd, r->buf + off, r->cap - off);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) *err = errno;
      break;
    }
    r->offs[n] = (uint32_t)off;
    r->lens[n] = (uint32_t)k;
    n++;
    off += ((size_t)k + 15) & ~(size_t)15;
  }
  return (int)n;
}

/*
 * IFF_VNET_HDR reads: each read (possibly a 64 KB TSO packet) goes to a scratch buffer
 * and is split into MTU-sized packets in the JS buffer. Up to max_batch reads per batch,
 * while room remains for a full read's worth of segments.
 */
static int read_tun_vnet(reader_t *r, int *err) {
  uint32_t n = 0;
  size_t off = 0;
  for (uint32_t reads = 0; reads < r->max_batch && r->cap - off >= r->slot && n + 64 <= r->max_out; reads++) {
    ssize_t k = read(r->fd, r->scratch, SCRATCH);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) *err = errno;
      break;
    }
    n = vnet_split(r->scratch, (size_t)k, r->buf, r->cap, &off, r->offs, r->lens, n, r->max_out);
  }
  return (int)n;
}

#define CTL_SIZE udp_recv_ctl_size()

static int read_udp(reader_t *r, int *err) {
  for (uint32_t i = 0; i < r->max_batch; i++) {
    r->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
    r->msgs[i].msg_hdr.msg_flags = 0;
    r->msgs[i].msg_hdr.msg_control = r->ctl + (size_t)i * CTL_SIZE;
    r->msgs[i].msg_hdr.msg_controllen = CTL_SIZE;
  }
  int k;
  do {
    k = recvmmsg(r->fd, r->msgs, r->max_batch, MSG_DONTWAIT, NULL);
  } while (k < 0 && errno == EINTR);
  if (k < 0) {
    /* Only a broken socket stops the reader; ICMP-driven errors (ECONNREFUSED,
     * EHOSTUNREACH, ...) are consumed by this call and reading goes on. */
    if (errno == EBADF || errno == ENOTSOCK || errno == EINVAL || errno == EFAULT) *err = errno;
    return 0;
  }
  uint32_t n = 0;
  for (int i = 0; i < k; i++) {
    struct msghdr *m = &r->msgs[i].msg_hdr;
    if (m->msg_flags & MSG_TRUNC) continue; /* oversized: dropped */
    uint32_t len = r->msgs[i].msg_len;
    uint32_t seg = len;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int g;
        memcpy(&g, CMSG_DATA(c), sizeof g);
        if (g > 0) seg = (uint32_t)g;
      }
    }
    uint8_t rec[ADDR_REC];
    addr_rec(rec, &r->names[i]);
    udp_rec_local(m, rec);
    /* A GRO message holds several datagrams of `seg` bytes (the last may be shorter). */
    for (uint32_t off = 0; off < len || (len == 0 && off == 0); off += seg) {
      if (n >= r->max_out) return (int)n; /* output full: rest dropped */
      r->offs[n] = (uint32_t)i * r->slot + off;
      r->lens[n] = len - off < seg ? len - off : seg;
      memcpy(r->addrs + (size_t)n * ADDR_REC, rec, ADDR_REC);
      n++;
      if (seg == 0) break;
    }
  }
  return (int)n;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  reader_t *r = h->data;
  if (r->stopped) return;
  int err = 0;
  int n = r->kind == KIND_UDP ? read_udp(r, &err) : r->kind == KIND_TUN_VNET ? read_tun_vnet(r, &err) : read_tun(r, &err);
  int fatal = 0;
  if (status < 0) { /* poll error (libuv stops the handle) */
    if (err == 0) err = EIO;
    fatal = 1;
  }
  /* The interface is gone (EBADFD) or the fd is: stop. Any other errno costs one packet. */
  if (err == EBADFD || err == EBADF || err == ENODEV) fatal = 1;
  /* A failure that never clears (nothing read for 10000 polls in a row) would spin: stop. */
  if (err && n == 0 && ++r->errs_in_row >= 10000) fatal = 1;
  if (n > 0 || !err) r->errs_in_row = 0;
  if (n > 0) call_js(r, n, 0, 0);
  if (err && !r->stopped) {
    if (fatal) uv_poll_stop(&r->poll);
    call_js(r, 0, err, fatal);
    /* After a fatal error JS is expected to call readerStop; polling is stopped regardless. */
  }
}

static void finalize_noop(napi_env env, void *data, void *hint) {}

static int get_ref(napi_env env, napi_value v, napi_ref *ref) {
  return napi_create_reference(env, v, 1, ref) == napi_ok ? 0 : -1;
}

/*
 * readerStart(kind, fd, buf, offsets, lengths, addrs|null, maxBatch, slot, cb) -> handle.
 * TUN: packets are packed into buf (16-byte aligned); reading continues while at least
 * `slot` bytes remain. UDP: datagram i of the recvmmsg batch lands at i*slot.
 */
napi_value js_reader_start(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 9) return throw_type(env, "readerStart(kind, fd, buf, offsets, lengths, addrs, maxBatch, slot, cb)");
  int32_t kind, fd;
  uint32_t max_batch, slot;
  uint8_t *buf, *addrs = NULL;
  size_t cap, no, nl, na = 0;
  uint32_t *offs, *lens;
  if (arg_int32(env, argv[0], &kind, "kind") || arg_int32(env, argv[1], &fd, "fd") ||
      arg_bytes(env, argv[2], &buf, &cap, "buf") || arg_u32s(env, argv[3], &offs, &no, "offsets") ||
      arg_u32s(env, argv[4], &lens, &nl, "lengths") || arg_u32(env, argv[6], &max_batch, "maxBatch") ||
      arg_u32(env, argv[7], &slot, "slot"))
    return NULL;
  if (kind == KIND_UDP && arg_bytes(env, argv[5], &addrs, &na, "addrs")) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[8], &t);
  if (t != napi_function) return throw_type(env, "cb must be a function");
  if (max_batch == 0 || no < max_batch || nl < max_batch) return throw_type(env, "offsets/lengths shorter than maxBatch");
  if (slot == 0 || cap < slot) return throw_type(env, "buf smaller than slot");
  if (kind == KIND_UDP && ((size_t)max_batch * slot > cap || na < (size_t)max_batch * ADDR_REC))
    return throw_type(env, "udp buffers too small for maxBatch");

  reader_t *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, "calloc", ENOMEM);
  r->env = env;
  r->buf = buf;
  r->cap = cap;
  r->offs = offs;
  r->lens = lens;
  r->addrs = addrs;
  r->max_batch = max_batch;
  r->max_out = (uint32_t)(no < nl ? no : nl);
  if (kind == KIND_UDP && na / ADDR_REC < r->max_out) r->max_out = (uint32_t)(na / ADDR_REC);
  r->slot = slot;
  r->fd = fd;
  r->kind = kind;
  if (kind == KIND_UDP) {
    r->msgs = calloc(max_batch, sizeof *r->msgs);
    r->iovs = calloc(max_batch, sizeof *r->iovs);
    r->names = calloc(max_batch, sizeof *r->names);
    r->ctl = calloc(max_batch, CTL_SIZE);
    if (!r->msgs || !r->iovs || !r->names || !r->ctl) {
      free(r->msgs), free(r->iovs), free(r->names), free(r->ctl), free(r);
      return throw_errno(env, "calloc", ENOMEM);
    }
    for (uint32_t i = 0; i < max_batch; i++) {
      r->iovs[i].iov_base = buf + (size_t)i * slot;
      r->iovs[i].iov_len = slot;
      r->msgs[i].msg_hdr.msg_iov = &r->iovs[i];
      r->msgs[i].msg_hdr.msg_iovlen = 1;
      r->msgs[i].msg_hdr.msg_name = &r->names[i];
    }
  }
  if (kind == KIND_TUN_VNET) {
    r->scratch = malloc(SCRATCH);
    if (!r->scratch) {
      free(r);
      return throw_errno(env, "malloc", ENOMEM);
    }
  }
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int e = uv_poll_init(loop, &r->poll, fd);
  if (e < 0) {
    free(r->msgs), free(r->iovs), free(r->names), free(r->ctl), free(r->scratch), free(r);
    return throw_errno(env, "uv_poll_init", -e);
  }
  r->poll.data = r;
  get_ref(env, argv[8], &r->cb);
  get_ref(env, argv[2], &r->buf_ref);
  get_ref(env, argv[3], &r->off_ref);
  get_ref(env, argv[4], &r->len_ref);
  if (kind == KIND_UDP) get_ref(env, argv[5], &r->addr_ref);
  napi_value res_name;
  napi_create_string_utf8(env, kind != KIND_UDP ? "lattice.tun" : "lattice.udp", NAPI_AUTO_LENGTH, &res_name);
  napi_value res_obj;
  napi_create_object(env, &res_obj);
  napi_async_init(env, res_obj, res_name, &r->actx);
  uv_poll_start(&r->poll, UV_READABLE, on_poll);
  napi_value handle;
  napi_create_external(env, r, finalize_noop, NULL, &handle);
  return handle;
}

/* readerStop(handle): stops polling and releases the callback; idempotent. */
napi_value js_reader_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *p = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok || !p) return throw_type(env, "bad handle");
  /* Must be called once per handle (the JS wrapper guarantees it): the struct is freed
   * once libuv has closed the poll handle. */
  reader_t *r = p;
  release(r);
  return NULL;
}
