#!/usr/bin/env bash
# bench_hosts.sh - takeover time of several hosts on one catalog (issue 13),
# run by `make bench`. TestHostsKill9DuringMigration (test/) starts a
# PostgreSQL server and three daemons with a 3 s lease on one shared
# library, kills host 1 with SIGKILL while it writes a tape file, and logs
# the time until another host writes a tape file of its own (the migration
# resumed elsewhere). Target: at most 2 leases.
set -euo pipefail
cd "$(dirname "$0")"
runs=${RUNS:-5}
go test -count="$runs" -v -timeout 30m -run '^TestHostsKill9DuringMigration$' . |
	grep -E 'takeover: migration resumed|^(ok|FAIL|--- FAIL)' |
	sed 's/^ *multihost_takeover_test.go:[0-9]*: //'
