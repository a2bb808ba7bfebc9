/*
 * portowner: single config values checked past collectd's cf_util_get_*
 * (see config_value.h).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <strings.h>

#include "portowner/config_value.h"

int po_config_port_number(double v, struct po_range *r) {
  if (isnan(v))
    return -EINVAL;
  if (v < 1 || v > 65535)
    return -ERANGE;
  if (v != (double)(unsigned)v)
    return -EINVAL;
  r->lo = r->hi = (uint16_t)v;
  return 0;
}

int po_config_hits(double v, unsigned *hits) {
  if (isnan(v))
    return -EINVAL;
  if (v < 1 || v > PO_HITS_MAX)
    return -ERANGE;
  if (v != (double)(unsigned)v)
    return -EINVAL;
  *hits = (unsigned)v;
  return 0;
}

int po_config_source(const char *s, enum po_source *src) {
  if (!s)
    return -EINVAL;
  if (strcasecmp(s, "auto") == 0)
    *src = PO_SOURCE_AUTO;
  else if (strcasecmp(s, "netlink") == 0)
    *src = PO_SOURCE_NETLINK;
  else if (strcasecmp(s, "proc") == 0)
    *src = PO_SOURCE_PROC;
  else
    return -EINVAL;
  return 0;
}

int po_config_namespaces(const char *s, int *scope) {
  if (!s)
    return -EINVAL;
  if (strcasecmp(s, "trusted") == 0)
    *scope = PO_NS_TRUSTED;
  else if (strcasecmp(s, "all") == 0)
    *scope = PO_NS_ALL;
  else
    return -EINVAL;
  return 0;
}
