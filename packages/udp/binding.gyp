{
  "targets": [
    {
      "target_name": "lattice_udp",
      "sources": ["native/addon.c", "native/sock.c", "native/recv.c", "native/send.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
