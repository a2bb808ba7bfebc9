/*
 * Fuzz target: the StateFile reader, po_state_load(), on arbitrary bytes
 * (written to a regular file: the reader takes a path).
 *
 * Three watches are configured: "web" (tcp 80,443: two requirements,
 * tcp/80 and tcp/443), "dns" (udp 53 on 127.0.0.1, Hits 3: udp/127.0.0.1:53)
 * and one whose name is not UTF-8 (tcp 22, all namespaces: tcp/22), so that
 * both ways names are stored are reached. The seeds are version 2 files
 * (per-requirement state); a version 1 file is refused as such.
 *
 * Invariants: the load returns 0, -EPROTO (version 1), -EBADMSG (the file
 * is regular, ours, in a private directory) or -EFBIG (larger than three
 * watches' state can be); all or nothing: after a failed load the state is
 * exactly a fresh one (saving it writes what a fresh set writes); after a
 * good load, saving with the same boot id writes nothing (what was loaded
 * counts as saved), and what a save writes loads back into a fresh set
 * exactly (saving that again writes nothing); the restored watches evaluate
 * snapshots without error, with well-formed events.
 */
#define FUZZ_WANT_TMPDIR
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "portowner/statefile.h"
#include "portowner/watch.h"
#include "../fixture.h"
#include "fuzz.h"

#define NETNS FX_NETNS

static struct po_watch *watch(const char *name, const char *ports,
                              const char *proto, const char *addr,
                              unsigned hits, int all_ns) {
  struct po_watch *w = po_watch_new(name);

  FUZZ_CHECK(w);
  FUZZ_CHECK(po_watch_port_add_string(w, ports, NULL) == 0);
  if (proto)
    FUZZ_CHECK(po_watch_protocol_add(w, proto) == 0);
  if (addr)
    FUZZ_CHECK(po_watch_address_add(w, addr) == 0);
  FUZZ_CHECK(po_watch_set_hits(w, hits) == 0);
  po_watch_set_all_namespaces(w, all_ns);
  FUZZ_CHECK(po_watch_finish(w) == 0);
  return w;
}

static struct po_watchset *new_set(void) {
  struct po_watchset *set = po_watchset_new();

  FUZZ_CHECK(set);
  FUZZ_CHECK(po_watchset_add(set, watch("web", "80,443", NULL, NULL, 1, 0)) ==
             0);
  FUZZ_CHECK(
      po_watchset_add(set, watch("dns", "53", "udp", "127.0.0.1", 3, 0)) == 0);
  FUZZ_CHECK(po_watchset_add(set, watch("ssh\xff", "22", "tcp", NULL, 2, 1)) ==
             0);
  return set;
}

static void write_file(const char *path, const uint8_t *data, size_t size) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  FUZZ_CHECK(fd >= 0);
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    FUZZ_CHECK(n > 0);
    data += n;
    size -= (size_t)n;
  }
  FUZZ_CHECK(close(fd) == 0);
}

static char *read_whole(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;

  FUZZ_CHECK(f);
  FUZZ_CHECK(fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  FUZZ_CHECK(buf);
  FUZZ_CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static void check_events(const struct po_events *ev) {
  for (size_t i = 0; i < ev->len; i++) {
    const struct po_event *e = &ev->v[i];
    size_t len = strnlen(e->message, sizeof(e->message));
    yajl_val v;

    FUZZ_CHECK(len > 0 && len < PO_MESSAGE_MAX);
    FUZZ_CHECK(fuzz_clean_text(e->message, len));
    FUZZ_CHECK(e->owners);
    v = yajl_tree_parse(e->owners, NULL, 0);
    FUZZ_CHECK(v && YAJL_IS_ARRAY(v));
    FUZZ_CHECK(
        YAJL_GET_ARRAY(v)->len ==
        (e->owners_total < PO_OWNERS_MAX ? e->owners_total : PO_OWNERS_MAX));
    yajl_tree_free(v);
    if (e->previous_owners) {
      v = yajl_tree_parse(e->previous_owners, NULL, 0);
      FUZZ_CHECK(v && YAJL_IS_ARRAY(v));
      yajl_tree_free(v);
    }
  }
}

/* The restored state drives the state machine: a listener on 80 owned by
 * one process, then nothing. */
static void run(struct po_watchset *set) {
  struct po_snapshot s = {0}, none = {0};
  struct po_watch_values v[3];
  struct po_events ev = {0};

  FUZZ_CHECK(po_watchset_len(set) == 3);
  fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 80), 4321, "nginx",
              NULL, 33, "www-data");
  fx_snap_finish(&s);
  FUZZ_CHECK(po_watchset_eval(set, &s, NETNS, v, &ev) == 0);
  FUZZ_CHECK(v[0].sockets == 1 && v[0].processes == 1);
  check_events(&ev);
  po_events_clear(&ev);
  for (int i = 0; i < 3; i++) {
    FUZZ_CHECK(po_watchset_eval(set, &none, NETNS, v, &ev) == 0);
    check_events(&ev);
    po_events_clear(&ev);
  }
  po_events_free(&ev);
  po_snapshot_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char in[600], out[600], out2[600], fresh[600];
  struct po_watchset *a = new_set(), *b;
  int r;

  snprintf(in, sizeof(in), "%s/in", fuzz_tmpdir());
  snprintf(out, sizeof(out), "%s/out", fuzz_tmpdir());
  snprintf(out2, sizeof(out2), "%s/out2", fuzz_tmpdir());
  snprintf(fresh, sizeof(fresh), "%s/fresh", fuzz_tmpdir());
  write_file(in, data, size);

  r = po_state_load(a, in, "boot-1");
  FUZZ_CHECK(r == 0 || r == -EPROTO || r == -EBADMSG || r == -EFBIG);
  if (r == 0) {
    FUZZ_CHECK(po_state_save(a, out, "boot-1") == 0);
    /* Another boot id: written, and loads back exactly. */
    FUZZ_CHECK(po_state_save(a, out, "boot-2") == 1);
    b = new_set();
    FUZZ_CHECK(po_state_load(b, out, "boot-2") == 0);
    FUZZ_CHECK(po_state_save(b, out2, "boot-2") == 0);
    po_watchset_free(b);
  } else {
    struct po_watchset *c = new_set();
    size_t la, lc;
    char *ba, *bc;

    FUZZ_CHECK(po_state_save(a, out, "boot-1") == 1);
    FUZZ_CHECK(po_state_save(c, fresh, "boot-1") == 1);
    ba = read_whole(out, &la);
    bc = read_whole(fresh, &lc);
    FUZZ_CHECK(la == lc && memcmp(ba, bc, la) == 0);
    free(ba);
    free(bc);
    po_watchset_free(c);
  }
  run(a);
  po_watchset_free(a);
  return 0;
}
