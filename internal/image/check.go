package image

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/spec"
)

// CheckFiles checks that the kernel and the root of the image in dir are
// the files its report describes: present, with the bytes it recorded. A
// truncated or replaced file is an error naming it, before a boot whose
// failure would blame the program, or a report that would show the
// recorded size.
func CheckFiles(dir string, rep *Report) error {
	files := map[string]int64{KernelFile: rep.KernelBytes}
	if rep.Initramfs != nil {
		root := RootFileOf(spec.RootInitramfs)
		if rep.Initramfs.Format == initramfs.FormatErofs {
			root = RootFileOf(spec.RootErofs)
		}
		files[root] = rep.InitramfsBytes
	}
	for name, want := range files {
		fi, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err != nil:
			return fmt.Errorf("image %s is damaged: %w (rebuild it with bespoke build)", dir, err)
		case want > 0 && fi.Size() != want:
			return fmt.Errorf("image %s is damaged: %s is %d bytes, its report.json says %d (rebuild it with bespoke build)", dir, name, fi.Size(), want)
		}
	}
	return nil
}
