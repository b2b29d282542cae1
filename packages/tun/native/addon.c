/* Module registration and argument/error helpers of the @lattice/tun addon. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, e, code, num;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  const char *name = strerrorname_np(err);
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, e, "code", code);
  napi_set_named_property(env, e, "errno", num);
  napi_throw(env, e);
  return NULL;
}

napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return NULL;
}

int arg_int32(napi_env env, napi_value v, int32_t *out, const char *name) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    char m[128];
    snprintf(m, sizeof m, "%s must be a number", name);
    throw_type(env, m);
    return -1;
  }
  return 0;
}

int arg_u32(napi_env env, napi_value v, uint32_t *out, const char *name) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    char m[128];
    snprintf(m, sizeof m, "%s must be a number", name);
    throw_type(env, m);
    return -1;
  }
  return 0;
}

/* A typed array argument of element type `want` (`kind` names it in the error). */
static int arg_typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len,
                     const char *name, const char *kind) {
  napi_typedarray_type t;
  size_t n;
  void *p;
  napi_value ab;
  size_t off;
  bool is;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is &&
      napi_get_typedarray_info(env, v, &t, &n, &p, &ab, &off) == napi_ok && t == want) {
    *data = p;
    *len = n;
    return 0;
  }
  char m[128];
  snprintf(m, sizeof m, "%s must be a %s", name, kind);
  throw_type(env, m);
  return -1;
}

int arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len, const char *name) {
  return arg_typed(env, v, napi_uint8_array, (void **)data, len, name, "Uint8Array");
}

int arg_u32s(napi_env env, napi_value v, uint32_t **data, size_t *len, const char *name) {
  return arg_typed(env, v, napi_uint32_array, (void **)data, len, name, "Uint32Array");
}

int arg_i32s(napi_env env, napi_value v, int32_t **data, size_t *len, const char *name) {
  return arg_typed(env, v, napi_int32_array, (void **)data, len, name, "Int32Array");
}

int wait_writable(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  int r;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r > 0 && (p.revents & POLLOUT);
}

napi_value js_close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || arg_int32(env, argv[0], &fd, "fd")) return NULL;
  if (close(fd) < 0) return throw_errno(env, "close", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tunOpen", NULL, js_tun_open, NULL, NULL, NULL, napi_default, NULL},
      {"linkSetMtu", NULL, js_link_set_mtu, NULL, NULL, NULL, napi_default, NULL},
      {"linkGetMtu", NULL, js_link_get_mtu, NULL, NULL, NULL, napi_default, NULL},
      {"linkIndex", NULL, js_link_index, NULL, NULL, NULL, napi_default, NULL},
      {"writePackets", NULL, js_write_packets, NULL, NULL, NULL, napi_default, NULL},
      {"tunLinkUp", NULL, js_tun_link_up, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_default, NULL},
      {"udpOpen", NULL, js_udp_open, NULL, NULL, NULL, napi_default, NULL},
      {"udpSetMark", NULL, js_udp_set_mark, NULL, NULL, NULL, napi_default, NULL},
      {"udpSend", NULL, js_udp_send, NULL, NULL, NULL, napi_default, NULL},
      {"readerStart", NULL, js_reader_start, NULL, NULL, NULL, napi_default, NULL},
      {"readerStop", NULL, js_reader_stop, NULL, NULL, NULL, napi_default, NULL},
      {"peerCred", NULL, js_peer_cred, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
