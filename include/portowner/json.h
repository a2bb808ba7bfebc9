/*
 * portowner: JSON through yajl.
 *
 * Contract: 0 or a negative errno value; nothing logs.
 */
#ifndef PORTOWNER_JSON_H
#define PORTOWNER_JSON_H

#include <stddef.h>

#include <yajl/yajl_gen.h>

#include "portowner/snapshot.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Writes the snapshot as a JSON array with one object per listening socket:
 * protocol ("tcp"/"udp"), family ("inet"/"inet6"), v6only (true, false or
 * null), address, port, inode, netns, accept_queue and accept_queue_max
 * (TCP; null when unknown), the socket's own cgroup (cgroup_id, and
 * cgroup, unit, user_unit, container, pod as for an owner, from
 * s->sock_cgroups), and owners: [{pid, fd, tid, comm, exe, uid,
 * user}] (tid: the task whose own fd table holds the socket, null when it
 * is <pid>/fd; comm, exe and user are the process's, <pid>'s, and so are
 * its cgroup fields: cgroup (the v2 path), cgroup_systemd (the
 * name=systemd path), unit, user_unit, container ({runtime, id}) and pod,
 * each null when unknown or none (cgroup.h, po_cgroup_classify_paths()).
 * *out is malloc'd and NUL-terminated; the caller frees it.
 * Returns 0, -ENOMEM.
 */
int po_json_snapshot(const struct po_snapshot *s, int pretty, char **out,
                     size_t *len);

/* po_json_snapshot() of the sockets i with keep[i] set (keep NULL: all). */
int po_json_snapshot_some(const struct po_snapshot *s, const uint8_t *keep,
                          int pretty, char **out, size_t *len);

/*
 * Writes the len bytes at s as a JSON string through g. Bytes that are not
 * valid UTF-8 (process names are arbitrary bytes) are each written as U+FFFD;
 * quotes, backslashes and C0 controls are escaped as yajl escapes them, and
 * the other characters that are not printable (printable.h: DEL, C1, bidi
 * controls, line separators) as \uXXXX, so the string read back is exact
 * and the JSON text itself holds none of them raw. A value, never a key.
 */
yajl_gen_status po_json_string(yajl_gen g, const char *s, size_t len);

/*
 * The length (1 to 4) of the valid UTF-8 sequence at s, of at most n > 0
 * bytes; 0 when it is not one (a stray byte, overlong form, surrogate, or a
 * code point past U+10FFFF).
 */
size_t po_utf8_len(const char *s, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_JSON_H */
