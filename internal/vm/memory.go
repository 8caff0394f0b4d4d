package vm

import (
	"fmt"
	"strconv"
	"strings"
)

// Memory limits accepted by ParseMemory, in MiB.
const (
	minMemoryMB = 16
	maxMemoryMB = 1 << 20 // 1 TiB
)

// ParseMemory parses a guest memory size like QEMU's -m: a number of MiB
// ("512"), or a number with a suffix M or G ("256M", "1G"; also MB, MiB,
// GB, GiB, any case). It returns MiB.
func ParseMemory(s string) (int, error) {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	suffix := strings.ToLower(s[len(num):])
	mult := 0
	switch suffix {
	case "", "m", "mb", "mib":
		mult = 1
	case "g", "gb", "gib":
		mult = 1024
	}
	n, err := strconv.Atoi(num)
	if err != nil || mult == 0 {
		return 0, fmt.Errorf("bad memory size %q: want MiB or a size with M or G (e.g. 256M, 1G, 512)", s)
	}
	if n > maxMemoryMB || n*mult < minMemoryMB || n*mult > maxMemoryMB {
		return 0, fmt.Errorf("bad memory size %q: want %dM to %dG", s, minMemoryMB, maxMemoryMB/1024)
	}
	return n * mult, nil
}
