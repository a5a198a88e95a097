#!/usr/bin/env bash
# Start a throwaway PostgreSQL and MariaDB server and a dovecot IMAP server (the bounce
# mailbox) for the tests, on loopback, and print
#   export INVITE_DESK_TEST_POSTGRES_URL=...
#   export INVITE_DESK_TEST_MARIADB_URL=...
#   export INVITE_DESK_TEST_IMAP_URL=...
# on stdout (everything else goes to stderr), so callers can `eval "$(scripts/start-test-servers.sh)"`.
#
# Why private data directories instead of the distro's "main" cluster / mariadb service:
# containers have no systemd, the distro cluster may not exist or be SQL_ASCII (no locale at
# install time), and its ports may be taken. Our own initdb / mariadb-install-db in a fixed
# directory behaves the same on a fresh CI box, a re-run, and a developer's machine.
#
# Idempotent: data directories are created once, servers are started only if not running, the
# user/database setup is re-applied every time. Works as root (servers run as the postgres
# and mysql users) and as a normal user (servers run as that user).
#
#   scripts/start-test-servers.sh          start (or reuse) both servers, print the exports
#   scripts/start-test-servers.sh stop     stop the servers (data is kept)
#
# Settings (env): INVITE_DESK_TEST_SERVERS_DIR (default /tmp/invite-desk-test-servers-$UID),
# INVITE_DESK_TEST_PG_PORT (55432), INVITE_DESK_TEST_MARIADB_PORT (53306),
# INVITE_DESK_TEST_IMAP_PORT (51143).
set -euo pipefail

state_dir=${INVITE_DESK_TEST_SERVERS_DIR:-/tmp/invite-desk-test-servers-$(id -u)}
pg_port=${INVITE_DESK_TEST_PG_PORT:-55432}
my_port=${INVITE_DESK_TEST_MARIADB_PORT:-53306}
imap_port=${INVITE_DESK_TEST_IMAP_PORT:-51143}
# Test-only credentials on a loopback-only server: fixed, so developers can reuse them.
db_user=invite_desk
db_pass=invite_desk_test
db_name=invite_desk_test

log() { echo "start-test-servers: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }
# Run a command as the service account when root (initdb and mariadbd refuse to run as root).
as_user() {
    local account=$1; shift
    if is_root; then runuser -u "$account" -- "$@"; else "$@"; fi
}

mkdir -p "$state_dir"
chmod 755 "$state_dir"   # the postgres/mysql accounts must be able to reach their subdirs
cd "$state_dir"          # a cwd they can enter (not e.g. /root/checkout), quiets psql
# Two concurrent runs (e.g. two terminals) must not both initdb / start the same server.
exec 9>"$state_dir/lock"
flock 9

# ------------------------------------------------------------------------------ PostgreSQL
# The newest installed major version (Debian installs them side by side).
pg_bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || pg_bin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")
pgdata=$state_dir/postgres

pg_running() { as_user postgres "$pg_bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; }

stop_postgres() {
    if [ -d "$pgdata" ] && pg_running; then
        as_user postgres "$pg_bin/pg_ctl" -D "$pgdata" -m fast -w stop >&2
    fi
}

start_postgres() {
    [ -x "$pg_bin/initdb" ] || die "PostgreSQL server binaries not found (install the postgresql package: scripts/install-system-deps.sh)"
    if [ ! -s "$pgdata/PG_VERSION" ]; then
        log "initdb $pgdata ($("$pg_bin/postgres" --version))"
        rm -rf "$pgdata"
        mkdir -p "$pgdata"
        if is_root; then chown postgres: "$pgdata"; fi
        chmod 700 "$pgdata"
        # UTF8 whatever the machine's locale is (a bare container has none -> SQL_ASCII).
        as_user postgres "$pg_bin/initdb" -D "$pgdata" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 >"$state_dir/initdb.log" 2>&1 \
            || { cat "$state_dir/initdb.log" >&2; die "initdb failed"; }
        # Loopback only; socket in the data dir (/run/postgresql may not exist in a container);
        # durability off: this is a test server and it makes CREATE DATABASE per test module fast.
        cat >>"$pgdata/postgresql.conf" <<EOF

# --- invite-desk test server (scripts/start-test-servers.sh) ---
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pgdata'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    fi
    if pg_running; then
        log "PostgreSQL already running ($pgdata)"
    else
        log "starting PostgreSQL on 127.0.0.1:$pg_port"
        # pg_ctl -l detaches the server from our stdout, so `$(...)` callers do not hang;
        # 9>&- keeps the lock fd out of the long-lived server (or the next run would block).
        as_user postgres "$pg_bin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 start >&2 9>&- \
            || { tail -n 30 "$pgdata/server.log" >&2; die "PostgreSQL did not start (port $pg_port taken? set INVITE_DESK_TEST_PG_PORT)"; }
    fi
    # Superuser over the private socket (trust), then (re)create the test role and database.
    as_user postgres "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$pgdata" -p "$pg_port" \
        -U postgres -d postgres >&2 <<EOF
SELECT 'CREATE ROLE $db_user LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$db_user')\gexec
ALTER ROLE $db_user LOGIN CREATEDB PASSWORD '$db_pass';
SELECT 'CREATE DATABASE $db_name OWNER $db_user' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db_name')\gexec
EOF
    # Prove the URL we print works: TCP + password, like the tests.
    PGPASSWORD=$db_pass PGCONNECT_TIMEOUT=10 "$pg_bin/psql" -X -q -At -h 127.0.0.1 -p "$pg_port" \
        -U "$db_user" -d "$db_name" -c 'SELECT 1' >/dev/null \
        || die "cannot log in to PostgreSQL as $db_user over TCP"
}

# -------------------------------------------------------------------------------- MariaDB
mydata=$state_dir/mariadb
# Socket, pid and log inside the data dir: the one place the mysql account can write.
my_sock=$mydata/mysqld.sock
my_pid=$mydata/mysqld.pid
my_log=$mydata/mysqld.err
mariadbd_bin=$(command -v mariadbd || echo /usr/sbin/mariadbd)
# Admin connection: unix_socket auth as the OS user that ran mariadb-install-db.
my_admin_user=$(if is_root; then echo root; else id -un; fi)

my_admin() { mariadb-admin --no-defaults --socket="$my_sock" -u "$my_admin_user" "$@"; }
my_running() { [ -S "$my_sock" ] && my_admin --connect-timeout=2 ping >/dev/null 2>&1; }

stop_mariadb() {
    if my_running; then
        log "stopping MariaDB"
        my_admin shutdown >&2
    fi
}

start_mariadb() {
    [ -x "$mariadbd_bin" ] || die "MariaDB server not found (install the mariadb-server package: scripts/install-system-deps.sh)"
    if [ ! -d "$mydata/mysql" ]; then
        log "mariadb-install-db $mydata"
        rm -rf "$mydata"
        mkdir -p "$mydata"
        local install_opts=(--no-defaults --datadir="$mydata" --skip-test-db
                            --auth-root-authentication-method=socket)
        if is_root; then
            chown mysql: "$mydata"
            install_opts+=(--user=mysql)
        else
            install_opts+=(--auth-root-socket-user="$my_admin_user")
        fi
        mariadb-install-db "${install_opts[@]}" >"$state_dir/mariadb-install-db.log" 2>&1 \
            || { cat "$state_dir/mariadb-install-db.log" >&2; die "mariadb-install-db failed"; }
    fi
    if my_running; then
        log "MariaDB already running ($mydata)"
    else
        log "starting MariaDB on 127.0.0.1:$my_port"
        rm -f "$my_sock" "$my_pid"   # stale after a crash / reboot
        local opts=(--no-defaults --datadir="$mydata" --socket="$my_sock" --pid-file="$my_pid"
                    --log-error="$my_log" --port="$my_port" --bind-address=127.0.0.1
                    --skip-name-resolve --max-connections=300
                    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci
                    # test server: trade durability for speed
                    --innodb-flush-log-at-trx-commit=0 --sync-binlog=0 --innodb-doublewrite=0)
        if is_root; then opts+=(--user=mysql); fi
        # setsid + redirections: fully detached, holds neither our stdout (`$(...)` callers)
        # nor the lock fd.
        setsid "$mariadbd_bin" "${opts[@]}" </dev/null >>"$my_log" 2>&1 9>&- &
        local pid=$! _
        for _ in $(seq 1 120); do
            my_running && break
            kill -0 "$pid" 2>/dev/null || break   # it died: no point waiting
            sleep 0.5
        done
        my_running || { tail -n 30 "$my_log" >&2; die "MariaDB did not start (port $my_port taken? set INVITE_DESK_TEST_MARIADB_PORT)"; }
    fi
    # Tests create and drop databases of their own, hence ALL on *.*.
    mariadb --no-defaults --socket="$my_sock" -u "$my_admin_user" >&2 <<EOF
CREATE USER IF NOT EXISTS '$db_user'@'127.0.0.1' IDENTIFIED BY '$db_pass';
CREATE USER IF NOT EXISTS '$db_user'@'localhost' IDENTIFIED BY '$db_pass';
ALTER USER '$db_user'@'127.0.0.1' IDENTIFIED BY '$db_pass';
ALTER USER '$db_user'@'localhost' IDENTIFIED BY '$db_pass';
GRANT ALL PRIVILEGES ON *.* TO '$db_user'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '$db_user'@'localhost';
CREATE DATABASE IF NOT EXISTS $db_name CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
EOF
    # Prove the URL we print works: TCP + password, like the tests.
    mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$my_port" -u "$db_user" \
        --password="$db_pass" --connect-timeout=10 -e 'SELECT 1' "$db_name" >/dev/null \
        || die "cannot log in to MariaDB as $db_user over TCP"
}

# ---------------------------------------------------------------------------- dovecot IMAP
# A private dovecot (its own config, base_dir and mail in $state_dir/dovecot), plaintext IMAP
# on loopback only. Any user name signs in with the one test password, and each user gets an
# empty Maildir of their own: every test uses a fresh user name, so tests never share mail.
imapdir=$state_dir/dovecot
imap_pass=invite_desk_test
dovecot_bin=$(command -v dovecot || echo /usr/sbin/dovecot)

imap_running() { [ -f "$imapdir/run/master.pid" ] && kill -0 "$(cat "$imapdir/run/master.pid")" 2>/dev/null; }

stop_dovecot() {
    if imap_running; then
        log "stopping dovecot"
        "$dovecot_bin" -c "$imapdir/dovecot.conf" stop >&2 || true
    fi
}

start_dovecot() {
    [ -x "$dovecot_bin" ] || die "dovecot not found (install the dovecot-imapd package: scripts/install-system-deps.sh)"
    local mail_user mail_group internal
    if is_root; then
        mail_user=nobody; mail_group=nogroup; internal=dovenull
    else
        mail_user=$(id -un); mail_group=$(id -gn); internal=$mail_user
    fi
    mkdir -p "$imapdir/run" "$imapdir/mail"
    if is_root; then chown "$mail_user:$mail_group" "$imapdir/mail"; fi
    cat >"$imapdir/dovecot.conf" <<EOF
# --- invite-desk test IMAP server (scripts/start-test-servers.sh) ---
instance_name = invite-desk-test
base_dir = $imapdir/run
state_dir = $imapdir/run/state
log_path = $imapdir/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = $internal
default_internal_user = $internal
default_internal_group = $mail_group
first_valid_uid = 1
mail_location = maildir:$imapdir/mail/%u
mail_uid = $mail_user
mail_gid = $mail_group
passdb {
  driver = static
  args = password=$imap_pass
}
userdb {
  driver = static
  args = uid=$mail_user gid=$mail_group home=$imapdir/mail/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
EOF
    if imap_running; then
        log "dovecot already running ($imapdir)"
    else
        log "starting dovecot on 127.0.0.1:$imap_port"
        "$dovecot_bin" -c "$imapdir/dovecot.conf" </dev/null >>"$imapdir/start.log" 2>&1 9>&- \
            || { tail -n 30 "$imapdir/start.log" "$imapdir/dovecot.log" >&2 2>/dev/null; die "dovecot did not start (port $imap_port taken? set INVITE_DESK_TEST_IMAP_PORT)"; }
    fi
    local _
    for _ in $(seq 1 40); do
        (exec 3<>"/dev/tcp/127.0.0.1/$imap_port") 2>/dev/null && return 0
        sleep 0.25
    done
    tail -n 30 "$imapdir/dovecot.log" >&2 2>/dev/null
    die "dovecot is not answering on 127.0.0.1:$imap_port"
}

# ----------------------------------------------------------------------------------- main
case "${1:-start}" in
    stop)
        stop_postgres
        stop_mariadb
        stop_dovecot
        exit 0
        ;;
    start) ;;
    *) die "usage: $0 [start|stop]" ;;
esac

start_postgres
start_mariadb
start_dovecot
log "ready (data in $state_dir)"
echo "export INVITE_DESK_TEST_POSTGRES_URL='postgresql+psycopg://$db_user:$db_pass@127.0.0.1:$pg_port/$db_name'"
echo "export INVITE_DESK_TEST_IMAP_URL='imap://any:$imap_pass@127.0.0.1:$imap_port'"
echo "export INVITE_DESK_TEST_MARIADB_URL='mysql+pymysql://$db_user:$db_pass@127.0.0.1:$my_port/$db_name?charset=utf8mb4'"
