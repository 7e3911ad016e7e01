#!/usr/bin/env bash
# A throwaway MySQL server for the integration tests and benchmarks on a machine without Docker.
#
# Debian stable ships MariaDB only; Debian unstable (sid) ships MySQL (9.x at the time of writing). This script
# downloads sid's server and client packages and the libraries they need that stable lacks or has too old
# (glibc, libstdc++, ICU, …) into DIR, without installing anything system-wide, and runs mysqld from there through
# the downloaded dynamic loader. The server is set up as docker/compose.yaml's `mysql` service: row binlog with
# full metadata, GTIDs on, a `connector` user with the grants of docker/init/mysql-grants.sql.
#
#   scripts/mysql-from-debian.sh start [DIR] [PORT] [MYSQLD OPTION…]   # default DIR /tmp/connector-mysql, PORT 3306
#   export CONNECTOR_TEST_MYSQL_URL=mysql://connector:connector@127.0.0.1:PORT/connector
#   cargo nextest run -E 'test(/mysql|mariadb/)'
#   scripts/mysql-from-debian.sh stop [DIR]
#
# DIR/bin then holds mysql, mysqldump and mysqlbinlog wrappers of the same version. MYSQL_DATA_DIR (default
# DIR/data) places the server's data, so one download runs several servers (give each its own --server-id and
# --log-bin after PORT); its log, pid file and socket sit beside it (DATA.log, DATA.pid, DATA.sock).
set -euo pipefail

action=${1:-}
dir=${2:-/tmp/connector-mysql}
port=${3:-3306}
extra=("${@:4}")
data=${MYSQL_DATA_DIR:-$dir/data}
root="$dir/root"
libs="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu"
repo=$(cd "$(dirname "$0")/.." && pwd)

download() {
    mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/debs" "$root"
    echo "deb http://deb.debian.org/debian sid main" > "$dir/apt/sources.list"
    local apt=(-o "Dir::Etc::sourcelist=$dir/apt/sources.list" -o Dir::Etc::sourceparts=- \
        -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache" -o Debug::NoLocking=1 -o "APT::Sandbox::User=$(id -un)")
    apt-get "${apt[@]}" update -qq
    # The packages' direct library dependencies: the loader finds anything else in the system's libraries.
    local packages=(mysql-server-core mysql-client-core)
    local libraries
    libraries=$(apt-cache "${apt[@]}" depends "${packages[@]}" | awk '/^ +Depends: (lib|zlib)/ {print $2}' | sort -u)
    (cd "$dir/debs" && apt-get "${apt[@]}" download -qq "${packages[@]}" $libraries)
    for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$root"; done
}

wrap() {
    mkdir -p "$dir/bin"
    for program in "$@"; do
        local path="$root/usr/bin/$program"
        [ -x "$path" ] || path="$root/usr/sbin/$program"
        printf '#!/bin/sh\nexec %s --library-path %s %s "$@"\n' \
            "$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$libs" "$path" > "$dir/bin/$program"
        chmod +x "$dir/bin/$program"
    done
    local missing
    missing=$("$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$libs" --list \
        "$root/usr/sbin/mysqld" | grep "not found" || true)
    if [ -n "$missing" ]; then
        echo "mysqld needs libraries neither sid's packages nor this system provide:" >&2
        echo "$missing" >&2
        exit 1
    fi
}

start() {
    [ -x "$root/usr/sbin/mysqld" ] || download
    wrap mysqld mysql mysqldump mysqlbinlog mysqladmin
    local user=()
    [ "$(id -u)" = 0 ] && user=(--user=root)
    local common=(--no-defaults "--basedir=$root/usr" "--lc-messages-dir=$root/usr/share/mysql" "${user[@]}"
        "--datadir=$data")
    if [ ! -d "$data" ]; then
        "$dir/bin/mysqld" "${common[@]}" --initialize-insecure > "$data.log" 2>&1
    fi
    "$dir/bin/mysqld" "${common[@]}" --port="$port" --bind-address=127.0.0.1 --socket="$data.sock" \
        --pid-file="$data.pid" --mysqlx=OFF --secure-file-priv= --server-id=1 --log-bin=mysql-bin \
        --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL --gtid-mode=ON \
        --enforce-gtid-consistency=ON --innodb-buffer-pool-size=1G "${extra[@]}" >> "$data.log" 2>&1 &
    local client=("$dir/bin/mysql" -h 127.0.0.1 -P "$port" -uroot)
    for _ in $(seq 1 120); do
        "${client[@]}" -e "SELECT 1" > /dev/null 2>&1 && break
        sleep 0.5
    done
    "${client[@]}" -e "SELECT 1" > /dev/null || { echo "mysqld did not start; see $data.log" >&2; exit 1; }
    "${client[@]}" -e "CREATE USER IF NOT EXISTS 'connector'@'%' IDENTIFIED BY 'connector';
        CREATE DATABASE IF NOT EXISTS connector;"
    grep -v '^--' "$repo/docker/init/mysql-grants.sql" | "${client[@]}"
    echo "MySQL $("${client[@]}" -N -e 'SELECT VERSION()') on port $port"
    echo "export CONNECTOR_TEST_MYSQL_URL=mysql://connector:connector@127.0.0.1:$port/connector"
}

stop() {
    [ -f "$data.pid" ] && kill "$(cat "$data.pid")" && echo "stopped the server of $data"
}

case "$action" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop [DIR] [PORT]" >&2; exit 2 ;;
esac
