/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * portowner: what the BPF owner walk (owners.bpf.c) writes to its seq file,
 * one record per fd holding a wanted socket; shared with resolve_bpf.c.
 */
#ifndef PORTOWNER_BPF_OWNERS_REC_H
#define PORTOWNER_BPF_OWNERS_REC_H

/* The most wanted inodes one walk takes (the map's size). */
#define PO_BPF_MAX_WANTED 65536

struct po_bpf_rec {
  __u32 tgid;  /* the process, in the reader's pid namespace */
  __u32 tid;   /* 0, or the task whose own fd table this is */
  __u32 fd;    /* the fd number in that table */
  __u32 pad;   /* 0 */
  __u64 inode; /* the socket's inode number */
  __u64 table; /* the fd table's identity (opaque, for grouping) */
};

#endif /* PORTOWNER_BPF_OWNERS_REC_H */
