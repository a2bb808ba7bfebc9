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
  __u32 fd;    /* the fd number in that table, or PO_BPF_FD_COUNT */
  __u32 count; /* fd PO_BPF_FD_COUNT: how many fds of the table hold the
                  socket (its first PO_BPF_KEEP_FDS have records); else 0 */
  __u64 inode; /* the socket's inode number */
  __u64 table; /* the fd table's identity (opaque, for grouping) */
  __u64 file;  /* the struct file's address (opaque: po_tables's key) */
};

/* po_tables writes records for the lowest PO_BPF_KEEP_FDS fds of a table
 * that hold one socket (the owner keeps that many: resolve.h's
 * PO_OWNER_FDS) and then, when there are more, one record of fd
 * PO_BPF_FD_COUNT with their number; for the first PO_BPF_TASK_INODES
 * sockets of a table (records for every fd of the others). It writes at
 * most PO_BPF_SHOW_MAX records for one table: more would not fit the seq
 * file's buffer (8 pages, 32 KiB with 4 KiB pages), and the read would
 * fail; then it sets "truncated" and the reader walks files instead. */
#define PO_BPF_KEEP_FDS 16
#define PO_BPF_FD_COUNT 0xffffffffU
#define PO_BPF_TASK_INODES 8
#define PO_BPF_SHOW_MAX 768

/* po_tables reads fd slots in chunks of this many (one open_fds word),
 * and open_fds in blocks of as many words: PO_BPF_BLOCK slots. */
#define PO_BPF_CHUNK 64
#define PO_BPF_BLOCK (PO_BPF_CHUNK * PO_BPF_CHUNK)
/* The bit filter in front of wanted_files: 2^16 bits. */
#define PO_BPF_FILT_BITS 16
#define PO_BPF_FILT_WORDS (1U << (PO_BPF_FILT_BITS - 6))

/* The filter bit of a struct file's address (Fibonacci hashing of the
 * address without its low, alignment, bits). */
static inline __u64 po_bpf_filt_bit(__u64 file) {
  return ((file >> 6) * 0x9E3779B97F4A7C15ULL) >> (64 - PO_BPF_FILT_BITS);
}

#endif /* PORTOWNER_BPF_OWNERS_REC_H */
