package image_test

import (
	"context"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/vm"
)

// BenchmarkRedisBoot boots the redis example image until redis accepts a
// connection through the forwarded port, then stops it. It reports the
// image's sizes and the boot times (host: from QEMU's start; guest: the
// guest's uptime when /init started).
//
//	go test -run '^$' -bench RedisBoot -benchtime 5x ./internal/image/
func BenchmarkRedisBoot(b *testing.B) {
	dir, rep := redisImageB(b)
	var init, guestInit, ready time.Duration
	for i := 0; i < b.N; i++ {
		res, err := vm.Run(context.Background(), vm.Config{
			ImageDir: dir,
			Timeout:  3 * time.Minute,
			OnReady:  func(ctx context.Context, ports map[int]int) error { return nil },
		})
		if err != nil {
			b.Fatal(err)
		}
		init += res.Boot.Init
		guestInit += res.Boot.GuestInit
		ready += res.Boot.Ready
	}
	n := float64(b.N)
	b.ReportMetric(init.Seconds()/n, "s-to-init(host)")
	b.ReportMetric(guestInit.Seconds()/n, "s-to-init(guest)")
	b.ReportMetric(ready.Seconds()/n, "s-to-ready(host)")
	b.ReportMetric(float64(rep.KernelBytes), "kernel-bytes")
	b.ReportMetric(float64(rep.InitramfsBytes), "initramfs-bytes")
	b.ReportMetric(float64(rep.TotalBytes), "total-bytes")
	b.ReportMetric(float64(rep.KernelSymbols), "kernel-options")
}
