// Command gohttp is a small static Go HTTP server used as an example and by
// bespoke's end-to-end tests: a program with no shared libraries at all.
//
// Build it with CGO_ENABLED=0 go build ./examples/gohttp.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from bespoke gohttp on %s\n", host)
	})
	log.Printf("gohttp listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
