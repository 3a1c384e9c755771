# pglib.sh - a throwaway PostgreSQL server for the benchmark scripts, on a
# Unix socket under a directory of the caller's, started the way the Go
# tests start theirs (internal/pgtest). Source it after defining die().
#
#   pg_start DIR [server option ...]   initdb + start; sets PGBIN
#   pg_createdb DIR NAME               creates database NAME, prints its URL
#   pg_stop DIR                        immediate stop (for an EXIT trap)

pg_start() {
	local dir=$1
	shift
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[[ -n $PGBIN ]] || die "PostgreSQL server binaries not found (apt-get install -y postgresql)"
	mkdir -p "$dir/sock"
	chown -R postgres: "$dir"
	runuser -u postgres -- "$PGBIN/initdb" -D "$dir/data" -U tapefs -A trust --no-sync -E UTF8 --locale=C >/dev/null
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
		-o "-k $dir/sock -c listen_addresses='' $*" start >/dev/null
}

pg_createdb() {
	local dir=$1 name=$2
	runuser -u postgres -- "$PGBIN/psql" -h "$dir/sock" -U tapefs -d postgres -qc "CREATE DATABASE $name" >/dev/null
	printf 'postgres://tapefs@/%s?host=%s/sock&sslmode=disable\n' "$name" "$dir"
}

pg_stop() {
	local dir=$1
	[[ -d $dir/data && -n ${PGBIN:-} ]] || return 0
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
}
