# shellcheck shell=bash
# Finds a Postgres for outboxd's tests, demo and benchmarks. Source it, then call
# postgres_url DBNAME: it sets POSTGRES_URL to a database named DBNAME (created if
# needed) on, in order of preference:
#   1. the server in TEST_DATABASE_URL or DATABASE_URL, used as given;
#   2. a server on 127.0.0.1:5432 (user postgres);
#   3. a throwaway cluster started with the local initdb/pg_ctl, stopped by
#      postgres_cleanup (call it from an EXIT trap).
# With CI=true, step 3 is not taken: CI must provide Postgres, and a missing one
# fails loudly instead of being papered over.

POSTGRES_THROWAWAY_DIR=""

postgres_bin() {
	local dir
	if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/$1" ]; then
		echo "$(pg_config --bindir)/$1"
		return
	fi
	for dir in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
		if [ -x "$dir/$1" ]; then
			echo "$dir/$1"
			return
		fi
	done
	command -v "$1"
}

# as_postgres runs a command as the postgres OS user when we are root (initdb
# refuses to run as root).
as_postgres() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

postgres_answers() {
	psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1
}

# with_database URL DBNAME prints URL with its database replaced by DBNAME.
with_database() {
	local url=$1 db=$2 base query=""
	base=${url%%\?*}
	[ "$base" != "$url" ] && query="?${url#*\?}"
	echo "${base%/*}/${db}${query}"
}

ensure_database() {
	local url=$1 db=$2 admin
	admin=$(with_database "$url" postgres)
	if ! psql "$admin" -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
		psql "$admin" -Xqc "CREATE DATABASE \"$db\"" >/dev/null
	fi
}

start_throwaway() {
	local initdb pg_ctl port
	initdb=$(postgres_bin initdb) || true
	pg_ctl=$(postgres_bin pg_ctl) || true
	if [ -z "$initdb" ] || [ -z "$pg_ctl" ]; then
		echo "postgres.sh: no Postgres found and no initdb/pg_ctl to start one; set TEST_DATABASE_URL" >&2
		return 1
	fi
	POSTGRES_THROWAWAY_DIR=$(mktemp -d /tmp/outboxd-pg.XXXXXX)
	[ "$(id -u)" = 0 ] && chown postgres "$POSTGRES_THROWAWAY_DIR"
	as_postgres "$initdb" -D "$POSTGRES_THROWAWAY_DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
	for _ in $(seq 20); do
		port=$((20000 + RANDOM % 40000))
		(echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
	done
	echo "postgres.sh: starting a throwaway Postgres on 127.0.0.1:$port ($POSTGRES_THROWAWAY_DIR)" >&2
	as_postgres "$pg_ctl" -D "$POSTGRES_THROWAWAY_DIR/data" -l "$POSTGRES_THROWAWAY_DIR/postgres.log" -w -t 60 \
		-o "-p $port -k $POSTGRES_THROWAWAY_DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c synchronous_commit=off" \
		start >/dev/null
	POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}

postgres_cleanup() {
	if [ -n "$POSTGRES_THROWAWAY_DIR" ]; then
		as_postgres "$(postgres_bin pg_ctl)" -D "$POSTGRES_THROWAWAY_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
		rm -rf "$POSTGRES_THROWAWAY_DIR"
		POSTGRES_THROWAWAY_DIR=""
	fi
}

postgres_url() {
	local db=$1 given=${TEST_DATABASE_URL:-${DATABASE_URL:-}}
	if [ -n "$given" ]; then
		if ! postgres_answers "$given"; then
			echo "postgres.sh: the database in TEST_DATABASE_URL/DATABASE_URL does not answer" >&2
			return 1
		fi
		POSTGRES_URL=$given
		return
	fi
	local localURL="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	if postgres_answers "$localURL"; then
		ensure_database "$localURL" "$db"
		POSTGRES_URL=$(with_database "$localURL" "$db")
		return
	fi
	if [ "${CI:-}" = true ]; then
		echo "postgres.sh: CI=true but no Postgres: set TEST_DATABASE_URL or start one on 127.0.0.1:5432 (tests never skip silently)" >&2
		return 1
	fi
	start_throwaway || return 1
	ensure_database "$POSTGRES_URL" "$db"
	POSTGRES_URL=$(with_database "$POSTGRES_URL" "$db")
}
