# Sourced by scripts/perf.sh and scripts/cross.sh.

# count_workload prints the bench workload of an app whose spec's runs for
# a fixed time, or nothing.
count_workload() {
  case $1 in
  postgresql)
    echo 'o=$(mktemp); trap "rm -f \"\$o\"" EXIT; pgbench -h {host} -p {port} -U postgres -i -s 1 postgres > "$o" 2>&1 && pgbench -h {host} -p {port} -U postgres -c 4 -j 2 -t 500 postgres >> "$o" 2>&1; s=$?; cat "$o"; exit $s' ;;
  mariadb)
    echo 'sb="sysbench oltp_read_write --db-driver=mysql --mysql-host={host} --mysql-port={port} --mysql-user=sbtest --mysql-db=sbtest --tables=4 --table-size=10000 --mysql-ignore-errors=1213"; $sb cleanup > /dev/null && $sb prepare > /dev/null && $sb --threads=2 --events=1000 --time=0 run' ;;
  esac
}
