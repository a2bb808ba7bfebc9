/*
 * portowner: the watch model's private structs, shared by the core files
 * that implement it (watch.c, expect.c, requirement.c, select.c, owners.c,
 * message.c, event.c, eval.c, cond_*.c, statefile.c). Never included by the
 * collectd glue (plugin/portowner.c) or portowner-dump: they use watch.h
 * only.
 *
 * Ownership: a struct po_watch owns every string and array it points to,
 * and its state (st.last) owns its arena; a struct po_watchset owns its
 * watches. struct ident strings point into a snapshot or into an
 * identlist's arena (see each list's comment).
 */
#ifndef PORTOWNER_WATCH_PRIVATE_H
#define PORTOWNER_WATCH_PRIVATE_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <yajl/yajl_gen.h>

#include "portowner/snapshot.h"
#include "portowner/watch.h"

/* An ExpectProcess regex (PCRE2, with its bounds): expect.c. */
struct regex;

/* A file: what stat() gives for it. */
struct file_id {
  uint64_t dev;
  uint64_t ino;
};

/* The files an ExpectProcess path has named (the newest first after a
 * change: a package upgrade replaces the file while the old one runs). */
#define EXPECT_PATH_IDS 8

/* One ExpectProcess item (expect.c parses and matches it). */
struct expect_proc {
  char *pattern;    /* the name, or the regex without its slashes */
  struct regex *re; /* when a regex: matched against the exe path */
  int is_path;      /* a name with '/': the file of that path */
  struct file_id ids[EXPECT_PATH_IDS]; /* is_path: the files it named */
  size_t nids;
};

/* One ExpectUser item (expect.c). */
struct expect_user {
  char *name;
  uint32_t uid; /* numeric, or what the name resolved to; or unknown */
  int numeric;
};

/* One Address of a watch (inet_pton form). */
struct addr {
  int family;
  uint8_t a[16];
};

/* One owner process. The strings point into a snapshot or an arena. */
struct ident {
  pid_t pid;
  uint32_t uid;            /* PO_UID_UNKNOWN when unknown */
  const char *comm;        /* "" when unknown */
  const char *exe;         /* NULL when unknown */
  const char *user;        /* "" when unknown */
  uint64_t start;          /* po_proc.start: 0 when unknown */
  int exe_id;              /* 1 when exe_file is known */
  struct file_id exe_file; /* stat() of /proc/PID/exe */
  /* Its cgroup (po_proc.cgroup; the socket's when the process's cannot be
   * read): both NULL when unknown (a StateFile's owners). */
  const char *cgroup;
  const char *cgroup_systemd;
};

/* Owner processes sorted by pid; arena (if any) holds their strings. */
struct identlist {
  struct ident *v;
  size_t len;
  char *arena;
};

/* One listener requirement of a watch, and its state: requirement.h. */
struct requirement;

/* What a watch remembers between reads (and across restarts: statefile.c).
 * The listener's state is per requirement (struct requirement). */
struct watch_state {
  int unexpected_failure; /* UNEXPECTED_OWNER sent, no EXPECTED yet */
  int pids_valid;         /* last's pids are this boot's */
  struct identlist last;  /* owners at the last read that had owners */
  /* Owner change (cond_owner_change.c): */
  struct identlist accepted; /* the owners whose (program, user) set is the
                                accepted one (known programs only) */
  unsigned change_reads;     /* consecutive reads of one other set */
  uint64_t change_hash;      /* that set (po_progs_hash()) */
  uint64_t sock_hash;        /* the socket inodes at the last read */
  int sock_hash_valid;
  /* Unexpected owner (cond_unexpected_owner.c): the owners named since
   * the FAILURE began, po_named_hash() of each, sorted. */
  uint64_t *named;
  size_t nnamed;
};

struct po_watch {
  char *name;
  struct po_range *ports;
  size_t nports;
  unsigned mask;    /* the union of protos */
  unsigned *protos; /* the Protocol tokens (PO_TCP, PO_TCP4, ...) in config
                       order; none: tcp */
  size_t nprotos;
  struct addr *addrs;
  size_t naddrs;
  struct expect_proc *procs;
  size_t nprocs;
  struct expect_user *users;
  size_t nusers;
  char **units; /* ExpectUnit globs (fnmatch) */
  size_t nunits;
  char **cgpats; /* ExpectCgroup globs */
  size_t ncgpats;
  unsigned hits;
  unsigned change_hits; /* OwnerChangeHits */
  int notify_missing;
  int notify_change;
  int notify_restart;
  int all_ns;       /* AllNamespaces: other namespaces count too */
  int ns_untrusted; /* AllNamespaces "all": untrusted ones too */
  int finished;
  int in_set;
  char *protocols_str;
  char *ports_str;
  char *addrs_str;
  char *spec; /* what the sockets are: a restored state must match it */
  struct requirement *reqs; /* po_watch_finish(): requirement.h */
  size_t nreqs;
  struct watch_state st;
};

struct po_watchset {
  struct po_watch **v;
  size_t len;
  struct po_inventory **inv; /* <Inventory> blocks (inventory.h) */
  size_t ninv;
  struct po_range *qports;
  char *saved; /* the state as last saved or loaded */
  size_t saved_len;
  uint64_t saved_key; /* its state_key() (statefile.c) */
  double saved_at;    /* when it was written (po_state_save_paced()) */
  int saved_written;  /* saved_at is known */
};

/* ---- yajl generation, shared by the owners JSON and the StateFile ------ */

static inline yajl_gen_status po_gen_key(yajl_gen g, const char *k) {
  return yajl_gen_string(g, (const unsigned char *)k, strlen(k));
}

/* Takes g's buffer as a malloc'd string (*outlen bytes when outlen is not
 * NULL) and frees g. Returns 0, -ENOMEM (bad set, or out of memory). */
static inline int po_gen_finish(yajl_gen g, int bad, char **out,
                                size_t *outlen) {
  const unsigned char *buf;
  size_t len;

  *out = NULL;
  if (bad || yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
    yajl_gen_free(g);
    return -ENOMEM;
  }
  *out = malloc(len + 1);
  if (*out) {
    memcpy(*out, buf, len);
    (*out)[len] = '\0';
    if (outlen)
      *outlen = len;
  }
  yajl_gen_free(g);
  return *out ? 0 : -ENOMEM;
}

#endif /* PORTOWNER_WATCH_PRIVATE_H */
