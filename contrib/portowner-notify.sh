#!/bin/sh
# An exec NotificationExec handler for portowner's notifications.
#
#   LoadPlugin exec
#   <Plugin exec>
#     NotificationExec "nobody" "/usr/share/doc/collectd-portowner/examples/portowner-notify.sh"
#   </Plugin>
#
# collectd's exec plugin writes the notification on stdin: "Key: value"
# header lines (Severity, Time, Host, Plugin, PluginInstance, Type,
# TypeInstance, then portowner's meta data: event, protocol, ports,
# addresses, sockets, processes, owners, owners_total, previous_owners),
# a blank line, and the message. This handler sends one line to syslog (tag
# "portowner") for portowner's notifications and ignores the others; replace
# the last line with your pager, chat hook or ticket system.
# (exec refuses to run handlers as root: run it as an unprivileged user.
# Run collectd under the systemd drop-in
# /usr/share/doc/collectd-portowner/examples/systemd/portowner.conf
# (contrib/systemd/portowner.conf in the source) so that the handler gets no
# capability; names in the message and the owners are
# already made printable by portowner: "?" and \uXXXX.)
severity="" host="" plugin="" block="" event="" owners=""
while IFS= read -r line; do
  [ -z "$line" ] && break
  key=${line%%: *}
  value=${line#*: }
  case "$key" in
  Severity) severity=$value ;;
  Host) host=$value ;;
  Plugin) plugin=$value ;;
  PluginInstance) block=$value ;;
  event) event=$value ;;
  owners) owners=$value ;;
  esac
done
message=$(cat)
[ "$plugin" = "portowner" ] || exit 0
logger -t portowner -- "$severity $host/$block $event: $message owners=$owners"
