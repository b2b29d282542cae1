/*
 * TUN writes with a virtio-net header (IFF_VNET_HDR) and TCP coalescing ("GRO" before
 * the kernel): consecutive in-order segments of one TCP flow in a write batch are
 * written as ONE GSO super-packet (gso_type TCPV4/TCPV6, CHECKSUM_PARTIAL), so the
 * kernel's TCP receive path runs once per up-to-64 KB instead of once per segment.
 * Everything else is written as is with VIRTIO_NET_HDR_F_DATA_VALID (the payload was
 * authenticated by WireGuard's AEAD, as the kernel module also trusts it).
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_SEGS 64
#define MAX_SUPER 65535
#define SEARCH 8

typedef struct {
  uint32_t first, last, nseg;
  uint32_t iph, hdr;     /* IP header length; IP + TCP header length */
  uint32_t gso, payload; /* first segment's payload; total payload */
  uint32_t next_seq;
  uint16_t next_id;
  uint8_t v6, open, psh;
} group_t;

static inline uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8, p[1] = v & 0xff; }

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s) {
  for (size_t i = 0; i + 1 < n; i += 2) s += be16(p + i);
  if (n & 1) s += (uint32_t)p[n - 1] << 8;
  return s;
}
static uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

/* Parses a coalescable TCP segment: sets iph/hdr/payload; returns 0 if not one. */
static int parse_tcp(const uint8_t *p, size_t len, uint32_t *iph, uint32_t *hdr, int *v6) {
  if (len < 20) return 0;
  int ver = p[0] >> 4;
  uint32_t ih;
  if (ver == 4) {
    ih = (uint32_t)(p[0] & 15) * 4;
    if (ih != 20 || p[9] != 6 || be16(p + 2) != len) return 0;
    if (be16(p + 6) & 0x3fff) return 0; /* MF or fragment offset */
    *v6 = 0;
  } else if (ver == 6) {
    ih = 40;
    if (len < 40 || p[6] != 6 || be16(p + 4) + 40u != len) return 0;
    *v6 = 1;
  } else {
    return 0;
  }
  if (len < ih + 20) return 0;
  const uint8_t *t = p + ih;
  uint32_t th = (uint32_t)(t[12] >> 4) * 4;
  if (th < 20 || len < ih + th) return 0;
  uint8_t flags = t[13];
  if ((flags & ~0x18) != 0 || !(flags & 0x10)) return 0; /* only ACK, optionally PSH */
  if (len == ih + th) return 0;                            /* pure ACK */
  *iph = ih;
  *hdr = ih + th;
  return 1;
}

/* Same flow and same header fields that must match for coalescing (GRO's rules). */
static int same_flow(const uint8_t *a, const uint8_t *b, const group_t *g) {
  if (g->v6) {
    if (memcmp(a, b, 4) != 0 || a[7] != b[7] || memcmp(a + 8, b + 8, 32) != 0) return 0;
  } else {
    if (a[1] != b[1] || a[8] != b[8] || (a[6] & 0x40) != (b[6] & 0x40) || memcmp(a + 12, b + 12, 8) != 0) return 0;
  }
  return memcmp(a + g->iph, b + g->iph, 4) == 0; /* ports */
}

static int can_append(const uint8_t *first, const uint8_t *p, uint32_t len, const group_t *g, uint32_t iph, uint32_t hdr) {
  if (!g->open || iph != g->iph || hdr != g->hdr || g->nseg >= MAX_SEGS) return 0;
  const uint8_t *ta = first + iph, *tb = p + iph;
  if (be32(tb + 4) != g->next_seq) return 0;
  if (memcmp(ta + 8, tb + 8, 5) != 0) return 0;      /* ack, data offset */
  if (memcmp(ta + 14, tb + 14, 2) != 0) return 0;    /* window */
  if (memcmp(ta + 20, tb + 20, hdr - iph - 20) != 0) return 0; /* options (timestamps) */
  uint32_t pl = len - hdr;
  if (pl > g->gso) return 0;
  if (g->hdr + g->payload + pl > MAX_SUPER) return 0;
  if (!g->v6 && !(first[6] & 0x40) && be16(p + 4) != g->next_id) return 0;
  return 1;
}

/* Writes one packet with a plain header; returns 1, 0 on EAGAIN, or -errno. */
static int write_iov(int fd, struct iovec *iov, int n, int *waited) {
  for (;;) {
    ssize_t r = writev(fd, iov, n);
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

/*
 * Writes n packets to a TUN fd opened with IFF_VNET_HDR, coalescing TCP. Returns the
 * number of input packets written (a super-packet counts its segments), or -ENOMEM.
 * A write the kernel refuses (EIO: link down, EINVAL, EBADFD: interface gone, ...) drops
 * that packet (or super-packet) and goes on; the first such errno goes to *first_err.
 */
int tun_write_vnet(int fd, uint8_t *const *pkts, const size_t *lens, uint32_t n, int *first_err) {
  group_t *groups = malloc(sizeof(group_t) * (n ? n : 1));
  uint32_t *link = malloc(sizeof(uint32_t) * (n ? n : 1));
  if (!groups || !link) {
    free(groups), free(link);
    return -ENOMEM;
  }
  uint32_t ng = 0;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *p = pkts[i];
    uint32_t len = (uint32_t)lens[i], iph = 0, hdr = 0;
    int v6 = 0;
    link[i] = UINT32_MAX;
    int tcp = parse_tcp(p, len, &iph, &hdr, &v6);
    if (tcp) {
      uint32_t lo = ng > SEARCH ? ng - SEARCH : 0;
      for (uint32_t k = ng; k-- > lo;) {
        group_t *g = &groups[k];
        if (!g->open || g->v6 != v6 || !same_flow(pkts[g->first], p, g)) continue;
        if (can_append(pkts[g->first], p, len, g, iph, hdr)) {
          uint32_t pl = len - hdr;
          link[g->last] = i;
          g->last = i;
          g->nseg++;
          g->payload += pl;
          g->next_seq += pl;
          g->next_id++;
          if (pl < g->gso || (p[iph + 13] & 0x08)) g->open = 0, g->psh = (p[iph + 13] & 0x08) != 0;
          goto next;
        }
        g->open = 0; /* the flow moved on: never append to this group again */
        break;
      }
    }
    {
      group_t *g = &groups[ng++];
      memset(g, 0, sizeof *g);
      g->first = g->last = i;
      g->nseg = 1;
      if (tcp) {
        uint32_t pl = len - hdr;
        g->iph = iph;
        g->hdr = hdr;
        g->gso = pl;
        g->payload = pl;
        g->next_seq = be32(p + iph + 4) + pl;
        g->next_id = v6 ? 0 : (uint16_t)(be16(p + 4) + 1);
        g->v6 = (uint8_t)v6;
        g->psh = (p[iph + 13] & 0x08) != 0;
        g->open = !g->psh;
      }
    }
  next:;
  }

  int written = 0, waited = 0;
  struct iovec iov[MAX_SEGS + 2];
  uint8_t hbuf[120]; /* IPv6 40 + TCP max 60 */
  for (uint32_t k = 0; k < ng; k++) {
    group_t *g = &groups[k];
    struct virtio_net_hdr vh;
    memset(&vh, 0, sizeof vh);
    iov[0].iov_base = &vh;
    iov[0].iov_len = sizeof vh;
    int niov;
    if (g->nseg == 1) {
      vh.flags = VIRTIO_NET_HDR_F_DATA_VALID;
      iov[1].iov_base = pkts[g->first];
      iov[1].iov_len = lens[g->first];
      niov = 2;
    } else {
      const uint8_t *f = pkts[g->first];
      memcpy(hbuf, f, g->hdr);
      uint32_t total = g->hdr + g->payload;
      uint32_t tcplen = total - g->iph;
      uint32_t s = 0;
      if (g->v6) {
        put16(hbuf + 4, (uint16_t)(total - 40));
        s = sum16(hbuf + 8, 32, 0);
      } else {
        put16(hbuf + 2, (uint16_t)total);
        hbuf[10] = hbuf[11] = 0;
        put16(hbuf + 10, (uint16_t)~fold(sum16(hbuf, 20, 0)));
        s = sum16(hbuf + 12, 8, 0);
      }
      s += 6 + tcplen;
      uint8_t *th = hbuf + g->iph;
      if (g->psh) th[13] |= 0x08;
      put16(th + 16, fold(s)); /* pseudo-header sum: the kernel completes it */
      vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      vh.gso_type = g->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
      vh.hdr_len = (uint16_t)g->hdr;
      vh.gso_size = (uint16_t)g->gso;
      vh.csum_start = (uint16_t)g->iph;
      vh.csum_offset = 16;
      iov[1].iov_base = hbuf;
      iov[1].iov_len = g->hdr;
      niov = 2;
      for (uint32_t i = g->first; i != UINT32_MAX; i = link[i]) {
        iov[niov].iov_base = pkts[i] + g->hdr;
        iov[niov].iov_len = lens[i] - g->hdr;
        niov++;
      }
    }
    int r = write_iov(fd, iov, niov, &waited);
    if (r == 0) break; /* queue full: drop the rest */
    if (r < 0) {
      if (*first_err == 0) *first_err = -r;
      continue; /* refused: dropped */
    }
    written += (int)g->nseg;
  }
  free(groups);
  free(link);
  return written;
}

/* Completes a partial checksum: the field at start+offset holds the pseudo-header sum. */
static void finish_csum(uint8_t *p, size_t len, uint32_t start, uint32_t offset) {
  if (start + offset + 2 > len) return;
  uint32_t s = sum16(p + start, len - start, 0);
  uint16_t c = (uint16_t)~fold(s);
  put16(p + start + offset, c);
}

/* Pseudo-header sum (without length) for the IP packet at p. */
static uint32_t pseudo_sum(const uint8_t *p, int v6, uint8_t proto) {
  uint32_t s = v6 ? sum16(p + 8, 32, 0) : sum16(p + 12, 8, 0);
  return s + proto;
}

/*
 * Turns one virtio-net-framed read (hdr + packet, `len` bytes at `in`) into plain
 * packets at out+*off (16-byte aligned), recording offsets/lengths from index n. A TCP
 * GSO packet is cut into gso_size segments with their own IP/TCP headers (lengths, IPv4
 * ID and checksum, sequence numbers, FIN/PSH only on the last, CWR only on the first)
 * and full TCP checksums; a NEEDS_CSUM packet gets its checksum completed. Returns the
 * new packet count, or n unchanged if the packet is malformed or does not fit.
 */
uint32_t vnet_split(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *off, uint32_t *offs, uint32_t *lens,
                    uint32_t n, uint32_t max_out) {
  if (len < sizeof(struct virtio_net_hdr)) return n;
  struct virtio_net_hdr vh;
  memcpy(&vh, in, sizeof vh);
  const uint8_t *p = in + sizeof vh;
  size_t plen = len - sizeof vh;
  uint8_t gso_type = vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
  if (gso_type == VIRTIO_NET_HDR_GSO_NONE) {
    if (n >= max_out || *off + plen > cap) return n;
    uint8_t *dst = out + *off;
    memcpy(dst, p, plen);
    if (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) finish_csum(dst, plen, vh.csum_start, vh.csum_offset);
    offs[n] = (uint32_t)*off;
    lens[n] = (uint32_t)plen;
    *off += (plen + 15) & ~(size_t)15;
    return n + 1;
  }
  if (gso_type != VIRTIO_NET_HDR_GSO_TCPV4 && gso_type != VIRTIO_NET_HDR_GSO_TCPV6) return n;
  int v6 = gso_type == VIRTIO_NET_HDR_GSO_TCPV6;
  uint32_t iph = vh.csum_start;
  if (plen < 20 || (p[0] >> 4) != (v6 ? 6 : 4) || iph < (v6 ? 40u : 20u) || plen < iph + 20) return n;
  uint32_t thl = (uint32_t)(p[iph + 12] >> 4) * 4;
  uint32_t hdr = iph + thl;
  uint32_t gso = vh.gso_size;
  if (thl < 20 || plen <= hdr || gso == 0) return n;
  uint32_t payload = (uint32_t)plen - hdr;
  uint32_t nseg = (payload + gso - 1) / gso;
  if (n + nseg > max_out) return n;
  if (*off + (size_t)nseg * (((size_t)hdr + gso + 15) & ~(size_t)15) > cap) return n;
  uint32_t seq0 = be32(p + iph + 4);
  uint16_t id0 = v6 ? 0 : be16(p + 4);
  uint8_t flags0 = p[iph + 13];
  uint32_t ps = pseudo_sum(p, v6, 6);
  for (uint32_t i = 0; i < nseg; i++) {
    uint32_t pl = i + 1 < nseg ? gso : payload - i * gso;
    uint8_t *d = out + *off;
    memcpy(d, p, hdr);
    memcpy(d + hdr, p + hdr + (size_t)i * gso, pl);
    uint32_t total = hdr + pl;
    if (v6) {
      put16(d + 4, (uint16_t)(total - 40));
    } else {
      put16(d + 2, (uint16_t)total);
      put16(d + 4, (uint16_t)(id0 + i));
      d[10] = d[11] = 0;
      put16(d + 10, (uint16_t)~fold(sum16(d, iph, 0)));
    }
    uint8_t *t = d + iph;
    uint32_t seq = seq0 + i * gso;
    t[4] = seq >> 24, t[5] = (seq >> 16) & 0xff, t[6] = (seq >> 8) & 0xff, t[7] = seq & 0xff;
    uint8_t f = flags0;
    if (i + 1 < nseg) f &= (uint8_t)~0x09; /* FIN, PSH only on the last */
    if (i > 0) f &= (uint8_t)~0x80;        /* CWR only on the first */
    t[13] = f;
    t[16] = t[17] = 0;
    uint32_t s = ps + (thl + pl);
    s = sum16(t, thl + pl, s);
    put16(t + 16, (uint16_t)~fold(s));
    offs[n] = (uint32_t)*off;
    lens[n] = total;
    n++;
    *off += ((size_t)total + 15) & ~(size_t)15;
  }
  return n;
}
