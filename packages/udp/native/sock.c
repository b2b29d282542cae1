/*
 * Socket lifecycle: open (dual-stack bind, buffers, SO_MARK, GSO probe, GRO), close,
 * stats, ref/unref, address parsing. A udp_t is freed once both its uv_poll handle is
 * closed and the JS external pointing at it is finalized, so a stale handle never
 * touches freed memory (it sees `closed`).
 */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sock_diag.h>
#include <unistd.h>

/* Samples the kernel's count of datagrams dropped on this socket (receive buffer full...). */
static void sample_drops(udp_t *u) {
  uint32_t mi[SK_MEMINFO_VARS];
  socklen_t l = sizeof mi;
  if (u->fd >= 0 && getsockopt(u->fd, SOL_SOCKET, SO_MEMINFO, mi, &l) == 0 && l > SK_MEMINFO_DROPS * sizeof(uint32_t))
    u->st.rx_drops = mi[SK_MEMINFO_DROPS];
}

static void udp_free(udp_t *u) {
  rx_free(u);
  free(u);
}

/*
 * The async env cleanup hook stays registered until the uv_poll handle's close callback
 * has run, so that on worker teardown Node keeps the loop (and this addon) alive until
 * then: a close callback into an unloaded addon would crash.
 */
static void on_poll_closed(uv_handle_t *h) {
  udp_t *u = h->data;
  u->polling = 0;
  if (u->hook) {
    napi_async_cleanup_hook_handle hk = u->hook;
    u->hook = NULL;
    napi_remove_async_cleanup_hook(hk);
  }
  if (!u->ext_alive) udp_free(u);
}

static void cleanup_hook(napi_async_cleanup_hook_handle handle, void *arg) {
  udp_t *u = arg;
  udp_shutdown(u); /* on_poll_closed removes the hook */
}

void udp_shutdown(udp_t *u) {
  if (u->closed) return;
  u->closed = 1;
  napi_env env = u->env;
  if (u->polling) uv_close((uv_handle_t *)&u->poll, on_poll_closed); /* stops polling now */
  sample_drops(u);
  close(u->fd);
  u->fd = -1;
  if (u->on_batch) napi_delete_reference(env, u->on_batch);
  if (u->on_error) napi_delete_reference(env, u->on_error);
  u->on_batch = u->on_error = NULL;
  if (u->self) napi_delete_reference(env, u->self);
  u->self = NULL;
  if (u->actx) napi_async_destroy(env, u->actx);
  u->actx = NULL;
}

static void finalize_ext(napi_env env, void *data, void *hint) {
  udp_t *u = data;
  u->ext_alive = 0;
  udp_shutdown(u);
  if (!u->polling) udp_free(u);
}

static int set_buf(int fd, int force_opt, int opt, int size) {
  if (size <= 0) return 0;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof size) == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, opt, &size, sizeof size);
}

static int get_int(int fd, int level, int opt) {
  int v = 0;
  socklen_t l = sizeof v;
  return getsockopt(fd, level, opt, &v, &l) == 0 ? v : -1;
}

static void set_prop_int(napi_env env, napi_value obj, const char *name, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, obj, name, x);
}

static void set_prop_bool(napi_env env, napi_value obj, const char *name, int v) {
  napi_value x;
  napi_get_boolean(env, v, &x);
  napi_set_named_property(env, obj, name, x);
}

/* Creates and binds the socket; returns fd or -1 with *what naming the failed step. */
static int open_bound(const char *host, uint32_t port, int *v6, const char **what) {
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  memset(&a6, 0, sizeof a6);
  memset(&a4, 0, sizeof a4);
  int dual = host[0] == 0 || strcmp(host, "::") == 0;
  *what = "invalid host address";
  if (dual || inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
    *v6 = 1;
  } else if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
    *v6 = 0;
  } else {
    errno = EINVAL;
    return -1;
  }
  *what = "socket";
  int fd = socket(*v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 && dual && errno == EAFNOSUPPORT) { /* no IPv6 in this kernel: IPv4 only */
    *v6 = 0;
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) return -1;
  int r;
  *what = "bind";
  if (*v6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons((uint16_t)port);
    r = bind(fd, (struct sockaddr *)&a6, sizeof a6);
  } else {
    a4.sin_family = AF_INET;
    a4.sin_port = htons((uint16_t)port);
    r = bind(fd, (struct sockaddr *)&a4, sizeof a4);
  }
  if (r < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/*
 * open(host, port, hasMark, mark, rcvbuf, sndbuf, gso, gro, slots, maxLoops, onBatch, onError)
 * -> { handle, port, family, gso, gro, rcvbuf, sndbuf }. Starts polling immediately.
 * onBatch(data: Buffer, meta: Uint32Array, addresses: string[], count);
 * onError(errno: number, name: string) for receive errors (the socket keeps running).
 */
napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 12) return throw_type(env, "open(host, port, hasMark, mark, rcvbuf, sndbuf, gso, gro, slots, maxLoops, onBatch, onError)");
  char host[INET6_ADDRSTRLEN + 1];
  size_t hl;
  if (napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hl) != napi_ok || hl >= sizeof host - 1)
    return throw_type(env, "host must be an IP address string");
  uint32_t port, mark, rcvbuf, sndbuf, slots, max_loops;
  int has_mark, want_gso, want_gro;
  if (arg_u32(env, argv[1], &port, "port") || arg_bool(env, argv[2], &has_mark, "hasMark") ||
      arg_u32(env, argv[3], &mark, "mark") || arg_u32(env, argv[4], &rcvbuf, "rcvbuf") ||
      arg_u32(env, argv[5], &sndbuf, "sndbuf") || arg_bool(env, argv[6], &want_gso, "gso") ||
      arg_bool(env, argv[7], &want_gro, "gro") || arg_u32(env, argv[8], &slots, "slots") ||
      arg_u32(env, argv[9], &max_loops, "maxLoops"))
    return NULL;
  if (port > 65535) return throw_type(env, "port must be 0..65535");
  if (slots < 1 || slots > 1024) return throw_type(env, "slots must be 1..1024");
  if (max_loops < 1) return throw_type(env, "maxLoops must be >= 1");
  napi_valuetype t1, t2;
  napi_typeof(env, argv[10], &t1);
  napi_typeof(env, argv[11], &t2);
  if (t1 != napi_function || t2 != napi_function) return throw_type(env, "onBatch and onError must be functions");

  int v6;
  const char *what;
  int fd = open_bound(host, port, &v6, &what);
  if (fd < 0) return throw_errno(env, what, errno);
  if (has_mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "setsockopt(SO_MARK)", e);
  }
  set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)(rcvbuf > INT32_MAX / 2 ? INT32_MAX / 2 : rcvbuf));
  set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)(sndbuf > INT32_MAX / 2 ? INT32_MAX / 2 : sndbuf));

  udp_t *u = calloc(1, sizeof *u);
  if (!u) {
    close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  u->env = env;
  u->fd = fd;
  u->v6 = v6;
  u->slots = slots;
  u->max_loops = max_loops;
  /* GSO probe: the option exists (Linux >= 4.18); real support is confirmed on first send. */
  u->gso = want_gso && get_int(fd, SOL_UDP, UDP_SEGMENT) >= 0;
  int one = 1;
  u->gro = want_gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  if (rx_alloc(u) < 0) {
    close(fd);
    free(u);
    return throw_errno(env, "malloc", ENOMEM);
  }
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int e = uv_poll_init(loop, &u->poll, fd);
  if (e < 0) {
    close(fd);
    udp_free(u);
    return throw_errno(env, "uv_poll_init", -e);
  }
  u->poll.data = u;
  u->polling = 1;
  u->ext_alive = 1;
  napi_create_reference(env, argv[10], 1, &u->on_batch);
  napi_create_reference(env, argv[11], 1, &u->on_error);
  napi_value res_name, res_obj;
  napi_create_string_utf8(env, "lattice.udp", NAPI_AUTO_LENGTH, &res_name);
  napi_create_object(env, &res_obj);
  napi_async_init(env, res_obj, res_name, &u->actx);
  napi_add_async_cleanup_hook(env, cleanup_hook, u, &u->hook);
  uv_poll_start(&u->poll, UV_READABLE, on_readable);

  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  int bound = v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  napi_value res, handle;
  napi_create_object(env, &res);
  napi_create_external(env, u, finalize_ext, NULL, &handle);
  napi_create_reference(env, handle, 1, &u->self);
  napi_set_named_property(env, res, "handle", handle);
  set_prop_int(env, res, "port", bound);
  set_prop_int(env, res, "family", v6 ? 6 : 4);
  set_prop_bool(env, res, "gso", u->gso);
  set_prop_bool(env, res, "gro", u->gro);
  set_prop_int(env, res, "rcvbuf", get_int(fd, SOL_SOCKET, SO_RCVBUF));
  set_prop_int(env, res, "sndbuf", get_int(fd, SOL_SOCKET, SO_SNDBUF));
  return res;
}

/* close(handle): idempotent; safe from inside onBatch. */
napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  udp_t *u = argc < 1 ? (throw_type(env, "close(handle)"), NULL) : arg_udp(env, argv[0]);
  if (!u) return NULL;
  udp_shutdown(u);
  return NULL;
}

/* setRef(handle, ref): whether the socket keeps the event loop alive. */
napi_value js_set_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_type(env, "setRef(handle, ref)");
  udp_t *u = arg_udp(env, argv[0]);
  int ref;
  if (!u || arg_bool(env, argv[1], &ref, "ref")) return NULL;
  if (!u->closed) {
    if (ref)
      uv_ref((uv_handle_t *)&u->poll);
    else
      uv_unref((uv_handle_t *)&u->poll);
  }
  return NULL;
}

/* stats(handle) -> counters object (see udp_stats_t), plus gso (still enabled). */
napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  udp_t *u = argc < 1 ? (throw_type(env, "stats(handle)"), NULL) : arg_udp(env, argv[0]);
  if (!u) return NULL;
  if (!u->closed) sample_drops(u);
  const udp_stats_t *s = &u->st;
  napi_value o;
  napi_create_object(env, &o);
  set_prop_int(env, o, "rxSyscalls", s->rx_syscalls);
  set_prop_int(env, o, "rxDatagrams", s->rx_datagrams);
  set_prop_int(env, o, "rxBytes", s->rx_bytes);
  set_prop_int(env, o, "rxBatches", s->rx_batches);
  set_prop_int(env, o, "rxGroMessages", s->rx_gro_msgs);
  set_prop_int(env, o, "rxErrors", s->rx_errors);
  set_prop_int(env, o, "rxDrops", s->rx_drops);
  set_prop_int(env, o, "txSyscalls", s->tx_syscalls);
  set_prop_int(env, o, "txDatagrams", s->tx_datagrams);
  set_prop_int(env, o, "txBytes", s->tx_bytes);
  set_prop_int(env, o, "txGsoMessages", s->tx_gso_msgs);
  set_prop_int(env, o, "txDrops", s->tx_drops);
  set_prop_int(env, o, "txErrors", s->tx_errors);
  napi_value last;
  if (s->tx_last_errno)
    napi_create_string_utf8(env, errno_name(s->tx_last_errno), NAPI_AUTO_LENGTH, &last);
  else
    napi_get_undefined(env, &last);
  napi_set_named_property(env, o, "txLastError", last);
  set_prop_bool(env, o, "gso", u->gso);
  set_prop_bool(env, o, "gro", u->gro);
  return o;
}

/*
 * parseAddress(text, family 4|6) -> Uint8Array(16) holding the IPv6 form (IPv4 as
 * ::ffff:a.b.c.d), or null when the text is not an address of that family.
 */
napi_value js_parse_address(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char text[INET6_ADDRSTRLEN + 1];
  size_t tl;
  uint32_t fam;
  napi_value nul;
  napi_get_null(env, &nul);
  if (argc < 2 || arg_u32(env, argv[1], &fam, "family")) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], text, sizeof text, &tl) != napi_ok || tl >= sizeof text - 1) return nul;
  uint8_t out[16];
  memset(out, 0, sizeof out);
  if (fam == 4) {
    if (inet_pton(AF_INET, text, out + 12) != 1) return nul;
    out[10] = out[11] = 0xff;
  } else if (fam == 6) {
    if (inet_pton(AF_INET6, text, out) != 1) return nul;
  } else {
    return nul;
  }
  void *p;
  napi_value ab, arr;
  napi_create_arraybuffer(env, 16, &p, &ab);
  memcpy(p, out, 16);
  napi_create_typedarray(env, napi_uint8_array, 16, ab, 0, &arr);
  return arr;
}
