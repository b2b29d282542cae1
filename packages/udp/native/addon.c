/* Module registration and argument/error helpers of the @lattice/udp addon. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *errno_name(int err) {
  const char *n = strerrorname_np(err);
  return n ? n : "EUNKNOWN";
}

napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, e, code, num;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
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

int arg_u32(napi_env env, napi_value v, uint32_t *out, const char *name) {
  if (napi_get_value_uint32(env, v, out) == napi_ok) return 0;
  char m[128];
  snprintf(m, sizeof m, "%s must be a number", name);
  throw_type(env, m);
  return -1;
}

int arg_bool(napi_env env, napi_value v, int *out, const char *name) {
  bool b;
  if (napi_get_value_bool(env, v, &b) == napi_ok) {
    *out = b;
    return 0;
  }
  char m[128];
  snprintf(m, sizeof m, "%s must be a boolean", name);
  throw_type(env, m);
  return -1;
}

static int arg_typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  bool is;
  return napi_is_typedarray(env, v, &is) == napi_ok && is &&
                 napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) == napi_ok && t == want
             ? 0
             : -1;
}

int arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len, const char *name) {
  if (arg_typed(env, v, napi_uint8_array, (void **)data, len) == 0) return 0;
  char m[128];
  snprintf(m, sizeof m, "%s must be a Uint8Array", name);
  throw_type(env, m);
  return -1;
}

int arg_u32s(napi_env env, napi_value v, uint32_t **data, size_t *len, const char *name) {
  if (arg_typed(env, v, napi_uint32_array, (void **)data, len) == 0) return 0;
  char m[128];
  snprintf(m, sizeof m, "%s must be a Uint32Array", name);
  throw_type(env, m);
  return -1;
}

udp_t *arg_udp(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    throw_type(env, "not a @lattice/udp socket handle");
    return NULL;
  }
  return p;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
      {"setRef", NULL, js_set_ref, NULL, NULL, NULL, napi_default, NULL},
      {"parseAddress", NULL, js_parse_address, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
