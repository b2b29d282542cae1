{
  "targets": [
    {
      "target_name": "lattice_tun",
      "sources": ["native/tun.c", "native/vnet.c", "native/udp.c", "native/reader.c", "native/addon.c", "native/peercred.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
