// Command budget prints the kernels a make test run built (testkernel.Ledger)
// and fails when they compiled more objects than testkernel.Budget.
//
//	go run ./internal/testkernel/budget -since UNIX_SECONDS
//
// With -enable TARGET it prints the options the shared test kernel of
// TARGET adds to a spec's (testkernel.EnableFor), comma-separated: a
// spec given them builds that kernel (scripts/data-sizes.sh).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/testkernel"
)

func main() {
	since := flag.Int64("since", 0, "count the kernels built after this time (Unix seconds)")
	budget := flag.Int("budget", testkernel.Budget, "objects the run may compile")
	enable := flag.String("enable", "", "print the shared test kernel's options for this target and exit")
	flag.Parse()
	if *enable != "" {
		fmt.Println(strings.Join(testkernel.EnableFor(*enable), ","))
		return
	}
	if err := run(time.Unix(*since, 0), *budget); err != nil {
		fmt.Fprintln(os.Stderr, "kernel budget:", err)
		os.Exit(1)
	}
}

func run(since time.Time, budget int) error {
	cache, err := ksrc.CacheDir()
	if err != nil {
		return err
	}
	built, err := testkernel.Ledger(cache, since)
	if err != nil {
		return err
	}
	return testkernel.Summary(os.Stdout, built, budget)
}
