/* SO_PEERCRED of a connected unix socket: who is on the other end (pid, uid, gid as the
 * kernel recorded them at connect time; unforgeable by the peer). Used by latticed's
 * LocalAPI to allow writes to root and the operator only. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <sys/socket.h>

napi_value js_peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || arg_int32(env, argv[0], &fd, "fd")) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  napi_value out, pid, uid, gid;
  napi_create_object(env, &out);
  napi_create_int32(env, cred.pid, &pid);
  napi_create_uint32(env, cred.uid, &uid);
  napi_create_uint32(env, cred.gid, &gid);
  napi_set_named_property(env, out, "pid", pid);
  napi_set_named_property(env, out, "uid", uid);
  napi_set_named_property(env, out, "gid", gid);
  return out;
}
