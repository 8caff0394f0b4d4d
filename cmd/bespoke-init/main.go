// Command bespoke-init is the init (PID 1) of a bespoke image: see
// package guestinit. Build it static: CGO_ENABLED=0.
package main

import "github.com/bespoke-os/bespoke/internal/guestinit"

func main() { guestinit.Main() }
