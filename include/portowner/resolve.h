/*
 * portowner: the owner resolver.
 *
 * Walks <proc_root>/<pid>/fd with one readlinkat() per fd on the directory's
 * descriptor (d_type from readdir, never stat; never /proc/PID/task) and
 * matches "socket:[INODE]" links against a hash set of the wanted inodes
 * only. Every owner of a socket is kept: forked workers share one socket and
 * a socket can have hundreds of owners.
 *
 * Contract: 0 or a negative errno value. Nothing here logs or keeps globals.
 */
#ifndef PORTOWNER_RESOLVE_H
#define PORTOWNER_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "portowner/table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One fd of one process that holds a wanted socket. */
struct po_owner {
  pid_t pid;
  int fd;
  size_t sock; /* index of the socket in the table that was resolved */
  size_t proc; /* index into po_snapshot.procs; set by po_snapshot_take() */
};

struct po_owners {
  struct po_owner *v;
  size_t len;
  size_t cap;
};

void po_owners_free(struct po_owners *o);

/* What one walk saw. */
struct po_walk_stats {
  uint64_t procs;    /* process directories walked */
  uint64_t fds;      /* fd entries read (one readlink each) */
  uint64_t denied;   /* processes whose fds could not be read for lack of
                        privilege (EACCES/EPERM opening the fd directory or
                        reading its links): their sockets may look unowned */
  uint64_t vanished; /* processes that exited during the walk */
};

/* Hash set of wanted inodes and the walk's scratch space. */
struct po_resolver;

/* Returns a new resolver, or NULL with errno set. */
struct po_resolver *po_resolver_new(void);
void po_resolver_free(struct po_resolver *r);

/*
 * Finds the owners of the sockets in t: walks <proc_root>, appending to out
 * one po_owner per (pid, fd) whose link is "socket:[INODE]" with INODE the
 * inode of a socket in t (sockets with inode 0 are never matched).
 * owner.sock is the socket's index in t. A process that exits mid-walk is
 * skipped and counted as vanished; a process whose fds cannot be read for
 * lack of privilege is counted as denied. out is appended to, unsorted.
 * A table with no inode but 0 returns 0 without reading proc_root.
 * Returns 0, -EINVAL (NULL argument), -ENOMEM, -EMFILE/-ENFILE (out of
 * descriptors: the walk would silently miss owners), or -errno when
 * proc_root itself cannot be read.
 */
int po_resolver_walk(struct po_resolver *r, const char *proc_root,
                     const struct po_table *t, struct po_owners *out,
                     struct po_walk_stats *st);

/*
 * Parses a readlink() result of len bytes (not NUL-terminated): "socket:[N]".
 * Returns 1 and sets *inode when it is one, 0 when it is not.
 */
int po_socket_link_parse(const char *link, size_t len, uint64_t *inode);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_RESOLVE_H */
