package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	dir := t.TempDir()
	rep := `{"name":"redis","kernel_bytes":1960000,"initramfs_bytes":6140000,"total_bytes":8100000,"kernel_symbols":506,
"initramfs":{"format":"erofs","compression":"lzma","files":[{"path":"/init"},{"path":"/usr/bin/redis-server"}]},"min_memory_mb":22,
"boot":{"accel":"tcg","ready_host":6.42,"stop_exit_code":0},"workload":{"exit_code":0,"seconds":1.04}}`
	if err := os.WriteFile(filepath.Join(dir, "report.json"), []byte(rep), 0o644); err != nil {
		t.Fatal(err)
	}
	sized(t, dir, "bzImage", 1960000)
	sized(t, dir, "root.erofs", 6140000)
	// A reason of several lines, with a "|": still one row.
	if err := os.WriteFile(filepath.Join(dir, "verify.json"), []byte(`{"passed":false,"reason":"the workload failed (exit 1):\nERR | x\n","rounds":[{"n":1}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"report", dir}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	want := "| redis | 1.87 MB | 5.86 MB (erofs, lzma) | 7.72 MB | 506 | 2 | 6.42 s (tcg) | 22 MiB | exit 0 in 1.0 s | exit 0 | failed: the workload failed (exit 1): ERR / x (1 round(s)) |"
	if len(lines) != 3 || lines[2] != want {
		t.Errorf("got\n%s\nwant the header and the row\n%s", stdout.String(), want)
	}
	if code := Main(context.Background(), []string{"report"}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("report without a dir: exit %d, want 2", code)
	}
	// A truncated kernel is not reported with the size report.json
	// recorded: the image is damaged. The other images are still
	// reported.
	sized(t, dir, "bzImage", 1000)
	good := t.TempDir()
	if err := os.WriteFile(filepath.Join(good, "report.json"), []byte(strings.Replace(rep, `"redis"`, `"other"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	sized(t, good, "bzImage", 1960000)
	sized(t, good, "root.erofs", 6140000)
	stderr.Reset()
	stdout.Reset()
	if code := Main(context.Background(), []string{"report", dir, good}, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "bespoke report: "+dir+": image "+dir+" is damaged: bzImage is 1000 bytes, its report.json says 1960000") {
		t.Errorf("report of a truncated bzImage: exit %d, %s; want 1 and the sizes", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "| other | 1.87 MB |") {
		t.Errorf("the good image is not reported beside the damaged one:\n%s", stdout.String())
	}
}

// sized makes dir/name a sparse file of n bytes.
func sized(t *testing.T, dir, name string, n int64) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(n); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// A profile-guided, shaken image gets a kernel section: sizes per
// variant, the profile's counts, the syscalls removed, bench's table.
func TestReportKernel(t *testing.T) {
	dir := t.TempDir()
	rep := `{"name":"redis","kernel_bytes":1960000,"initramfs_bytes":6140000,"total_bytes":8100000,
"pgo":{"Hot":400,"Cold":500,"Functions":20000,"Executed":5000,"ProfileBytes":4000000,
 "O2":{"code":5000000,"text":9000000,"data":2000000,"bss":1000000,"bzimage":1960000},
 "Optimized":{"code":5100000,"text":8000000,"data":2000000,"bss":1000000,"bzimage":1800000},
 "Phases":[{"name":"profile","seconds":120}],
 "Variants":[{"Name":"-Os","code":4000000,"text":7000000,"data":2000000,"bss":1000000,"bzimage":1700000,"Seconds":400}]},
"syscalls":{"table":373,"kept":150,"removed":["sysinfo","times"],"removed_nrs":[99,100]},
"kernel":{"vmlinux":{"code":4501301},"gc_sections":{"functions":4298,"data":447,"other":12,"syscalls":["sysinfo","times"]}}}`
	if err := os.WriteFile(filepath.Join(dir, "report.json"), []byte(rep), 0o644); err != nil {
		t.Fatal(err)
	}
	sized(t, dir, "bzImage", 1960000)
	sized(t, dir, "initramfs.cpio.xz", 6140000)
	bench := `{"workload":"redis-benchmark","accel":"tcg","runs":5,"date":"2026-12-02","kernels":[
{"label":"o2","file":"bzImage.o2","seconds":[1,2],"mean_seconds":{"mean":1.5,"stddev":0.7}},
{"label":"pgo","file":"bzImage","seconds":[1,1],"mean_seconds":{"mean":1,"stddev":0}}]}`
	if err := os.WriteFile(filepath.Join(dir, BenchFile), []byte(bench), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"report", dir}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{
		"| -O2 | 4.77 MB | 8.58 MB | 1.91 MB | 976.6 KB | 1.87 MB |",
		"| -Os | 3.81 MB | 6.68 MB |",
		"| PGO, cold units -Os (the image's) | 4.86 MB | 7.63 MB |",
		"400 ran code under the workload",
		"Syscalls: 150 of the table's 373 kept, 2 removed (they return ENOSYS): sysinfo, times.",
		"Dead code (--kernel-dce): the link removed 4298 functions, 447 data objects and 12 other sections; vmlinux has 4.29 MB of code. Syscall entry points removed: 2 (sysinfo, times).",
		"| pgo | 1.000 ± 0.000 | -33.3% |",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
}

// An image with data trees and package files left out gets a data
// section: each tree with why, each package with where its files are.
func TestReportData(t *testing.T) {
	dir := t.TempDir()
	rep := `{"name":"postgresql","kernel_bytes":100,"initramfs_bytes":200,"total_bytes":300,
"shake":{"mode":"static","objects":[{"path":"/usr/lib/x86_64-linux-gnu/libc.so.6","functions":3671,"removed":1551,"text_bytes":1392301,"removed_bytes":362528,"gadgets_before":9000,"gadgets_after":6000},
 {"path":"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2","kept_whole":"the dynamic loader","text_bytes":151729,"gadgets_before":800,"gadgets_after":800}],
 "text_bytes":1544030,"removed_bytes":362528,"removed_functions":1551,"gadgets_before":9800,"gadgets_after":6800,
 "restored":["/usr/lib/x86_64-linux-gnu/libc.so.6:setrlimit"]},
"data_trees":[{"name":"zoneinfo","what":"time zones","why":"opened /usr/share/zoneinfo/UTC","paths":["/usr/share/zoneinfo"],"files":901,"bytes":1311940}],
"not_in_image":[{"name":"postgresql-15","programs":["/usr/lib/postgresql/15/bin/postgres"],"shipped":5,
 "missing":["/usr/share/postgresql/15/extension/a.sql","/usr/share/postgresql/15/extension/b.sql","/usr/share/postgresql/15/tsearch_data/c","/etc/postgresql-common/x"],"missing_bytes":4096},
 {"name":"other","programs":["/bin/x"],"shipped":3,"missing_bytes":0}]}`
	if err := os.WriteFile(filepath.Join(dir, "report.json"), []byte(rep), 0o644); err != nil {
		t.Fatal(err)
	}
	sized(t, dir, "bzImage", 100)
	sized(t, dir, "root.erofs", 200)
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"report", dir}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{
		"### postgresql: data beyond the trace",
		"| zoneinfo | 901 | 1.25 MB | opened /usr/share/zoneinfo/UTC |",
		"### postgresql: programs and libraries shaken (static)",
		"| /usr/lib/x86_64-linux-gnu/libc.so.6 | 1551 of 3671 | 354.0 KB of 1.33 MB | 9000 -> 6000 |",
		"| /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 | kept whole: the dynamic loader | 0 of 148.2 KB | 800 |",
		"| all | 1551 | 354.0 KB of 1.47 MB | 9800 -> 6800 |",
		"Kept beyond the static analysis (verify --fix, the smoke boot): /usr/lib/x86_64-linux-gnu/libc.so.6:setrlimit\n",
		"- postgresql-15: 4 of its 5 files under /etc and /usr/share (4.0 KB), in /usr/share/postgresql/15/extension (2), /etc/postgresql-common (1), /usr/share/postgresql/15/tsearch_data (1)\n",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
	if strings.Contains(stdout.String(), "- other") {
		t.Errorf("a package with nothing left out is listed:\n%s", stdout.String())
	}
	if want := "bespoke report: postgresql (" + dir + ") has no workload result"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", stderr.String(), want)
	}
}

func TestVerifyUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{{"verify"}, {"verify", "a", "b"}, {"verify", "--max-rounds", "0", "a"}} {
		if code := Main(context.Background(), args, nil, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
	stderr.Reset()
	code := Main(context.Background(), []string{"verify", t.TempDir()}, nil, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "spec.json") {
		t.Errorf("verify of a directory that is no image: exit %d, stderr %q; want an error naming spec.json", code, stderr.String())
	}
}
